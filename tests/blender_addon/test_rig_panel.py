"""The rig panel's operators and properties in real Blender: rotations in degrees written to each bone's own
rotation mode, reset / randomize keeping Euler bones Euler, expression presets (named shapes, emotions,
action units) applied and keyed, SMPL-X hand presets, the demo head at the 3D cursor, the sub-panels."""

from __future__ import annotations

import math
from dataclasses import replace

import bpy
import mathutils
import numpy as np
import pytest
from synthetic_rig import SMPLX_PARENTS, tube_rig

import blender_addon.ui as ui
import rigs
from blender_addon.expression import rig_expression_space
from blender_addon.names import EXPRESSION_KEY_PREFIX
from blender_addon.rig_builder import RigObjects, build_rig
from blender_addon.rig_params import joint_names, quaternion_from_rotvec, rotation_channel, shape_keys
from blender_addon.sequences import existing_fcurves
from rigs.expression import ExpressionError, emotion_offset
from rigs.pose import SMPLX_JOINT_NAMES, hand_preset

pytestmark = pytest.mark.blender
DEGREES = (10.0, -20.0, 30.0)


def demo(context: bpy.types.Context) -> RigObjects:
    objects = build_rig(rigs.demo_head(), "Demo")
    context.view_layer.objects.active = objects.armature
    return objects


def smplx_like() -> rigs.Rig:
    """A small tube rig with SMPL-X's tree, joint names and a mean hand pose."""
    rig = tube_rig(8, 12, SMPLX_PARENTS, 2, 2, name="smplx-like")
    mean = np.random.default_rng(1).normal(0.0, 0.2, (2, 45))
    return replace(rig, joint_names=SMPLX_JOINT_NAMES, hand_mean=mean, hand_components=np.zeros((2, 0, 45)))


def rotation_of(bone: bpy.types.PoseBone) -> mathutils.Quaternion:
    return bone.matrix_basis.to_quaternion()


@pytest.mark.parametrize("mode", ["QUATERNION", "ZXY", "AXIS_ANGLE"])
def test_degrees_round_trip_to_the_bone_s_own_rotation(addon: None, mode: str) -> None:
    objects = demo(bpy.context)
    bone = objects.armature.pose.bones["jaw"]
    bone.rotation_mode = mode
    bpy.context.scene.tool_settings.use_keyframe_insert_auto = True
    bpy.context.scene.frame_set(7)

    bone.rigstyle_rotation_degrees = [math.radians(d) for d in DEGREES]

    assert bone.rotation_mode == mode, "the bone keeps its rotation mode"
    wanted = mathutils.Euler([math.radians(d) for d in DEGREES], "XYZ").to_quaternion()
    assert rotation_of(bone).rotation_difference(wanted).angle < 1e-5
    np.testing.assert_allclose([math.degrees(a) for a in bone.rigstyle_rotation_degrees], DEGREES, atol=1e-4)
    channel = rotation_channel(bone)
    fcurves = ui_fcurves(objects, f'pose.bones["jaw"].{channel}')
    assert fcurves and all(7.0 in [k.co[0] for k in f.keyframe_points] for f in fcurves), (
        "keyed its own channel"
    )


def ui_fcurves(objects: RigObjects, path: str) -> list[bpy.types.FCurve]:
    fcurves = existing_fcurves(objects.armature)
    return [] if fcurves is None else [f for f in fcurves if f.data_path == path]


def test_reset_and_randomize_keep_euler_bones_euler(addon: None) -> None:
    objects = demo(bpy.context)
    neck = objects.armature.pose.bones["neck"]
    neck.rotation_mode = "XYZ"
    objects.armature.rigstyle.random_seed = 4
    assert bpy.ops.rigstyle.randomize_params(group="HEAD") == {"FINISHED"}
    assert neck.rotation_mode == "XYZ" and max(abs(a) for a in neck.rotation_euler) > 0.01
    assert bpy.ops.rigstyle.reset_params(group="HEAD") == {"FINISHED"}
    assert neck.rotation_mode == "XYZ" and max(abs(a) for a in neck.rotation_euler) < 1e-9


