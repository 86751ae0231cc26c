"""In real Blender: a FLAME-tracker take imported onto the demo head, "happiness 0.7" transferred as a new
action, the original action kept; the speech (jaw keys) untouched; bad requests refused without changes."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

import rigs
from blender_addon import register, unregister
from blender_addon.expression import apply_emotion, rig_expression_space
from blender_addon.rig_builder import build_rig
from blender_addon.rig_params import find_rig
from blender_addon.sequences import export_sequence, import_sequence
from rigs.demo.talking import talking_take
from rigs.expression import ExpressionError, action_unit_offset, space_of, speech_preserving_offset
from rigs.sequences import load_sequence

pytestmark = pytest.mark.blender
FRAMES = 30


def flame_take_file(folder: Path) -> Path:
    """The procedural talking take written as a FLAME tracker's ``.npz`` (exp, per-part poses, trans)."""
    take = talking_take(rigs.demo_head(), frames=FRAMES, fps=24.0)
    path = folder / "tracked.npz"
    np.savez(
        path, exp=take.expression, global_pose=take.pose[:, 0], neck_pose=take.pose[:, 1],
        jaw_pose=take.pose[:, 2], eye_pose=take.pose[:, 3:].reshape(FRAMES, 6), trans=take.transl,
        fps=np.array(24.0),
    )  # fmt: skip
    return path


def scene_with_take(folder: Path) -> bpy.types.Scene:
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    scene.frame_start, scene.frame_end = 1, FRAMES
    objects = build_rig(rigs.demo_head())
    import_sequence(objects, load_sequence(flame_take_file(folder)), 1, scene)
    return scene


def test_the_space_read_from_blender_is_the_rig_s(tmp_path: Path) -> None:
    scene_with_take(tmp_path)
    space = rig_expression_space(find_rig(bpy.context.scene))
    head = rigs.demo_head()
    np.testing.assert_allclose(
        speech_preserving_offset(space, "happiness").expression,
        speech_preserving_offset(head, "happiness").expression,
        atol=1e-3,  # Blender stores shape keys in float32
    )
    model = space_of(head)
    assert space.jaw_joint == model.jaw_joint == head.joint_names.index("jaw")
    scale = np.abs(model.jaw_columns).max()
    assert scale > 0
    np.testing.assert_allclose(space.jaw_columns, model.jaw_columns, atol=1e-4 * scale)
    np.testing.assert_allclose(
        action_unit_offset(space, {"AU26": 1.0}).jaw, action_unit_offset(head, {"AU26": 1.0}).jaw, rtol=1e-3
    )


def test_happiness_becomes_a_new_action_and_the_take_s_speech_stays(tmp_path: Path) -> None:
    register()
    try:
        scene = scene_with_take(tmp_path)
        objects = find_rig(scene)
        keys = objects.mesh.data.shape_keys
        original = keys.animation_data.action
        before = export_sequence(objects, 1, FRAMES, scene)
        result = bpy.ops.rigstyle.transfer_emotion(emotion="happiness", intensity=0.7)
        assert result == {"FINISHED"}
        action = keys.animation_data.action
        assert action is not original and "happiness 0.70" in action.name
        assert original.name in bpy.data.actions and original.use_fake_user  # non-destructive
        after = export_sequence(objects, 1, FRAMES, scene)
        np.testing.assert_allclose(after.pose, before.pose, atol=1e-6)  # jaw (speech) untouched
        offset = speech_preserving_offset(rig_expression_space(objects), "happiness").expression
        added = after.expression - before.expression
        np.testing.assert_allclose(added, np.tile(0.7 * offset, (FRAMES, 1)), atol=1e-4)
        keys.animation_data.action = original  # switching back restores the take
        np.testing.assert_allclose(export_sequence(objects, 1, FRAMES, scene).expression, before.expression)
    finally:
        unregister()


def test_bad_requests_are_refused_and_change_nothing(tmp_path: Path) -> None:
    scene = scene_with_take(tmp_path)
    keys = find_rig(scene).mesh.data.shape_keys
    original = keys.animation_data.action
    actions = set(bpy.data.actions)
    with pytest.raises(ExpressionError, match="in \\[0, 1\\]"):
        apply_emotion(scene, "happiness", 1.5, 1, FRAMES)
    with pytest.raises(ExpressionError, match="unknown 'glee'"):
        apply_emotion(scene, "glee", 0.5, 1, FRAMES)
    with pytest.raises(ExpressionError, match="is empty"):
        apply_emotion(scene, "anger", 0.5, 5, 5)
    assert keys.animation_data.action is original and set(bpy.data.actions) == actions


def test_no_rig_in_the_scene_is_reported_by_the_operator() -> None:
    register()
    try:
        with pytest.raises(RuntimeError, match="has no RigStyle rig"):
            bpy.ops.rigstyle.transfer_emotion(emotion="anger", intensity=0.5)
    finally:
        unregister()
