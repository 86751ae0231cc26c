"""Temporal consistency from the renderer's motion pass: warps, occlusion masks, crop-space flow, metrics.

Pure torch functions (CPU or GPU, batched over N where the shapes say so). Pixel coordinates follow
:mod:`neural_backend.refine.alignment`: x right, y down, origin at the top-left corner of the top-left pixel,
pixel (i, j) centred at (i + 0.5, j + 0.5). A flow is the ``motion`` pass as (N, 2, H, W) pixels, channel 0 =
x: the point at pixel centre p in frame t was at ``p + flow[p]`` in frame t - 1. "Inside a frame" means inside
the closed rectangle [0, W] x [0, H] of its pixel edges.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..stylegan2.ops import assert_shape
from .alignment import _check_matrix
from .framing import transform_points

PSNR_CAP_DB = 100.0  # masked_psnr of identical images: finite, so that means and plots stay usable


class WarpResult(NamedTuple):
    """The previous frame pulled into the current one (:func:`warp_previous`)."""

    warped: torch.Tensor  # (N, C, H, W) previous frame sampled at p + flow.
    in_bounds: torch.Tensor  # (N, 1, H, W) float, 1 where p + flow lies inside the frame.


class CropFlow(NamedTuple):
    """Crop-to-crop correspondence between consecutive frames (:func:`crop_flow`)."""

    grid: torch.Tensor  # (1, size, size, 2) grid_sample grid pulling crop t - 1 into crop t.
    valid: torch.Tensor  # (1, 1, size, size) float, 1 where the correspondence is usable.


def _pixel_centres(h: int, w: int, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(H, W, 2) pixel-centre coordinates (x, y) on ``like``'s device."""
    dtype = like.dtype if dtype is None else dtype
    ys = torch.arange(h, dtype=dtype, device=like.device) + 0.5
    xs = torch.arange(w, dtype=dtype, device=like.device) + 0.5
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)


