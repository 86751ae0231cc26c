"""The add-on registers into real Blender, its operators add, reset and randomize a rig, and it unregisters
cleanly (classes, the settings property and the live handlers)."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

import blender_addon
from blender_addon import live
from blender_addon.names import RIG_NAME_PROP
from blender_addon.rig_builder import RigObjects
from blender_addon.rig_params import read_params
from blender_addon.ui import joint_group

pytestmark = pytest.mark.blender
CLASS_NAMES = (  # property groups are registered too, but not exposed in bpy.types
    "RIGSTYLE_OT_add_demo_head",
    "RIGSTYLE_OT_reset_params",
    "RIGSTYLE_OT_randomize_params",
    "RIGSTYLE_PT_rig",
    "RIGSTYLE_OT_render_shot",
    "RIGSTYLE_OT_cancel_shot",
    "RIGSTYLE_OT_restore_compositor",
    "RIGSTYLE_OT_preview",
    "RIGSTYLE_PT_render",
    "RIGSTYLE_OT_check_backend",
    "RIGSTYLE_OT_start_backend",
    "RIGSTYLE_OT_stop_backend",
    "RIGSTYLE_OT_import_rig",
    "RIGSTYLE_OT_import_take",
    "RIGSTYLE_OT_export_take",
)


def handler_names() -> set[str]:
    events = (bpy.app.handlers.frame_change_post, bpy.app.handlers.depsgraph_update_post)
    return {h.__qualname__ for event in events for h in event if h.__module__ == live.__name__}


def test_register_add_demo_head_unregister() -> None:
    blender_addon.register()
    try:
        assert all(hasattr(bpy.types, name) for name in CLASS_NAMES)
        assert all(cls.is_registered for cls in blender_addon.classes)
        assert handler_names() == {"_on_frame_change_post", "_on_depsgraph_update_post"}
        assert bpy.context.scene.rigstyle_render.preview_scale == 50
        assert bpy.ops.rigstyle.add_demo_head() == {"FINISHED"}
        armatures = [o for o in bpy.data.objects if o.type == "ARMATURE" and RIG_NAME_PROP in o]
        assert len(armatures) == 1
        mesh = [c for c in armatures[0].children if c.type == "MESH"][0]
        assert len(mesh.data.vertices) >= 2000
        keys = set(mesh.data.shape_keys.key_blocks.keys())
        assert {"expression.jaw_open", "expression.smile", "pose_correctives"} <= keys
        objects = RigObjects(armature=armatures[0], mesh=mesh)
        bpy.context.view_layer.objects.active = objects.armature
        objects.armature.rigstyle.random_seed = 3

        assert bpy.ops.rigstyle.randomize_params(group="EXPRESSION") == {"FINISHED"}
        params = read_params(objects)
        assert np.abs(params["expression"]).max() > 0 and np.abs(params["pose"]).max() == 0
        assert bpy.ops.rigstyle.randomize_params(group="HEAD") == {"FINISHED"}
        assert np.abs(read_params(objects)["pose"][1:]).max() > 0, "neck, jaw and eyes turned"
        assert bpy.ops.rigstyle.reset_params(group="ALL") == {"FINISHED"}
        params = read_params(objects)
        assert all(np.abs(v).max(initial=0) < 1e-6 for v in params.values())
    finally:
        blender_addon.unregister()
    assert not any(hasattr(bpy.types, name) for name in CLASS_NAMES)
    assert not any(cls.is_registered for cls in blender_addon.classes)
    assert not hasattr(bpy.types.Object, "rigstyle")
    assert not hasattr(bpy.types.Scene, "rigstyle_render")
    assert handler_names() == set()


def test_registering_twice_over_a_reload_keeps_one_copy_of_each_handler() -> None:
    live.install_handlers()
    live.install_handlers()
    try:
        assert len([h for h in bpy.app.handlers.frame_change_post if h.__module__ == live.__name__]) == 1
    finally:
        live.uninstall_handlers()


@pytest.mark.parametrize(
    ("joint", "group"),
    [("jaw", "HEAD"), ("neck", "HEAD"), ("left_eye", "HEAD"), ("right_eye_smplhf", "HEAD"), ("head", "HEAD")]
    + [("pelvis", "BODY"), ("left_wrist", "BODY"), ("global", "BODY"), ("root", "BODY")]
    + [("left_index1", "HANDS"), ("right_thumb3", "HANDS"), ("left_pinky2", "HANDS")],
)
def test_joint_groups_follow_flame_and_smplx_names(joint: str, group: str) -> None:
    assert joint_group(joint) == group
