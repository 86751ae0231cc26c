"""Pixels in and out of image files through bpy (the bpy wheel has no OpenImageIO Python module)."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np


def load_pixels(path: Path) -> np.ndarray:
    """(H, W, 4) float32 pixels of an image file, top row first. EXR stays linear; PNG stays encoded."""
    image = bpy.data.images.load(str(path), check_existing=False)
    try:
        width, height = image.size
        pixels = np.empty(width * height * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
    finally:
        bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1]


def save_png(path: Path, rgb: np.ndarray) -> None:
    """Write (H, W, 3) display-encoded (sRGB) values in [0, 1] as an 8-bit PNG."""
    height, width = rgb.shape[:2]
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = np.clip(rgb, 0.0, 1.0)
    image = bpy.data.images.new(path.stem, width, height, alpha=False)
    try:
        image.pixels.foreach_set(rgba[::-1].ravel())
        image.filepath_raw = str(path)
        image.file_format = "PNG"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save()
    finally:
        bpy.data.images.remove(image)


def srgb_from_linear(linear: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) applied to linear values, clipped to [0, 1]."""
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055).astype(np.float32)
