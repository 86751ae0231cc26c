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


def show_rgb(name: str, rgb: np.ndarray) -> bpy.types.Image:
    """Write (H, W, 3) linear RGB into the float image ``name`` (made, or remade at a new size), pack it
    (a generated image is lost on save otherwise; the fake user keeps it when no editor shows it) and show
    it in every Image Editor not pinned to another image."""
    height, width = rgb.shape[:2]
    image = bpy.data.images.get(name)
    if image is None or tuple(image.size) != (width, height):
        if image is not None:
            bpy.data.images.remove(image)
        image = bpy.data.images.new(name, width, height, alpha=False, float_buffer=True)
    rgba = np.ones((height, width, 4), dtype=np.float32)
    rgba[..., :3] = rgb
    image.pixels.foreach_set(rgba[::-1].ravel())
    image.update()
    image.pack()
    image.use_fake_user = True
    for window in bpy.context.window_manager.windows:  # none in background mode
        for area in window.screen.areas:
            space = area.spaces.active
            if area.type == "IMAGE_EDITOR" and not space.use_image_pin:
                space.image = image
                area.tag_redraw()
    return image


def image_rgb(name: str) -> np.ndarray:
    """(H, W, 3) float32 RGB of the image ``name`` in ``bpy.data``, top row first."""
    image = bpy.data.images[name]
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    return pixels.reshape(height, width, 4)[::-1, :, :3]


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


def set_render_output(
    scene: bpy.types.Scene, filepath: str, file_format: str, color_depth: str, color_mode: str = "RGB"
) -> None:
    """Point the scene's render output at ``filepath`` (``#`` = frame digits) in a single-layer format."""
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # Blender 5.0+: multilayer EXR is a separate media type
        settings.media_type = "IMAGE"
    settings.file_format = file_format
    settings.color_depth = color_depth
    settings.color_mode = color_mode
    scene.render.filepath = filepath
    scene.render.use_file_extension = "#" in filepath
