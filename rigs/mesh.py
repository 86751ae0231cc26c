"""Small triangle-mesh helpers: grid meshes, normals, volume, ray casts and point embedding."""

from __future__ import annotations

import numpy as np

_INSIDE_TOL = 1e-9  # barycentric slack so rays through an edge or vertex still hit one of its faces


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step: 0 at ``edge0``, 1 at ``edge1`` (either order), smooth in between."""
    t = np.clip((np.asarray(x, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def ring_grid_faces(num_rings: int, num_cols: int) -> np.ndarray:
    """Triangles of a closed sphere-like grid: a top pole, ``num_rings`` rings, a bottom pole.

    Vertex layout: index 0 is the top pole, ring ``i`` column ``j`` is ``1 + i * num_cols + j``, the bottom
    pole is last. With the top pole toward +Y and columns running from +Z toward +X, the triangles are
    counter-clockwise seen from outside (normals point outward).

    Args:
        num_rings: number of rings, at least 1.
        num_cols: vertices per ring, at least 3.

    Returns:
        (2 * num_rings * num_cols, 3) int64 faces.
    """
    cols = np.arange(num_cols)
    nxt = (cols + 1) % num_cols
    bottom = 1 + num_rings * num_cols
    top_fan = np.stack([np.zeros(num_cols, dtype=np.int64), 1 + cols, 1 + nxt], axis=1)
    ring = 1 + np.arange(num_rings - 1)[:, None] * num_cols
    a, b = ring + cols, ring + nxt  # this ring
    c, d = a + num_cols, b + num_cols  # the ring below
    # Split quads along a-d on the first half of the columns and along b-c on the second, so a grid whose
    # columns are mirror-symmetric gets a mirror-symmetric triangulation.
    first = np.broadcast_to(cols < num_cols // 2, a.shape)
    tri1 = np.where(first[..., None], np.stack([a, c, d], -1), np.stack([a, c, b], -1))
    tri2 = np.where(first[..., None], np.stack([a, d, b], -1), np.stack([b, c, d], -1))
    quads = np.concatenate([tri1.reshape(-1, 3), tri2.reshape(-1, 3)])
    last = 1 + (num_rings - 1) * num_cols
    bottom_fan = np.stack([last + cols, np.full(num_cols, bottom), last + nxt], axis=1)
    return np.concatenate([top_fan, quads, bottom_fan]).astype(np.int64)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F, 3) area-weighted face normals (length = twice the triangle area)."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return np.cross(b - a, c - a)


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) triangle areas."""
    return 0.5 * np.linalg.norm(face_normals(vertices, faces), axis=1)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume enclosed by a closed triangle mesh; positive when its normals point outward."""
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("fi,fi->", a, np.cross(b, c)) / 6.0)


def raycast(
    vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, directions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit of every ray (Moller-Trumbore), both triangle sides counting.

    Args:
        vertices: (V, 3) mesh vertices.
        faces: (F, 3) triangles.
        origins: (R, 3) ray origins.
        directions: (R, 3) ray directions (any length; hits are ``origin + t * direction``, t > 0).

    Returns:
        ``(face_idx, points)``: (R,) int64 face hit first (-1: no hit) and (R, 3) hit points (NaN: no hit).
    """
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    e1, e2 = b - a, c - a  # (F, 3)
    p = np.cross(directions[:, None, :], e2[None])  # (R, F, 3)
    det = np.einsum("rfi,fi->rf", p, e1)
    ok = np.abs(det) > 1e-15
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origins[:, None, :] - a[None]
    u = np.einsum("rfi,rfi->rf", s, p) * inv
    q = np.cross(s, e1[None])
    v = np.einsum("ri,rfi->rf", directions, q) * inv
    t = np.einsum("fi,rfi->rf", e2, q) * inv
    hit = ok & (u >= -_INSIDE_TOL) & (v >= -_INSIDE_TOL) & (u + v <= 1 + _INSIDE_TOL) & (t > 0)
    t = np.where(hit, t, np.inf)
    face_idx = np.argmin(t, axis=1)
    t_best = t[np.arange(len(origins)), face_idx]
    missed = ~np.isfinite(t_best)
    points = origins + np.where(missed, np.nan, t_best)[:, None] * directions
    return np.where(missed, -1, face_idx).astype(np.int64), points


