"""StyleGAN2 discriminator with NVlabs stylegan2-ada-pytorch state names (``b{res}.*``, ``b4.*``).

Blocks run from the image resolution down to 8x8, each halving the resolution ('resnet': two 3x3 convs
plus a 1x1 skip, both scaled by sqrt(1/2); 'skip': the image is downsampled alongside and added through
``fromrgb`` in every block; 'orig': plain). The 4x4 epilogue appends the minibatch standard deviation,
convolves, and maps to one score per image (or, conditionally, projects onto the label's embedding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from .layers import DEFAULT_RESAMPLE_FILTER, Conv2dLayer, FullyConnectedLayer
from .mapping import MappingNetwork
from .ops import assert_shape, downsample2d, setup_filter
from .synthesis import fp16_start

ARCHITECTURES = ("orig", "skip", "resnet")


class DiscriminatorBlock(torch.nn.Module):
    """One resolution: [fromrgb] -> conv0 -> conv1 (2x down) [+ 1x1 skip]."""

    resample_filter: torch.Tensor  # buffer: FIR low-pass used to downsample

    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block (reads the image).
        tmp_channels: int,  # Number of channels of the intermediate layer.
        out_channels: int,  # Number of output channels.
        resolution: int,  # Resolution of this block's input.
        img_channels: int,  # Number of colour channels of the image.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet'.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # FIR low-pass for downsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
        use_fp16: bool = False,  # Run this block in float16 on CUDA devices.
    ):
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels: expected 0 or {tmp_channels}, got {in_channels}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture: expected one of {ARCHITECTURES}, got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        conv: dict[str, Any] = {
            "activation": "lrelu",
            "conv_clamp": conv_clamp,
            "resample_filter": resample_filter,
        }
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, **conv)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, **conv)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, **conv)
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2, resample_filter=resample_filter
            )

    def forward(
        self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features (N, C, R, R) or None, image (N, img_channels, R, R) or None) -> halved resolution."""
        device = (x if x is not None else img).device  # type: ignore[union-attr]
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            if img is None:
                raise ValueError(f"img: block b{self.resolution} reads the image, got None")
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution], "img")
            y = self.fromrgb(img.to(dtype))
            x = y if x is None else x + y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if x is None:
            raise ValueError(f"x: block b{self.resolution} needs the previous block's features, got None")
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(torch.nn.Module):
    """Appends the standard deviation across groups of ``group_size`` images as ``num_channels`` features."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C + num_channels, H, W); N must be a multiple of the group size."""
        n, c, h, w = x.shape
        group = n if self.group_size is None else min(self.group_size, n)
        channels = self.num_channels
        if n % group:
            raise ValueError(f"x: batch size {n} must be a multiple of the minibatch-std group size {group}")
        if c % channels:
            raise ValueError(f"x: {c} channels cannot be split into {channels} minibatch-std groups")
        y = x.reshape(group, -1, channels, c // channels, h, w)  # split N into groups, C into feature groups
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # variance over each group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # stddev, averaged over channels and pixels: (N/G, F)
        y = y.reshape(-1, channels, 1, 1).repeat(group, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4: [fromrgb] -> minibatch std -> 3x3 conv -> fc -> out (1 score, or cmap_dim projected on cmap)."""

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        cmap_dim: int,  # Dimensionality of the label embedding, 0 = unconditional.
        resolution: int,  # Resolution of this block (4).
        img_channels: int,  # Number of colour channels of the image.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet'.
        mbstd_group_size: int | None = 4,  # Group size for the minibatch std, None = whole batch.
        mbstd_num_channels: int = 1,  # Number of minibatch-std features, 0 = none.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation="lrelu")
        self.mbstd = (
            MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        )
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels,
            in_channels,
            kernel_size=3,
            activation="lrelu",
            conv_clamp=conv_clamp,
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        """features (N, C, 4, 4) -> scores (N, 1)."""
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "x")
        x = x.to(torch.float32)
        if self.architecture == "skip" and img is not None:
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            if cmap is None:
                raise ValueError(
                    "cmap: the discriminator is conditional; expected a label embedding, got None"
                )
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(torch.nn.Module):
    """NVlabs-compatible StyleGAN2 discriminator: image (N, C, R, R) [, c (N, c_dim)] -> scores (N, 1).

    The constructor arguments are kept in :attr:`init_kwargs` (plain JSON-able values) so that checkpoints
    can rebuild the same architecture.
    """

    def __init__(
        self,
        c_dim: int = 0,  # Conditioning label (C) dimensionality, 0 = unconditional.
        img_resolution: int = 1024,  # Input resolution (a power of two >= 4).
        img_channels: int = 3,  # Number of input colour channels.
        architecture: str = "resnet",  # 'orig', 'skip' or 'resnet' (config-f).
        channel_base: int = 32768,  # Channels at resolution r are min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum number of channels in any layer.
        num_fp16_res: int = 0,  # Run the highest this many resolutions in float16 on CUDA (NVlabs: 4).
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
        cmap_dim: int | None = None,  # Label embedding size, None = channels at 4x4.
        mapping_layers: int = 8,  # Fully connected layers of the label mapping (conditional only).
        mbstd_group_size: int | None = 4,  # Minibatch-std group size, None = whole batch.
        mbstd_num_channels: int = 1,  # Number of minibatch-std features, 0 = none.
    ):
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution: expected a power of two >= 8, got {img_resolution}")
        super().__init__()
        self.init_kwargs: dict[str, Any] = {
            "c_dim": c_dim,
            "img_resolution": img_resolution,
            "img_channels": img_channels,
            "architecture": architecture,
            "channel_base": channel_base,
            "channel_max": channel_max,
            "num_fp16_res": num_fp16_res,
            "conv_clamp": conv_clamp,
            "cmap_dim": cmap_dim,
            "mapping_layers": mapping_layers,
            "mbstd_group_size": mbstd_group_size,
            "mbstd_num_channels": mbstd_num_channels,
        }
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(img_resolution.bit_length() - 1, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in [*self.block_resolutions, 4]}
        fp16_resolution = fp16_start(img_resolution, num_fp16_res)
        cmap_dim = (channels[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < img_resolution else 0,
                channels[res],
                channels[res // 2],
                res,
                img_channels,
                architecture=architecture,
                conv_clamp=conv_clamp,
                use_fp16=res >= fp16_resolution,
            )
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(
                0, c_dim, cmap_dim, None, num_layers=mapping_layers, w_avg_beta=None
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4],
            cmap_dim,
            4,
            img_channels,
            architecture=architecture,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )

    def forward(
        self, img: torch.Tensor, c: torch.Tensor | None = None, force_fp32: bool = False
    ) -> torch.Tensor:
        """img (N, img_channels, R, R) in [-1, 1] [, c (N, c_dim)] -> realness scores (N, 1) float32."""
        res = self.img_resolution
        assert_shape(img, [None, self.img_channels, res, res], "img")
        x: torch.Tensor | None = None
        current: torch.Tensor | None = img
        for block_res in self.block_resolutions:
            x, current = getattr(self, f"b{block_res}")(x, current, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        assert x is not None  # img_resolution >= 8 guarantees at least one block
        return self.b4(x, current, cmap)

    def features(self, img: torch.Tensor, c: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The output ``x`` of every block, highest resolution first: ``forward`` up to the epilogue.

        Used as a perceptual feature extractor (``neural_backend.refine.losses``). Runs exactly the blocks
        that ``forward(img, c)`` runs, with the same precision (fp16 blocks stay fp16 on CUDA).

        Args:
            img: (N, img_channels, R, R) float in [-1, 1], R = ``img_resolution``.
            c: (N, c_dim) labels or None. Only the epilogue reads the label, so it is shape-checked (when
                the discriminator is conditional) and otherwise unused; accepted for symmetry with forward.

        Returns:
            One tensor per block, in ``block_resolutions`` order: (N, C_r, r / 2, r / 2) for block ``b{r}``.
            For 'skip' this is the feature map ``x``, not the downsampled image that travels alongside.
        """
        res = self.img_resolution
        assert_shape(img, [None, self.img_channels, res, res], "img")
        if c is not None and self.c_dim > 0:
            assert_shape(c, [img.shape[0], self.c_dim], "c")
        features: list[torch.Tensor] = []
        x: torch.Tensor | None = None
        current: torch.Tensor | None = img
        for block_res in self.block_resolutions:
            x, current = getattr(self, f"b{block_res}")(x, current)
            features.append(x)
        return features