def test_an_emotion_preset_applies_and_keys(addon: None) -> None:
    objects = demo(bpy.context)
    scene = bpy.context.scene
    scene.frame_set(5)
    result = bpy.ops.rigstyle.apply_expression_preset(preset="happiness", intensity=0.7, key=True)
    assert result == {"FINISHED"}
    offset = emotion_offset(rig_expression_space(objects), "happiness", 0.7)
    values = [k.value for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)]
    np.testing.assert_allclose(values, offset.expression, atol=1e-6)
    keys = objects.mesh.data.shape_keys
    scene.frame_set(20)  # a single key holds its value on every frame
    np.testing.assert_allclose(
        [k.value for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)], values, atol=1e-6
    )
    assert keys.animation_data is not None

    assert bpy.ops.rigstyle.apply_expression_preset(preset="neutral") == {"FINISHED"}
    assert all(k.value == 0.0 for k in shape_keys(objects, EXPRESSION_KEY_PREFIX))
    assert bpy.ops.rigstyle.apply_expression_preset(preset="smile", intensity=0.5) == {"FINISHED"}
    smile = keys.key_blocks[EXPRESSION_KEY_PREFIX + "smile"]
    assert smile.value == pytest.approx(0.5)
    assert sum(k.value != 0.0 for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)) == 1


def test_presets_a_rig_lacks_are_refused(addon: None) -> None:
    rig = tube_rig(8, 12, np.array([-1, 0, 1]), 2, 2, name="tube")
    objects = build_rig(rig, "Tube")
    bpy.context.view_layer.objects.active = objects.armature
    offered = {name for name, _, _ in ui.expression_presets(objects)}
    assert offered == {"neutral"}, "no named shapes and no 68 landmarks: only neutral"
    before = [k.value for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)]
    with pytest.raises(ExpressionError, match="preset 'happiness': not available on this rig"):
        ui.apply_expression_preset(objects, "happiness", 1.0, None)
    assert [k.value for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)] == before
    assert not bpy.ops.rigstyle.apply_hand_preset.poll(), "no hands"


def test_hand_presets_pose_the_fingers(addon: None) -> None:
    rig = smplx_like()
    objects = build_rig(rig, "Body")
    bpy.context.view_layer.objects.active = objects.armature
    assert bpy.types.RIGSTYLE_PT_rig_hands.poll(bpy.context)
    assert bpy.ops.rigstyle.apply_hand_preset(preset="fist", key=True) == {"FINISHED"}
    rest = np.array([objects.armature.data.bones[n].head_local for n in joint_names(objects)])
    expected = hand_preset(SMPLX_JOINT_NAMES, rest, "fist")
    bones = objects.armature.pose.bones
    for name, rotvec in expected.items():
        got = rotation_of(bones[name])
        assert got.rotation_difference(quaternion_from_rotvec(rotvec)).angle < 1e-5, name
    assert bpy.ops.rigstyle.apply_hand_preset(preset="relaxed") == {"FINISHED"}
    first = rotation_of(bones["left_index1"])
    assert first.rotation_difference(quaternion_from_rotvec(rig.hand_mean[0, :3])).angle < 1e-5, (
        "the model's mean hand"
    )
    assert bpy.ops.rigstyle.apply_hand_preset(preset="flat") == {"FINISHED"}
    assert all(rotation_of(bones[n]).angle < 1e-9 for n in expected)


def test_the_demo_head_is_added_at_the_cursor_selected_and_active(addon: None) -> None:
    bpy.ops.mesh.primitive_cube_add()
    cube = bpy.context.object
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    assert bpy.ops.rigstyle.add_demo_head() == {"FINISHED"}
    armature = bpy.context.object
    assert armature.type == "ARMATURE" and armature.select_get() and not cube.select_get()
    assert tuple(armature.location) == pytest.approx((1.0, 2.0, 0.5))
    bpy.context.view_layer.objects.active = cube
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        assert not bpy.ops.rigstyle.add_demo_head.poll(), "Object Mode only"
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


def test_the_group_sub_panels_show_only_groups_the_rig_has(addon: None) -> None:
    demo(bpy.context)
    shown = {cls.group for cls in ui.GROUP_PANELS if cls.poll(bpy.context)}
    assert shown == {"IDENTITY", "EXPRESSION", "HEAD", "BODY"}, "the demo head has no hands"
    assert all("DEFAULT_CLOSED" in cls.bl_options for cls in ui.GROUP_PANELS)
