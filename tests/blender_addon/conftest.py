"""Blender tests run against the real ``bpy`` module (installed by `make test`) with a fresh empty scene.

This folder is on ``sys.path`` for its fixture module ``synthetic_rig``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(autouse=True)
def empty_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
