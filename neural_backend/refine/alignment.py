"""Warps between frame and crop (torch) and soft masks; the crop geometry itself is :mod:`.framing`.

Pixel coordinates as in :mod:`.framing`: a crop matrix maps crop pixels to frame pixels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..stylegan2.ops import assert_shape
from .framing import transform_points


def _sampling_grid(
    matrix: np.ndarray, out_hw: tuple[int, int], in_hw: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """grid_sample grid (1, H_out, W_out, 2) sampling the input at ``matrix @ output pixel centre``."""
    out_h, out_w = out_hw
    in_h, in_w = in_hw
    ys, xs = np.meshgrid(np.arange(out_h) + 0.5, np.arange(out_w) + 0.5, indexing="ij")
    src = transform_points(matrix, np.stack([xs, ys], axis=-1))
    # align_corners=False: normalised -1 / +1 are the outer edges of the first / last pixel.
    grid = np.stack([2.0 * src[..., 0] / in_w - 1.0, 2.0 * src[..., 1] / in_h - 1.0], axis=-1)
    return torch.as_tensor(grid[None], dtype=torch.float64, device=device)


def _check_matrix(matrix: np.ndarray | torch.Tensor) -> np.ndarray:
    matrix = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix, np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"matrix: expected shape [3, 3], got {list(matrix.shape)}")
    return matrix


def warp_to_crop(
    image: torch.Tensor, matrix: np.ndarray | torch.Tensor, size: int, antialias: bool = True
) -> torch.Tensor:
    """Resample a frame into the aligned crop (bilinear).

    Args:
        image: (N, C, H, W) float frame.
        matrix: (3, 3) crop -> frame pixel map from :func:`crop_matrix`.
        size: crop size in pixels.
        antialias: when the crop is at least 2x smaller than the frame region, box-filter the frame by
            that integer factor first (as the FFHQ recipe shrinks before cropping).

    Returns:
        (N, C, size, size) float; points outside the frame read as 0.
    """
    assert_shape(image, [None, None, None, None], "image")
    to_frame = _check_matrix(matrix)
    shrink = int(math.floor(math.sqrt(abs(np.linalg.det(to_frame[:2, :2]))) + 1e-6))  # frame px per crop px
    if antialias and shrink >= 2:
        h, w = image.shape[2:]
        pad_h, pad_w = -h % shrink, -w % shrink
        image = F.pad(image, [0, pad_w, 0, pad_h], mode="replicate") if pad_h or pad_w else image
        image = F.avg_pool2d(image, shrink)
        to_frame = np.diag([1.0 / shrink, 1.0 / shrink, 1.0]) @ to_frame  # frame px -> pooled px
    grid = _sampling_grid(to_frame, (size, size), (image.shape[2], image.shape[3]), image.device)
    grid = grid.to(image.dtype).expand(image.shape[0], -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_to_frame(
    crop: torch.Tensor, matrix: np.ndarray | torch.Tensor, frame_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`warp_to_crop`: resample an aligned crop back into frame pixels.

    Args:
        crop: (N, C, s, s) float crop.
        matrix: (3, 3) crop -> frame pixel map (the same matrix used for :func:`warp_to_crop`).
        frame_hw: (H, W) of the frame.

    Returns:
        image: (N, C, H, W) float; outside the crop it repeats the crop's edge (mask it with coverage).
        coverage: (N, 1, H, W) float, 1 inside the crop, 0 outside, a one-crop-pixel ramp at the border.
    """
    assert_shape(crop, [None, None, None, None], "crop")
    if crop.shape[2] != crop.shape[3]:
        raise ValueError(f"crop: expected a square crop, got {list(crop.shape)}")
    inverse = np.linalg.inv(_check_matrix(matrix))
    grid = _sampling_grid(inverse, frame_hw, (crop.shape[2], crop.shape[3]), crop.device)
    grid = grid.to(crop.dtype).expand(crop.shape[0], -1, -1, -1)
    image = F.grid_sample(crop, grid, mode="bilinear", padding_mode="border", align_corners=False)
    ones = torch.ones_like(crop[:, :1])
    coverage = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return image, coverage


def feather(mask: torch.Tensor, radius_px: float) -> torch.Tensor:
    """Soft version of a binary mask whose ramp lies inside the mask.

    Erodes by ``ceil(radius_px / 2)`` pixels, then blurs with a Gaussian (sigma ``radius_px / 4``)
    truncated at that same radius. So the result is exactly 0 outside ``mask`` and exactly 1 where every
    pixel within ``radius_px`` (chessboard distance) is inside it.

    Args:
        mask: (N, 1, H, W) float in [0, 1] (> 0.5 counts as inside).
        radius_px: ramp width in pixels; 0 returns the binarised mask.

    Returns:
        (N, 1, H, W) float in [0, 1].
    """
    assert_shape(mask, [None, 1, None, None], "mask")
    hard = (mask > 0.5).to(torch.float32)
    r = int(math.ceil(radius_px / 2))
    if radius_px <= 0 or r == 0:
        return hard
    eroded = 1.0 - F.max_pool2d(1.0 - hard, kernel_size=2 * r + 1, stride=1, padding=r)
    taps = torch.arange(-r, r + 1, dtype=torch.float32, device=mask.device)
    kernel = torch.exp(-0.5 * (taps / (radius_px / 4)) ** 2)
    kernel = kernel / kernel.sum()
    # Zero padding is right: outside the frame counts as outside the mask.
    blurred = F.conv2d(eroded, kernel.reshape(1, 1, 1, -1), padding=(0, r))
    blurred = F.conv2d(blurred, kernel.reshape(1, 1, -1, 1), padding=(r, 0))
    # Snap to exact 0 / 1 where the blur window is entirely outside / inside, despite rounding.
    interior = 1.0 - F.max_pool2d(1.0 - eroded, kernel_size=2 * r + 1, stride=1, padding=r)
    blurred = torch.where(interior > 0.5, torch.ones_like(blurred), blurred.clamp(0.0, 1.0))
    return blurred * hard
