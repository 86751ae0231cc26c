"""Camera matrices of a Blender camera in the protocol's conventions (OpenCV camera, pixel corners at 0)."""

from __future__ import annotations

import bpy
import numpy as np

# Blender cameras look down -Z with +Y up; OpenCV cameras look down +Z with +Y down.
BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


def render_size(scene: bpy.types.Scene) -> tuple[int, int]:
    """(width, height) of the rendered image in pixels."""
    scale = scene.render.resolution_percentage / 100.0
    return int(scene.render.resolution_x * scale), int(scene.render.resolution_y * scale)


def intrinsics(scene: bpy.types.Scene, camera: bpy.types.Object) -> np.ndarray:
    """(3, 3) pinhole matrix of a perspective camera for the scene's render size.

    Raises:
        ValueError: the camera is not perspective or the pixels are not square.
    """
    data = camera.data
    if data.type != "PERSP":
        raise ValueError(f"camera {camera.name!r}: only perspective cameras are supported, got {data.type}")
    if scene.render.pixel_aspect_x != scene.render.pixel_aspect_y:
        raise ValueError("only square pixels are supported (pixel aspect x == y)")
    width, height = render_size(scene)
    fit = data.sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if width >= height else "VERTICAL"
    sensor = data.sensor_height if fit == "VERTICAL" and data.sensor_fit != "AUTO" else data.sensor_width
    pixels = height if fit == "VERTICAL" else width
    focal_px = data.lens / sensor * pixels
    largest = max(width, height)
    cx = width / 2.0 - data.shift_x * largest
    cy = height / 2.0 + data.shift_y * largest
    return np.array([[focal_px, 0.0, cx], [0.0, focal_px, cy], [0.0, 0.0, 1.0]])


def extrinsics(camera: bpy.types.Object) -> np.ndarray:
    """(4, 4) world -> OpenCV camera transform of the camera at the current frame."""
    world_from_camera = np.array(camera.matrix_world, dtype=float)
    return BLENDER_TO_OPENCV @ np.linalg.inv(world_from_camera)
