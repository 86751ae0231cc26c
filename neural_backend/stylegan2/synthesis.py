"""StyleGAN2 synthesis network, 'skip' architecture: per-resolution blocks whose RGB outputs are summed."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .layers import DEFAULT_RESAMPLE_FILTER, SynthesisLayer, ToRGBLayer
from .ops import assert_shape, setup_filter, upsample2d


class SynthesisBlock(torch.nn.Module):
    """One resolution: (const | 2x-upsampling conv0) -> conv1 -> toRGB added to the upsampled image."""

    resample_filter: torch.Tensor  # buffer: FIR low-pass used to upsample the previous block's image

    def __init__(
        self,
        in_channels: int,  # Number of input channels, 0 = first block (learned constant input).
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Resolution of this block.
        img_channels: int,  # Number of output colour channels.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # FIR low-pass for upsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
        use_fp16: bool = False,  # Run this block in float16 on CUDA devices.
    ):
        super().__init__()
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1
        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(
                in_channels,
                out_channels,
                w_dim,
                resolution,
                up=2,
                resample_filter=resample_filter,
                conv_clamp=conv_clamp,
            )
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "const",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        channels_last: bool | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ws (N, num_conv + num_torgb, w_dim) -> (features (N, C, R, R), image (N, img_channels, R, R)).

        The features are float16 when the block uses fp16 on a CUDA device (unless ``force_fp32``); the
        image is always float32.
        """
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim], "ws")
        n = ws.shape[0]
        dtype = (
            torch.float16 if self.use_fp16 and not force_fp32 and ws.device.type == "cuda" else torch.float32
        )
        on_cpu = ws.device.type == "cpu"
        if channels_last is None:
            channels_last = on_cpu or dtype == torch.float16
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if fused_modconv is None:
            # One grouped convolution with per-sample weights for single images; batches share one
            # convolution on CPU and in fp16, where grouped convolutions are slow (NVlabs: fp16 only).
            fused_modconv = not self.training and (n == 1 or (dtype == torch.float32 and not on_cpu))
        w_iter = iter(ws.unbind(dim=1))
        kwargs = {"noise_mode": noise_mode, "fused_modconv": fused_modconv}
        if self.in_channels == 0:
            x = self.const.to(dtype=dtype).unsqueeze(0).expand(n, -1, -1, -1)
            x = x.contiguous(memory_format=memory_format)
        else:
            half = self.resolution // 2
            if x is None:  # ValueError, as assert_shape raises for any other non-tensor
                raise ValueError(f"x: block b{self.resolution} needs the previous block's features, got None")
            assert_shape(x, [n, self.in_channels, half, half], "x")
            x = x.to(dtype=dtype, memory_format=memory_format)
            x = self.conv0(x, next(w_iter), **kwargs)
        x = self.conv1(x, next(w_iter), **kwargs)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
        y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        img = y if img is None else upsample2d(img, self.resample_filter).add_(y)
        return x, img


class SynthesisNetwork(torch.nn.Module):
    """Blocks ``b4`` .. ``b{img_resolution}``; consumes ws (N, num_ws, w_dim), returns (N, C, R, R)."""

    def __init__(
        self,
        w_dim: int,  # Intermediate latent (W) dimensionality.
        img_resolution: int,  # Output resolution (a power of two >= 4).
        img_channels: int,  # Number of output colour channels.
        channel_base: int = 32768,  # Channels at resolution r are min(channel_base // r, channel_max).
        channel_max: int = 512,  # Maximum number of channels in any layer.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
        num_fp16_res: int = 0,  # Run the highest this many resolutions in float16 on CUDA devices.
    ):
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution: expected a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(2, img_resolution.bit_length())]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = fp16_start(img_resolution, num_fp16_res)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(
                in_channels,
                channels[res],
                w_dim,
                res,
                img_channels,
                conv_clamp=conv_clamp,
                use_fp16=res >= fp16_resolution,
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last block's toRGB; earlier toRGBs share the next block's first latent

    def forward(
        self,
        ws: torch.Tensor,
        noise_mode: str = "const",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
        channels_last: bool | None = None,
    ) -> torch.Tensor:
        """ws (N, num_ws, w_dim) -> image (N, img_channels, R, R) float32, nominally in [-1, 1].

        Args:
            noise_mode: 'const' (the stored noise, deterministic), 'random' or 'none'.
            fused_modconv: see :func:`~neural_backend.stylegan2.ops.modulated_conv2d`; same result. None =
                the faster one for the device and batch (fused for single images in inference).
            force_fp32: keep the fp16 blocks in float32 (fp16 is only ever used on CUDA devices).
            channels_last: run the convolutions on channels-last tensors; same result. None = on the CPU
                (measured ~20% faster at 256x256) and for fp16 blocks.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], "ws")
        ws = ws.to(torch.float32)
        x: torch.Tensor | None = None
        img: torch.Tensor | None = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(
                x,
                img,
                block_ws,
                noise_mode=noise_mode,
                fused_modconv=fused_modconv,
                force_fp32=force_fp32,
                channels_last=channels_last,
            )
            w_idx += block.num_conv
        if img is None:  # unreachable: img_resolution >= 4 guarantees at least the 4x4 block
            raise RuntimeError("synthesis network has no blocks")
        return img


def fp16_start(img_resolution: int, num_fp16_res: int) -> int:
    """Lowest resolution that runs in fp16 when the highest ``num_fp16_res`` resolutions do (NVlabs rule)."""
    return max(2 ** (img_resolution.bit_length() - num_fp16_res), 8)
