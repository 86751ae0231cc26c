"""The sRGB transfer curve, for numpy arrays and torch tensors alike (no torch import: Blender uses it)."""

from __future__ import annotations

from typing import Any, TypeVar

ArrayT = TypeVar("ArrayT")  # numpy.ndarray or torch.Tensor; only operators both share are used

SRGB_LINEAR_KNEE = 0.0031308  # below this linear value the curve is a straight line
SRGB_ENCODED_KNEE = 0.04045  # the same knee in encoded values


def srgb_from_linear(linear: ArrayT) -> ArrayT:
    """Standard sRGB encoding (IEC 61966-2-1), elementwise; negatives stay on the linear segment."""
    x: Any = linear  # duck-typed: numpy and torch share these operators but no common static type
    low = x <= SRGB_LINEAR_KNEE
    curve = 1.055 * x.clip(SRGB_LINEAR_KNEE, None) ** (1 / 2.4) - 0.055
    encoded: ArrayT = low * (12.92 * x) + ~low * curve
    return encoded


def linear_from_srgb(srgb: ArrayT) -> ArrayT:
    """Inverse of :func:`srgb_from_linear`, elementwise."""
    x: Any = srgb  # duck-typed, as in srgb_from_linear
    low = x <= SRGB_ENCODED_KNEE
    curve = ((x.clip(SRGB_ENCODED_KNEE, None) + 0.055) / 1.055) ** 2.4
    linear: ArrayT = low * (x / 12.92) + ~low * curve
    return linear
