"""Paired PSNR and the sliced Wasserstein distance (Progressive GAN's SWD)."""

from __future__ import annotations

import math

import pytest
import torch

from neural_backend.train.metrics import laplacian_pyramid, paired_psnr, sliced_wasserstein


def _noise(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.rand([n, 3, size, size], generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_psnr_of_identical_images_is_the_clamped_maximum() -> None:
    images = _noise(3, 8, 0)
    psnr = paired_psnr(images, images.clone())
    assert psnr.shape == (3,)
    assert torch.allclose(psnr, torch.full([3], 100.0))  # mse clamped at 1e-10


def test_psnr_of_a_constant_offset_is_known() -> None:
    targets = _noise(2, 8, 1) * 0.5  # in [-0.5, 0.5]: the offset stays inside the clamp
    psnr = paired_psnr(targets + 0.2, targets)
    # peak 1 on [0, 1] images: an offset of 0.2 in [-1, 1] is 0.1, mse 0.01, PSNR 20 dB
    assert torch.allclose(psnr, torch.full([2], 20.0), atol=1e-3)
    half = paired_psnr(targets + 0.1, targets)
    assert torch.allclose(half - psnr, torch.full([2], 20 * math.log10(2)), atol=1e-3)


def test_psnr_is_per_image_and_clamps_to_the_image_range() -> None:
    targets = torch.zeros([2, 3, 4, 4])
    images = torch.stack([torch.full([3, 4, 4], 0.2), torch.full([3, 4, 4], 5.0)])
    psnr = paired_psnr(images, targets)
    assert psnr[0] == pytest.approx(20.0, abs=1e-3)
    assert psnr[1] == pytest.approx(10 * math.log10(1 / 0.25), abs=1e-3)  # 5.0 counts as 1.0


def test_psnr_refuses_different_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        paired_psnr(torch.zeros([2, 3, 8, 8]), torch.zeros([2, 3, 8, 4]))


def test_laplacian_pyramid_goes_down_to_16() -> None:
    images = _noise(2, 64, 2)
    levels = laplacian_pyramid(images)
    assert [level.shape[-1] for level in levels] == [64, 32, 16]


def _stripes(n: int, size: int, seed: int) -> torch.Tensor:
    waves = torch.sin(torch.arange(size, dtype=torch.float32) / 2).expand(n, 3, size, size)
    return waves + 0.1 * _noise(n, size, seed)


def test_swd_is_small_for_the_same_distribution_and_larger_for_a_different_one() -> None:
    kwargs = {"per_image": 128, "directions": 128, "repeats": 2}
    noise_a, noise_b, stripes = _noise(8, 32, 3), _noise(8, 32, 4), _stripes(8, 32, 5)
    itself = sliced_wasserstein(noise_a, noise_a, **kwargs)
    same_kind = sliced_wasserstein(noise_a, noise_b, **kwargs)
    different = sliced_wasserstein(noise_a, stripes, **kwargs)
    assert len(itself) == len(same_kind) == len(different) == 2  # 32 -> levels at 32 and 16
    assert all(math.isfinite(v) and v >= 0 for v in itself + same_kind + different)
    # descriptors are sampled independently per side, so even a set against itself is not exactly 0
    assert max(itself) < 0.3 * min(different)
    assert max(same_kind) < 0.5 * min(different)
    assert sliced_wasserstein(noise_a, noise_a, **kwargs) == itself  # deterministic for a seed


def test_swd_of_a_set_with_itself_shrinks_as_more_patches_are_compared() -> None:
    images = _noise(8, 32, 6)
    few = sliced_wasserstein(images, images, per_image=8, directions=64, repeats=1)
    many = sliced_wasserstein(images, images, per_image=256, directions=64, repeats=1)
    assert all(m < f for m, f in zip(many, few, strict=True))


def test_swd_refuses_different_shapes() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        sliced_wasserstein(torch.zeros([2, 3, 32, 32]), torch.zeros([3, 3, 32, 32]))
