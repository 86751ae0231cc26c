"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) for GAN training on small face sets.

The same random transform family is applied to real and generated images before the discriminator sees
them, so the discriminator cannot memorise a small set and the generator never learns the augmentations.
Every random draw comes from the caller's ``torch.Generator`` so that a resumed run repeats them exactly.
"""

from __future__ import annotations

import torch

POLICIES = ("color", "translation", "cutout")


def diff_augment(images: torch.Tensor, policy: tuple[str, ...], rng: torch.Generator) -> torch.Tensor:
    """images (N, C, H, W) in [-1, 1] -> augmented images, same shape; differentiable in ``images``.

    Args:
        images: batch to augment.
        policy: any of ``POLICIES``, applied in that order.
        rng: CPU generator for all random draws.
    """
    unknown = sorted(set(policy) - set(POLICIES))
    if unknown:
        raise ValueError(f"augmentation policy: unknown {unknown}; known: {list(POLICIES)}")
    x = images
    if "color" in policy:
        x = _color(x, rng)
    if "translation" in policy:
        x = _translation(x, rng)
    if "cutout" in policy:
        x = _cutout(x, rng)
    return x


def _rand(shape: list[int], rng: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=rng).to(device=like.device, dtype=like.dtype)


def _color(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x + (_rand([n, 1, 1, 1], rng, x) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand([n, 1, 1, 1], rng, x) * 2) + mean  # saturation
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand([n, 1, 1, 1], rng, x) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sy, sy + 1, [n, 1, 1], generator=rng).to(x.device)
    tx = torch.randint(-sx, sx + 1, [n, 1, 1], generator=rng).to(x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy.unsqueeze(0) + ty + 1).clamp(0, h + 1)
    gx = (gx.unsqueeze(0) + tx + 1).clamp(0, w + 1)
    padded = torch.nn.functional.pad(x, [1, 1, 1, 1])  # zero border: pixels shifted in are black-grey
    index = (gy * (w + 2) + gx).reshape(n, 1, h * w).expand(-1, x.shape[1], -1)
    return padded.reshape(n, x.shape[1], -1).gather(2, index).reshape_as(x)


def _cutout(x: torch.Tensor, rng: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), [n, 1, 1], generator=rng).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), [n, 1, 1], generator=rng).to(x.device)
    gy = torch.arange(h, device=x.device).view(1, h, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = oy - ch // 2, ox - cw // 2
    inside = (gy >= top) & (gy < top + ch) & (gx >= left) & (gx < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)
