"""Blender tests run against the real ``bpy`` module (installed by `make test`) with a fresh empty scene.

This folder is on ``sys.path`` for its fixture module ``synthetic_rig``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import bpy
import pytest
from serving_helpers import FAST_BACKEND, BackendProcess, backend_process

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def backend() -> Iterator[BackendProcess]:
    """``rigstyle serve`` as a subprocess, shared by the tests that talk to a backend."""
    with backend_process(*FAST_BACKEND) as process:
        yield process


@pytest.fixture(autouse=True)
def empty_scene() -> None:
    bpy.ops.wm.read_factory_settings(use_empty=True)


@pytest.fixture
def addon() -> Iterator[bpy.types.AddonPreferences]:
    """The add-on enabled as Blender enables it (its preferences yielded), disabled afterwards."""
    import addon_utils  # Blender's own module: importable once bpy is

    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    try:
        yield bpy.context.preferences.addons["blender_addon"].preferences
    finally:
        addon_utils.disable("blender_addon", default_set=True)
