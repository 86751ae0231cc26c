"""Alignment geometry, frame <-> crop warps, sRGB curves and mask feathering."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neural_backend.images.color import linear_from_srgb, srgb_from_linear
from neural_backend.refine.alignment import feather, warp_to_crop, warp_to_frame
from neural_backend.refine.framing import crop_matrix, ffhq_quad, transform_points


def frontal_landmarks(
    eye_y=100.0, mouth_y=150.0, centre_x=128.0, half_eye=20.0, half_mouth=18.0
) -> np.ndarray:
    """68 points where only the FFHQ-relevant ones matter: eyes 36-47 and mouth corners 48 / 54."""
    lm = np.full((68, 2), [centre_x, 0.5 * (eye_y + mouth_y)])
    ring = np.stack(
        [np.cos(np.linspace(0, 2 * np.pi, 6, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 6))], 1
    )
    lm[36:42] = [centre_x - half_eye, eye_y] + 5 * ring * [1, 0.5]
    lm[42:48] = [centre_x + half_eye, eye_y] + 5 * ring * [1, 0.5]
    lm[48] = [centre_x - half_mouth, mouth_y]
    lm[54] = [centre_x + half_mouth, mouth_y]
    return lm


def rotate(points: np.ndarray, degrees: float, about: np.ndarray) -> np.ndarray:
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    return (points - about) @ rot.T + about


def test_ffhq_quad_of_a_frontal_face():
    quad = ffhq_quad(frontal_landmarks())
    eye_avg, eye_to_mouth = np.array([128.0, 100.0]), np.array([0.0, 50.0])
    half = max(2 * 40.0, 1.8 * 50.0)  # |x| = max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)
    centre = eye_avg + 0.1 * eye_to_mouth
    expected = centre + half * np.array([[-1, -1], [-1, 1], [1, 1], [1, -1]])  # TL, BL, BR, TR
    np.testing.assert_allclose(quad, expected, atol=1e-9)


def test_ffhq_quad_rotates_with_the_face():
    landmarks = frontal_landmarks()
    pivot = np.array([128.0, 128.0])
    rotated = ffhq_quad(rotate(landmarks, 20.0, pivot))
    np.testing.assert_allclose(rotated, rotate(ffhq_quad(landmarks), 20.0, pivot), atol=1e-9)


def test_ffhq_quad_rejects_bad_landmarks():
    with pytest.raises(ValueError, match="landmarks68"):
        ffhq_quad(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        ffhq_quad(np.zeros((68, 2)))


def test_crop_matrix_maps_crop_corners_to_the_quad():
    quad = ffhq_quad(rotate(frontal_landmarks(), -12.0, np.array([100.0, 90.0])))
    matrix = crop_matrix(quad, 64)
    corners = np.array([[0, 0], [0, 64], [64, 64], [64, 0]], dtype=float)
    np.testing.assert_allclose(transform_points(matrix, corners), quad, atol=1e-9)
    back = transform_points(np.linalg.inv(matrix), quad)
    np.testing.assert_allclose(back, corners, atol=1e-9)


def _example_matrix(size: int = 32) -> np.ndarray:
    return crop_matrix(ffhq_quad(rotate(frontal_landmarks(), 17.0, np.array([128.0, 128.0]))), size)


def test_warp_to_crop_samples_at_the_mapped_pixel_centres():
    # Bilinear sampling reproduces a linear ramp exactly, so the warped values are the sample positions.
    h, w = 256, 240
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    frame = torch.stack([xs, ys])[None].double()
    matrix = _example_matrix()
    crop = warp_to_crop(frame, matrix, 32, antialias=False)
    centres = np.stack(np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5, indexing="xy"), -1)
    expected = transform_points(matrix, centres)  # (32, 32, 2) frame positions
    inside = ((expected > 0.5) & (expected < [w - 0.5, h - 0.5])).all(-1)
    assert inside.sum() > 900
    np.testing.assert_allclose(crop[0, 0].numpy()[inside], expected[..., 0][inside], atol=1e-6)
    np.testing.assert_allclose(crop[0, 1].numpy()[inside], expected[..., 1][inside], atol=1e-6)


def test_a_mapped_point_lands_where_the_warp_puts_it():
    matrix = _example_matrix(64)
    target_crop_point = np.array([23.3, 40.7])
    frame_point = transform_points(matrix, target_crop_point)
    ys, xs = torch.meshgrid(torch.arange(256) + 0.5, torch.arange(256) + 0.5, indexing="ij")
    blob = torch.exp(-((xs - frame_point[0]) ** 2 + (ys - frame_point[1]) ** 2) / (2 * 6.0**2))
    crop = warp_to_crop(blob[None, None].double(), matrix, 64, antialias=False)[0, 0]
    cy, cx = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
    weights = crop / crop.sum()
    centroid = np.array([(weights * cx).sum().item(), (weights * cy).sum().item()])
    np.testing.assert_allclose(centroid, target_crop_point, atol=0.05)


def test_warp_to_frame_is_the_exact_inverse_mapping():
    size = 32
    matrix = _example_matrix(size)
    cy, cx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    crop = torch.stack([cx, cy])[None].double()
    image, coverage = warp_to_frame(crop, matrix, (256, 240))
    assert image.shape == (1, 2, 256, 240) and coverage.shape == (1, 1, 256, 240)
    centres = np.stack(np.meshgrid(np.arange(240) + 0.5, np.arange(256) + 0.5, indexing="xy"), -1)
    expected = transform_points(np.linalg.inv(matrix), centres)
    inside = ((expected > 0.5) & (expected < size - 0.5)).all(-1)
    assert inside.sum() > 10000
    np.testing.assert_allclose(image[0, 0].numpy()[inside], expected[..., 0][inside], atol=1e-6)
    np.testing.assert_allclose(image[0, 1].numpy()[inside], expected[..., 1][inside], atol=1e-6)
    cov = coverage[0, 0].numpy()
    np.testing.assert_allclose(cov[inside], 1.0, atol=1e-9)
    outside = ((expected < -0.5) | (expected > size + 0.5)).any(-1)
    assert np.all(cov[outside] == 0.0)
    border = ~inside & ~outside
    assert np.all((cov[border] >= 0) & (cov[border] <= 1)) and ((cov > 0) & (cov < 1)).any()


def test_crop_to_frame_to_crop_round_trip_is_close_to_identity_inside():
    size = 32
    matrix = _example_matrix(size)  # a crop pixel spans about 5 frame pixels
    cy, cx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    crop = torch.stack([torch.sin(cx / 5), torch.cos(cy / 4) * torch.sin(cx / 7), cx * cy / size**2])[None]
    frame, _ = warp_to_frame(crop, matrix, (256, 256))
    for antialias, tolerance in ((False, 0.02), (True, 0.05)):
        back = warp_to_crop(frame, matrix, size, antialias=antialias)
        error = (back - crop)[..., 2:-2, 2:-2].abs().max().item()
        assert error < tolerance, (antialias, error)


def test_antialias_box_filters_fine_detail():
    checker = ((torch.arange(128)[:, None] + torch.arange(128)[None]) % 2).float()[None, None]
    matrix = np.diag([4.0, 4.0, 1.0])  # crop pixel = 4x4 frame pixels
    smooth = warp_to_crop(checker, matrix, 32, antialias=True)
    torch.testing.assert_close(smooth, torch.full_like(smooth, 0.5))


def test_warps_check_shapes():
    with pytest.raises(ValueError, match="image"):
        warp_to_crop(torch.zeros(3, 8, 8), np.eye(3), 4)
    with pytest.raises(ValueError, match="matrix"):
        warp_to_crop(torch.zeros(1, 3, 8, 8), np.eye(2), 4)
    with pytest.raises(ValueError, match="crop"):
        warp_to_frame(torch.zeros(1, 3, 8, 6), np.eye(3), (8, 8))


def test_srgb_curve_values_and_round_trip():
    linear = np.array([0.0, 0.002, 0.0031308, 0.18, 0.5, 1.0], dtype=np.float32)
    srgb = srgb_from_linear(linear)
    assert srgb.dtype == np.float32
    np.testing.assert_allclose(srgb[[0, 2, 4, 5]], [0.0, 0.04045, 0.735357, 1.0], atol=1e-5)
    np.testing.assert_allclose(srgb[1], 0.002 * 12.92, rtol=1e-6)
    values = np.linspace(-0.1, 1.5, 1001)
    np.testing.assert_allclose(linear_from_srgb(srgb_from_linear(values)), values, atol=1e-9)
    torch_values = torch.from_numpy(values)
    np.testing.assert_allclose(srgb_from_linear(torch_values).numpy(), srgb_from_linear(values), atol=1e-12)
    torch.testing.assert_close(linear_from_srgb(srgb_from_linear(torch_values)), torch_values)


def test_feather_is_zero_outside_one_deep_inside_and_monotone():
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 16:48, 16:48] = 1
    soft = feather(mask, 6.0)
    assert torch.all(soft[mask == 0] == 0)
    assert torch.all(soft[..., 22:42, 22:42] == 1)  # >= radius from the edge
    assert 0 < soft[0, 0, 32, 18].item() < 1
    row = soft[0, 0, 32, 16:33]
    assert torch.all(row[1:] >= row[:-1])
    assert torch.equal(feather(mask * 0.9, 0.0), mask)
    with pytest.raises(ValueError, match="mask"):
        feather(torch.zeros(64, 64), 2.0)
