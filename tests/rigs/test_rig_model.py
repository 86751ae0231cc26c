from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rigs import Rig, RigError, RigOutput
from rigs.lbs import barycentric_points


def fields_of(rig: Rig) -> dict:
    return {f.name: getattr(rig, f.name) for f in dataclasses.fields(rig)}


def test_forward_with_nothing_is_the_template(small_rig):
    out = small_rig.forward()
    assert isinstance(out, RigOutput)
    np.testing.assert_allclose(out.vertices, small_rig.v_template, atol=1e-14)
    np.testing.assert_allclose(out.joints, small_rig.rest_joints, atol=1e-14)
    expected = barycentric_points(
        small_rig.v_template, small_rig.faces, small_rig.landmark_faces, small_rig.landmark_bary
    )
    np.testing.assert_allclose(out.landmarks, expected, atol=1e-14)


def test_properties(small_rig):
    assert (small_rig.num_vertices, small_rig.num_joints, small_rig.num_betas) == (6, 3, 4)
    assert (small_rig.num_expressions, small_rig.num_landmarks) == (2, 2)
    np.testing.assert_allclose(small_rig.rest_joints, small_rig.j_regressor @ small_rig.v_template)


def test_short_betas_are_padded_and_blendshapes_add(small_rig):
    out = small_rig.forward(betas=[2.0], expression=np.array([0.0, -1.0]))
    expected = small_rig.v_template + 2.0 * small_rig.shapedirs[:, :, 0] - small_rig.exprdirs[:, :, 1]
    np.testing.assert_allclose(out.vertices, expected, atol=1e-12)


def test_transl_moves_everything(small_rig):
    t = np.array([0.1, -0.2, 0.3])
    base, moved = (
        small_rig.forward(pose=np.full((3, 3), 0.2)),
        small_rig.forward(pose=np.full(9, 0.2), transl=t),
    )
    np.testing.assert_allclose(moved.vertices, base.vertices + t, atol=1e-12)
    np.testing.assert_allclose(moved.joints, base.joints + t, atol=1e-12)
    np.testing.assert_allclose(moved.landmarks, base.landmarks + t, atol=1e-12)


def test_pose_correctives_reach_forward(make_rig):
    rig = make_rig(posedirs_scale=0.1)
    pose = np.zeros((3, 3))
    pose[1] = [0.2, 0.0, 0.0]
    rigid = make_rig(posedirs_scale=0.0).forward(pose=pose).vertices
    assert not np.allclose(rig.forward(pose=pose).vertices, rigid)
    np.testing.assert_allclose(rig.forward().vertices, rig.v_template, atol=1e-14)  # zero pose: no offsets


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pose": np.zeros((4, 3))}, r"pose: expected shape \[3, 3\], got \[4, 3\]"),
        ({"pose": np.zeros(8)}, r"pose: expected shape \[3, 3\], got \[8\]"),
        ({"transl": np.zeros(2)}, r"transl: expected shape \[3\], got \[2\]"),
        ({"betas": np.zeros(5)}, r"betas: expected shape \[4\] \(or fewer values\), got \[5\]"),
        ({"expression": np.zeros((1, 2))}, r"expression: expected shape \[2\]"),
        ({"expression": [0.0, np.nan]}, r"expression: contains NaN or inf"),
        ({"transl": [0.0, np.inf, 0.0]}, r"transl: contains NaN or inf"),
        ({"pose": "zero"}, r"pose: expected numbers"),
    ],
)
def test_bad_parameters_raise_rig_error_naming_them(small_rig, kwargs, message):
    with pytest.raises(RigError, match=message):
        small_rig.forward(**kwargs)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lbs_weights", np.full((6, 2), 0.5), r"lbs_weights: expected shape \[6, 3\], got \[6, 2\]"),
        ("posedirs", np.zeros((9, 18)), r"posedirs: expected shape \[18, 18\], got \[9, 18\]"),
        ("shapedirs", np.zeros((5, 3, 4)), r"shapedirs: expected shape \[6, 3, 4\], got \[5, 3, 4\]"),
        ("faces", np.zeros((3, 3)), r"faces: expected an integer array"),
        ("faces", np.array([[0, 1, 9], [0, 1, 2], [0, 1, 2]]), r"faces: vertex indices must lie in \[0, 6\)"),
        ("parents", np.array([-1, 2, 0]), r"parents: expected parents\[0\] == -1"),
        ("joint_names", ("root", "a"), r"joint_names: expected 3 strings"),
        ("face_regions", np.array([1, 2, 99]), r"face_regions: unknown region labels \[99\]"),
        ("landmark_bary", np.array([[1.0, 0, 0], [0.5, 0.0, 0.0]]), r"landmark_bary: rows must sum to 1"),
        ("v_template", np.full((6, 3), np.nan), r"v_template: contains NaN or inf"),
        ("name", "", r"name: expected a non-empty string"),
    ],
)
def test_invalid_rig_fields_raise_rig_error_naming_them(small_rig, field, value, message):
    values = fields_of(small_rig)
    values[field] = value
    with pytest.raises(RigError, match=message):
        Rig(**values)


def test_rig_is_immutable_and_normalises_dtypes(small_rig):
    values = fields_of(small_rig)
    values["parents"] = [-1, 0, 1]
    values["face_regions"] = np.array([1, 3, 2], dtype=np.int32)
    rig = Rig(**values)
    assert rig.parents.dtype == np.int64 and rig.face_regions.dtype == np.uint8
    assert rig.faces.dtype == np.int64 and rig.v_template.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        rig.v_template[0, 0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        rig.name = "other"  # type: ignore[misc]


def test_rig_error_is_a_value_error():
    assert issubclass(RigError, ValueError)
