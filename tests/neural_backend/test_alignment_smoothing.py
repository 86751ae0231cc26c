"""Temporal smoothing of FFHQ crop quads: offline (smooth_quads) and streaming (smooth_quad_causal)."""

from __future__ import annotations

import numpy as np
import pytest

from neural_backend.refine.framing import (
    ffhq_quad,
    quad_from_params,
    quad_params,
    smooth_quad_causal,
    smooth_quads,
)


def linear_quads(count: int) -> np.ndarray:
    """(count, 4, 2) quads whose centre and x vector move at constant velocity (pan, zoom and roll)."""
    t = np.arange(count, dtype=np.float64)[:, None]
    params = np.array([300.0, 200.0, 80.0, 10.0]) + t * np.array([2.5, -1.25, 0.4, 0.3])
    return quad_from_params(params)


def test_params_round_trip_ffhq_quad() -> None:
    lm = np.random.default_rng(0).normal(size=(68, 2)) * 3 + [128.0, 128.0]
    lm[36:42] += [-20.0, -20.0]
    lm[42:48] += [20.0, -20.0]
    lm[48] += [-15.0, 25.0]
    lm[54] += [15.0, 25.0]
    quad = ffhq_quad(lm)
    np.testing.assert_allclose(quad_from_params(quad_params(quad)), quad, atol=1e-12)


def test_sigma_zero_is_exact_identity() -> None:
    quads = linear_quads(10) + np.random.default_rng(1).normal(size=(10, 4, 2))  # not even squares
    smoothed = smooth_quads(quads, 0.0)
    assert np.array_equal(smoothed, quads)
    assert smoothed is not quads


@pytest.mark.parametrize("count", [2, 3, 7, 40])
@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5, 6.0])
def test_linear_motion_preserved_everywhere(count: int, sigma: float) -> None:
    quads = linear_quads(count)
    smoothed = smooth_quads(quads, sigma)
    assert smoothed.shape == (count, 4, 2)
    np.testing.assert_allclose(smoothed, quads, rtol=0, atol=1e-9)


def test_tiny_sigma_is_near_identity() -> None:
    quads = linear_quads(6) + np.random.default_rng(2).normal(size=(6, 1, 1))  # squares, jittered centres
    np.testing.assert_allclose(smooth_quads(quads, 0.01), quads, atol=1e-9)


def test_interior_is_the_plain_gaussian_average() -> None:
    rng = np.random.default_rng(3)
    quads = linear_quads(30) + rng.normal(size=(30, 1, 2)) * 3  # jittered centres keep them squares
    sigma, radius = 1.5, 5
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    params = quad_params(quads)
    expected = np.stack([np.convolve(params[:, k], taps, mode="valid") for k in range(4)], axis=1)
    smoothed = quad_params(smooth_quads(quads, sigma))
    np.testing.assert_allclose(smoothed[radius:-radius], expected, atol=1e-9)


def test_jitter_reduced() -> None:
    rng = np.random.default_rng(4)
    truth = linear_quads(120)
    noisy = truth + rng.normal(scale=2.0, size=truth.shape)
    smoothed = smooth_quads(noisy, 2.0)

    def rms(q: np.ndarray) -> float:
        return float(np.sqrt(np.mean((q - truth) ** 2)))

    assert rms(smoothed) < 0.5 * rms(noisy)


def test_ends_are_smoothed_without_lag() -> None:
    """Over many noisy shots the first and last frames are closer to the truth than the raw ones."""
    rng = np.random.default_rng(5)
    truth = linear_quads(30)
    noise = rng.normal(scale=2.0, size=(400, *truth.shape))
    smoothed = np.stack([smooth_quads(truth + n, 2.0) for n in noise])
    for frame in (0, -1):
        raw_error = np.sqrt(np.mean(noise[:, frame] ** 2))
        smooth_error = np.sqrt(np.mean((smoothed[:, frame] - truth[frame]) ** 2))
        bias = np.abs(np.mean(smoothed[:, frame] - truth[frame], axis=0)).max()
        assert smooth_error < raw_error
        assert bias < 0.3  # unbiased: a lagging filter would be off by whole pixels here


def test_causal_alpha_one_is_identity() -> None:
    quads = linear_quads(3)
    assert np.array_equal(smooth_quad_causal(quads[0], quads[1], 1.0), quads[1])
    assert np.array_equal(smooth_quad_causal(None, quads[2], 0.3), quads[2])


def test_causal_one_step_blends_parameters() -> None:
    a, b = linear_quads(2)
    expected = quad_from_params(0.25 * quad_params(b) + 0.75 * quad_params(a))
    np.testing.assert_allclose(smooth_quad_causal(a, b, 0.25), expected, atol=1e-12)


def test_causal_converges_to_a_constant_quad() -> None:
    start, target = linear_quads(50)[[0, -1]]
    state: np.ndarray | None = start
    for _ in range(200):
        state = smooth_quad_causal(state, target, 0.2)
    np.testing.assert_allclose(state, target, atol=1e-9)


@pytest.mark.parametrize(
    ("quads", "sigma", "name"),
    [
        (np.zeros((4, 2)), 1.0, "quads"),
        (np.zeros((5, 3, 2)), 1.0, "quads"),
        (np.zeros((5, 4, 3)), 1.0, "quads"),
        (np.full((5, 4, 2), np.nan), 1.0, "quads"),
        (np.zeros((5, 4, 2)), -1.0, "sigma_frames"),
        (np.zeros((5, 4, 2)), float("nan"), "sigma_frames"),
    ],
)
def test_smooth_quads_rejects_bad_input(quads: np.ndarray, sigma: float, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        smooth_quads(quads, sigma)


def test_causal_rejects_bad_input() -> None:
    good = linear_quads(1)[0]
    with pytest.raises(ValueError, match="^quad:"):
        smooth_quad_causal(good, np.zeros((3, 2)), 0.5)
    with pytest.raises(ValueError, match="previous_smoothed"):
        smooth_quad_causal(np.zeros((2, 4, 2)), good, 0.5)
    with pytest.raises(ValueError, match="previous_smoothed"):
        smooth_quad_causal(np.full((4, 2), np.inf), good, 1.0)
    for alpha in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            smooth_quad_causal(good, good, alpha)
