from __future__ import annotations

import numpy as np

from rigs.mesh import embed_points, face_areas, raycast, ring_grid_faces, signed_volume


def unit_sphere(rings: int = 12, cols: int = 24) -> tuple[np.ndarray, np.ndarray]:
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]
    phi = np.arange(cols) * 2 * np.pi / cols
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)], -1).reshape(-1, 3)
    return np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]), ring_grid_faces(rings, cols)


def directed_edges(faces: np.ndarray) -> np.ndarray:
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def test_ring_grid_is_closed_consistent_and_outward():
    vertices, faces = unit_sphere()
    edges = {tuple(e) for e in directed_edges(faces).tolist()}
    assert len(edges) == 3 * len(faces)  # no directed edge twice: consistent orientation
    assert all((b, a) in edges for a, b in edges)  # every edge has its twin: closed
    assert 0.9 * 4 / 3 * np.pi < signed_volume(vertices, faces) < 4 / 3 * np.pi
    assert np.all(face_areas(vertices, faces) > 0)


def test_raycast_hits_nearest_face_and_reports_misses():
    vertices, faces = unit_sphere()
    origins = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0], [3.0, 3.0, 3.0]])
    directions = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    face_idx, points = raycast(vertices, faces, origins, directions)
    assert face_idx[2] == -1 and np.isnan(points[2]).all()
    np.testing.assert_allclose(points[0], [0, 0, 1], atol=0.02)
    np.testing.assert_allclose(points[1], [1, 0, 0], atol=0.02)


def test_embed_points_inside_edge_and_vertex():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 5, 5], [6, 5, 5], [5, 6, 5]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    points = np.array([[0.25, 0.25, 0.3], [0.5, -0.4, 0.0], [-1.0, -1.0, 0.0], [5.2, 5.2, 4.0]])
    face_idx, bary = embed_points(vertices, faces, points)
    np.testing.assert_array_equal(face_idx, [0, 0, 0, 1])
    np.testing.assert_allclose(bary[0], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(bary[1], [0.5, 0.5, 0.0])
    np.testing.assert_allclose(bary[2], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(bary[3], [0.6, 0.2, 0.2])
    only_second, _ = embed_points(vertices, faces, points[:1], candidates=np.array([1]))
    assert only_second.tolist() == [1]
