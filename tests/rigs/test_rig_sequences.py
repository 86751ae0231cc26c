"""Parameter sequences: AMASS / FLAME-tracker files, validation errors and rotation-aware resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rigs import RigError
from rigs.lbs import rodrigues
from rigs.sequences import (
    ParamSequence,
    check_against_rig,
    continuous_quaternions,
    load_sequence,
    quaternions_from_rotvecs,
    resample,
    rotvecs_from_quaternions,
    save_sequence,
    slerp,
)

REST = {"fps": 30.0, "transl": np.zeros((5, 3)), "expression": np.zeros((5, 1)), "betas": np.zeros(10)}


def amass_file(path, frames=12, fps=60.0, rate_key="mocap_framerate", expression=True):
    rng = np.random.default_rng(0)
    fields = {
        "poses": rng.normal(0, 0.3, (frames, 165)),
        "trans": rng.normal(0, 1, (frames, 3)),
        "betas": rng.normal(0, 1, 16),
        rate_key: np.array(fps),
        "gender": np.array("neutral"),
    }
    if expression:
        fields["expression"] = rng.normal(0, 1, (frames, 10))
    np.savez(path, **fields)
    return fields


@pytest.mark.parametrize("rate_key", ["mocap_framerate", "mocap_frame_rate"])
def test_amass_smplx_file_loads_in_joint_order(tmp_path, rate_key):
    fields = amass_file(tmp_path / "walk.npz", rate_key=rate_key)
    sequence = load_sequence(tmp_path / "walk.npz")
    assert sequence.fps == 60.0 and sequence.num_frames == 12
    assert sequence.pose.shape == (12, 55, 3)
    np.testing.assert_array_equal(sequence.pose[:, 22], fields["poses"][:, 66:69])  # jaw is joint 22
    np.testing.assert_array_equal(sequence.transl, fields["trans"])
    assert sequence.betas.shape == (16,) and sequence.expression.shape == (12, 10)


def test_amass_without_expression_has_zero_expression_columns(tmp_path):
    amass_file(tmp_path / "a.npz", expression=False)
    assert load_sequence(tmp_path / "a.npz").expression.shape == (12, 0)


@pytest.mark.parametrize("layout", ["pose15", "pose6", "split"])
def test_flame_tracker_layouts_give_five_joints(tmp_path, layout):
    rng = np.random.default_rng(1)
    frames = 7
    jaw = rng.normal(0, 0.2, (frames, 3))
    fields = {"shape": rng.normal(0, 1, (frames, 100)) * 0 + 0.5, "exp": rng.normal(0, 1, (frames, 50))}
    fields["trans"] = rng.normal(0, 0.1, (frames, 3))
    if layout == "pose15":
        fields["pose"] = np.concatenate([np.zeros((frames, 6)), jaw, np.zeros((frames, 6))], 1)
    elif layout == "pose6":
        fields["pose"] = np.concatenate([np.zeros((frames, 3)), jaw], 1)
    else:
        fields["global_pose"], fields["jaw_pose"] = np.zeros((frames, 3)), jaw
    np.savez(tmp_path / "track.npz", **fields)
    sequence = load_sequence(tmp_path / "track.npz", fps=25)
    assert sequence.pose.shape == (frames, 5, 3) and sequence.fps == 25
    np.testing.assert_allclose(sequence.pose[:, 2], jaw)  # jaw is FLAME joint 2
    assert sequence.betas.shape == (100,) and sequence.expression.shape == (frames, 50)


@pytest.mark.parametrize(
    "fields, words",
    [
        (
            {
                "poses": np.zeros((5, 165)),
                "trans": np.zeros((4, 3)),
                "betas": np.zeros(10),
                "mocap_framerate": np.array(30.0),
            },
            "transl: expected shape [5, 3]",
        ),  # fmt: skip
        (
            {
                "poses": np.zeros((5, 164)),
                "trans": np.zeros((5, 3)),
                "betas": np.zeros(10),
                "mocap_framerate": np.array(30.0),
            },
            "poses: expected shape [T, 3*J]",
        ),  # fmt: skip
        ({"poses": np.zeros((5, 165)), "trans": np.zeros((5, 3)), "betas": np.zeros(10)}, "frame rate"),
        ({"poses": np.zeros((5, 165)), "betas": np.zeros(10), "mocap_framerate": np.array(30.0)}, "'trans'"),
        ({"exp": np.zeros((3, 10)), "pose": np.zeros((3, 9))}, "15 (or 6) values"),
        ({"exp": np.zeros((3, 10)), "shape": np.arange(30.0).reshape(3, 10)}, "identity changes"),
        ({"something": np.zeros(3)}, "not a known sequence format"),
    ],
)
def test_bad_sequence_files_name_the_file_and_field(tmp_path, fields, words):
    path = tmp_path / "bad.npz"
    np.savez(path, **fields)
    with pytest.raises(RigError) as info:
        load_sequence(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(RigError, match="no such sequence file"):
        load_sequence(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(RigError, match="not a readable"):
        load_sequence(tmp_path / "junk.npz")


def test_save_and_load_round_trip(tmp_path):
    amass_file(tmp_path / "a.npz")
    sequence = load_sequence(tmp_path / "a.npz")
    save_sequence(tmp_path / "b.npz", sequence)
    again = load_sequence(tmp_path / "b.npz")
    for name in ("pose", "transl", "betas", "expression"):
        np.testing.assert_array_equal(getattr(again, name), getattr(sequence, name))
    assert again.fps == sequence.fps


def test_quaternion_round_trip_and_matrices_agree():
    rotvecs = np.random.default_rng(2).normal(0, 1.0, (50, 3))
    rotvecs = rotvecs[np.linalg.norm(rotvecs, axis=1) < np.pi - 1e-3]
    back = rotvecs_from_quaternions(quaternions_from_rotvecs(rotvecs))
    np.testing.assert_allclose(back, rotvecs, atol=1e-10)
    np.testing.assert_allclose(rodrigues(back), rodrigues(rotvecs), atol=1e-10)


def test_slerp_halfway_is_half_the_angle_about_the_same_axis():
    q0 = quaternions_from_rotvecs(np.zeros(3))
    q1 = quaternions_from_rotvecs(np.array([0.0, 0.0, 1.2]))
    np.testing.assert_allclose(rotvecs_from_quaternions(slerp(q0, q1, 0.5)), [0, 0, 0.6], atol=1e-12)


def test_resample_keeps_duration_and_interpolates_on_the_sphere():
    times = 5
    pose = np.zeros((times, 2, 3))
    pose[:, 1, 2] = np.linspace(0, 2.0, times)  # a steady turn about z: 0.5 rad per source frame
    sequence = ParamSequence(
        fps=10.0, pose=pose, transl=np.linspace(0, 4, times)[:, None].repeat(3, 1), betas=np.zeros(3),
        expression=np.zeros((times, 0)),
    )  # fmt: skip
    resampled = resample(sequence, 25.0)
    assert resampled.num_frames == 11 and resampled.duration == pytest.approx(sequence.duration)
    np.testing.assert_allclose(resampled.pose[:, 1, 2], np.linspace(0, 2.0, 11), atol=1e-12)
    np.testing.assert_allclose(resampled.transl[:, 0], np.linspace(0, 4, 11), atol=1e-12)


def test_sequence_must_fit_the_rig():
    sequence = ParamSequence(
        fps=30.0,
        pose=np.zeros((2, 5, 3)),
        transl=np.zeros((2, 3)),
        betas=np.zeros(10),
        expression=np.zeros((2, 50)),
    )
    check_against_rig(sequence, num_joints=5, num_betas=100, num_expressions=50)
    with pytest.raises(RigError, match="5 joints, the rig has 55"):
        check_against_rig(sequence, num_joints=55, num_betas=100, num_expressions=50)
    with pytest.raises(RigError, match="50 expression components, the rig has 10"):
        check_against_rig(sequence, num_joints=5, num_betas=100, num_expressions=10)


def test_slerp_takes_the_short_way_across_pi():
    q0, q1 = quaternions_from_rotvecs(np.array([[0.0, 0.0, 3.0], [0.0, 0.0, -3.0]]))  # 0.28 rad apart
    middle = rotvecs_from_quaternions(slerp(q0, q1, 0.5))
    np.testing.assert_allclose(rodrigues(middle[None]), rodrigues(np.array([[0.0, 0.0, np.pi]])), atol=1e-12)


def test_quaternion_round_trip_at_tiny_angles():
    rotvecs = np.random.default_rng(0).normal(0.0, 1.0, (50, 3)) * np.logspace(-12, 0, 50)[:, None]
    back = rotvecs_from_quaternions(quaternions_from_rotvecs(rotvecs))
    np.testing.assert_allclose(rodrigues(back), rodrigues(rotvecs), atol=1e-12)


def test_continuous_quaternions_remove_sign_flips():
    quats = quaternions_from_rotvecs(np.array([[0.0, 0.0, 3.0], [0.0, 0.0, -3.0], [0.0, 0.0, 3.1]]))
    smooth = continuous_quaternions(quats)
    assert (np.sum(smooth[1:] * smooth[:-1], axis=-1) > 0).all()
    np.testing.assert_allclose(
        rodrigues(rotvecs_from_quaternions(smooth)), rodrigues(rotvecs_from_quaternions(quats))
    )


def test_resampling_keeps_constant_betas_and_lerps_per_frame_betas():
    rng = np.random.default_rng(1)
    pose, transl = rng.normal(size=(121, 4, 3)), rng.normal(size=(121, 3))
    constant = resample(ParamSequence(120.0, pose, transl, [1.0, 2.0], np.zeros((121, 2))), 30.0)
    assert constant.num_frames == 31
    np.testing.assert_allclose(constant.transl, transl[::4])
    np.testing.assert_allclose(constant.betas, [1.0, 2.0])
    per_frame = resample(ParamSequence(120.0, pose, transl, transl[:, :2], np.zeros((121, 2))), 30.0)
    np.testing.assert_allclose(per_frame.betas, transl[::4, :2])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"transl": np.zeros((4, 3))}, r"transl: expected shape \[5, 3\]"),
        ({"expression": np.zeros((5,))}, r"expression: expected shape \[5, E\]"),
        ({"betas": np.zeros((4, 10))}, r"betas: expected shape \[S\] or \[5, S\]"),
        ({"fps": 0.0}, "fps: expected a positive frame rate"),
        ({"pose": np.full((5, 2, 3), np.nan)}, "pose: contains NaN"),
    ],
)
def test_mismatched_sequence_dimensions_name_the_field(fields, message):
    with pytest.raises(RigError, match=message):
        ParamSequence(**{**REST, "pose": np.zeros((5, 2, 3)), **fields})


def test_an_animated_identity_survives_save_and_load(tmp_path: Path) -> None:
    frames = 4
    sequence = ParamSequence(
        fps=30.0,
        pose=np.zeros((frames, 3, 3)),
        transl=np.zeros((frames, 3)),
        betas=np.arange(frames * 2, dtype=np.float64).reshape(frames, 2),
        expression=np.zeros((frames, 0)),
    )
    save_sequence(tmp_path / "take.npz", sequence)
    np.testing.assert_array_equal(load_sequence(tmp_path / "take.npz").betas, sequence.betas)


def test_a_damaged_take_file_is_a_one_line_rig_error(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, poses=np.zeros((2, 9)), trans=np.zeros((2, 3)), betas=np.zeros(2), mocap_framerate=30.0)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(good.read_bytes()[:40])
    with pytest.raises(RigError, match="damaged.npz: not a readable .npz sequence"):
        load_sequence(damaged)
