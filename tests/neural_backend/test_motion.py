"""Motion-pass warps, occlusion masks, crop-space flow and temporal metrics (neural_backend.refine.motion)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neural_backend.refine.alignment import warp_to_crop, warp_to_frame
from neural_backend.refine.framing import crop_matrix, quad_from_params
from neural_backend.refine.motion import (
    PSNR_CAP_DB,
    crop_flow,
    crop_labels,
    flow_valid,
    latent_drift,
    masked_psnr,
    temporal_warp_error,
    warp_previous,
)


def constant_flow(n: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    flow = torch.empty(n, 2, h, w)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def bilinear_zeros(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Independent reference: (C, H, W) image read at pixel coordinates x, y (H', W'), zeros outside.

    Pixel centres sit at k + 0.5, so the continuous index is coordinate - 0.5.
    """
    c, h, w = image.shape
    u, v = x - 0.5, y - 0.5
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    a, b = u - x0, v - y0
    out = np.zeros((c, *x.shape))
    for dx, dy, wgt in ((0, 0, (1 - a) * (1 - b)), (1, 0, a * (1 - b)), (0, 1, (1 - a) * b), (1, 1, a * b)):
        xi, yi = x0 + dx, y0 + dy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        out += np.where(ok, image[:, yi.clip(0, h - 1), xi.clip(0, w - 1)], 0.0) * wgt
    return out


# --- warp_previous -------------------------------------------------------------------------------------


def test_warp_integer_shift_is_a_shift() -> None:
    previous = torch.rand(2, 3, 16, 20)
    warped, in_bounds = warp_previous(previous, constant_flow(2, 16, 20, 2.0, -1.0))
    # The point at (x, y) was at (x + 2, y - 1): rows 1.., columns ..17 have a source pixel.
    torch.testing.assert_close(warped[:, :, 1:, :18], previous[:, :, :-1, 2:], rtol=0, atol=1e-6)
    expected = torch.zeros(2, 1, 16, 20)
    expected[:, :, 1:, :18] = 1.0
    assert torch.equal(in_bounds, expected)


def test_warp_subpixel_matches_numpy_bilinear() -> None:
    gen = torch.Generator().manual_seed(0)
    previous = torch.rand(2, 2, 12, 15, generator=gen)
    flow = (torch.rand(2, 2, 12, 15, generator=gen) - 0.5) * 6.0  # per-pixel, up to 3 px, some outside
    flow[1] = torch.tensor([0.3, -0.7])[:, None, None]
    warped, _ = warp_previous(previous, flow)
    ys, xs = np.meshgrid(np.arange(12) + 0.5, np.arange(15) + 0.5, indexing="ij")
    for i in range(2):
        f = flow[i].double().numpy()
        expected = bilinear_zeros(previous[i].double().numpy(), xs + f[0], ys + f[1])
        np.testing.assert_allclose(warped[i].numpy(), expected, atol=1e-5)


def test_in_bounds_edges_are_inclusive() -> None:
    flow = torch.zeros(1, 2, 4, 5)
    flow[0, 0, :, 0] = -0.5  # column 0 lands exactly on x = 0: inside
    flow[0, 0, :, 4] = 0.51  # column 4 lands at x = 5.01: outside
    flow[0, 1, 3, 1:4] = 0.5  # bottom row lands exactly on y = 4: inside
    flow[0, 1, 0, 1:4] = -0.6  # top row lands at y = -0.1: outside
    _, in_bounds = warp_previous(torch.rand(1, 1, 4, 5), flow)
    expected = torch.ones(1, 1, 4, 5)
    expected[0, 0, :, 4] = 0.0
    expected[0, 0, 0, 1:4] = 0.0
    assert torch.equal(in_bounds, expected)


