"""Parametric face/body rigs for RigStyle: model files, linear blend skinning, landmarks, the demo head.

numpy only: no bpy, no torch.
"""

from __future__ import annotations

from . import regions
from .demo_head import demo_head
from .errors import RigError
from .io import load, save
from .model import Rig, RigOutput

__all__ = ["Rig", "RigError", "RigOutput", "demo_head", "load", "regions", "save"]
