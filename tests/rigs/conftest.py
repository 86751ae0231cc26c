"""Shared fixtures for the rigs tests: the demo head (built once) and a tiny random rig."""

from __future__ import annotations

import numpy as np
import pytest

from rigs import Rig, demo_head, regions


@pytest.fixture(scope="session")
def head() -> Rig:
    return demo_head()


def make_small_rig(seed: int = 0, posedirs_scale: float = 0.0, num_verts: int = 6) -> Rig:
    """A 3-joint chain (root -> a -> b) over a handful of random vertices, with random blendshapes."""
    rng = np.random.default_rng(seed)
    num_joints, num_betas, num_expr = 3, 4, 2
    v_template = rng.normal(size=(num_verts, 3))
    faces = np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]], dtype=np.int64)
    weights = rng.random((num_verts, num_joints))
    weights[0] = [1.0, 0.0, 0.0]  # vertex 0 only follows the root
    weights[1] = [0.0, 1.0, 0.0]  # vertex 1 only follows joint a
    weights /= weights.sum(axis=1, keepdims=True)
    j_regressor = rng.random((num_joints, num_verts))
    j_regressor /= j_regressor.sum(axis=1, keepdims=True)
    return Rig(
        name="small",
        v_template=v_template,
        faces=faces,
        shapedirs=rng.normal(size=(num_verts, 3, num_betas)),
        exprdirs=rng.normal(size=(num_verts, 3, num_expr)),
        posedirs=posedirs_scale * rng.normal(size=((num_joints - 1) * 9, num_verts * 3)),
        j_regressor=j_regressor,
        lbs_weights=weights,
        parents=np.array([-1, 0, 1]),
        joint_names=("root", "a", "b"),
        expression_names=("e0", "e1"),
        landmark_faces=np.array([0, 2]),
        landmark_bary=np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]]),
        face_regions=np.array([regions.SKIN, regions.MOUTH, regions.EYES], dtype=np.uint8),
    )


@pytest.fixture()
def small_rig() -> Rig:
    return make_small_rig()


@pytest.fixture()
def make_rig():
    """The :func:`make_small_rig` factory, for tests that need variants."""
    return make_small_rig
