"""The add-on registers into real Blender, its operator adds the demo rig, and it unregisters cleanly."""

from __future__ import annotations

import bpy
import pytest

import blender_addon
from blender_addon.names import RIG_NAME_PROP

pytestmark = pytest.mark.blender


def test_register_add_demo_head_unregister() -> None:
    blender_addon.register()
    try:
        assert bpy.ops.rigstyle.add_demo_head() == {"FINISHED"}
        armatures = [o for o in bpy.data.objects if o.type == "ARMATURE" and RIG_NAME_PROP in o]
        assert len(armatures) == 1
        mesh = armatures[0].children[0]
        assert len(mesh.data.vertices) >= 2000
        assert {"expression.jaw_open", "expression.smile"} <= set(mesh.data.shape_keys.key_blocks.keys())
    finally:
        blender_addon.unregister()
    assert not hasattr(bpy.types, "RIGSTYLE_OT_add_demo_head")
