"""Named pose parts (global, body, jaw, eyes, hands) and hand PCA, as smplx's FLAME and SMPLX take them.

A rig's ``pose`` is (J, 3) axis-angle per joint; :func:`compose_pose` builds it from smplx-style parts
(``global_orient``, ``body_pose``, ``neck_pose``, ``jaw_pose``, ``leye_pose``, ``reye_pose``,
``left_hand_pose``, ``right_hand_pose``), with hand poses given as full axis-angle or as PCA coefficients.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .errors import RigError, assert_shape
from .model import Rig

FLAME_JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")
_HAND = tuple(f"{finger}{k}" for finger in _FINGERS for k in (1, 2, 3))
SMPLX_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
    "left_eye_smplhf", "right_eye_smplhf",
    *(f"left_{j}" for j in _HAND), *(f"right_{j}" for j in _HAND),
)  # fmt: skip

FLAME_POSE_PARTS: dict[str, tuple[int, ...]] = {
    "global_orient": (0,),
    "neck_pose": (1,),
    "jaw_pose": (2,),
    "leye_pose": (3,),
    "reye_pose": (4,),
}
SMPLX_POSE_PARTS: dict[str, tuple[int, ...]] = {
    "global_orient": (0,),
    "body_pose": tuple(range(1, 22)),
    "jaw_pose": (22,),
    "leye_pose": (23,),
    "reye_pose": (24,),
    "left_hand_pose": tuple(range(25, 40)),
    "right_hand_pose": tuple(range(40, 55)),
}
_HAND_PARTS = ("left_hand_pose", "right_hand_pose")  # index 0 / 1 of Rig.hand_mean and hand_components


def pose_parts(rig: Rig) -> dict[str, tuple[int, ...]]:
    """Part name -> joint indices of ``rig``'s pose (FLAME and SMPL-X as in smplx; else root + body)."""
    if rig.joint_names == SMPLX_JOINT_NAMES:
        return dict(SMPLX_POSE_PARTS)
    if rig.joint_names == FLAME_JOINT_NAMES:
        return dict(FLAME_POSE_PARTS)
    return {"global_orient": (0,), "body_pose": tuple(range(1, rig.num_joints))}


