"""Typed per-frame bundles that cross the socket: what a DCC sends and what the backend returns.

Pass and parameter names are the ones in ``docs/protocol.md`` and ``shared/DESIGN.md``. Numpy only (no
torch), so Blender and other DCCs can import this module.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .wire import ERR_BAD_FIELD, REFINE_FRAME, RESULT, Message, ProtocolError

__all__ = [
    "REFINE_FRAME",
    "REFINE_PARAMS",
    "RESULT",
    "FramePasses",
    "ParamsRequest",
    "PassError",
    "RefinedFrame",
    "check_array",
]

REFINE_PARAMS = "refine_params"


class PassError(ProtocolError):
    """A pass or parameter with the wrong name, dtype, shape or values."""

    def __init__(self, message: str):
        super().__init__(ERR_BAD_FIELD, message)


def check_array(
    name: str, value: Any, shape: list[int | None], dtype: str, allow_inf: bool = False
) -> np.ndarray:
    """Return ``value`` as an array of ``dtype`` whose shape matches ``shape`` (None = any size).

    Floats must be finite (``allow_inf``: +inf is allowed; NaN and -inf never are).

    Raises:
        PassError: naming ``name``, the expected shape and what arrived.
    """
    if value is None:
        raise PassError(f"{name}: missing (expected {dtype} of shape {_shape_text(shape)})")
    array = np.asarray(value)
    if array.ndim != len(shape) or any(
        e is not None and e != s for e, s in zip(shape, array.shape, strict=True)
    ):
        raise PassError(f"{name}: expected shape {_shape_text(shape)}, got {list(array.shape)}")
    if array.dtype.kind not in "biuf":
        raise PassError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = array.astype(dtype, copy=False)
    if array.dtype.kind == "f" and array.size and not _finite(array, allow_inf):
        raise PassError(f"{name}: contains NaN or infinite values")
    return array


def _finite(array: np.ndarray, allow_inf: bool) -> bool:
    """No NaN (and no inf, unless +inf is allowed). min/max propagate NaN and need no temporary array."""
    low, high = array.min(), array.max()
    if allow_inf:
        return not (np.isnan(low) or np.isnan(high)) and low != -np.inf
    return bool(np.isfinite(low) and np.isfinite(high))


# Integer dtypes a colour pass may travel in, with the value that means 1.0 (docs/protocol.md, dtype rules).
COLOUR_SCALES = {"uint8": 255.0, "uint16": 65535.0}
COLOUR_PASSES = ("beauty", "albedo")
FRAME_RANGE = (-(1 << 31), 1 << 31)  # frame numbers are 32-bit signed integers


def check_colour(name: str, value: Any, shape: list[int | None]) -> np.ndarray:
    """A colour pass as float32; ``uint8`` / ``uint16`` are normalised integers (255 / 65535 mean 1.0).

    Raises:
        PassError: another integer dtype, or what :func:`check_array` refuses.
    """
    dtype = np.asarray(value).dtype if value is not None else None
    if dtype is not None and dtype.kind in "biu" and dtype.name not in COLOUR_SCALES:
        raise PassError(
            f"{name}: integer colour must be uint8 or uint16 (normalised: 255 or 65535 is 1.0), got {dtype}"
        )
    array = check_array(name, value, shape, "float32")
    if dtype is not None and dtype.name in COLOUR_SCALES:
        array = array * np.float32(1.0 / COLOUR_SCALES[dtype.name])
    return array


def check_frame(value: Any, name: str = "frame") -> int:
    """A frame number: an integer in [-2**31, 2**31)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise PassError(f"{name}: expected an integer, got {type(value).__name__}")
    if not FRAME_RANGE[0] <= int(value) < FRAME_RANGE[1]:
        raise PassError(f"{name}: {value} is outside the 32-bit range [-2**31, 2**31)")
    return int(value)


