"""Rig.forward against the smplx reference (test-only dependency) on the same synthetic official files.

Two properties of smplx shape these tests:

- its ``batch_rodrigues`` takes the angle as ``|v + 1e-8|`` (1e-8 added to every component), a bias of
  about 1e-8 rad that our exact Rodrigues does not have. It vanishes exactly where ``v.sum() == -1.5e-8``,
  so the strict float64 checks draw every joint rotation on that plane (hand PCA coefficients included);
  :func:`test_general_poses_within_the_smplx_rodrigues_bias` bounds the difference for unconstrained poses;
- it rounds model arrays through float32 even for ``dtype=torch.float64``; the fixture files are
  float32-exact, so both sides use the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import smplx
import torch
from official_files import write_flame, write_smplx

import rigs
from rigs import compose_pose

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-9}
_BIAS_FREE_SUM = -1.5e-8  # |v + 1e-8 * (1, 1, 1)| == |v| exactly when v.sum() equals this
FLAME_PARTS = ("global_orient", "neck_pose", "jaw_pose", "leye_pose", "reye_pose")
NUM_PCA = 24


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("official")
    write_flame(root / "flame", "plain", seed=3)
    write_smplx(root / "smplx", "npz", seed=4)
    return root


def bias_free(rotvecs: np.ndarray) -> np.ndarray:
    """Axis-angles moved onto the plane where smplx's Rodrigues epsilon has no effect."""
    return rotvecs - (rotvecs.sum(axis=-1, keepdims=True) - _BIAS_FREE_SUM) / 3.0


def bias_free_pca(rng, components: np.ndarray, mean: np.ndarray, flat_mean: bool) -> np.ndarray:
    """Random PCA coefficients whose hand pose (``c @ components + mean``) is bias-free at every joint."""
    sums = components[:NUM_PCA].reshape(NUM_PCA, -1, 3).sum(axis=2)  # (k, 15)
    target = _BIAS_FREE_SUM - (0.0 if flat_mean else mean.reshape(-1, 3).sum(axis=1))
    coeffs = rng.normal(scale=0.5, size=NUM_PCA)
    return coeffs - (coeffs @ sums - target) @ np.linalg.pinv(sums)


def tensors(values: dict, dtype) -> dict:
    return {k: torch.tensor(np.asarray(v).reshape(1, -1), dtype=dtype) for k, v in values.items()}


def max_differences(ours, theirs, num_joints: int) -> dict[str, float]:
    joints = theirs.joints[0].double().numpy()
    return {
        "vertices": float(np.abs(ours.vertices - theirs.vertices[0].double().numpy()).max()),
        "joints": float(np.abs(ours.joints - joints[:num_joints]).max()),
        "landmarks": float(np.abs(ours.landmarks - joints[num_joints:]).max()),
    }


def flame_pair(folder, dtype):
    reference = smplx.FLAME(
        str(folder), gender="neutral", ext="pkl", num_betas=300, num_expression_coeffs=100,
        use_face_contour=True, dtype=dtype,
    )  # fmt: skip
    return rigs.load(folder / "FLAME_NEUTRAL.pkl"), reference


