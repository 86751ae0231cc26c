"""Image-set metrics that need no downloaded network: paired PSNR and sliced Wasserstein distance.

The sliced Wasserstein distance (SWD) follows Karras et al. 2018 (Progressive GAN, appendix D): 7x7
neighbourhoods sampled from each level of a Laplacian pyramid, normalised per channel, compared as
distributions through random 1-D projections. Lower is closer; reported x1e3 per level and averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_BINOMIAL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def paired_psnr(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (N, C, H, W) images in [-1, 1] against targets of the same shape (peak 1)."""
    if images.shape != targets.shape:
        raise ValueError(f"paired_psnr: shapes differ, {list(images.shape)} vs {list(targets.shape)}")
    mse = ((images.clamp(-1, 1) - targets.clamp(-1, 1)) / 2).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def _blur(x: torch.Tensor) -> torch.Tensor:
    kernel = (_BINOMIAL[:, None] * _BINOMIAL[None, :]).to(x)
    kernel = kernel.expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), kernel, groups=x.shape[1])


def laplacian_pyramid(images: torch.Tensor, min_size: int = 16) -> list[torch.Tensor]:
    """Levels from full resolution down to ``min_size``; the last level is the low-pass residual."""
    levels = []
    current = images
    while current.shape[-1] > min_size:
        low = _blur(current)[..., ::2, ::2]
        up = F.interpolate(low, scale_factor=2, mode="nearest")
        levels.append(current - _blur(up))
        current = low
    levels.append(current)
    return levels


def _descriptors(level: torch.Tensor, per_image: int, rng: torch.Generator) -> torch.Tensor:
    patches = F.unfold(level, kernel_size=7)  # (N, C*49, L)
    n, dims, count = patches.shape
    index = torch.randint(0, count, [n, per_image], generator=rng)
    picked = patches.gather(2, index[:, None, :].expand(n, dims, per_image))
    return picked.permute(0, 2, 1).reshape(n * per_image, dims)


def _normalise(descriptors: torch.Tensor, channels: int) -> torch.Tensor:
    d = descriptors.view(descriptors.shape[0], channels, -1)
    d = (d - d.mean(dim=(0, 2), keepdim=True)) / d.std(dim=(0, 2), keepdim=True).clamp(min=1e-8)
    return d.reshape(descriptors.shape[0], -1)


def sliced_wasserstein(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    seed: int = 0,
    per_image: int = 128,
    directions: int = 512,
    repeats: int = 4,
) -> list[float]:
    """SWD x1e3 between two sets of (N, 3, R, R) images in [-1, 1], one value per pyramid level (fine first).

    Same N on both sides. Deterministic for a given ``seed``.
    """
    if images_a.shape != images_b.shape:
        raise ValueError(
            f"sliced_wasserstein: shapes differ, {list(images_a.shape)} vs {list(images_b.shape)}"
        )
    rng = torch.Generator().manual_seed(seed)
    pyramid_a = laplacian_pyramid(images_a.float().cpu())
    pyramid_b = laplacian_pyramid(images_b.float().cpu())
    channels = images_a.shape[1]
    results = []
    for level_a, level_b in zip(pyramid_a, pyramid_b, strict=True):
        desc_a = _normalise(_descriptors(level_a, per_image, rng), channels)
        desc_b = _normalise(_descriptors(level_b, per_image, rng), channels)
        total = 0.0
        for _ in range(repeats):
            dirs = torch.randn([desc_a.shape[1], directions], generator=rng)
            dirs = dirs / dirs.norm(dim=0, keepdim=True)
            proj_a = (desc_a @ dirs).sort(dim=0).values
            proj_b = (desc_b @ dirs).sort(dim=0).values
            total += (proj_a - proj_b).abs().mean().item()
        results.append(total / repeats * 1e3)
    return results
