"""Parameter sequences <-> keyframes on a built rig, written straight into F-curves (no per-key operators).

One key per frame and channel, linear interpolation: rotations are slerp-resampled to the scene's rate
first (``rigs.sequences.resample``), so the per-component interpolation between integer frames only
matters for motion blur. Importing replaces the F-curves of the channels it writes.
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy_extras import anim_utils

from rigs.sequences import (
    ParamSequence,
    check_against_rig,
    continuous_quaternions,
    quaternions_from_rotvecs,
    resample,
    rotvecs_from_quaternions,
)

from .names import EXPRESSION_KEY_PREFIX, SHAPE_KEY_PREFIX
from .rig_builder import RigObjects
from .rig_params import joint_names, shape_keys

_LINEAR = 1  # index of 'LINEAR' in Keyframe.interpolation's items (foreach_set takes the index)


def scene_fps(scene: bpy.types.Scene) -> float:
    return scene.render.fps / scene.render.fps_base


def import_sequence(
    objects: RigObjects,
    sequence: ParamSequence,
    frame_start: int = 1,
    scene: bpy.types.Scene | None = None,
) -> int:
    """Key ``sequence``, resampled to the scene's frame rate, from ``frame_start`` on.

    Returns:
        The number of frames keyed.

    Raises:
        rigs.RigError: the sequence's joints differ from the rig's, or it has more betas or expressions;
            nothing is keyed then.
    """
    scene = scene or bpy.context.scene
    joints = joint_names(objects)
    betas_keys, expression_keys = (
        shape_keys(objects, SHAPE_KEY_PREFIX),
        shape_keys(objects, EXPRESSION_KEY_PREFIX),
    )
    check_against_rig(sequence, len(joints), len(betas_keys), len(expression_keys))
    sequence = resample(sequence, scene_fps(scene))
    frames = frame_start + np.arange(sequence.num_frames, dtype=np.float64)

    armature = fcurves_of(objects.armature)
    quats = continuous_quaternions(quaternions_from_rotvecs(sequence.pose))  # (T, J, 4)
    for joint, name in enumerate(joints):
        path = f'pose.bones["{name}"].rotation_quaternion'
        for component in range(4):
            write_fcurve(armature, path, component, frames, quats[:, joint, component], name)
    root_path = f'pose.bones["{joints[0]}"].location'
    for component in range(3):
        write_fcurve(armature, root_path, component, frames, sequence.transl[:, component], joints[0])

    keys = fcurves_of(objects.mesh.data.shape_keys)
    betas = sequence.betas if sequence.betas.ndim == 2 else sequence.betas[None]
    beta_frames = frames if sequence.betas.ndim == 2 else frames[:1]
    for index, key in enumerate(betas_keys[: betas.shape[1]]):
        write_fcurve(keys, f'key_blocks["{key.name}"].value', 0, beta_frames, betas[:, index], "identity")
    for index, key in enumerate(expression_keys[: sequence.expression.shape[1]]):
        path = f'key_blocks["{key.name}"].value'
        write_fcurve(keys, path, 0, frames, sequence.expression[:, index], "expression")
    return sequence.num_frames


def export_sequence(
    objects: RigObjects, frame_start: int, frame_end: int, scene: bpy.types.Scene | None = None
) -> ParamSequence:
    """The keyed parameters of frames ``frame_start..frame_end`` at the scene's frame rate.

    Channels without an F-curve keep their current value on every frame.
    """
    scene = scene or bpy.context.scene
    frames = np.arange(frame_start, frame_end + 1, dtype=np.float64)
    joints = joint_names(objects)
    bones = objects.armature.pose.bones
    armature = objects.armature
    quats = np.empty((len(frames), len(joints), 4))
    for joint, name in enumerate(joints):
        path = f'pose.bones["{name}"].rotation_quaternion'
        for component in range(4):
            current = bones[name].rotation_quaternion[component]
            quats[:, joint, component] = _channel(armature, path, component, frames, current)
    root = bones[joints[0]]
    transl = np.stack(
        [
            _channel(armature, f'pose.bones["{joints[0]}"].location', c, frames, root.location[c])
            for c in range(3)
        ],
        axis=1,
    )
    key = objects.mesh.data.shape_keys

    def key_values(prefix: str) -> np.ndarray:
        columns = [
            _channel(key, f'key_blocks["{k.name}"].value', 0, frames, k.value)
            for k in shape_keys(objects, prefix)
        ]
        return np.stack(columns, axis=1) if columns else np.zeros((len(frames), 0))

    betas = key_values(SHAPE_KEY_PREFIX)
    constant = np.allclose(betas, betas[:1])
    return ParamSequence(
        fps=scene_fps(scene),
        pose=rotvecs_from_quaternions(quats),
        transl=transl,
        expression=key_values(EXPRESSION_KEY_PREFIX),
        betas=betas[0] if constant else betas,
    )


def fcurves_of(owner: bpy.types.ID) -> bpy.types.bpy_prop_collection:
    """The F-curve collection animating ``owner``, creating animation data, action (and slot) as needed.

    Blender 4.4+ (slotted actions; 5.0 has nothing else): the F-curves live in the channelbag of
    ``animation_data.action_slot``. Blender 4.2 and 4.3 have no ``AnimData.action_slot``; the F-curves are
    the action's own ``action.fcurves`` (and ``bpy_extras.anim_utils`` lacks the channelbag helpers).
    Detected on the RNA, so one code path serves both.
    """
    animation = owner.animation_data or owner.animation_data_create()
    if animation.action is None:
        animation.action = bpy.data.actions.new(f"{owner.name} Action")
    if not hasattr(animation, "action_slot"):
        return animation.action.fcurves
    if animation.action_slot is None:
        animation.action_slot = animation.action.slots.new(id_type=owner.id_type, name=owner.name)
    return anim_utils.action_ensure_channelbag_for_slot(animation.action, animation.action_slot).fcurves


def existing_fcurves(owner: bpy.types.ID) -> bpy.types.bpy_prop_collection | None:
    """The F-curve collection animating ``owner`` (see :func:`fcurves_of`), or None; creates nothing."""
    animation = owner.animation_data
    if animation is None or animation.action is None:
        return None
    if not hasattr(animation, "action_slot"):  # Blender < 4.4
        return animation.action.fcurves
    if animation.action_slot is None:
        return None
    channelbag = anim_utils.action_get_channelbag_for_slot(animation.action, animation.action_slot)
    return channelbag.fcurves if channelbag is not None else None


def new_fcurve(
    fcurves: bpy.types.bpy_prop_collection, data_path: str, index: int, group: str
) -> bpy.types.FCurve:
    """``fcurves.new`` in ``group``: the keyword is ``group_name`` on a channelbag (Blender 4.4+) and
    ``action_group`` on a legacy ``Action.fcurves`` (4.2, 4.3); read from the function's RNA parameters."""
    parameters = fcurves.bl_rna.functions["new"].parameters
    keyword = "group_name" if "group_name" in parameters else "action_group"
    return fcurves.new(data_path, index=index, **{keyword: group})


def write_fcurve(
    fcurves: bpy.types.bpy_prop_collection,
    data_path: str,
    index: int,
    frames: np.ndarray,
    values: np.ndarray,
    group: str,
) -> None:
    """Replace the F-curve ``data_path[index]`` with linear keys ``values`` at ``frames``."""
    existing = fcurves.find(data_path, index=index)
    if existing is not None:
        fcurves.remove(existing)
    fcurve = new_fcurve(fcurves, data_path, index, group)
    points = fcurve.keyframe_points
    points.add(len(frames))
    points.foreach_set("co", np.stack([frames, values], axis=1).astype(np.float32).ravel())
    points.foreach_set("interpolation", np.full(len(frames), _LINEAR, dtype=np.int32))
    fcurve.update()


def _channel(
    owner: bpy.types.ID, data_path: str, index: int, frames: np.ndarray, current: float
) -> np.ndarray:
    """Values of ``data_path[index]`` at ``frames`` from its F-curve, or ``current`` when it has none."""
    fcurves = existing_fcurves(owner)
    fcurve = fcurves.find(data_path, index=index) if fcurves is not None else None
    if fcurve is None:
        return np.full(len(frames), float(current))
    return np.array([fcurve.evaluate(float(f)) for f in frames])