def embed_points(
    vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, candidates: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Project points onto their nearest triangle and express them as face index + barycentrics.

    Args:
        vertices: (V, 3) mesh vertices.
        faces: (F, 3) triangles.
        points: (L, 3) target points.
        candidates: (C,) int indices of the faces allowed to receive points; None: all faces.

    Returns:
        ``(face_idx, bary)``: (L,) int64 faces and (L, 3) barycentric coordinates (non-negative, sum 1).
    """
    candidates = np.arange(len(faces)) if candidates is None else np.asarray(candidates)
    candidates = _near_faces(vertices, faces, points, candidates)
    tri = vertices[faces[candidates]]  # (C, 3, 3)
    bary = _closest_barycentrics(points, tri)  # (L, C, 3)
    closest = np.einsum("lck,cki->lci", bary, tri)
    dist = np.linalg.norm(closest - points[:, None, :], axis=2)
    best = np.argmin(dist, axis=1)
    rows = np.arange(len(points))
    return candidates[best].astype(np.int64), bary[rows, best]


def _near_faces(
    vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, candidates: np.ndarray
) -> np.ndarray:
    """The candidates that can hold some point's nearest surface point (bounding-sphere culling)."""
    tri = vertices[faces[candidates]]
    centre = tri.mean(axis=1)
    radius = np.linalg.norm(tri - centre[:, None], axis=2).max(axis=1)
    # Upper bound per point: its distance to the nearest corner of any candidate.
    corners = np.unique(faces[candidates])
    bound = np.linalg.norm(points[:, None, :] - vertices[corners][None], axis=2).min(axis=1)
    lower = np.linalg.norm(points[:, None, :] - centre[None], axis=2) - radius[None]
    return candidates[(lower <= bound[:, None] + 1e-12).any(axis=0)]


def _closest_barycentrics(points: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(L, C, 3) barycentrics of the closest point of every triangle to every point."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    # Inside candidate: the projection onto the plane, when its barycentrics are all non-negative.
    v0, v1 = b - a, c - a
    d00, d01, d11 = (np.einsum("ci,ci->c", x, y) for x, y in ((v0, v0), (v0, v1), (v1, v1)))
    denom = d00 * d11 - d01 * d01
    rel = points[:, None, :] - a[None]
    d20, d21 = np.einsum("lci,ci->lc", rel, v0), np.einsum("lci,ci->lc", rel, v1)
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    inside = np.stack([1.0 - w1 - w2, w1, w2], axis=-1)
    best = inside
    best_dist = np.where((inside >= 0).all(-1), _distance(points, tri, inside), np.inf)
    # Edge candidates: the clamped projection onto each edge.
    for i, j in ((0, 1), (1, 2), (2, 0)):
        edge = tri[:, j] - tri[:, i]
        t = np.einsum("lci,ci->lc", points[:, None, :] - tri[None, :, i], edge) / np.einsum(
            "ci,ci->c", edge, edge
        )
        t = np.clip(t, 0.0, 1.0)
        cand = np.zeros(best.shape)
        cand[..., i], cand[..., j] = 1.0 - t, t
        dist = _distance(points, tri, cand)
        better = dist < best_dist
        best = np.where(better[..., None], cand, best)
        best_dist = np.where(better, dist, best_dist)
    return best


def _distance(points: np.ndarray, tri: np.ndarray, bary: np.ndarray) -> np.ndarray:
    return np.linalg.norm(np.einsum("lck,cki->lci", bary, tri) - points[:, None, :], axis=2)
