"""Target points of the demo head's 68 landmarks, in the iBUG-300W order.

Image-left to image-right of a frontal view is -X to +X (the subject's right to left), so iBUG's "right"
eye and brow (17-21, 36-41) lie on the -X side. Targets sit on the skin/mouth surface: most are found by
casting a ray onto it, the mouth corners and inner lips are taken on the mouth band's own rings, and the
eye landmarks on the rim where the eyeball leaves the skin. ``demo_head`` then projects every target onto
its nearest skin/mouth triangle (:func:`rigs.mesh.embed_points`), which gives the stored face index and
barycentric coordinates.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ..mesh import raycast
from .layout import EYE_RADIUS, HEAD_CENTRE, MOUTH_HALF_WIDTH, MOUTH_Y, NOSE_TIP_Y

NUM_LANDMARKS = 68
JAWLINE_DEGREES = 80.0  # landmarks 0 and 16 sit this far round from the chin, in front of the ears
JAWLINE_TOP_Y, JAWLINE_CHIN_Y = 0.004, -0.085
JAWLINE_AXIS_Z = 0.0  # the jawline rays leave a vertical axis at this depth
RIM_MARGIN = 0.0008  # eye landmarks sit this far outside the eyeball/skin contour

_BROW = ((-0.052, 0.047), (-0.043, 0.053), (-0.033, 0.056), (-0.023, 0.055), (-0.013, 0.052))  # 17-21
_NOSE = ((0.0, 0.033), (0.0, 0.021), (0.0, 0.009), (0.0, NOSE_TIP_Y))  # 27-30
_NOSTRILS = ((-0.012, -0.013), (-0.006, -0.016), (0.0, -0.018), (0.006, -0.016), (0.012, -0.013))  # 31-35
_OUTER_UPPER_LIP = ((-0.017, 0.008), (-0.007, 0.011), (0.0, 0.0105), (0.007, 0.011), (0.017, 0.008))  # 49-53
_OUTER_LOWER_LIP = (
    (0.017, -0.009),
    (0.007, -0.0125),
    (0.0, -0.013),
    (-0.007, -0.0125),
    (-0.017, -0.009),
)  # 55-59
# Eye contour angles (degrees, counter-clockwise from +X seen from the front) in iBUG order: the image-left
# corner, two points on the upper lid, the image-right corner, two on the lower lid. For the -X eye that is
# outer corner, ..., inner corner; for the +X eye inner corner, ..., outer corner.
_EYE_ANGLES = (180.0, 115.0, 65.0, 0.0, -65.0, -115.0)


def landmark_targets(
    vertices: np.ndarray,
    faces: np.ndarray,
    allowed: np.ndarray,
    ring: np.ndarray,
    band_rings: tuple[int, ...],
    eye_centres: np.ndarray,
) -> np.ndarray:
    """(68, 3) landmark target points.

    Args:
        vertices: (V, 3) demo mesh vertices.
        faces: (F, 3) its triangles.
        allowed: (A,) indices of the skin and mouth faces, the only ones landmarks may lie on.
        ring: (V,) head ring index of every vertex (the mouth band's rings are looked up in it).
        band_rings: the four mouth-band rings, top to bottom.
        eye_centres: (2, 3) eyeball centres.
    """
    surface = faces[allowed]
    targets = np.full((NUM_LANDMARKS, 3), np.nan)
    targets[0:17] = _jawline(vertices, surface)
    brows = [*_BROW, *((-x, y) for x, y in reversed(_BROW))]
    targets[17:27] = _frontal(vertices, surface, brows)
    targets[27:36] = _frontal(vertices, surface, [*_NOSE, *_NOSTRILS])
    targets[36:48] = _eye_rims(vertices, surface, eye_centres)
    band = [vertices[ring == r] for r in band_rings]
    targets[48] = _ring_point(band[1:3], -MOUTH_HALF_WIDTH)
    targets[49:54] = _frontal(vertices, surface, [(x, MOUTH_Y + y) for x, y in _OUTER_UPPER_LIP])
    targets[54] = _ring_point(band[1:3], MOUTH_HALF_WIDTH)
    targets[55:60] = _frontal(vertices, surface, [(x, MOUTH_Y + y) for x, y in _OUTER_LOWER_LIP])
    inner_corner = MOUTH_HALF_WIDTH - 0.003
    targets[60] = _ring_point(band[1:3], -inner_corner)
    targets[61:64] = [_ring_point(band[:1], x) for x in (-0.008, 0.0, 0.008)]
    targets[64] = _ring_point(band[1:3], inner_corner)
    targets[65:68] = [_ring_point(band[3:], x) for x in (0.008, 0.0, -0.008)]
    if not np.all(np.isfinite(targets)):
        missing = np.flatnonzero(~np.isfinite(targets).all(axis=1)).tolist()
        raise RuntimeError(f"demo head landmarks {missing} found no surface")  # a layout constant is off
    return targets


def _frontal(vertices: np.ndarray, faces: np.ndarray, query: ArrayLike) -> np.ndarray:
    """Surface points seen straight from the front at the given (N, 2) (x, y)."""
    xy = np.asarray(query, dtype=np.float64).reshape(-1, 2)
    corners = vertices[faces][:, :, :2]  # only faces whose xy box holds a query point can be hit
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    holds = ((xy[:, None] >= lo[None] - 1e-9) & (xy[:, None] <= hi[None] + 1e-9)).all(axis=2)
    origins = np.column_stack([xy, np.ones(len(xy))])
    _, points = raycast(vertices, faces[holds.any(axis=0)], origins, np.tile([0.0, 0.0, -1.0], (len(xy), 1)))
    return points


def _jawline(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """17 points from in front of the right (-X) ear, down round the chin, up to the left ear."""
    angles = np.radians(np.linspace(-JAWLINE_DEGREES, JAWLINE_DEGREES, 17))
    height = JAWLINE_CHIN_Y + (JAWLINE_TOP_Y - JAWLINE_CHIN_Y) * (np.abs(angles) / angles.max()) ** 1.5
    outward = np.column_stack([np.sin(angles), np.zeros(17), np.cos(angles)])
    axis = np.column_stack([np.zeros(17), height, np.full(17, JAWLINE_AXIS_Z)])
    _, points = raycast(vertices, faces, axis + 0.5 * outward, -outward)
    return points


def _eye_rims(vertices: np.ndarray, faces: np.ndarray, eye_centres: np.ndarray) -> np.ndarray:
    """(12, 3) points just outside the contour where each eyeball pokes out of the skin (36-41, 42-47)."""
    points = []
    for centre in sorted(eye_centres, key=lambda c: c[0]):  # the -X eye first
        for angle in np.radians(_EYE_ANGLES):
            points.append(_rim_point(vertices, faces, centre, np.array([np.cos(angle), np.sin(angle)])))
    return np.array(points)


def _rim_point(
    vertices: np.ndarray, faces: np.ndarray, centre: np.ndarray, direction: np.ndarray
) -> np.ndarray:
    """The skin point, seen from the front, just outside the eyeball along ``direction`` from its centre."""
    radii = np.linspace(0.0, EYE_RADIUS, 49)
    xy = centre[:2] + radii[:, None] * direction
    skin_z = _frontal(vertices, faces, xy)[:, 2]
    eye_z = centre[2] + np.sqrt(np.clip(EYE_RADIUS**2 - radii**2, 0.0, None))
    outside = np.flatnonzero(skin_z >= eye_z)
    radius = radii[outside[0]] if outside.size else EYE_RADIUS
    return _frontal(vertices, faces, centre[:2] + (radius + RIM_MARGIN) * direction)[0]


def _ring_point(loops: list[np.ndarray], x: float) -> np.ndarray:
    """The point at ``x`` on the front half of head rings (``loops``: their vertices), averaged over them."""
    points = []
    for loop in loops:
        front = loop[loop[:, 2] > HEAD_CENTRE[2]]
        front = front[np.argsort(front[:, 0])]
        points.append([np.interp(x, front[:, 0], front[:, k]) for k in range(3)])
    return np.mean(points, axis=0)
