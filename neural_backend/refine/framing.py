"""Where a generator wants the face: the FFHQ crop recipe and other alignments, crop squares (quads) and
their smoothing over a shot. numpy only (no torch), so the protocol's checks and the echo engine use it.

Pixel coordinates follow ``neural_backend.protocol.passes``: x right, y down, origin at the top-left corner
of the top-left pixel, so pixel (i, j) has its centre at (i + 0.5, j + 0.5). This holds for frames and crops
alike, which makes a crop matrix a plain affine map between two continuous coordinate systems.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np

# iBUG-68 index ranges used by the FFHQ recipe.
LEFT_EYE = slice(36, 42)  # the eye on the image left (subject's right)
RIGHT_EYE = slice(42, 48)
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def _rot90(v: np.ndarray) -> np.ndarray:
    """Rotate 2-D vectors by +90 degrees in image coordinates (y down): (x, y) -> (-y, x)."""
    return np.stack([-v[..., 1], v[..., 0]], axis=-1)


def ffhq_quad(landmarks68: np.ndarray) -> np.ndarray:
    """The FFHQ dataset's oriented crop square from iBUG-68 landmarks.

    Args:
        landmarks68: (68, 2) float pixel coordinates, iBUG-68 order.

    Returns:
        (4, 2) float64 corners: top-left, bottom-left, bottom-right, top-right (in crop orientation).

    Raises:
        ValueError: wrong shape, non-finite values, or degenerate landmarks (eyes and mouth coincide).
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"landmarks68: expected shape [68, 2], got {list(lm.shape)}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks68: contains NaN or infinite values")
    eye_left = lm[LEFT_EYE].mean(axis=0)
    eye_right = lm[RIGHT_EYE].mean(axis=0)
    eye_avg = 0.5 * (eye_left + eye_right)
    eye_to_eye = eye_right - eye_left
    mouth_avg = 0.5 * (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT])
    eye_to_mouth = mouth_avg - eye_avg

    # The crop's x axis blends the eye line with the perpendicular of the eye-mouth line.
    x = eye_to_eye - _rot90(eye_to_mouth)
    norm = float(np.hypot(*x))
    scale = max(2.0 * float(np.hypot(*eye_to_eye)), 1.8 * float(np.hypot(*eye_to_mouth)))
    if norm < 1e-6 or scale < 1e-6:
        raise ValueError("landmarks68: degenerate face (eye and mouth landmarks coincide)")
    x = x / norm * scale
    y = _rot90(x)
    centre = eye_avg + 0.1 * eye_to_mouth
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


FFHQ_RECIPE = "ffhq"


class AlignmentError(ValueError):
    """An alignment description that cannot be used (bad JSON, unknown recipe, out-of-range values)."""


@dataclass(frozen=True)
class Alignment:
    """How a generator frames a face: the FFHQ crop square, scaled about its centre and moved.

    ``scale`` and ``offset`` are a landmark template in crop coordinates relative to the FFHQ recipe: a
    face whose FFHQ square is the unit crop lands in this generator's crop with its eyes and mouth moved
    by ``-offset`` and shrunk by ``1 / scale`` about the centre. ``ffhq`` is scale 1, offset (0, 0).

    Attributes:
        name: ``ffhq`` or the template's name (``face-prior``, ``calibrated``, ...).
        scale: side of this generator's crop relative to the FFHQ square (> 1: the face looks smaller).
        offset: (x, y) move of the crop centre in FFHQ crop sides, along the crop's own axes (y down).
    """

    name: str = FFHQ_RECIPE
    scale: float = 1.0
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not self.name:
            raise AlignmentError("alignment: the name is empty")
        try:  # plain floats, so that equal alignments compare (and hash) equal however they were given
            object.__setattr__(self, "scale", float(self.scale))
            object.__setattr__(self, "offset", tuple(float(v) for v in self.offset))
        except (TypeError, ValueError) as error:
            raise AlignmentError(f"alignment {self.name!r}: {error}") from None
        if not (math.isfinite(self.scale) and 0.25 <= self.scale <= 4.0):
            raise AlignmentError(f"alignment {self.name!r}: scale {self.scale} outside [0.25, 4]")
        if len(self.offset) != 2 or not all(math.isfinite(v) and abs(v) <= 1.0 for v in self.offset):
            raise AlignmentError(
                f"alignment {self.name!r}: offset {self.offset} must be two values in [-1, 1]"
            )
        if self.name == FFHQ_RECIPE and (self.scale, self.offset) != (1.0, (0.0, 0.0)):
            raise AlignmentError("alignment: 'ffhq' names the FFHQ recipe itself (scale 1, offset [0, 0])")

    def quad(self, landmarks68: np.ndarray) -> np.ndarray:
        """This generator's crop square (4, 2), in :func:`ffhq_quad` corner order, from iBUG-68 landmarks."""
        return adjust_quad(ffhq_quad(landmarks68), self.scale, self.offset)

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "scale": self.scale, "offset": list(self.offset)}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str) -> Alignment:
        """Parse :meth:`to_json` output (or a bare recipe name such as ``"ffhq"``)."""
        if text.strip() == FFHQ_RECIPE:
            return FFHQ
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise AlignmentError(f"alignment: not JSON ({error})") from None
        if not isinstance(values, dict) or "name" not in values:
            raise AlignmentError("alignment: expected an object with 'name', 'scale' and 'offset'")
        unknown = sorted(set(values) - {"name", "scale", "offset"})
        if unknown:
            raise AlignmentError(f"alignment: unknown keys {unknown}")
        try:
            scale, offset = float(values.get("scale", 1.0)), tuple(map(float, values.get("offset", (0, 0))))
        except (TypeError, ValueError) as error:
            raise AlignmentError(f"alignment: {error}") from None
        return cls(str(values["name"]), scale, offset)  # type: ignore[arg-type]  # checked in __post_init__

    def describe(self) -> str:
        if self == FFHQ:
            return "ffhq (the FFHQ crop recipe)"
        moved = f"({self.offset[0]:+.3f}, {self.offset[1]:+.3f})"
        return f"{self.name} (FFHQ square x{self.scale:.3f}, centre moved by {moved} sides)"


