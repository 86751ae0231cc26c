"""Pinhole camera math shared by Blender's passes and the backend's own renderer (numpy only).

Conventions (docs/protocol.md): extrinsics map world to OpenCV camera space (x right, y down, z forward);
intrinsics map camera space to pixels with x right, y down and the top-left pixel's corner at (0, 0).
"""

from __future__ import annotations

import numpy as np


def transform(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (4, 4) affine ``matrix`` to (N, 3) ``points``; returns (N, 3)."""
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def project(points: np.ndarray, intrinsic: np.ndarray, extrinsic: np.ndarray) -> np.ndarray:
    """Project (N, 3) world points to (N, 2) pixel coordinates with a (3, 3) intrinsic and a (4, 4)
    world -> camera extrinsic matrix."""
    pixels = transform(extrinsic, points) @ intrinsic.T
    return pixels[:, :2] / pixels[:, 2:3]