def _normalised(points: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Pixel points (..., 2) -> grid_sample coordinates for an (h, w) input, align_corners=False."""
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=points.dtype, device=points.device)
    return points * scale - 1.0


def _inside(points: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(N, 1, H', W') bool: (N, H', W', 2) points inside [0, w] x [0, h] (NaN counts as outside)."""
    x, y = points[..., 0], points[..., 1]
    return ((x >= 0) & (x <= w) & (y >= 0) & (y <= h)).unsqueeze(1)


def _sample_nearest(image: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Read ``image`` (N, C, H, W) at the pixels containing ``points`` (N, H', W', 2) -> (N, C, H', W').

    Exact for any dtype (labels stay labels); points outside the image read its nearest edge pixel.
    """
    n, c, h, w = image.shape
    points = torch.nan_to_num(points.detach())
    ix = points[..., 0].floor().clamp(0, w - 1).long()
    iy = points[..., 1].floor().clamp(0, h - 1).long()
    index = (iy * w + ix).reshape(n, 1, -1).expand(-1, c, -1)  # (N, C, H'W')
    return image.reshape(n, c, h * w).gather(2, index).reshape(n, c, *points.shape[1:3])


def _matrix(matrix: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    try:
        checked = _check_matrix(matrix)
    except ValueError as error:
        raise ValueError(str(error).replace("matrix:", f"{name}:", 1)) from None
    if not np.isfinite(checked).all() or abs(np.linalg.det(checked)) < 1e-12:
        raise ValueError(f"{name}: expected a finite, invertible (3, 3) matrix")
    return checked


def _transform(matrix: np.ndarray, points: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`neural_backend.refine.alignment.transform_points` for (..., 2) points."""
    m = torch.as_tensor(matrix, dtype=points.dtype, device=points.device)
    mapped = points @ m[:2, :2].T + m[:2, 2]
    denominator = points @ m[2, :2] + m[2, 2]
    return mapped / denominator.unsqueeze(-1)


def warp_previous(previous: torch.Tensor, flow: torch.Tensor) -> WarpResult:
    """Pull the previous frame into the current one along the motion pass.

    Args:
        previous: (N, C, H, W) float, frame t - 1 (image, features, anything bilinear makes sense for).
        flow: (N, 2, H, W) float pixel flow to the previous frame (channel 0 = x).

    Returns:
        ``(warped, in_bounds)``: warped (N, C, H, W) is ``previous`` sampled bilinearly at ``p + flow``
        (grid_sample, align_corners=False, zero padding, so the outer half pixel fades toward 0);
        in_bounds (N, 1, H, W) float is 1 where ``p + flow`` lies inside [0, W] x [0, H], else 0.
    """
    assert_shape(previous, [None, None, None, None], "previous")
    n, _, h, w = previous.shape
    assert_shape(flow, [n, 2, h, w], "flow")
    points = _pixel_centres(h, w, flow) + flow.permute(0, 2, 3, 1)  # (N, H, W, 2)
    grid = _normalised(points, h, w).to(previous.dtype)
    warped = F.grid_sample(previous, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return WarpResult(warped, _inside(points, h, w).to(previous.dtype))


def flow_valid(
    region: torch.Tensor,
    region_previous: torch.Tensor,
    flow: torch.Tensor,
    depth: torch.Tensor | None = None,
    depth_previous: torch.Tensor | None = None,
    depth_tolerance: float = 0.05,
) -> torch.Tensor:
    """Where the flow can be trusted: not occluded, not disoccluded, not leaving the frame.

    A pixel is valid when ``p + flow`` lies inside the previous frame and the previous frame's region label
    there (nearest pixel) equals the current label at p. Renderer labels are exact, so a label change along
    the flow (skin that was hair a frame ago) marks an occlusion boundary. With both depth passes given, it
    must also hold that ``|depth_previous(p + flow) - depth(p)| <= depth_tolerance * depth(p)`` (nearest
    pixel; +inf background depth matches +inf).

    Args:
        region: (N, 1, H, W) uint8 or float labels of frame t.
        region_previous: (N, 1, H, W) labels of frame t - 1.
        flow: (N, 2, H, W) float pixel flow to the previous frame (channel 0 = x).
        depth: optional (N, 1, H, W) float depth of frame t (+inf for background).
        depth_previous: optional (N, 1, H, W) float depth of frame t - 1.
        depth_tolerance: relative depth tolerance, used only when both depths are given.

    Returns:
        (N, 1, H, W) float (the flow's dtype), 1 where valid, 0 elsewhere.

    Raises:
        ValueError: a shape mismatch, or only one of ``depth`` / ``depth_previous`` given.
    """
    assert_shape(region, [None, 1, None, None], "region")
    n, _, h, w = region.shape
    assert_shape(region_previous, [n, 1, h, w], "region_previous")
    assert_shape(flow, [n, 2, h, w], "flow")
    if (depth is None) != (depth_previous is None):
        raise ValueError("depth, depth_previous: give both depth passes or neither")
    points = _pixel_centres(h, w, flow) + flow.permute(0, 2, 3, 1)
    valid = _inside(points, h, w) & (_sample_nearest(region_previous, points) == region)
    if depth is not None and depth_previous is not None:
        assert_shape(depth, [n, 1, h, w], "depth")
        assert_shape(depth_previous, [n, 1, h, w], "depth_previous")
        seen = _sample_nearest(depth_previous, points)
        both_background = torch.isposinf(depth) & torch.isposinf(seen)
        finite = torch.isfinite(depth) & torch.isfinite(seen)
        valid &= both_background | (finite & ((seen - depth).abs() <= depth_tolerance * depth))
    return valid.to(flow.dtype)


def crop_labels(region: torch.Tensor, matrix: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour crop of a label image (labels stay exact, unlike :func:`~.alignment.warp_to_crop`).

    Args:
        region: (N, 1, H, W) uint8 or float labels.
        matrix: (3, 3) crop -> frame pixel map (:func:`~.framing.crop_matrix`).
        size: crop size in pixels.

    Returns:
        (N, 1, size, size) labels, ``region``'s dtype; crop pixels whose centre falls outside the frame
        read 0 (background).
    """
    assert_shape(region, [None, 1, None, None], "region")
    m = _matrix(matrix, "matrix")
    n, _, h, w = region.shape
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    points = torch.as_tensor(transform_points(m, np.stack([xs, ys], axis=-1)), device=region.device)
    points = points.unsqueeze(0).expand(n, -1, -1, -1)
    labels = _sample_nearest(region, points)
    return torch.where(_inside(points, h, w), labels, torch.zeros_like(labels))


def crop_flow(
    matrix: np.ndarray | torch.Tensor,
    matrix_previous: np.ndarray | torch.Tensor,
    flow: torch.Tensor,
    size: int,
    region: torch.Tensor | None = None,
    region_previous: torch.Tensor | None = None,
) -> CropFlow:
    """The motion pass carried into crop space: where each crop-t pixel was in crop t - 1.

    For each crop-t pixel centre c: ``p = M_t c`` (frame t), ``q = p + flow(p)`` (frame t - 1, the flow
    sampled bilinearly, edge values extended over the outer half pixel) and ``c' = M_{t-1}^-1 q``. The
    geometry runs in float64, so an affine flow gives an exactly affine crop-to-crop map.

    Args:
        matrix: (3, 3) crop -> frame pixel map of frame t (numpy float64 or tensor).
        matrix_previous: (3, 3) crop -> frame pixel map of frame t - 1.
        flow: (1, 2, H, W) float pixel flow from frame t to frame t - 1 (channel 0 = x).
        size: crop size in pixels (both crops).
        region: optional (1, 1, H, W) labels of frame t; with ``region_previous``, correspondences whose
            label at p (frame t) differs from the label at q (frame t - 1, nearest pixel) are invalid.
        region_previous: optional (1, 1, H, W) labels of frame t - 1.

    Returns:
        ``(grid, valid)``: grid (1, size, size, 2) in the flow's dtype, for
        ``F.grid_sample(crop_previous, grid, align_corners=False)`` to pull crop t - 1 into crop t;
        valid (1, 1, size, size) float, 1 where p is inside frame t, q inside frame t - 1, c' inside
        [0, size]^2 and (if given) the labels agree.

    Raises:
        ValueError: bad shapes, a non-invertible matrix, ``size`` < 1, or only one region given.
    """
    assert_shape(flow, [1, 2, None, None], "flow")
    h, w = flow.shape[2:]
    if size < 1:
        raise ValueError(f"size: expected a positive crop size, got {size}")
    if (region is None) != (region_previous is None):
        raise ValueError("region, region_previous: give both label images or neither")
    to_frame = _matrix(matrix, "matrix")
    from_previous_frame = np.linalg.inv(_matrix(matrix_previous, "matrix_previous"))
    centres = _pixel_centres(size, size, flow, torch.float64)  # (size, size, 2)
    p = _transform(to_frame, centres).unsqueeze(0)  # (1, size, size, 2) frame t
    sampled = F.grid_sample(
        flow.to(torch.float64),
        _normalised(p, h, w),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    q = p + sampled.permute(0, 2, 3, 1)  # frame t - 1
    c_previous = _transform(from_previous_frame, q)  # crop t - 1
    valid = _inside(p, h, w) & _inside(q, h, w) & _inside(c_previous, size, size)
    if region is not None and region_previous is not None:
        assert_shape(region, [1, 1, h, w], "region")
        assert_shape(region_previous, [1, 1, h, w], "region_previous")
        valid &= _sample_nearest(region, p) == _sample_nearest(region_previous, q)
    grid = _normalised(c_previous, size, size).to(flow.dtype)
    return CropFlow(grid, valid.to(flow.dtype))


def temporal_warp_error(
    current: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Weighted mean squared difference between a frame and its warped predecessor (flicker measure).

    ``sum(v * (current - warped)^2) / (C * sum(v))`` with ``v = weight * in_bounds`` from
    :func:`warp_previous`: pixels whose source lies outside the previous frame count in neither sum (their
    warped value is padding, not a prediction). Pass :func:`flow_valid` (times any mask) as ``weight``.

    Args:
        current: (N, C, H, W) float frame t.
        previous: (N, C, H, W) float frame t - 1.
        flow: (N, 2, H, W) float pixel flow to the previous frame.
        weight: (N, 1, H, W) float non-negative pixel weights.

    Returns:
        () float tensor over the whole batch; 0 when no weight remains (never NaN).
    """
    assert_shape(current, [None, None, None, None], "current")
    n, c, h, w = current.shape
    assert_shape(previous, [n, c, h, w], "previous")
    assert_shape(weight, [n, 1, h, w], "weight")
    warped, in_bounds = warp_previous(previous, flow)
    v = weight * in_bounds
    numerator = (v * (current - warped).square()).sum()
    denominator = c * v.sum()
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, 1.0), 0.0)


def masked_psnr(
    image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, peak: float = 1.0
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB over the masked pixels of each image.

    ``10 log10(peak^2 / mse)`` with ``mse = sum(mask * (image - target)^2) / (C * sum(mask))``, capped at
    :data:`PSNR_CAP_DB` (100 dB), which is also what identical images get instead of inf.

    Args:
        image: (N, C, H, W) float in [0, peak].
        target: (N, C, H, W) float in [0, peak].
        mask: (N, 1, H, W) float non-negative pixel weights; pixels with weight 0 are ignored.
        peak: the largest possible pixel value.

    Returns:
        (N,) float dB; NaN for an image whose mask is empty (no pixels to measure).
    """
    assert_shape(image, [None, None, None, None], "image")
    n, c, h, w = image.shape
    assert_shape(target, [n, c, h, w], "target")
    assert_shape(mask, [n, 1, h, w], "mask")
    if not peak > 0:
        raise ValueError(f"peak: expected a positive value, got {peak}")
    squared = (mask * (image - target).square()).sum(dim=(1, 2, 3))
    mse = squared / (c * mask.sum(dim=(1, 2, 3)))  # 0 / 0 = NaN for an empty mask, on purpose
    floor = peak**2 * 10.0 ** (-PSNR_CAP_DB / 10.0)  # the mse at which the cap is reached
    return 10.0 * torch.log10(peak**2 / torch.clamp(mse, min=floor))


def latent_drift(latents: torch.Tensor) -> torch.Tensor:
    """Frame-to-frame movement of a W+ latent sequence.

    Args:
        latents: (T, num_ws, w_dim) float W+ latents of consecutive frames.

    Returns:
        (T - 1,) float: for each t >= 1, the mean over the num_ws layers of ``||w_t - w_{t-1}||_2``.
    """
    assert_shape(latents, [None, None, None], "latents")
    return (latents[1:] - latents[:-1]).norm(dim=-1).mean(dim=-1)