FFHQ = Alignment()


NOSE_TIP, CHIN = 30, 8


def ibug_order_problem(landmarks68: np.ndarray) -> str | None:
    """Why 68 points are not a face in iBUG-68 order (docs/protocol.md has the table), or None.

    Checked in the face's own frame, so any roll passes: the image-left eye (36-41) and the image-right
    eye (42-47) make the x axis; the mouth (48, 54) must lie below the eyes along its perpendicular (not
    mirrored), the nose tip (30) between eyes and mouth, the chin (8) below the mouth. Reversed or mirrored
    arrays, and points that are not a face, fail.
    """
    lm = np.asarray(landmarks68, dtype=np.float64)
    eyes = 0.5 * (lm[LEFT_EYE].mean(axis=0) + lm[RIGHT_EYE].mean(axis=0))
    across = lm[RIGHT_EYE].mean(axis=0) - lm[LEFT_EYE].mean(axis=0)
    down = 0.5 * (lm[MOUTH_LEFT] + lm[MOUTH_RIGHT]) - eyes
    eye_distance, mouth_distance = float(np.hypot(*across)), float(np.hypot(*down))
    if eye_distance < 1e-6 or mouth_distance < 1e-6:
        return "eyes and mouth coincide"
    upright = _rot90(across / eye_distance)  # the face's "down" for this eye line
    if float(upright @ down) < 0.5 * mouth_distance:
        return "the mouth (48, 54) is not below the eyes (36-47) in the face's frame: mirrored or reordered"
    if not 0.3 <= mouth_distance / eye_distance <= 3.0:
        return f"eye-to-mouth / eye-to-eye distance {mouth_distance / eye_distance:.2f} is not a face's"
    nose, chin = (float((lm[i] - eyes) @ down) / mouth_distance**2 for i in (NOSE_TIP, CHIN))
    if not 0.0 < nose < 1.0:
        return "the nose tip (30) is not between the eyes and the mouth"
    if chin <= 1.0:
        return "the chin (8) is not below the mouth"
    return None