def smplx_pair(folder, dtype, use_pca: bool, flat_hand_mean: bool):
    reference = smplx.SMPLX(
        str(folder), gender="neutral", ext="npz", num_betas=300, num_expression_coeffs=100, use_pca=use_pca,
        num_pca_comps=NUM_PCA, flat_hand_mean=flat_hand_mean, use_face_contour=True, dtype=dtype,
    )  # fmt: skip
    # smplx appends joints at fixed SMPL-X vertex ids (up to 9,929) that a small mesh lacks; we compare
    # only the regressed joints and the landmarks, which do not depend on them.
    reference.vertex_joint_selector.extra_joints_idxs = torch.zeros(0, dtype=torch.long)
    return rigs.load(folder / "SMPLX_NEUTRAL.npz"), reference


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("seed", [0, 1])
def test_flame_matches_smplx(folders, dtype, seed):
    rig, reference = flame_pair(folders / "flame", dtype)
    rng = np.random.default_rng(seed)
    parts = {name: bias_free(rng.normal(scale=0.3, size=3)) for name in FLAME_PARTS}
    shape = {"betas": rng.normal(size=300), "expression": rng.normal(size=100)}
    transl = rng.normal(scale=0.1, size=3)
    with torch.no_grad():
        theirs = reference(**tensors({**parts, **shape, "transl": transl}, dtype))
    ours = rig.forward(**shape, pose=compose_pose(rig, parts), transl=transl, dynamic_landmarks=True)
    assert ours.landmarks.shape == (51 + 17, 3)
    diffs = max_differences(ours, theirs, 5)
    assert max(diffs.values()) < TOLERANCE[dtype], diffs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    ("use_pca", "flat_hand_mean"), [(True, False), (False, False), (False, True)], ids=["pca", "full", "flat"]
)
def test_smplx_matches_smplx(folders, dtype, use_pca, flat_hand_mean):
    rig, reference = smplx_pair(folders / "smplx", dtype, use_pca, flat_hand_mean)
    rng = np.random.default_rng(7)
    parts = {"global_orient": bias_free(rng.normal(scale=0.3, size=3))}
    parts["body_pose"] = bias_free(rng.normal(scale=0.3, size=(21, 3)))
    parts.update(
        {name: bias_free(rng.normal(scale=0.2, size=3)) for name in ("jaw_pose", "leye_pose", "reye_pose")}
    )
    for side, name in enumerate(("left_hand_pose", "right_hand_pose")):
        mean = rig.hand_mean[side]
        if use_pca:
            parts[name] = bias_free_pca(rng, rig.hand_components[side], mean, flat_hand_mean)
        else:  # smplx adds the mean hand pose unless flat_hand_mean; aim the sum at a bias-free pose
            pose = bias_free(rng.normal(scale=0.3, size=(15, 3)))
            parts[name] = pose if flat_hand_mean else pose - mean.reshape(15, 3)
    shape = {"betas": rng.normal(size=300), "expression": rng.normal(size=100)}
    transl = rng.normal(scale=0.1, size=3)
    with torch.no_grad():
        theirs = reference(**tensors({**parts, **shape, "transl": transl}, dtype))
    pose = compose_pose(rig, parts, hand_pca=use_pca, flat_hand_mean=flat_hand_mean)
    ours = rig.forward(**shape, pose=pose, transl=transl, dynamic_landmarks=True)
    diffs = max_differences(ours, theirs, 55)
    assert max(diffs.values()) < TOLERANCE[dtype], diffs


def test_general_poses_within_the_smplx_rodrigues_bias(folders):
    rig, reference = smplx_pair(folders / "smplx", torch.float64, True, False)
    rng = np.random.default_rng(11)
    parts = {"global_orient": rng.normal(scale=0.3, size=3), "body_pose": rng.normal(scale=0.3, size=63)}
    parts.update(left_hand_pose=rng.normal(size=NUM_PCA), right_hand_pose=rng.normal(size=NUM_PCA))
    with torch.no_grad():
        theirs = reference(**tensors(parts, torch.float64))
    ours = rig.forward(pose=compose_pose(rig, parts, hand_pca=True), dynamic_landmarks=True)
    diffs = max_differences(ours, theirs, 55)
    assert max(diffs.values()) < 1e-7, diffs  # 1e-8 rad per joint, a few joints deep, ~0.5 m from them


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
def test_dynamic_landmarks_follow_head_yaw_like_smplx(folders, dtype):
    """Yaw from -60 to 60 degrees in 7-degree steps: every row of the table, the clamped ends included."""
    rig, reference = flame_pair(folders / "flame", dtype)
    for degrees in np.arange(-60.0, 61.0, 7.0) + 0.25:  # off the half-degree rounding boundaries
        parts = {"global_orient": bias_free(np.array([0.05, np.radians(degrees), -0.03]))}
        with torch.no_grad():
            theirs = reference(**tensors(parts, dtype))
        ours = rig.forward(pose=compose_pose(rig, parts), dynamic_landmarks=True)
        diffs = max_differences(ours, theirs, 5)
        assert diffs["landmarks"] < TOLERANCE[dtype], (degrees, diffs)
