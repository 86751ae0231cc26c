"""Identity and expression blendshapes of the demo head, as smooth displacement fields.

Every field is a pure function of rest positions ``p`` (N, 3) (identity fields also get the neck share
``n`` (N,) of every point) returning (N, 3) offsets; at coefficient 1 it moves its region by millimetres up
to about 1.5 cm. Eyeballs never move with expressions; with identity they follow their socket rigidly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..mesh import smoothstep
from .layout import BROW_Y, EYE_CENTRE_XY, FACE_FRONT_Z, JAW_OPEN_ANGLE, MOUTH_HALF_WIDTH, MOUTH_Y

EYE_X, EYE_Y = EYE_CENTRE_XY


def _g(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * (x / sigma) ** 2)


def _front(p: np.ndarray) -> np.ndarray:
    """1 on the face side of the head, 0 on the ears and behind them."""
    return smoothstep(FACE_FRONT_Z[0], FACE_FRONT_Z[1], p[:, 2])


def _head(n: np.ndarray) -> np.ndarray:
    return 1.0 - smoothstep(0.2, 0.8, n)


def _vec(
    weight: np.ndarray, dx: np.ndarray | float, dy: np.ndarray | float, dz: np.ndarray | float
) -> np.ndarray:
    """(N, 3) offsets ``weight * (dx, dy, dz)`` with per-point or constant components."""
    n = weight.shape[0]
    return weight[:, None] * np.stack([np.broadcast_to(c, (n,)) for c in (dx, dy, dz)], axis=1)


def _side(p: np.ndarray) -> np.ndarray:
    return np.sign(p[:, 0])


# --- identity --------------------------------------------------------------------------------------------


def _head_width(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_head(n), 0.05 * p[:, 0], 0.0, 0.0)


def _head_height(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    weight = _head(n) * smoothstep(-0.08, -0.04, p[:, 1])
    return _vec(weight, 0.0, 0.05 * (p[:, 1] + 0.045), 0.0)


def _head_depth(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_head(n), 0.0, 0.0, 0.05 * (p[:, 2] + 0.015))


def _jaw_width(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_head(n) * smoothstep(0.0, -0.07, p[:, 1]), 0.12 * p[:, 0], 0.0, 0.0)


def _chin_length(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    weight = _head(n) * _front(p) * _g(p[:, 0], 0.03) * smoothstep(-0.05, -0.085, p[:, 1])
    return _vec(weight, 0.0, -0.006, 0.002)


def _nose_length(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_front(p) * _g(p[:, 0], 0.011) * _g(p[:, 1] - 0.008, 0.018), 0.0, -0.001, 0.005)


def _nose_width(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_front(p) * _g(p[:, 0], 0.016) * _g(p[:, 1] + 0.008, 0.01), 0.25 * p[:, 0], 0.0, 0.0)


def _eye_spacing(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    weight = _front(p) * _g(np.abs(p[:, 0]) - EYE_X, 0.016) * _g(p[:, 1] - EYE_Y, 0.016)
    return _vec(weight, 0.004 * _side(p), 0.0, 0.0)


def _forehead_slope(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_front(p) * smoothstep(0.045, 0.11, p[:, 1]), 0.0, 0.0, -0.007)


def _cheek_fullness(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    weight = _front(p) * _g(np.abs(p[:, 0]) - 0.05, 0.018) * _g(p[:, 1] + 0.02, 0.02)
    return _vec(weight, 0.005 * _side(p), 0.0, 0.002)


def _lip_fullness(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(_front(p) * _g(p[:, 0], 0.018) * _g(p[:, 1] - MOUTH_Y, 0.009), 0.0, 0.0, 0.003)


def _neck_thickness(p: np.ndarray, n: np.ndarray) -> np.ndarray:
    return _vec(smoothstep(0.2, 0.8, n), 0.08 * p[:, 0], 0.0, 0.08 * (p[:, 2] + 0.02))


IDENTITY_FIELDS: tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...] = (
    _head_width,
    _head_height,
    _head_depth,
    _jaw_width,
    _chin_length,
    _nose_length,
    _nose_width,
    _eye_spacing,
    _forehead_slope,
    _cheek_fullness,
    _lip_fullness,
    _neck_thickness,
)
IDENTITY_NAMES = tuple(field.__name__.lstrip("_") for field in IDENTITY_FIELDS)


def identity_dirs(
    vertices: np.ndarray, neckness: np.ndarray, eye_of: np.ndarray, eye_centres: np.ndarray
) -> np.ndarray:
    """(V, 3, S) identity blendshapes; eyeball ``k`` (``eye_of == k``) moves with the field at its centre."""
    dirs = np.stack([field(vertices, neckness) for field in IDENTITY_FIELDS], axis=-1)
    no_neck = np.zeros(len(eye_centres))
    at_centres = np.stack([field(eye_centres, no_neck) for field in IDENTITY_FIELDS], axis=-1)
    for k in range(len(eye_centres)):
        dirs[eye_of == k] = at_centres[k]
    return dirs


# --- expressions -----------------------------------------------------------------------------------------


def _corners(p: np.ndarray) -> np.ndarray:
    return _front(p) * _g(np.abs(p[:, 0]) - MOUTH_HALF_WIDTH, 0.009) * _g(p[:, 1] - MOUTH_Y, 0.008)


def _lips(p: np.ndarray) -> np.ndarray:
    return _front(p) * _g(p[:, 0], 0.02) * _g(p[:, 1] - MOUTH_Y, 0.011)


def _smile(p: np.ndarray) -> np.ndarray:
    cheeks = _front(p) * _g(np.abs(p[:, 0]) - 0.038, 0.012) * _g(p[:, 1] + 0.012, 0.012)
    return _vec(_corners(p), 0.004 * _side(p), 0.005, -0.002) + _vec(cheeks, 0.0, 0.003, 0.001)


def _frown(p: np.ndarray) -> np.ndarray:
    return _vec(_corners(p), 0.001 * _side(p), -0.005, 0.0)


def _brow_raise(p: np.ndarray) -> np.ndarray:
    y = p[:, 1]
    band = smoothstep(EYE_Y + 0.008, BROW_Y, y) * (1.0 - smoothstep(0.085, 0.11, y))
    return _vec(_front(p) * band * _g(np.abs(p[:, 0]) - 0.03, 0.03), 0.0, 0.007, 0.0)


def _brow_furrow(p: np.ndarray) -> np.ndarray:
    weight = _front(p) * _g(np.abs(p[:, 0]) - 0.016, 0.012) * _g(p[:, 1] - BROW_Y, 0.01)
    return _vec(weight, -0.003 * _side(p), -0.003, 0.0)


def _blink(p: np.ndarray) -> np.ndarray:
    """The skin over the top of each eyeball slides down and a little forward, covering it."""
    y = p[:, 1]
    band = smoothstep(EYE_Y, EYE_Y + 0.005, y) * (1.0 - smoothstep(EYE_Y + 0.011, EYE_Y + 0.019, y))
    return _vec(_front(p) * _g(np.abs(p[:, 0]) - EYE_X, 0.011) * band, 0.0, -0.009, 0.003)


def _squint(p: np.ndarray) -> np.ndarray:
    weight = _front(p) * _g(np.abs(p[:, 0]) - EYE_X, 0.012) * _g(p[:, 1] - (EYE_Y - 0.011), 0.006)
    return _vec(weight, 0.0, 0.004, 0.001)


def _mouth_pucker(p: np.ndarray) -> np.ndarray:
    return _vec(_lips(p), -0.3 * p[:, 0], 0.0, 0.006)


def _cheek_puff(p: np.ndarray) -> np.ndarray:
    weight = _front(p) * _g(np.abs(p[:, 0]) - 0.045, 0.015) * _g(p[:, 1] + 0.03, 0.015)
    return _vec(weight, 0.007 * _side(p), 0.0, 0.004)


def _mouth_left(p: np.ndarray) -> np.ndarray:
    return _vec(_lips(p), 0.006, 0.0, 0.0)


def _mouth_right(p: np.ndarray) -> np.ndarray:
    return _vec(_lips(p), -0.006, 0.0, 0.0)


def _nose_wrinkle(p: np.ndarray) -> np.ndarray:
    return _vec(_front(p) * _g(p[:, 0], 0.014) * _g(p[:, 1] - 0.02, 0.01), 0.0, 0.003, -0.001)


EXPRESSION_FIELDS: tuple[Callable[[np.ndarray], np.ndarray], ...] = (
    _smile,
    _frown,
    _brow_raise,
    _brow_furrow,
    _blink,
    _squint,
    _mouth_pucker,
    _cheek_puff,
    _mouth_left,
    _mouth_right,
    _nose_wrinkle,
)
EXPRESSION_NAMES = ("jaw_open", *(field.__name__.lstrip("_") for field in EXPRESSION_FIELDS))


def expression_dirs(
    vertices: np.ndarray, is_eye: np.ndarray, jaw_joint: np.ndarray, jaw_weight: np.ndarray
) -> np.ndarray:
    """(V, 3, E) expression blendshapes in ``EXPRESSION_NAMES`` order; zero on the eyeballs.

    ``jaw_open`` is the linearised jaw rotation (positive about +X: chin down and back) of the
    jaw-weighted vertices, so it agrees with posing the jaw joint.
    """
    arm = vertices - jaw_joint
    jaw_open = JAW_OPEN_ANGLE * jaw_weight[:, None] * np.cross([1.0, 0.0, 0.0], arm)
    dirs = np.stack([jaw_open, *(field(vertices) for field in EXPRESSION_FIELDS)], axis=-1)
    dirs[is_eye] = 0.0
    return dirs