def hand_pose_from_pca(
    coeffs: np.ndarray, components: np.ndarray, mean: np.ndarray | None = None
) -> np.ndarray:
    """Full hand pose from PCA coefficients (smplx's ``use_pca=True``).

    Args:
        coeffs: (k,) PCA coefficients, k <= K.
        components: (K, H) PCA basis, one component per row (``hands_componentsl`` / ``r``).
        mean: (H,) mean hand pose added to the result, or None (a flat mean).

    Returns:
        (H // 3, 3) axis-angle per hand joint: ``coeffs @ components[:k] + mean``.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    assert_shape("hand PCA coefficients", coeffs, [None])
    if coeffs.shape[0] > components.shape[0]:
        raise RigError(
            f"hand PCA coefficients: expected at most {components.shape[0]} values, got {coeffs.shape[0]}"
        )
    pose = coeffs @ components[: coeffs.shape[0]]
    if mean is not None:
        pose = pose + mean
    return pose.reshape(-1, 3)


def compose_pose(
    rig: Rig,
    parts: Mapping[str, np.ndarray | None],
    hand_pca: bool = False,
    flat_hand_mean: bool = False,
) -> np.ndarray:
    """The (J, 3) pose of ``rig`` from named parts, with smplx's hand conventions.

    Args:
        rig: the rig (its :func:`pose_parts` name the parts).
        parts: part name -> axis-angle, (n, 3) or flat (n * 3,) for a part of n joints; for hands with
            ``hand_pca`` the (k,) PCA coefficients instead. Missing or None parts are zero.
        hand_pca: hand parts are PCA coefficients (smplx ``use_pca=True``).
        flat_hand_mean: do not add the rig's mean hand pose (smplx ``flat_hand_mean``); by default it is
            added to both hands, as smplx does, whether or not ``hand_pca`` is set.

    Returns:
        (J, 3) axis-angle per joint, ready for :meth:`Rig.forward`.

    Raises:
        RigError: an unknown part name or a part of the wrong size, naming it.
    """
    table = pose_parts(rig)
    unknown = sorted(set(parts) - set(table))
    if unknown:
        raise RigError(f"pose parts: unknown {unknown}, expected some of {sorted(table)}")
    pose = np.zeros((rig.num_joints, 3))
    for name, joints in table.items():
        value = parts.get(name)
        hand = _HAND_PARTS.index(name) if name in _HAND_PARTS else -1
        if hand >= 0 and hand_pca and value is not None:
            if rig.num_hand_components == 0:
                raise RigError(f"{name}: this rig has no hand PCA components")
            pose[list(joints)] = hand_pose_from_pca(np.ravel(value), rig.hand_components[hand])
        elif value is not None:
            array = np.asarray(value, dtype=np.float64).reshape(-1)
            if array.shape != (3 * len(joints),) or not np.all(np.isfinite(array)):
                raise RigError(
                    f"{name}: expected {3 * len(joints)} finite values, got shape {np.shape(value)}"
                )
            pose[list(joints)] = array.reshape(-1, 3)
        if hand >= 0 and not flat_hand_mean and rig.hand_mean.shape[1] == 3 * len(joints):
            pose[list(joints)] += rig.hand_mean[hand].reshape(-1, 3)
    return pose


# ---- hand presets ---------------------------------------------------------------------------------------

HAND_PRESETS = ("relaxed", "flat", "fist")
PALM_NORMAL = np.array([0.0, -1.0, 0.0])  # SMPL-X's rest hands: arms out, palms down (-Y)
FIST_DEGREES = {1: 70.0, 2: 90.0, 3: 60.0}  # flexion per finger segment (knuckle, middle, tip)
THUMB_DEGREES = {1: 25.0, 2: 35.0, 3: 45.0}
RELAXED_SHARE = 0.25  # "relaxed" without a mean hand pose: a quarter of the fist


def hand_preset(
    joint_names: tuple[str, ...],
    rest_joints: np.ndarray,
    preset: str,
    hand_mean: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Axis-angle rotations of every finger joint (SMPL-X naming) for a hand preset.

    ``flat``: all zero. ``fist``: each segment flexed towards the palm about the axis across it (from the
    rest joint positions: the segment's direction crossed with the palm normal, so it works for either
    hand), by :data:`FIST_DEGREES` (the thumb by :data:`THUMB_DEGREES`). ``relaxed``: the model's mean hand
    pose (``hand_mean``, (2, 45) left/right, as SMPL-X files carry it), else a quarter of the fist.

    Raises:
        RigError: an unknown preset, or a rig without SMPL-X finger joints.
    """
    if preset not in HAND_PRESETS:
        raise RigError(f"hand preset: unknown {preset!r}; known: {', '.join(HAND_PRESETS)}")
    rest_joints = np.asarray(rest_joints, dtype=np.float64)
    index = {name: i for i, name in enumerate(joint_names)}
    pose: dict[str, np.ndarray] = {}
    for hand, side in enumerate(("left", "right")):
        names = [f"{side}_{j}" for j in _HAND]
        if not all(name in index for name in names):
            raise RigError(f"hand preset: the rig has no {side} finger joints (SMPL-X naming)")
        if preset == "relaxed" and hand_mean is not None and np.asarray(hand_mean).shape == (2, 45):
            mean = np.asarray(hand_mean, dtype=np.float64)[hand].reshape(15, 3)
            pose.update({name: mean[k] for k, name in enumerate(names)})
            continue
        share = RELAXED_SHARE if preset == "relaxed" else 0.0 if preset == "flat" else 1.0
        for finger in _FINGERS:
            chain = [f"{side}_{finger}{k}" for k in (1, 2, 3)]
            points = rest_joints[[index[name] for name in chain]]
            for segment, name in enumerate(chain, start=1):
                along = points[min(segment, 2)] - points[min(segment, 2) - 1]
                axis = np.cross(along, PALM_NORMAL)
                norm = float(np.linalg.norm(axis))
                degrees = (THUMB_DEGREES if finger == "thumb" else FIST_DEGREES)[segment] * share
                pose[name] = axis / norm * np.radians(degrees) if norm > 1e-12 else np.zeros(3)
    return pose
