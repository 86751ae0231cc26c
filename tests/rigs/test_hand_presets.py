"""Hand presets of ``rigs.pose``: a fist curls every finger of either hand towards the palm, flat is the rest
pose, relaxed is the model's mean hand; unknown presets and rigs without SMPL-X fingers are refused."""

from __future__ import annotations

import numpy as np
import pytest

from rigs.errors import RigError
from rigs.lbs import rodrigues
from rigs.pose import SMPLX_JOINT_NAMES, hand_preset


def t_pose_hands() -> np.ndarray:
    """Rest joints with both arms out along ±X, fingers continuing along the arm (palms down, -Y)."""
    joints = np.zeros((len(SMPLX_JOINT_NAMES), 3))
    for index, name in enumerate(SMPLX_JOINT_NAMES):
        if name[-1].isdigit() and "_" in name:
            side = 1.0 if name.startswith("left") else -1.0
            joints[index] = [side * (0.8 + 0.03 * int(name[-1])), 0.0, 0.02 * index % 0.1]
    return joints


@pytest.mark.parametrize("side", ["left", "right"])
def test_a_fist_curls_every_finger_towards_the_palm(side: str) -> None:
    pose = hand_preset(SMPLX_JOINT_NAMES, t_pose_hands(), "fist")
    along = np.array([1.0 if side == "left" else -1.0, 0.0, 0.0])
    for finger in ("index", "middle", "ring", "pinky", "thumb"):
        for segment in (1, 2, 3):
            rotated = rodrigues(pose[f"{side}_{finger}{segment}"][None])[0] @ along
            assert rotated[1] < -0.3, f"{side}_{finger}{segment} bends towards the palm (-Y)"


def test_flat_is_rest_and_relaxed_is_the_mean_hand() -> None:
    joints = t_pose_hands()
    assert all(np.all(v == 0) for v in hand_preset(SMPLX_JOINT_NAMES, joints, "flat").values())
    mean = np.arange(90, dtype=np.float64).reshape(2, 45) / 100
    relaxed = hand_preset(SMPLX_JOINT_NAMES, joints, "relaxed", mean)
    np.testing.assert_array_equal(relaxed["right_index1"], mean[1, :3])
    np.testing.assert_array_equal(relaxed["left_thumb3"], mean[0, 42:])
    lighter = hand_preset(SMPLX_JOINT_NAMES, joints, "relaxed")  # no mean: a quarter of the fist
    fist = hand_preset(SMPLX_JOINT_NAMES, joints, "fist")
    np.testing.assert_allclose(lighter["left_ring2"], fist["left_ring2"] / 4)


def test_bad_presets_and_rigs_are_refused() -> None:
    with pytest.raises(RigError, match="unknown 'claw'"):
        hand_preset(SMPLX_JOINT_NAMES, t_pose_hands(), "claw")
    with pytest.raises(RigError, match="no left finger joints"):
        hand_preset(("root", "neck", "jaw"), np.zeros((3, 3)), "fist")
