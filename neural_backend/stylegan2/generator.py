"""StyleGAN2 generator (config-f: skip toRGB, no resnet) with NVlabs stylegan2-ada-pytorch state names."""

from __future__ import annotations

from typing import Any

import torch

from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork


class Generator(torch.nn.Module):
    """``mapping`` (Z -> W+) followed by ``synthesis`` (W+ -> image).

    The constructor arguments are kept in :attr:`init_kwargs` (plain JSON-able values) so that checkpoints
    can rebuild the same architecture.
    """

    def __init__(
        self,
        z_dim: int = 512,  # Input latent (Z) dimensionality.
        c_dim: int = 0,  # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int = 512,  # Intermediate latent (W) dimensionality.
        img_resolution: int = 1024,  # Output resolution (a power of two >= 4).
        img_channels: int = 3,  # Number of output colour channels.
        mapping_layers: int = 8,  # Number of fully connected layers in the mapping network.
        channel_base: int = 32768,  # Channels at resolution r are min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum number of channels in any synthesis layer.
        conv_clamp: float | None = None,  # Clamp synthesis conv outputs to +-X (NVlabs FFHQ uses 256).
        num_fp16_res: int = 0,  # Run the highest this many resolutions in float16 on CUDA (NVlabs: 4).
    ):
        super().__init__()
        self.init_kwargs: dict[str, Any] = {
            "z_dim": z_dim,
            "c_dim": c_dim,
            "w_dim": w_dim,
            "img_resolution": img_resolution,
            "img_channels": img_channels,
            "mapping_layers": mapping_layers,
            "channel_base": channel_base,
            "channel_max": channel_max,
            "conv_clamp": conv_clamp,
            "num_fp16_res": num_fp16_res,
        }
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim,
            img_resolution,
            img_channels,
            channel_base=channel_base,
            channel_max=channel_max,
            conv_clamp=conv_clamp,
            num_fp16_res=num_fp16_res,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, num_layers=mapping_layers)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "const",
        **synthesis_kwargs: Any,
    ) -> torch.Tensor:
        """z (N, z_dim) [, c (N, c_dim)] -> image (N, img_channels, R, R) float32, nominally in [-1, 1].

        ``synthesis_kwargs`` go to :meth:`SynthesisNetwork.forward` (``fused_modconv``, ``force_fp32``,
        ``channels_last``).
        """
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


def estimate_w_avg(generator: Generator, samples: int, seed: int) -> torch.Tensor:
    """Mean W of ``samples`` random z from a private seeded RNG (the global torch RNG is untouched).

    What training tracks as ``mapping.w_avg``; used where a checkpoint lacks it or nothing was trained.
    """
    rng = torch.Generator().manual_seed(seed)
    device = generator.mapping.w_avg.device
    total = torch.zeros(generator.w_dim, dtype=torch.float64, device=device)
    with torch.no_grad():
        for start in range(0, samples, 2500):
            z = torch.randn([min(2500, samples - start), generator.z_dim], generator=rng).to(device)
            total += generator.mapping(z)[:, 0].double().sum(dim=0)
    return (total / samples).float()
