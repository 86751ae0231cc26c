"""Blender tests run against the real ``bpy`` module (installed by `make test`) with a fresh empty scene."""

from __future__ import annotations

import bpy
import pytest


@pytest.fixture(autouse=True)
def empty_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
