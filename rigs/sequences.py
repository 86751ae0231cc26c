"""Parameter sequences (motion) as plain arrays: AMASS / SMPL-X and FLAME-tracker files, resampling.

A :class:`ParamSequence` holds per-frame rig parameters in the rig's own joint order. Files are read with
``allow_pickle=False``; nothing in them is executed.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import RigError

SMPLX_JOINTS = 55  # AMASS SMPL-X 'poses' rows are 55 * 3 axis-angle values in SMPL-X joint order
FLAME_JOINTS = 5  # global, neck, jaw, left eye, right eye
DEFAULT_TRACKER_FPS = 30.0  # FLAME trackers rarely store a frame rate


@dataclass(frozen=True)
class ParamSequence:
    """Per-frame rig parameters sampled at ``fps``.

    Shapes: T frames, J joints, S shape and E expression components.
    """

    fps: float  # frames per second of the samples
    pose: np.ndarray  # (T, J, 3) axis-angle per joint relative to its parent, rig joint order
    transl: np.ndarray  # (T, 3) root translation in the rig's frame
    betas: np.ndarray  # (S,) identity for the whole sequence, or (T, S) per frame
    expression: np.ndarray  # (T, E) expression coefficients (E may be 0)

    def __post_init__(self) -> None:
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise RigError(f"fps: expected a positive frame rate, got {self.fps}")
        object.__setattr__(self, "fps", float(self.fps))
        for name in ("pose", "transl", "betas", "expression"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.isfinite(value).all():
                raise RigError(f"{name}: contains NaN or infinite values")
            object.__setattr__(self, name, value)
        if self.pose.ndim != 3 or self.pose.shape[2] != 3:
            raise RigError(f"pose: expected shape [T, J, 3], got {list(self.pose.shape)}")
        frames = self.pose.shape[0]
        for name, width in (("transl", 3), ("expression", None)):
            value = getattr(self, name)
            if value.ndim != 2 or value.shape[0] != frames or width not in (None, value.shape[1]):
                wanted = f"[{frames}, {width or 'E'}]"
                raise RigError(f"{name}: expected shape {wanted} (T from pose), got {list(value.shape)}")
        if not (self.betas.ndim == 1 or (self.betas.ndim == 2 and self.betas.shape[0] == frames)):
            raise RigError(f"betas: expected shape [S] or [{frames}, S], got {list(self.betas.shape)}")

    @property
    def num_frames(self) -> int:
        return int(self.pose.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last sample."""
        return (self.num_frames - 1) / self.fps


