from __future__ import annotations

import numpy as np
import pytest

from rigs import RigError
from rigs.lbs import barycentric_points, blend_shapes, lbs, rodrigues


def rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_rodrigues_zero_is_identity_exactly():
    assert np.array_equal(rodrigues(np.zeros((2, 3))), np.stack([np.eye(3)] * 2))


def test_rodrigues_quarter_turns_by_hand():
    r = rodrigues(np.array([[0.0, 0.0, np.pi / 2], [np.pi / 2, 0.0, 0.0], [0.0, np.pi / 2, 0.0]]))
    np.testing.assert_allclose(r[0], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-15)  # x -> y
    np.testing.assert_allclose(r[1], [[1, 0, 0], [0, 0, -1], [0, 1, 0]], atol=1e-15)  # y -> z
    np.testing.assert_allclose(r[2], [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], atol=1e-15)  # z -> x


def test_rodrigues_axis_is_fixed_and_third_turn_cycles_axes():
    axis = np.ones(3) / np.sqrt(3.0)
    r = rodrigues((2 * np.pi / 3 * axis)[None])[0]
    np.testing.assert_allclose(r @ axis, axis, atol=1e-15)
    np.testing.assert_allclose(r, [[0, 0, 1], [1, 0, 0], [0, 1, 0]], atol=1e-15)  # x -> y -> z -> x


def test_rodrigues_orthonormal_and_small_angles_smooth():
    rng = np.random.default_rng(1)
    vecs = np.concatenate([rng.normal(size=(50, 3)) * 2.0, rng.normal(size=(5, 3)) * 1e-9])
    r = rodrigues(vecs)
    np.testing.assert_allclose(r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)
    tiny = np.array([[1e-7, -2e-7, 3e-7]])
    k = np.array([[0, -3e-7, -2e-7], [3e-7, 0, -1e-7], [2e-7, 1e-7, 0]])
    np.testing.assert_allclose(rodrigues(tiny)[0], np.eye(3) + k, atol=1e-13)


def test_rodrigues_keeps_float32():
    assert rodrigues(np.zeros((1, 3), dtype=np.float32)).dtype == np.float32
    assert rodrigues(np.zeros((1, 3), dtype=np.int64)).dtype == np.float64


def test_blend_shapes_is_weighted_sum_and_checks_shapes():
    rng = np.random.default_rng(2)
    dirs = rng.normal(size=(5, 3, 4))
    coeffs = np.array([0.5, -1.0, 2.0, 0.0])
    expected = sum(coeffs[k] * dirs[:, :, k] for k in range(4))
    np.testing.assert_allclose(blend_shapes(coeffs, dirs), expected)
    with pytest.raises(RigError, match=r"dirs: expected shape \[\*, 3, 3\], got \[5, 3, 4\]"):
        blend_shapes(coeffs[:3], dirs)


def chain_inputs(rng: np.random.Generator, num_verts: int = 8):
    v = rng.normal(size=(num_verts, 3))
    parents = np.array([-1, 0, 1])
    j_regressor = rng.random((3, num_verts))
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    weights = rng.random((num_verts, 3))
    weights[:3] = np.eye(3)
    weights /= weights.sum(axis=1, keepdims=True)
    posedirs = np.zeros((18, num_verts * 3))
    return v, posedirs, j_regressor, parents, weights


def test_lbs_zero_pose_returns_shaped_template():
    v, posedirs, jreg, parents, weights = chain_inputs(np.random.default_rng(3))
    verts, joints = lbs(v, np.zeros((3, 3)), posedirs, jreg, parents, weights)
    np.testing.assert_allclose(verts, v, atol=1e-14)
    np.testing.assert_allclose(joints, jreg @ v, atol=1e-14)


def test_root_rotation_rotates_everything_about_the_root_joint():
    v, posedirs, jreg, parents, weights = chain_inputs(np.random.default_rng(4))
    pose = np.zeros((3, 3))
    pose[0] = [0.0, np.pi / 2, 0.0]
    verts, joints = lbs(v, pose, posedirs, jreg, parents, weights)
    rest = jreg @ v
    r_y = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(verts, (v - rest[0]) @ r_y.T + rest[0], atol=1e-12)
    np.testing.assert_allclose(joints, (rest - rest[0]) @ r_y.T + rest[0], atol=1e-12)


def test_child_rotation_moves_only_its_vertices_and_descendants():
    v, posedirs, jreg, parents, weights = chain_inputs(np.random.default_rng(5))
    pose = np.zeros((3, 3))
    pose[1] = [0.0, 0.0, np.pi / 2]
    verts, joints = lbs(v, pose, posedirs, jreg, parents, weights)
    rest = jreg @ v
    np.testing.assert_allclose(verts[0], v[0], atol=1e-14)  # bound to the root only
    np.testing.assert_allclose(verts[1], rot_z(np.pi / 2) @ (v[1] - rest[1]) + rest[1], atol=1e-12)
    np.testing.assert_allclose(joints[:2], rest[:2], atol=1e-14)
    np.testing.assert_allclose(joints[2], rot_z(np.pi / 2) @ (rest[2] - rest[1]) + rest[1], atol=1e-12)
    assert np.all(np.linalg.norm(verts[3:] - v[3:], axis=1) > 1e-6)  # blended vertices move


def test_pose_correctives_are_applied():
    rng = np.random.default_rng(6)
    v, _, jreg, parents, _ = chain_inputs(rng)
    weights = np.zeros((len(v), 3))
    weights[:, 0] = 1.0  # skinning leaves every vertex in place; only correctives move them
    posedirs = rng.normal(size=(18, len(v) * 3))
    pose = np.zeros((3, 3))
    pose[2] = [0.3, -0.2, 0.1]
    verts, _ = lbs(v, pose, posedirs, jreg, parents, weights)
    feature = np.concatenate([np.zeros(9), (rodrigues(pose[2:3])[0] - np.eye(3)).ravel()])
    np.testing.assert_allclose(verts, v + (feature @ posedirs).reshape(-1, 3), atol=1e-12)
    assert not np.allclose(verts, v)


def test_lbs_keeps_float32():
    v, posedirs, jreg, parents, weights = chain_inputs(np.random.default_rng(7))
    f32 = [a.astype(np.float32) for a in (v, posedirs, jreg, weights)]
    verts, joints = lbs(f32[0], np.full((3, 3), 0.1, np.float32), f32[1], f32[2], parents, f32[3])
    assert verts.dtype == np.float32 and joints.dtype == np.float32


def test_lbs_checks_shapes_and_parents():
    v, posedirs, jreg, parents, weights = chain_inputs(np.random.default_rng(8))
    with pytest.raises(RigError, match=r"pose: expected shape \[3, 3\], got \[2, 3\]"):
        lbs(v, np.zeros((2, 3)), posedirs, jreg, parents, weights)
    with pytest.raises(RigError, match="parents"):
        lbs(v, np.zeros((3, 3)), posedirs, jreg, np.array([-1, 2, 0]), weights)


def test_barycentric_points():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]])
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    bary = np.array([[1.0, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0.5, 0.5]])
    points = barycentric_points(vertices, faces, np.array([0, 0, 1]), bary)
    np.testing.assert_allclose(points, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 1, 0.5]])
