"""Linear blend skinning as pure numpy functions, following the conventions of smplx's ``lbs.py``.

Everything here is unbatched (one pose at a time) and keeps the floating dtype of its inputs: float64
arrays give float64 results, float32 give float32.
"""

from __future__ import annotations

import numpy as np

from .errors import RigError, assert_shape

_SMALL_ANGLE = 1e-4  # below this (radians) rodrigues uses Taylor series, which are exact to float64 there


def rodrigues(rotvecs: np.ndarray) -> np.ndarray:
    """Axis-angle vectors to rotation matrices; exact and smooth through the zero angle.

    Args:
        rotvecs: (N, 3) float axis-angle vectors (direction = axis, norm = angle in radians).

    Returns:
        (N, 3, 3) rotation matrices ``R = I + a K + b K^2`` with ``K`` the cross-product matrix of the
        vector, ``a = sin(t) / t`` and ``b = (1 - cos(t)) / t^2``.
    """
    rotvecs = _as_float(rotvecs)
    assert_shape("rotvecs", rotvecs, [None, 3])
    angle = np.linalg.norm(rotvecs, axis=1)
    small = angle < _SMALL_ANGLE
    safe = np.where(small, 1.0, angle)
    angle2 = angle * angle
    a = np.where(small, 1.0 - angle2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - angle2 / 24.0, (1.0 - np.cos(safe)) / (safe * safe))
    x, y, z = rotvecs[:, 0], rotvecs[:, 1], rotvecs[:, 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=1).reshape(-1, 3, 3)
    eye = np.eye(3, dtype=rotvecs.dtype)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


def blend_shapes(coeffs: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Vertex offsets of a linear blendshape basis.

    Args:
        coeffs: (K,) blend coefficients.
        dirs: (V, 3, K) blendshape directions.

    Returns:
        (V, 3) offsets ``sum_k coeffs[k] * dirs[:, :, k]``.
    """
    coeffs = _as_float(coeffs)
    assert_shape("coeffs", coeffs, [None])
    assert_shape("dirs", dirs, [None, 3, coeffs.shape[0]])
    return np.einsum("vck,k->vc", dirs, coeffs)


def lbs(
    v_shaped: np.ndarray,
    pose: np.ndarray,
    posedirs: np.ndarray,
    j_regressor: np.ndarray,
    parents: np.ndarray,
    lbs_weights: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Pose a shaped mesh: pose correctives, then the kinematic chain, then linear blend skinning.

    Args:
        v_shaped: (V, 3) rest vertices with identity and expression offsets already added.
        pose: (J, 3) axis-angle rotation of every joint relative to its parent (joint 0: global).
        posedirs: (P, V * 3) pose-corrective basis, ``P = (J - 1) * 9``.
        j_regressor: (J, V) joint regressor; rest joints are ``j_regressor @ v_shaped``.
        parents: (J,) int parent of each joint, ``parents[0] == -1`` and ``parents[j] < j``.
        lbs_weights: (V, J) skinning weights, rows summing to 1.

    Returns:
        ``(vertices, joints)``: (V, 3) posed vertices and (J, 3) posed joint positions.
    """
    v_shaped = _as_float(v_shaped)
    num_verts = v_shaped.shape[0]
    assert_shape("v_shaped", v_shaped, [None, 3])
    assert_shape("parents", parents, [None])
    num_joints = np.shape(parents)[0]
    assert_shape("pose", pose, [num_joints, 3])
    assert_shape("posedirs", posedirs, [(num_joints - 1) * 9, num_verts * 3])
    assert_shape("j_regressor", j_regressor, [num_joints, num_verts])
    assert_shape("lbs_weights", lbs_weights, [num_verts, num_joints])

    joints = j_regressor @ v_shaped
    rot = rodrigues(np.asarray(pose, dtype=v_shaped.dtype))
    pose_feature = (rot[1:] - np.eye(3, dtype=rot.dtype)).reshape(-1)
    v_posed = v_shaped + (pose_feature @ posedirs).reshape(num_verts, 3)
    posed_joints, rel_transforms = rigid_transform(rot, joints, parents)
    transforms = (lbs_weights @ rel_transforms.reshape(num_joints, 16)).reshape(num_verts, 4, 4)
    vertices = np.einsum("vij,vj->vi", transforms[:, :3, :3], v_posed) + transforms[:, :3, 3]
    return vertices.astype(v_shaped.dtype, copy=False), posed_joints


def rigid_transform(
    rot: np.ndarray, joints: np.ndarray, parents: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run the kinematic chain.

    Args:
        rot: (J, 3, 3) rotation of every joint relative to its parent.
        joints: (J, 3) rest joint positions.
        parents: (J,) int parents, ``parents[0] == -1`` and ``parents[j] < j``.

    Returns:
        ``(posed_joints, rel_transforms)``: (J, 3) posed joint positions and (J, 4, 4) transforms that map a
        rest-pose point to its posed position for a vertex fully bound to that joint.
    """
    parents = np.asarray(parents)
    num_joints = joints.shape[0]
    check_parents(parents)
    rel_joints = joints.copy()
    rel_joints[1:] -= joints[parents[1:]]
    local = np.zeros((num_joints, 4, 4), dtype=joints.dtype)
    local[:, :3, :3] = rot
    local[:, :3, 3] = rel_joints
    local[:, 3, 3] = 1.0
    chain = np.empty_like(local)
    chain[0] = local[0]
    for j in range(1, num_joints):
        chain[j] = chain[parents[j]] @ local[j]
    posed_joints = chain[:, :3, 3].copy()
    rel_transforms = chain.copy()
    rel_transforms[:, :3, 3] -= np.einsum("jab,jb->ja", chain[:, :3, :3], joints)
    return posed_joints, rel_transforms


def check_parents(parents: np.ndarray) -> None:
    """Raise :class:`RigError` unless ``parents`` is a tree in topological order.

    Args:
        parents: (J,) int parent of each joint; valid when ``parents[0] == -1`` and ``0 <= parents[j] < j``.
    """
    parents = np.asarray(parents)
    order = np.arange(parents.shape[0])
    if (
        parents.shape[0] < 1
        or parents[0] != -1
        or np.any(parents[1:] < 0)
        or np.any(parents[1:] >= order[1:])
    ):
        raise RigError(f"parents: expected parents[0] == -1 and 0 <= parents[j] < j, got {parents.tolist()}")


def barycentric_points(
    vertices: np.ndarray, faces: np.ndarray, face_idx: np.ndarray, bary: np.ndarray
) -> np.ndarray:
    """Points given as barycentric coordinates on mesh faces (landmarks).

    Args:
        vertices: (V, 3) mesh vertices.
        faces: (F, 3) int vertex indices.
        face_idx: (L,) int face of every point.
        bary: (L, 3) barycentric coordinates of every point in its face.

    Returns:
        (L, 3) points.
    """
    assert_shape("face_idx", face_idx, [None])
    assert_shape("bary", bary, [np.shape(face_idx)[0], 3])
    corners = vertices[faces[face_idx]]  # (L, 3, 3)
    return np.einsum("lk,lkc->lc", bary, corners).astype(vertices.dtype, copy=False)


def _as_float(array: np.ndarray) -> np.ndarray:
    """Keep a floating dtype; promote anything else (ints, lists) to float64."""
    array = np.asarray(array)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)