def load_sequence(path: str | os.PathLike[str], fps: float | None = None) -> ParamSequence:
    """Read an AMASS/SMPL-X (``poses``, ``trans``, ``betas``, ``mocap_framerate`` or ``mocap_frame_rate``,
    optional ``expression``) or FLAME-tracker (``shape``, ``exp``, ``pose`` or ``global_pose`` /
    ``neck_pose`` / ``jaw_pose`` / ``eye_pose``, ``trans``) ``.npz`` file.

    Args:
        path: the file.
        fps: frame rate to assume when the file stores none (FLAME trackers); default 30.

    Raises:
        RigError: one line naming the file and the missing or mismatched field.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in npz.files}
    except FileNotFoundError:
        raise RigError(f"{path}: no such sequence file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a damaged .npz is a bad zip
        raise RigError(f"{path}: not a readable .npz sequence ({exc})") from None
    try:
        if "poses" in arrays:
            return _amass(arrays, fps)
        if "exp" in arrays or "global_pose" in arrays or "shape" in arrays:
            return _flame_tracker(arrays, fps)
    except RigError as exc:
        raise RigError(f"{path}: {exc}") from None
    raise RigError(f"{path}: not a known sequence format (no 'poses' nor FLAME tracker fields)")


def _amass(arrays: dict[str, np.ndarray], fps: float | None) -> ParamSequence:
    poses = _float(arrays, "poses")
    frames = poses.shape[0] if poses.ndim == 2 else 0
    if poses.ndim != 2 or poses.shape[1] % 3:
        raise RigError(f"poses: expected shape [T, 3*J], got {list(poses.shape)}")
    rate = next((arrays[k] for k in ("mocap_framerate", "mocap_frame_rate") if k in arrays), None)
    if rate is None and fps is None:
        raise RigError("no 'mocap_framerate' or 'mocap_frame_rate' field; pass the frame rate")
    expression = _float(arrays, "expression") if "expression" in arrays else np.zeros((frames, 0))
    return ParamSequence(
        fps=float(rate) if rate is not None else float(fps),  # type: ignore[arg-type]
        pose=poses.reshape(frames, -1, 3),
        transl=_float(arrays, "trans"),
        betas=_betas(_float(arrays, "betas"), frames),
        expression=expression,
    )


def _betas(betas: np.ndarray, frames: int) -> np.ndarray:
    """AMASS's (S,) identity (some files store (1, S)), or (T, S) per frame as ``save_sequence`` writes an
    animated identity."""
    if betas.ndim == 2 and betas.shape[0] == frames and frames > 1:
        return betas
    return betas.reshape(-1)


def _flame_tracker(arrays: dict[str, np.ndarray], fps: float | None) -> ParamSequence:
    expression = _float(arrays, "exp")
    frames = expression.shape[0]
    if "pose" in arrays:
        pose = _float(arrays, "pose").reshape(frames, -1)
        if pose.shape[1] == 6:  # global + jaw, as many trackers store it: neck and eyes stay at rest
            pose = np.concatenate([pose[:, :3], np.zeros((frames, 3)), pose[:, 3:], np.zeros((frames, 6))], 1)
    else:
        parts = {
            name: _float(arrays, name).reshape(frames, -1) if name in arrays else np.zeros((frames, width))
            for name, width in (("global_pose", 3), ("neck_pose", 3), ("jaw_pose", 3), ("eye_pose", 6))
        }
        pose = np.concatenate(list(parts.values()), axis=1)
    if pose.shape[1] != FLAME_JOINTS * 3:
        raise RigError(f"pose: expected {FLAME_JOINTS * 3} (or 6) values per frame, got {pose.shape[1]}")
    shape = _float(arrays, "shape") if "shape" in arrays else np.zeros(0)
    if shape.ndim == 2:  # per-frame identity rows: RigStyle keeps one identity per shot
        if not np.allclose(shape, shape[:1], atol=1e-6):
            raise RigError(
                "shape: the identity changes between frames; one identity per sequence is supported"
            )
        shape = shape[0]
    transl = _float(arrays, "trans").reshape(frames, -1) if "trans" in arrays else np.zeros((frames, 3))
    rate = float(arrays["fps"]) if "fps" in arrays else (fps or DEFAULT_TRACKER_FPS)
    return ParamSequence(
        fps=rate,
        pose=pose.reshape(frames, FLAME_JOINTS, 3),
        transl=transl,
        betas=shape.reshape(-1),
        expression=expression.reshape(frames, -1),
    )


def _float(arrays: dict[str, np.ndarray], key: str) -> np.ndarray:
    if key not in arrays:
        raise RigError(f"missing field {key!r}")
    value = arrays[key]
    if value.dtype.kind not in "fiu":
        raise RigError(f"{key}: expected numbers, got dtype {value.dtype}")
    return value.astype(np.float64)


def save_sequence(path: str | os.PathLike[str], sequence: ParamSequence) -> None:
    """Write ``sequence`` as an AMASS-style ``.npz`` (``poses``, ``trans``, ``betas``,
    ``mocap_frame_rate``, ``expression``), readable by :func:`load_sequence`."""
    np.savez(
        Path(path),
        poses=sequence.pose.reshape(sequence.num_frames, -1),
        trans=sequence.transl,
        betas=sequence.betas,
        mocap_frame_rate=np.array(sequence.fps),
        expression=sequence.expression,
    )


def resample(sequence: ParamSequence, fps: float) -> ParamSequence:
    """Resample to ``fps`` over the same duration: rotations by quaternion slerp, the rest linearly.

    Args:
        sequence: the source sequence.
        fps: target frame rate.

    Returns:
        A sequence with ``round(duration * fps) + 1`` frames (at least 1).
    """
    if not np.isfinite(fps) or fps <= 0:
        raise RigError(f"fps: expected a positive frame rate, got {fps}")
    count = max(1, int(round(sequence.duration * fps)) + 1)
    position = np.minimum(np.arange(count) / fps * sequence.fps, sequence.num_frames - 1)
    lower = np.floor(position).astype(int)
    upper = np.minimum(lower + 1, sequence.num_frames - 1)
    t = position - lower
    quats = quaternions_from_rotvecs(sequence.pose)
    pose = rotvecs_from_quaternions(slerp(quats[lower], quats[upper], t[:, None]))
    betas = sequence.betas if sequence.betas.ndim == 1 else _lerp(sequence.betas, lower, upper, t)
    return replace(
        sequence,
        fps=float(fps),
        pose=pose,
        transl=_lerp(sequence.transl, lower, upper, t),
        betas=betas,
        expression=_lerp(sequence.expression, lower, upper, t),
    )


def _lerp(values: np.ndarray, lower: np.ndarray, upper: np.ndarray, t: np.ndarray) -> np.ndarray:
    return values[lower] * (1 - t[:, None]) + values[upper] * t[:, None]


def quaternions_from_rotvecs(rotvecs: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle -> (..., 4) unit quaternions (w, x, y, z)."""
    angle = np.linalg.norm(rotvecs, axis=-1, keepdims=True)
    half = angle / 2
    # sin(a/2)/a, with its limit 1/2 for a -> 0
    scale = np.where(angle < 1e-8, 0.5 - angle**2 / 48, np.sin(half) / np.where(angle < 1e-8, 1, angle))
    return np.concatenate([np.cos(half), rotvecs * scale], axis=-1)


