"""Synthetic rigs with non-zero pose correctives: a small one for tests, an SMPL-X-sized one for benchmarks.

The mesh is a closed-side tube (rows x columns grid) around the Y axis with the joints on its axis; the
blendshapes and pose correctives are smooth random functions of the vertex positions.
"""

from __future__ import annotations

import numpy as np

import rigs

SMPLX_PARENTS = np.array(  # SMPL-X kinematic tree (55 joints: body, jaw, eyes, hands)
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
    + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
    + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
)


def tube_rig(
    rows: int,
    columns: int,
    parents: np.ndarray,
    num_betas: int,
    num_expressions: int,
    corrective_scale: float = 0.02,
    seed: int = 0,
    name: str = "synthetic",
) -> rigs.Rig:
    """A valid :class:`rigs.Rig` with ``rows * columns`` vertices and random smooth blendshapes/correctives.

    Args:
        rows, columns: tube grid size (vertices = rows * columns).
        parents: (J,) kinematic tree, ``parents[j] < j``.
        num_betas, num_expressions: blendshape counts.
        corrective_scale: typical size (metres) of a pose corrective per unit of pose feature.
        seed: random seed.
        name: the rig's name.
    """
    rng = np.random.default_rng(seed)
    parents = np.asarray(parents, dtype=np.int64)
    num_joints = len(parents)
    height = 0.5
    angle = np.linspace(0.0, 2.0 * np.pi, columns, endpoint=False)
    y = np.linspace(0.0, height, rows)
    radius = 0.08 + 0.02 * np.sin(3.0 * y / height)
    vertices = np.stack(
        [
            (radius[:, None] * np.cos(angle)[None]).ravel(),
            np.repeat(y, columns),
            (radius[:, None] * np.sin(angle)[None]).ravel(),
        ],
        axis=1,
    )
    faces = []
    for r in range(rows - 1):
        for c in range(columns):
            a, b = r * columns + c, r * columns + (c + 1) % columns
            faces += [(a, a + columns, b), (b, a + columns, b + columns)]
    faces_array = np.array(faces, dtype=np.int64)
    num_verts = len(vertices)

    # Joints on the axis, ordered by depth in the tree so children sit above their parents.
    depth = np.zeros(num_joints)
    for j in range(1, num_joints):
        depth[j] = depth[parents[j]] + 1
    joint_y = height * (0.1 + 0.8 * (depth + 0.3 * rng.random(num_joints)) / (depth.max() + 1.3))
    joints = np.stack([0.01 * rng.normal(size=num_joints), joint_y, 0.01 * rng.normal(size=num_joints)], 1)
    dist = np.linalg.norm(vertices[:, None] - joints[None], axis=2)  # (V, J)
    nearest = np.argsort(dist, axis=1)[:, :4]
    weights = np.zeros((num_verts, num_joints))
    rows_index = np.arange(num_verts)[:, None]
    weights[rows_index, nearest] = np.exp(-((dist[rows_index, nearest] / 0.05) ** 2)) + 1e-3
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = np.zeros((num_joints, num_verts))
    ring = np.argsort(dist, axis=0)[:8]  # (8, J) closest vertices of every joint
    regressor[np.arange(num_joints)[None].repeat(8, 0), ring] = 1.0 / 8.0

    def smooth(count: int, scale: float) -> np.ndarray:
        """(V * 3, count) smooth random fields of the vertex positions."""
        features = np.concatenate(
            [np.ones((num_verts, 1)), vertices, np.sin(vertices * 7.0), np.cos(vertices * 5.0)], 1
        )
        return (features @ rng.normal(size=(features.shape[1], 3 * count))).reshape(num_verts * 3, count) * (
            scale / np.sqrt(features.shape[1])
        )

    shapedirs = smooth(num_betas, 0.01).reshape(num_verts, 3, num_betas)
    exprdirs = smooth(num_expressions, 0.005).reshape(num_verts, 3, num_expressions)
    posedirs = smooth((num_joints - 1) * 9, corrective_scale).T.copy()
    return rigs.Rig(
        name=name,
        v_template=vertices,
        faces=faces_array,
        shapedirs=shapedirs,
        exprdirs=exprdirs,
        posedirs=posedirs,
        j_regressor=regressor,
        lbs_weights=weights,
        parents=parents,
        joint_names=tuple(f"joint_{j:02d}" for j in range(num_joints)),
        expression_names=tuple(f"expr_{e:02d}" for e in range(num_expressions)),
        landmark_faces=np.arange(5, dtype=np.int64),
        landmark_bary=np.full((5, 3), 1.0 / 3.0),
        face_regions=np.ones(len(faces_array), dtype=np.uint8),
    )


def small_rig(corrective_scale: float = 0.02, seed: int = 0) -> rigs.Rig:
    """240 vertices, 6 joints (a chain with a branch), 4 betas, 3 expressions, non-zero posedirs."""
    return tube_rig(12, 20, np.array([-1, 0, 1, 2, 1, 4]), 4, 3, corrective_scale, seed, "small synthetic")


def smplx_sized_rig(seed: int = 0) -> rigs.Rig:
    """10,475 vertices, 55 joints (SMPL-X tree), 300 betas, 100 expressions, (486, 31425) posedirs."""
    return tube_rig(25, 419, SMPLX_PARENTS, 300, 100, 0.02, seed, "smplx-sized synthetic")