def face_quad(landmarks: np.ndarray, alignment: Alignment) -> np.ndarray:
    """``alignment``'s crop square for a frame's landmarks, after checking they are a face in iBUG-68 order.

    Raises:
        AlignmentError: not 68 points, not finite, not in iBUG-68 order, or no usable crop.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise AlignmentError(f"landmarks2d must be 68 iBUG points, got shape {list(lm.shape)}")
    if not np.isfinite(lm).all():
        raise AlignmentError("landmarks2d contains NaN or infinite values")
    problem = ibug_order_problem(lm)
    if problem is not None:
        raise AlignmentError(f"landmarks2d are not a face in iBUG-68 order: {problem}")
    try:
        return alignment.quad(lm)
    except ValueError as error:
        raise AlignmentError(f"cannot align the face: {error}") from None


def adjust_quad(quad: np.ndarray, scale: float, offset: tuple[float, float]) -> np.ndarray:
    """Scale a crop square about its centre and move it by ``offset`` sides along its own axes."""
    quad = np.asarray(quad, dtype=np.float64)
    if scale == 1.0 and offset[0] == 0.0 and offset[1] == 0.0:
        return quad.copy()  # bit-identical to the input (rebuilding it from centre and axes rounds)
    centre = quad.mean(axis=0)
    x_axis = 0.5 * (quad[3] - quad[0])  # half side along the crop's x (left -> right)
    y_axis = 0.5 * (quad[1] - quad[0])  # half side along the crop's y (top -> bottom)
    centre = centre + 2.0 * offset[0] * x_axis + 2.0 * offset[1] * y_axis
    x, y = scale * x_axis, scale * y_axis
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y])


def crop_matrix(quad: np.ndarray, size: int) -> np.ndarray:
    """Affine map from crop pixel coordinates to frame pixel coordinates.

    Crop corners (0, 0), (0, size), (size, size), (size, 0) go to ``quad``'s top-left, bottom-left,
    bottom-right and top-right corners (least squares if ``quad`` is not a parallelogram). Use
    ``np.linalg.inv`` of the result to map frame points into the crop.

    Args:
        quad: (4, 2) float corners as returned by :func:`ffhq_quad`.
        size: crop width and height in pixels.

    Returns:
        (3, 3) float64 matrix M with ``[x_frame, y_frame, 1] = M @ [x_crop, y_crop, 1]``.
    """
    quad = np.asarray(quad, dtype=np.float64)
    if quad.shape != (4, 2):
        raise ValueError(f"quad: expected shape [4, 2], got {list(quad.shape)}")
    if size <= 0:
        raise ValueError(f"size: expected a positive crop size, got {size}")
    crop_corners = np.array([[0, 0], [0, size], [size, size], [size, 0]], dtype=np.float64)
    design = np.concatenate([crop_corners, np.ones((4, 1))], axis=1)  # (4, 3)
    solution, *_ = np.linalg.lstsq(design, quad, rcond=None)  # (3, 2): design @ solution = quad
    matrix = np.eye(3)
    matrix[:2, :] = solution.T
    if abs(np.linalg.det(matrix)) < 1e-12:
        raise ValueError("quad: degenerate (zero area)")
    return matrix


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (3, 3) affine/projective matrix to (..., 2) points."""
    points = np.asarray(points, dtype=np.float64)
    homogeneous = np.concatenate([points, np.ones(points.shape[:-1] + (1,))], axis=-1)
    mapped = homogeneous @ np.asarray(matrix, dtype=np.float64).T
    return mapped[..., :2] / mapped[..., 2:]


def quad_params(quads: np.ndarray) -> np.ndarray:
    """Similarity parameters of FFHQ quads: centre (2) and x half-axis vector (2).

    The inverse of :func:`quad_from_params`: with corners ``centre - x - y``, ``centre - x + y``,
    ``centre + x + y``, ``centre + x - y`` and ``y = rot90(x)`` (as :func:`ffhq_quad` builds them). A quad
    that is not such a square gets the least-squares nearest square's parameters.

    Args:
        quads: (..., 4, 2) float corners in :func:`ffhq_quad` order.

    Returns:
        (..., 4) float64 ``[centre_x, centre_y, x_x, x_y]``.
    """
    q = np.asarray(quads, dtype=np.float64)
    centre = q.mean(axis=-2)
    x = 0.25 * (q[..., 2, :] + q[..., 3, :] - q[..., 0, :] - q[..., 1, :])
    y = 0.25 * (q[..., 1, :] + q[..., 2, :] - q[..., 0, :] - q[..., 3, :])
    x = 0.5 * (x + np.stack([y[..., 1], -y[..., 0]], axis=-1))  # rot90 inverse of y is another x estimate
    return np.concatenate([centre, x], axis=-1)


def quad_from_params(params: np.ndarray) -> np.ndarray:
    """Corners (..., 4, 2) float64 from (..., 4) ``[centre_x, centre_y, x_x, x_y]`` (:func:`quad_params`)."""
    p = np.asarray(params, dtype=np.float64)
    centre, x = p[..., :2], p[..., 2:]
    y = _rot90(x)
    return np.stack([centre - x - y, centre - x + y, centre + x + y, centre + x - y], axis=-2)


def _check_quads(quads: np.ndarray, name: str, leading: tuple[int, ...] | None) -> np.ndarray:
    """Float64 quads of shape (*leading, 4, 2) (any single leading axis when ``leading`` is None)."""
    q = np.asarray(quads, dtype=np.float64)
    ok = q.ndim == 3 and q.shape[1:] == (4, 2) if leading is None else q.shape == (*leading, 4, 2)
    if not ok:
        expected = "[T, 4, 2]" if leading is None else str([*leading, 4, 2])
        raise ValueError(f"{name}: expected shape {expected}, got {list(q.shape)}")
    if not np.isfinite(q).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return q


