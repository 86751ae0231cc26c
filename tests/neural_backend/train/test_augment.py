"""DiffAugment: shapes, determinism from the caller's generator, gradients, and what each policy does."""

from __future__ import annotations

import pytest
import torch

from neural_backend.train.augment import POLICIES, diff_augment


def _images(n: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand([n, 3, size, size], generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.parametrize("policy", [(p,) for p in POLICIES] + [POLICIES])
def test_shape_kept_same_state_same_output_and_gradients_reach_the_input(policy: tuple[str, ...]) -> None:
    images = _images()
    out_a = diff_augment(images, policy, torch.Generator().manual_seed(3))
    out_b = diff_augment(images, policy, torch.Generator().manual_seed(3))
    out_c = diff_augment(images, policy, torch.Generator().manual_seed(4))
    assert out_a.shape == images.shape and out_a.dtype == images.dtype
    assert torch.equal(out_a, out_b)
    assert not torch.equal(out_a, out_c)
    assert not torch.equal(out_a, images)

    leaf = images.clone().requires_grad_(True)
    diff_augment(leaf, policy, torch.Generator().manual_seed(3)).square().sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()
    assert (leaf.grad != 0).any()


def test_the_generator_advances_so_consecutive_calls_differ() -> None:
    images = _images()
    rng = torch.Generator().manual_seed(0)
    first = diff_augment(images, POLICIES, rng)
    second = diff_augment(images, POLICIES, rng)
    assert not torch.equal(first, second)


def test_no_policy_is_the_identity_and_unknown_policies_are_refused() -> None:
    images = _images()
    assert torch.equal(diff_augment(images, (), torch.Generator()), images)
    with pytest.raises(ValueError, match="unknown \\['zoom'\\]"):
        diff_augment(images, ("translation", "zoom"), torch.Generator())


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """out[y, x] = image[y + dy, x + dx], zero where that is outside the image."""
    _, h, w = image.shape
    out = torch.zeros_like(image)
    ys, xs = slice(max(0, -dy), min(h, h - dy)), slice(max(0, -dx), min(w, w - dx))
    out[:, ys, xs] = image[:, ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx]
    return out


def test_translation_shifts_the_content_by_at_most_an_eighth_with_a_zero_border() -> None:
    images = _images(n=16, size=16, seed=1)
    out = diff_augment(images, ("translation",), torch.Generator().manual_seed(7))
    shifts = []
    for image, result in zip(images, out, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(result, _shifted(image, dy, dx))
        ]
        assert len(matches) == 1, "each image is its input shifted by one (dy, dx) within +-16/8 pixels"
        shifts.append(matches[0])
    assert len(set(shifts)) > 3  # the shift is drawn per image
    assert any(shift != (0, 0) for shift in shifts)


def test_cutout_zeroes_one_block_of_up_to_half_the_size_and_keeps_the_rest() -> None:
    images = torch.ones([16, 3, 16, 16])
    out = diff_augment(images, ("cutout",), torch.Generator().manual_seed(5))
    for result in out:
        assert torch.equal(result[0], result[1]) and torch.equal(
            result[0], result[2]
        )  # same for every channel
        zero = result[0] == 0
        assert ((result[0] == 1) | zero).all()
        rows = zero.any(dim=1).nonzero().flatten()
        cols = zero.any(dim=0).nonzero().flatten()
        block = torch.zeros_like(zero)
        block[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
        assert torch.equal(zero, block), "the zeroed pixels form one axis-aligned rectangle"
        height, width = len(rows), len(cols)
        assert 4 <= height <= 8 and 4 <= width <= 8  # an 8x8 block, clipped at most to half at an edge
    assert (out == 0).sum(dim=[1, 2, 3]).max() == 3 * 8 * 8  # some block lies fully inside


def test_color_changes_brightness_saturation_and_contrast_per_image() -> None:
    images = _images(n=8)
    out = diff_augment(images, ("color",), torch.Generator().manual_seed(2))
    means_in, means_out = images.mean(dim=[1, 2, 3]), out.mean(dim=[1, 2, 3])
    offsets = means_out - means_in
    assert offsets.abs().max() <= 0.5 + 1e-5  # brightness offset is uniform in [-0.5, 0.5]
    assert offsets.std() > 0.01  # drawn per image
    # a grey image has no saturation to change; its pixels stay equal to each other
    grey = torch.full([2, 3, 8, 8], 0.25)
    grey_out = diff_augment(grey, ("color",), torch.Generator().manual_seed(2))
    assert torch.allclose(grey_out, grey_out[:, :1, :1, :1].expand_as(grey_out))