def test_warp_rejects_mismatched_flow() -> None:
    with pytest.raises(ValueError, match="flow"):
        warp_previous(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


# --- flow_valid ----------------------------------------------------------------------------------------


def moving_square(
    h: int = 24, w: int = 32, shift: int = 3
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A square (label 1) on background (label 0) moving right by ``shift`` px; static background.

    Returns region_t, region_previous (1, 1, H, W) uint8 and the exact flow (1, 2, H, W).
    """
    region_previous = torch.zeros(1, 1, h, w, dtype=torch.uint8)
    region_previous[..., 5:15, 10:20] = 1
    region = torch.zeros_like(region_previous)
    region[..., 5:15, 10 + shift : 20 + shift] = 1
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0][region[:, 0] == 1] = -float(shift)
    return region, region_previous, flow


def test_flow_valid_marks_the_disoccluded_strip() -> None:
    region, region_previous, flow = moving_square()
    valid = flow_valid(region, region_previous, flow)
    expected = torch.ones(1, 1, 24, 32)
    expected[..., 5:15, 10:13] = 0.0  # background now, under the square a frame ago
    assert torch.equal(valid, expected)
    # float labels work the same
    assert torch.equal(flow_valid(region.float(), region_previous.float(), flow), expected)


def test_flow_valid_leaving_the_frame_is_invalid() -> None:
    region = torch.ones(1, 1, 6, 8, dtype=torch.uint8)
    valid = flow_valid(region, region, constant_flow(1, 6, 8, -2.0, 0.0))
    assert valid[..., :2].sum() == 0 and valid[..., 2:].min() == 1


@pytest.mark.parametrize("background", [10.0, float("inf")])
def test_flow_valid_depth(background: float) -> None:
    region, _, flow = moving_square()
    same = torch.ones_like(region)  # one label everywhere: only depth can see the occlusion
    depth = torch.where(region == 1, 5.0, background)
    depth_previous = torch.zeros_like(depth)
    depth_previous[:] = background
    depth_previous[..., 5:15, 10:20] = 5.0
    assert flow_valid(same, same, flow).min() == 1
    valid = flow_valid(same, same, flow, depth, depth_previous)
    expected = torch.ones(1, 1, 24, 32)
    expected[..., 5:15, 10:13] = 0.0
    assert torch.equal(valid, expected)
    # a loose enough tolerance accepts the finite jump (10 vs 5) but never finite vs inf
    loose = flow_valid(same, same, flow, depth, depth_previous, depth_tolerance=0.6)
    assert torch.equal(loose, expected if background == float("inf") else torch.ones_like(expected))


def test_flow_valid_needs_both_depths() -> None:
    region, region_previous, flow = moving_square()
    with pytest.raises(ValueError, match="depth"):
        flow_valid(region, region_previous, flow, depth=torch.ones(1, 1, 24, 32))


# --- crop_flow / crop_labels ---------------------------------------------------------------------------


def affine_flow(to_previous: np.ndarray, h: int, w: int) -> torch.Tensor:
    """(1, 2, H, W) flow(p) = to_previous @ p - p at pixel centres."""
    ys, xs = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    p = np.stack([xs, ys], axis=-1)
    q = p @ to_previous[:2, :2].T + to_previous[:2, 2]
    return torch.from_numpy((q - p).transpose(2, 0, 1)[None].astype(np.float32))


def smooth_texture(size: int) -> torch.Tensor:
    """(1, 3, size, size) low-frequency image, so that bilinear resampling is accurate."""
    ys, xs = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    channels = [
        0.5 + 0.4 * np.sin(2 * np.pi * (1.3 * xs + 0.7 * ys)),
        0.5 + 0.4 * np.cos(2 * np.pi * (0.8 * xs - 1.1 * ys)),
        0.5 + 0.3 * np.sin(2 * np.pi * 1.7 * xs) * np.cos(2 * np.pi * 0.9 * ys),
    ]
    return torch.from_numpy(np.stack(channels)[None].astype(np.float32))


H, W, SIZE = 120, 140, 64
# Where the object (a crop image) sits in each frame: it moves, rotates and grows between frames.
OBJECT_T = crop_matrix(quad_from_params([72.0, 58.0, 30.0, 6.0]), SIZE)
OBJECT_PREVIOUS = crop_matrix(quad_from_params([66.0, 62.0, 28.0, 2.0]), SIZE)
# The refinement crops: near the object, but not exactly on it, and the previous crop cuts off a part.
CROP_T = crop_matrix(quad_from_params([74.0, 57.0, 33.0, 4.0]), SIZE)
CROP_PREVIOUS = crop_matrix(quad_from_params([60.0, 66.0, 27.0, 3.0]), SIZE)


def analytic_crop_map() -> np.ndarray:
    """Crop t -> crop t - 1 pixel map for the object's rigid motion."""
    return np.linalg.inv(CROP_PREVIOUS) @ OBJECT_PREVIOUS @ np.linalg.inv(OBJECT_T) @ CROP_T


def crop_centres(size: int) -> np.ndarray:
    ys, xs = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    return np.stack([xs, ys], axis=-1)


def test_crop_flow_grid_is_the_analytic_affine_map() -> None:
    flow = affine_flow(OBJECT_PREVIOUS @ np.linalg.inv(OBJECT_T), H, W)
    grid, valid = crop_flow(CROP_T, CROP_PREVIOUS, flow, SIZE)
    assert grid.shape == (1, SIZE, SIZE, 2) and valid.shape == (1, 1, SIZE, SIZE)
    assert grid.dtype == torch.float32

    c = crop_centres(SIZE)
    to_previous = analytic_crop_map()
    c_previous = c @ to_previous[:2, :2].T + to_previous[:2, 2]
    pixels = (grid[0].double().numpy() + 1.0) * SIZE / 2.0
    inside = valid[0, 0].numpy() > 0.5
    assert 0.3 < inside.mean() < 0.95  # partly cut off by the previous crop, by design
    assert np.abs(pixels - c_previous)[inside].max() < 1e-4

    # valid is exactly "p in frame t, q in frame t - 1, c' in crop t - 1"
    p = c @ CROP_T[:2, :2].T + CROP_T[:2, 2]
    q = CROP_PREVIOUS[:2, :2] @ c_previous[..., :, None]
    q = q[..., 0] + CROP_PREVIOUS[:2, 2]

    def within(points: np.ndarray, h: float, w: float) -> np.ndarray:
        return (points[..., 0] >= 0) & (points[..., 0] <= w) & (points[..., 1] >= 0) & (points[..., 1] <= h)

    expected = within(p, H, W) & within(q, H, W) & within(c_previous, SIZE, SIZE)
    assert np.array_equal(inside, expected)


def test_crop_flow_pulls_the_previous_crop_into_the_current_one() -> None:
    texture = smooth_texture(SIZE)
    frame_t, coverage_t = warp_to_frame(texture, OBJECT_T, (H, W))
    frame_previous, _ = warp_to_frame(texture, OBJECT_PREVIOUS, (H, W))
    crop_t = warp_to_crop(frame_t, CROP_T, SIZE, antialias=False)
    crop_previous = warp_to_crop(frame_previous, CROP_PREVIOUS, SIZE, antialias=False)

    flow = affine_flow(OBJECT_PREVIOUS @ np.linalg.inv(OBJECT_T), H, W)
    grid, valid = crop_flow(torch.from_numpy(CROP_T), CROP_PREVIOUS, flow, SIZE)
    pulled = F.grid_sample(crop_previous, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # Judge only where the object covers the frame and the pull does not straddle the crop edge.
    on_object = warp_to_crop(coverage_t, CROP_T, SIZE, antialias=False) > 0.999
    away_from_edge = (grid.abs() < 1.0 - 4.0 / SIZE).all(dim=-1)[:, None]
    judged = (valid > 0.5) & on_object & away_from_edge
    assert judged.float().mean() > 0.2
    error = (pulled - crop_t).abs().amax(dim=1, keepdim=True)[judged]
    assert error.max() < 0.03
    # ...while the crops themselves differ a lot (the test would be vacuous otherwise)
    assert (crop_previous - crop_t).abs().amax(dim=1, keepdim=True)[judged].mean() > 0.1


def test_crop_labels_nearest() -> None:
    region = torch.randint(0, 7, (1, 1, 40, 50), dtype=torch.uint8)
    shift = np.array([[1.0, 0, 10], [0, 1.0, 20], [0, 0, 1]])  # crop pixel (i, j) -> frame (i+10, j+20)
    crop = crop_labels(region, shift, 24)
    assert crop.dtype == torch.uint8 and crop.shape == (1, 1, 24, 24)
    assert torch.equal(crop[..., :20, :], region[..., 20:40, 10:34])
    assert crop[..., 20:, :].max() == 0  # below the frame: background
    halve = np.diag([2.0, 2.0, 1.0])  # crop centre (i + 0.5) -> frame 2i + 1
    assert torch.equal(crop_labels(region, halve, 20), region[..., 1:40:2, 1:40:2])


def test_crop_flow_label_consistency() -> None:
    flow = affine_flow(OBJECT_PREVIOUS @ np.linalg.inv(OBJECT_T), H, W)
    region_previous = torch.ones(1, 1, H, W, dtype=torch.uint8)
    region = region_previous.clone()
    region[..., 40:70, 60:90] = 4  # e.g. hair in frame t where frame t - 1 had skin
    base = crop_flow(CROP_T, CROP_PREVIOUS, flow, SIZE).valid
    valid = crop_flow(CROP_T, CROP_PREVIOUS, flow, SIZE, region=region, region_previous=region_previous).valid
    expected = base * (crop_labels(region, CROP_T, SIZE) != 4)
    assert torch.equal(valid, expected)
    assert valid.sum() < base.sum()
    with pytest.raises(ValueError, match="region"):
        crop_flow(CROP_T, CROP_PREVIOUS, flow, SIZE, region=region)


def test_crop_flow_rejects_bad_matrices() -> None:
    flow = torch.zeros(1, 2, 8, 8)
    with pytest.raises(ValueError, match="matrix_previous"):
        crop_flow(np.eye(3), np.zeros((3, 3)), flow, 4)
    with pytest.raises(ValueError, match="^matrix:"):
        crop_flow(np.eye(2), np.eye(3), flow, 4)


# --- metrics -------------------------------------------------------------------------------------------


def test_temporal_warp_error() -> None:
    gen = torch.Generator().manual_seed(1)
    previous = torch.rand(2, 3, 20, 24, generator=gen)
    flow = (torch.rand(2, 2, 20, 24, generator=gen) - 0.5) * 8.0
    exact, in_bounds = warp_previous(previous, flow)
    current = exact.clone()
    current[in_bounds.expand_as(current) == 0] = 5.0  # no source pixel: must not count
    weight = torch.ones(2, 1, 20, 24)
    assert 0.0 < in_bounds.mean() < 1.0
    assert temporal_warp_error(current, previous, flow, weight).item() < 1e-12
    errors = [
        temporal_warp_error(
            current + s * torch.randn(current.shape, generator=gen), previous, flow, weight
        ).item()
        for s in (0.01, 0.1, 0.3)
    ]
    assert errors[0] < errors[1] < errors[2]
    assert errors[2] == pytest.approx(0.09, rel=0.1)  # mean squared noise


def test_temporal_warp_error_empty_weight_is_zero() -> None:
    previous = torch.rand(1, 3, 8, 8)
    current = torch.rand(1, 3, 8, 8, requires_grad=True)
    error = temporal_warp_error(current, previous, torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 8, 8))
    assert error.shape == () and error.item() == 0.0
    error.backward()
    assert current.grad is not None and torch.isfinite(current.grad).all()


def test_masked_psnr_matches_numpy_and_ignores_unmasked_pixels() -> None:
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(2, 3, 10, 12, generator=gen)
    image = (target + 0.05 * torch.randn(target.shape, generator=gen)).clamp(0, 1)
    mask = torch.zeros(2, 1, 10, 12)
    mask[0, :, :, :6] = 1.0
    mask[1, :, 2:8, 3:9] = 0.5  # soft weights
    psnr = masked_psnr(image, target, mask)
    assert psnr.shape == (2,)
    for i in range(2):
        m, diff = mask[i].double().numpy(), (image[i] - target[i]).double().numpy()
        mse = (m * diff**2).sum() / (3 * m.sum())
        assert psnr[i].item() == pytest.approx(10 * np.log10(1.0 / mse), abs=1e-4)
    scribbled = image.clone()
    scribbled[(mask == 0).expand_as(image)] = 1.0 - scribbled[(mask == 0).expand_as(image)]
    torch.testing.assert_close(masked_psnr(scribbled, target, mask), psnr)
    torch.testing.assert_close(masked_psnr(255 * image, 255 * target, mask, peak=255.0), psnr)


def test_masked_psnr_identical_is_capped_and_empty_is_nan() -> None:
    image = torch.rand(2, 3, 6, 6)
    mask = torch.ones(2, 1, 6, 6)
    mask[1] = 0.0
    psnr = masked_psnr(image, image.clone(), mask)
    assert psnr[0].item() == pytest.approx(PSNR_CAP_DB)
    assert torch.isnan(psnr[1])


def test_latent_drift() -> None:
    w0 = torch.randn(2, 3)
    w1 = w0 + torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])  # layer norms 5 and 0
    w2 = w1 + torch.tensor([1.0, 0.0, 0.0])  # 1 on both layers
    drift = latent_drift(torch.stack([w0, w1, w2]))
    torch.testing.assert_close(drift, torch.tensor([2.5, 1.0]))
    assert latent_drift(w0[None]).shape == (0,)
    with pytest.raises(ValueError, match="latents"):
        latent_drift(w0)