def smooth_quads(quads: np.ndarray, sigma_frames: float) -> np.ndarray:
    """Temporally smooth a shot's FFHQ crop quads (offline, zero phase lag).

    Each quad is parametrised as centre (2) + x half-axis vector (2) (:func:`quad_params`); every parameter
    is smoothed over time by a Gaussian-weighted local linear fit (sigma ``sigma_frames``, window truncated
    at ``ceil(3 sigma)`` frames), and the corners are rebuilt as :func:`ffhq_quad` does
    (:func:`quad_from_params`).

    Edge handling: where the window runs past either end of the shot it is cut there and the remaining
    Gaussian weights are renormalised; instead of a weighted mean (which lags behind a moving face near the
    ends) each frame gets the value at that frame of a weighted least-squares line through its window. In
    the interior the window is symmetric, the line's slope term cancels, and this is exactly the
    renormalised Gaussian average. Either way a constant-velocity motion is reproduced exactly at every
    frame, nothing shrinks toward zero, and the ends still get smoothed (from one-sided windows).

    Args:
        quads: (T, 4, 2) float corners per frame, :func:`ffhq_quad` order.
        sigma_frames: Gaussian sigma in frames; 0 returns the input unchanged (exactly).

    Returns:
        (T, 4, 2) float64 smoothed quads.

    Raises:
        ValueError: ``quads`` not (T, 4, 2) or not finite; ``sigma_frames`` negative or not finite.
    """
    q = _check_quads(quads, "quads", None)
    if not math.isfinite(sigma_frames) or sigma_frames < 0:
        raise ValueError(f"sigma_frames: expected a finite value >= 0, got {sigma_frames}")
    if sigma_frames == 0 or len(q) < 2:
        return q.copy()
    params = quad_params(q)  # (T, 4)
    count = len(params)
    radius = int(math.ceil(3.0 * sigma_frames))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)  # (K,)
    index = np.arange(count)[:, None] + offsets.astype(np.int64)[None, :]  # (T, K)
    inside = (index >= 0) & (index < count)
    weights = np.exp(-0.5 * (offsets / sigma_frames) ** 2)[None, :] * inside  # (T, K)
    s0 = weights.sum(axis=1, keepdims=True)
    s1 = (weights * offsets).sum(axis=1, keepdims=True)
    s2 = (weights * offsets**2).sum(axis=1, keepdims=True)
    det = s0 * s2 - s1**2
    # Effective weights of "the local line's value at offset 0"; they sum to 1 and reproduce linear data.
    # A window whose weight sits on one frame (tiny sigma) cannot fit a slope: use the weighted mean there.
    well_posed = det > 1e-12 * s0 * s2
    linear = weights * (s2 - s1 * offsets) / np.where(well_posed, det, 1.0)
    effective = np.where(well_posed, linear, weights / s0)  # (T, K)
    windows = params[np.clip(index, 0, count - 1)]  # (T, K, 4)
    smoothed = np.einsum("tk,tkp->tp", effective, windows)
    return quad_from_params(smoothed)


def smooth_quad_causal(previous_smoothed: np.ndarray | None, quad: np.ndarray, alpha: float) -> np.ndarray:
    """One streaming step of a one-pole low-pass on the quad's centre and x vector (:func:`quad_params`).

    ``params = alpha * params(quad) + (1 - alpha) * params(previous_smoothed)``. Unlike
    :func:`smooth_quads` this lags behind motion (by ``(1 - alpha) / alpha`` frames for constant velocity);
    use it only where future frames are not available.

    Args:
        previous_smoothed: (4, 2) float quad this filter returned for the previous frame, or None for the
            first frame of a stream (returns ``quad``).
        quad: (4, 2) float corners of the current frame, :func:`ffhq_quad` order.
        alpha: weight of the current frame in (0, 1]; 1 means no smoothing.

    Returns:
        (4, 2) float64 smoothed quad.

    Raises:
        ValueError: a quad not (4, 2) or not finite; ``alpha`` outside (0, 1].
    """
    current = _check_quads(quad, "quad", ())
    if not (0.0 < alpha <= 1.0):  # also rejects NaN
        raise ValueError(f"alpha: expected a value in (0, 1], got {alpha}")
    if previous_smoothed is None:
        return current.copy()
    previous = _check_quads(previous_smoothed, "previous_smoothed", ())
    if alpha == 1.0:
        return current.copy()  # exact: the parameter round trip would add rounding
    return quad_from_params(alpha * quad_params(current) + (1.0 - alpha) * quad_params(previous))
