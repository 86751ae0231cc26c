"""Read and keyframe a built rig's parameters (betas, expression, pose, transl) in the rig's own frame."""

from __future__ import annotations

import bpy
import mathutils
import numpy as np

from .names import EXPRESSION_KEY_PREFIX, JOINT_NAMES_PROP, RIG_NAME_PROP, SHAPE_KEY_PREFIX
from .rig_builder import RigObjects


def shape_keys(objects: RigObjects, prefix: str) -> list[bpy.types.ShapeKey]:
    """The shape keys whose names start with ``prefix``, in creation order."""
    return [k for k in objects.mesh.data.shape_keys.key_blocks if k.name.startswith(prefix)]


def joint_names(objects: RigObjects) -> list[str]:
    """The rig's joints (keyframable pose bones) in model order."""
    return [str(n) for n in objects.mesh.data[JOINT_NAMES_PROP]]


def read_params(objects: RigObjects) -> dict[str, np.ndarray]:
    """The rig parameters at the scene's current frame, as the protocol names them (pose in model order)."""
    bones = [objects.armature.pose.bones[n] for n in joint_names(objects)]
    pose = np.zeros((len(bones), 3), dtype=np.float32)
    for index, bone in enumerate(bones):
        rotation = bone.matrix_basis.to_quaternion()
        axis, angle = rotation.to_axis_angle()
        pose[index] = np.asarray(axis) * angle
    return {
        "betas": np.array([k.value for k in shape_keys(objects, SHAPE_KEY_PREFIX)], dtype=np.float32),
        "expression": np.array(
            [k.value for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)], dtype=np.float32
        ),
        "pose": pose,
        "transl": np.asarray(bones[0].location, dtype=np.float32),
    }


def set_params(
    objects: RigObjects,
    *,
    betas: np.ndarray | None = None,
    expression: dict[str, float] | None = None,
    pose: dict[str, np.ndarray] | None = None,
    transl: np.ndarray | None = None,
    keyframe_at: int | None = None,
) -> None:
    """Set parameters (only those given) and, with ``keyframe_at``, key them on that frame.

    Args:
        betas: (S,) identity coefficients, applied to the ``shape.NN`` keys in order.
        expression: expression name -> coefficient (names as in ``Rig.expression_names``).
        pose: joint name -> (3,) axis-angle in the parent joint's frame.
        transl: (3,) translation in the rig's frame.
        keyframe_at: frame number to insert keyframes on.
    """
    blocks = objects.mesh.data.shape_keys.key_blocks
    if betas is not None:
        for key, value in zip(
            shape_keys(objects, SHAPE_KEY_PREFIX), np.asarray(betas, dtype=float), strict=False
        ):
            _set_key(key, float(value), keyframe_at)
    for name, value in (expression or {}).items():
        key = blocks.get(f"{EXPRESSION_KEY_PREFIX}{name}")
        if key is None:
            raise KeyError(f"expression {name!r} is not a shape key of {objects.mesh.name}")
        _set_key(key, float(value), keyframe_at)
    bones = objects.armature.pose.bones
    joints = joint_names(objects)
    for joint, rotvec in (pose or {}).items():
        bone = bones.get(joint) if joint in joints else None
        if bone is None:
            raise KeyError(f"joint {joint!r} is not a bone of {objects.armature.name}")
        set_bone_rotation(bone, quaternion_from_rotvec(rotvec), keyframe_at)
    if transl is not None:
        root = bones[joints[0]]
        root.location = tuple(float(v) for v in transl)
        if keyframe_at is not None:
            root.keyframe_insert("location", frame=keyframe_at)


def _set_key(key: bpy.types.ShapeKey, value: float, keyframe_at: int | None) -> None:
    key.value = value
    if keyframe_at is not None:
        key.keyframe_insert("value", frame=keyframe_at)


def rotation_channel(bone: bpy.types.PoseBone) -> str:
    """The property that holds ``bone``'s rotation in its rotation mode (what keying must key)."""
    if bone.rotation_mode == "QUATERNION":
        return "rotation_quaternion"
    if bone.rotation_mode == "AXIS_ANGLE":
        return "rotation_axis_angle"
    return "rotation_euler"


def set_bone_rotation(
    bone: bpy.types.PoseBone, rotation: mathutils.Quaternion, key_at: int | None = None
) -> None:
    """Set ``bone``'s rotation, written in its own rotation mode (an Euler bone stays Euler, its angles
    continuous with the current ones), and key that channel at ``key_at``."""
    mode = bone.rotation_mode
    if mode == "QUATERNION":
        bone.rotation_quaternion = rotation
    elif mode == "AXIS_ANGLE":
        axis, angle = rotation.to_axis_angle()
        bone.rotation_axis_angle = (angle, *axis)
    else:
        bone.rotation_euler = rotation.to_euler(mode, bone.rotation_euler)
    if key_at is not None:
        bone.keyframe_insert(rotation_channel(bone), frame=key_at)


def quaternion_from_rotvec(rotvec: np.ndarray) -> mathutils.Quaternion:
    rotvec = np.asarray(rotvec, dtype=float)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return mathutils.Quaternion()
    return mathutils.Quaternion(mathutils.Vector(rotvec / angle), angle)


def find_rig(scene: bpy.types.Scene) -> RigObjects:
    """The first RigStyle rig in ``scene`` (an armature with a skinned child mesh)."""
    for obj in scene.objects:
        if obj.type == "ARMATURE" and RIG_NAME_PROP in obj:
            meshes = [c for c in obj.children if c.type == "MESH"]
            if meshes:
                return RigObjects(armature=obj, mesh=meshes[0])
    raise LookupError(f"scene {scene.name!r} has no RigStyle rig")