def check_params(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Rig parameters (``betas``, ``expression``, ``pose``, ``transl``) as float32 arrays of valid shapes.

    Raises:
        PassError: an unknown parameter name, or a wrong shape or value, naming it.
    """
    checked = {}
    for name, value in params.items():
        if name not in PARAM_SHAPES:
            raise PassError(f"params: unknown parameter {name!r}; known: {sorted(PARAM_SHAPES)}")
        checked[name] = check_array(name, value, PARAM_SHAPES[name], "float32")
    return checked


def _shape_text(shape: list[int | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


@dataclass(frozen=True)
class FramePasses:
    """Everything the backend needs to refine one frame.

    Pixel coordinates: x right, y down, origin at the top-left corner of the top-left pixel (so that
    pixel's centre is (0.5, 0.5)). ``extrinsics`` maps world to OpenCV camera space (x right, y down,
    z forward); ``intrinsics`` maps camera space to pixels.
    """

    shot: str
    frame: int
    beauty: np.ndarray  # (H, W, 3) float32, linear RGB
    region: np.ndarray  # (H, W) uint8 labels, see rigs.regions
    landmarks2d: np.ndarray  # (L, 2) float32 pixels, iBUG-68 order for faces
    intrinsics: np.ndarray  # (3, 3) float64
    extrinsics: np.ndarray  # (4, 4) float64 world -> camera
    params: dict[str, np.ndarray] = field(default_factory=dict)  # betas, expression, pose, transl
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # optional passes: albedo, normal, depth, ...

    def __post_init__(self) -> None:
        if not isinstance(self.shot, str) or not self.shot:
            raise PassError("shot: expected a non-empty string id")
        object.__setattr__(self, "frame", check_frame(self.frame))
        beauty = check_colour("beauty", self.beauty, [None, None, 3])
        height, width = beauty.shape[:2]
        if height < 8 or width < 8:
            raise PassError(f"beauty: frames must be at least 8x8 pixels, got {width}x{height}")
        object.__setattr__(self, "beauty", beauty)
        object.__setattr__(self, "region", check_array("region", self.region, [height, width], "uint8"))
        landmarks = check_array("landmarks2d", self.landmarks2d, [None, 2], "float32")
        object.__setattr__(self, "landmarks2d", landmarks)
        object.__setattr__(self, "intrinsics", check_array("intrinsics", self.intrinsics, [3, 3], "float64"))
        object.__setattr__(self, "extrinsics", check_array("extrinsics", self.extrinsics, [4, 4], "float64"))
        object.__setattr__(self, "params", check_params(self.params))
        extra = {}
        for name, value in self.extra.items():
            if name not in EXTRA_PASSES:
                raise PassError(f"extra: unknown pass {name!r}; known: {sorted(EXTRA_PASSES)}")
            channels = EXTRA_PASSES[name]
            expected: list[int | None] = [height, width, channels] if channels else [height, width]
            if name in COLOUR_PASSES:
                extra[name] = check_colour(name, value, expected)
            else:
                extra[name] = check_array(name, value, expected, "float32", allow_inf=name == "depth")
        object.__setattr__(self, "extra", extra)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.beauty.shape[0], self.beauty.shape[1]

    def to_message(self, request_id: int = 0) -> Message:
        tensors = {
            "beauty": self.beauty,
            "region": self.region,
            "landmarks2d": self.landmarks2d,
            "intrinsics": self.intrinsics,
            "extrinsics": self.extrinsics,
            **self.params,
            **self.extra,
        }
        return Message(REFINE_FRAME, request_id, {"shot": self.shot, "frame": self.frame}, tensors)

    @classmethod
    def from_message(cls, message: Message) -> FramePasses:
        """Build from a decoded ``refine_frame`` message; raises :class:`PassError` on bad content."""
        tensors = dict(message.tensors)
        fields = message.fields
        unknown = set(tensors) - set(PASS_NAMES) - set(PARAM_SHAPES) - set(EXTRA_PASSES)
        if unknown:
            raise PassError(f"unknown tensors {sorted(unknown)}; passes are {PASS_NAMES}")
        return cls(
            shot=fields.get("shot"),  # type: ignore[arg-type]
            frame=fields.get("frame"),  # type: ignore[arg-type]
            beauty=tensors.get("beauty"),  # type: ignore[arg-type]
            region=tensors.get("region"),  # type: ignore[arg-type]
            landmarks2d=tensors.get("landmarks2d"),  # type: ignore[arg-type]
            intrinsics=tensors.get("intrinsics"),  # type: ignore[arg-type]
            extrinsics=tensors.get("extrinsics"),  # type: ignore[arg-type]
            params={k: v for k, v in tensors.items() if k in PARAM_SHAPES},
            extra={k: v for k, v in tensors.items() if k in EXTRA_PASSES},
        )


PASS_NAMES = ("beauty", "region", "landmarks2d", "intrinsics", "extrinsics")
# Optional passes (float32, [H, W, C] or [H, W] when C is 0). The refiner uses none of them yet; they
# travel so that a whole render-layer bundle has one wire format.
EXTRA_PASSES: dict[str, int] = {"albedo": 3, "normal": 3, "depth": 0, "motion": 2, "uv": 2, "alpha": 0}
PARAM_SHAPES: dict[str, list[int | None]] = {
    "betas": [None],
    "expression": [None],
    "pose": [None, 3],
    "transl": [3],
}


# What every refined frame reports (``RefinedFrame.metrics``); docs/refinement.md explains them further.
RESULT_METRICS = {
    "skin_psnr": "PSNR (dB) of the generator's aligned output against the render, skin pixels only, sRGB",
    "temporal_error": "mean squared sRGB difference between the composite and the previous composite warped "
    "by the motion pass, outside the skin, weighted by the generator's share of each pixel, where the flow "
    "is not occluded (absent without a motion pass or a previous frame)",
    "latent_drift": "mean over W+ layers of |w_t - w_(t-1)| (absent on a shot's first frame)",
    "seconds": "backend wall time per frame (a shot's total time divided by its frames)",
    "skin_loss_init": "masked MSE of the skin ([-1, 1] sRGB) at the average latent w_avg: the un-fitted "
    "reference",
    "skin_loss_warm": "the same loss at the latent the inversion started from (streamed frames only)",
    "skin_loss_final": "the same loss at the fitted latent",
    "steps": "optimisation steps (a shot's joint steps, plus pivotal-tuning steps)",
    "skin_fraction": "share of the aligned crop that is skin",
}


def shot_metrics(frame_metrics: dict[int, dict[str, float]], seconds: float) -> dict[str, float]:
    """A shot's summary: means of the per-frame metrics over the frames that have them, plus totals."""
    summary: dict[str, float] = {"frames": float(len(frame_metrics)), "seconds": seconds}
    if frame_metrics:
        summary["seconds_per_frame"] = seconds / len(frame_metrics)
    for name in ("skin_psnr", "temporal_error", "latent_drift", "skin_loss_final", "steps"):
        values = [m[name] for m in frame_metrics.values() if name in m and math.isfinite(m[name])]
        if values:
            summary[name] = float(np.mean(values))
    return summary


@dataclass(frozen=True)
class RefinedFrame:
    """The backend's answer for one frame."""

    shot: str
    frame: int
    image: np.ndarray  # (H, W, 3) float32 linear RGB, same size as the beauty pass
    gan: np.ndarray  # (R, R, 3) float32 sRGB in [0, 1]: the generator's aligned output
    metrics: dict[str, float] = field(default_factory=dict)

    def to_message(self, request_id: int = 0) -> Message:
        return Message(
            RESULT,
            request_id,
            {"shot": self.shot, "frame": self.frame, "metrics": dict(self.metrics)},
            {"image": self.image.astype(np.float32), "gan": self.gan.astype(np.float32)},
        )

    @classmethod
    def from_message(cls, message: Message) -> RefinedFrame:
        fields = message.fields
        return cls(
            shot=str(fields.get("shot", "")),
            frame=int(fields.get("frame", -1)),
            image=check_array("image", message.tensors.get("image"), [None, None, 3], "float32"),
            gan=check_array("gan", message.tensors.get("gan"), [None, None, 3], "float32"),
            metrics={str(k): float(v) for k, v in dict(fields.get("metrics", {})).items()},
        )


@dataclass(frozen=True)
class ParamsRequest:
    """A frame described by rig parameters and a camera only: the backend renders the passes itself.

    ``rig`` names a rig the backend was started with (``rigstyle serve --rig NAME=MODEL``; ``demo`` is
    always there); clients never make the backend open a file path of their choosing.
    """

    shot: str
    frame: int
    rig: str  # a rig name the backend knows
    height: int  # rendered frame size in pixels
    width: int
    intrinsics: np.ndarray  # (3, 3) float64
    extrinsics: np.ndarray  # (4, 4) float64 world -> OpenCV camera
    world_from_rig: np.ndarray  # (4, 4) float64 placement of the rig in the world (Blender: the armature)
    params: dict[str, np.ndarray] = field(default_factory=dict)  # betas, expression, pose, transl

    def __post_init__(self) -> None:
        if not isinstance(self.shot, str) or not self.shot:
            raise PassError("shot: expected a non-empty string id")
        if not isinstance(self.rig, str) or not self.rig:
            raise PassError("rig: expected the name of a rig the backend was started with")
        object.__setattr__(self, "frame", check_frame(self.frame))
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise PassError(f"{name}: expected an integer, got {type(value).__name__}")
        if not (8 <= self.height <= 8192 and 8 <= self.width <= 8192):
            raise PassError(f"height, width: expected 8..8192 pixels, got {self.height}x{self.width}")
        object.__setattr__(self, "intrinsics", check_array("intrinsics", self.intrinsics, [3, 3], "float64"))
        object.__setattr__(self, "extrinsics", check_array("extrinsics", self.extrinsics, [4, 4], "float64"))
        object.__setattr__(
            self, "world_from_rig", check_array("world_from_rig", self.world_from_rig, [4, 4], "float64")
        )
        object.__setattr__(self, "params", check_params(self.params))

    def to_message(self, request_id: int = 0) -> Message:
        fields = {"shot": self.shot, "frame": int(self.frame), "rig": self.rig}
        fields.update(height=int(self.height), width=int(self.width))
        tensors = {
            "intrinsics": self.intrinsics,
            "extrinsics": self.extrinsics,
            "world_from_rig": self.world_from_rig,
            **self.params,
        }
        return Message(REFINE_PARAMS, request_id, fields, tensors)

    @classmethod
    def from_message(cls, message: Message) -> ParamsRequest:
        tensors = dict(message.tensors)
        unknown = set(tensors) - {"intrinsics", "extrinsics", "world_from_rig"} - set(PARAM_SHAPES)
        if unknown:
            raise PassError(f"unknown tensors {sorted(unknown)} in a {REFINE_PARAMS} request")
        fields = message.fields
        return cls(
            shot=fields.get("shot"),  # type: ignore[arg-type]
            frame=fields.get("frame"),  # type: ignore[arg-type]
            rig=fields.get("rig"),  # type: ignore[arg-type]
            height=fields.get("height"),  # type: ignore[arg-type]
            width=fields.get("width"),  # type: ignore[arg-type]
            intrinsics=tensors.get("intrinsics"),  # type: ignore[arg-type]
            extrinsics=tensors.get("extrinsics"),  # type: ignore[arg-type]
            world_from_rig=tensors.get("world_from_rig", np.eye(4)),
            params={k: v for k, v in tensors.items() if k in PARAM_SHAPES},
        )
