"""StyleGAN2 layers with NVlabs parameter and buffer names (``weight``, ``bias``, ``affine.*``, ``noise_*``).

Equalised learning rate: weights are stored with unit-variance initialisation and scaled by their gain at
run time, exactly as NVlabs stores them, so an NVlabs state dict loads unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .ops import (
    ACTIVATION_GAINS,
    assert_shape,
    bias_act,
    can_overwrite,
    conv2d_resample,
    modulated_conv2d,
    setup_filter,
)

NOISE_MODES = ("random", "const", "none")
DEFAULT_RESAMPLE_FILTER = (1, 3, 3, 1)


class FullyConnectedLayer(torch.nn.Module):
    """Dense layer with equalised learning rate; ``weight`` is stored divided by ``lr_multiplier``."""

    def __init__(
        self,
        in_features: int,  # Number of input features.
        out_features: int,  # Number of output features.
        activation: str = "linear",  # Activation function: 'linear' or 'lrelu'.
        lr_multiplier: float = 1.0,  # Learning-rate multiplier (0.01 in the mapping network).
        bias_init: float = 0.0,  # Initial value of the bias (1 for style affines, so styles start near 1).
    ):
        super().__init__()
        self.in_features = in_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = torch.nn.Parameter(torch.full([out_features], float(bias_init)))
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_features) -> (N, out_features)."""
        assert_shape(x, [None, self.in_features], "x")
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class SynthesisLayer(torch.nn.Module):
    """Modulated, demodulated 3x3 convolution (optionally 2x upsampling) + noise + bias + lrelu."""

    resample_filter: torch.Tensor  # buffer: FIR low-pass used when upsampling
    noise_const: torch.Tensor  # buffer (only with use_noise): the fixed noise image for noise_mode='const'

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        resolution: int,  # Output resolution of this layer.
        kernel_size: int = 3,  # Convolution kernel size.
        up: int = 1,  # Integer upsampling factor (1 or 2).
        use_noise: bool = True,  # Enable the per-pixel noise input?
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # FIR low-pass used when upsampling.
        conv_clamp: float | None = None,  # Clamp conv outputs to +-X; None = no clamping.
    ):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True
    ) -> torch.Tensor:
        """(N, in_channels, R/up, R/up), w (N, w_dim) -> (N, out_channels, R, R)."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {NOISE_MODES}, got {noise_mode!r}")
        in_res = self.resolution // self.up
        assert_shape(x, [None, self.in_channels, in_res, in_res], "x")
        styles = self.affine(w)
        # lrelu(y) * gain == lrelu(y * gain) for gain > 0: the activation gain is folded into the
        # demodulation coefficients, the noise and the bias, which saves a pass over the output.
        gain = ACTIVATION_GAINS["lrelu"]
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(shape, device=x.device, dtype=torch.float32) * (self.noise_strength * gain)
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * (self.noise_strength * gain)
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=self.padding,
            resample_filter=self.resample_filter,
            flip_weight=self.up == 1,  # NVlabs: correlation when up == 1, true convolution when upsampling
            fused_modconv=fused_modconv,
            gain=gain,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        bias = self.bias.to(x.dtype) * gain
        return bias_act(x, bias, act="lrelu", gain=1.0, clamp=clamp, inplace=can_overwrite(x))


class ToRGBLayer(torch.nn.Module):
    """Modulated 1x1 convolution to RGB without demodulation; the weight gain is folded into the styles."""

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output (colour) channels.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        kernel_size: int = 1,  # Convolution kernel size.
        conv_clamp: float | None = None,  # Clamp outputs to +-X; None = no clamping.
    ):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        """(N, in_channels, R, R), w (N, w_dim) -> (N, out_channels, R, R)."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, inplace=can_overwrite(x))


class Conv2dLayer(torch.nn.Module):
    """Plain convolution with equalised learning rate, optional FIR down-/upsampling, bias and activation
    (the discriminator's layer; NVlabs ``Conv2dLayer``)."""

    resample_filter: torch.Tensor  # buffer: FIR low-pass used when resampling (kept even when unused)

    def __init__(
        self,
        in_channels: int,  # Number of input channels.
        out_channels: int,  # Number of output channels.
        kernel_size: int,  # Convolution kernel size.
        bias: bool = True,  # Add a learned per-channel bias?
        activation: str = "linear",  # Activation function: 'linear' or 'lrelu'.
        up: int = 1,  # Integer upsampling factor.
        down: int = 1,  # Integer downsampling factor.
        resample_filter: Sequence[float] = DEFAULT_RESAMPLE_FILTER,  # FIR low-pass for resampling.
        conv_clamp: float | None = None,  # Clamp outputs to +-X; None = no clamping.
    ):
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = ACTIVATION_GAINS[activation]
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, out_channels, H * up / down, W * up / down)."""
        w = self.weight.to(x.dtype) * self.weight_gain
        x = conv2d_resample(
            x,
            w,
            f=self.resample_filter,
            up=self.up,
            down=self.down,
            padding=self.padding,
            flip_weight=self.up == 1,  # NVlabs: correlation unless upsampling
        )
        act_gain = self.act_gain * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, bias, act=self.activation, gain=act_gain, clamp=clamp)