def rotvecs_from_quaternions(quats: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternions (w, x, y, z) -> (..., 3) axis-angle with angles in [0, pi]."""
    quats = np.where(quats[..., :1] < 0, -quats, quats)  # the same rotation with w >= 0
    vector = quats[..., 1:]
    sine = np.linalg.norm(vector, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(sine, quats[..., :1])
    scale = np.where(sine < 1e-8, 2.0, angle / np.where(sine < 1e-8, 1, sine))
    return vector * scale


def continuous_quaternions(quats: np.ndarray) -> np.ndarray:
    """(T, ..., 4) quaternions with signs flipped so consecutive samples lie in the same hemisphere
    (F-curves interpolate components, and q and -q are the same rotation)."""
    quats = quats.copy()
    for t in range(1, quats.shape[0]):
        flip = np.sum(quats[t] * quats[t - 1], axis=-1) < 0
        quats[t][flip] *= -1.0
    return quats


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation of unit quaternions along the shorter arc.

    Args:
        q0, q1: (..., 4) unit quaternions.
        t: interpolation factors broadcastable to (..., 1).
    """
    t = np.asarray(t, dtype=float)
    while t.ndim < q0.ndim:
        t = t[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1 - t, np.sin((1 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    result = w0 * q0 + w1 * q1
    return result / np.linalg.norm(result, axis=-1, keepdims=True)


def check_against_rig(sequence: ParamSequence, num_joints: int, num_betas: int, num_expressions: int) -> None:
    """Raise :class:`RigError` when the sequence does not fit a rig with these dimensions."""
    if sequence.pose.shape[1] != num_joints:
        raise RigError(f"sequence has {sequence.pose.shape[1]} joints, the rig has {num_joints}")
    if sequence.betas.shape[-1] > num_betas:
        raise RigError(f"sequence has {sequence.betas.shape[-1]} shape components, the rig has {num_betas}")
    if sequence.expression.shape[1] > num_expressions:
        raise RigError(
            f"sequence has {sequence.expression.shape[1]} expression components, "
            f"the rig has {num_expressions}"
        )
