"""Parametric face/body rigs for RigStyle: model files, linear blend skinning, landmarks, the demo head.

numpy only: no bpy, no torch.
"""

from __future__ import annotations

from . import regions
from .demo.head import demo_head
from .errors import RigError
from .io import load, save
from .landmarks import LandmarkEmbedding, load_landmark_embedding
from .model import Rig, RigOutput
from .pose import compose_pose, hand_pose_from_pca, pose_parts

__all__ = [
    "LandmarkEmbedding",
    "Rig",
    "RigError",
    "RigOutput",
    "compose_pose",
    "demo_head",
    "hand_pose_from_pca",
    "load",
    "load_landmark_embedding",
    "pose_parts",
    "regions",
    "save",
]
