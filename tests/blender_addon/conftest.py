"""Blender tests run against the real ``bpy`` module with a fresh empty scene each."""

from __future__ import annotations

import pytest

bpy = pytest.importorskip("bpy", reason="the real bpy module is installed by `make test`")


@pytest.fixture(autouse=True)
def empty_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)
