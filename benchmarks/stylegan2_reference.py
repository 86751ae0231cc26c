"""Independent reference forward pass of the StyleGAN2 config-f generator ('skip' toRGB architecture).

Written from the StyleGAN2 / stylegan2-ada-pytorch maths as plain functions over an NVlabs-named state dict
(``mapping.fc0.weight``, ``synthesis.b8.conv0.affine.bias``, ...), deliberately without importing anything
from ``neural_backend``, so that the benchmark and the parity tests compare our generator with a second,
separately written formulation rather than with itself.

It is the straightforward formulation, not a fast one: for every sample the convolution weight is
modulated by that sample's styles and demodulated, and all samples run as one grouped convolution. The
2x upsampling convolution is done as in NVlabs' reference path: a stride-2 transposed convolution followed
by the 4x4 FIR low-pass (gain 4); the toRGB image is upsampled by inserting zeros, padding and filtering
with the same FIR (gain 4). Everything is NCHW float32.

Conventions (NVlabs): equalised learning rate (a dense weight is stored as ``randn / lr_multiplier`` and
used times ``lr_multiplier / sqrt(fan_in)``, its bias times ``lr_multiplier``); the mapping network's
``lr_multiplier`` is 0.01; leaky ReLU slope 0.2 with gain sqrt(2); ``conv_clamp`` clamps after the
activation gain, i.e. to +-conv_clamp * sqrt(2) in the synthesis layers and +-conv_clamp at toRGB.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
StateDict = Mapping[str, Tensor]

MAPPING_LR_MULTIPLIER = 0.01  # NVlabs mapping_kwargs default
LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)
DEMOD_EPS = 1e-8
NORMALIZE_EPS = 1e-8
DEFAULT_FIR_TAPS = (1.0, 3.0, 3.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Small building blocks.


def _normalize_2nd_moment(x: Tensor) -> Tensor:
    """Divide each row of (N, F) by its root mean square (so the mean of squares becomes 1)."""
    return x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + NORMALIZE_EPS)


def _dense(x: Tensor, weight: Tensor, bias: Tensor, lr_multiplier: float = 1.0) -> Tensor:
    """Equalised-learning-rate dense layer without activation: x W^T * lr/sqrt(fan_in) + b * lr."""
    fan_in = weight.shape[1]
    scaled_weight = weight * (lr_multiplier / math.sqrt(fan_in))
    return x @ scaled_weight.t() + bias * lr_multiplier


def _lrelu(x: Tensor) -> Tensor:
    """Leaky ReLU (slope 0.2) times sqrt(2), which keeps unit-variance input at roughly unit variance."""
    return torch.where(x >= 0, x, x * LRELU_SLOPE) * LRELU_GAIN


def _fir_filter(x: Tensor, fir: Tensor, pad: tuple[int, int, int, int], gain: float) -> Tensor:
    """Pad (left, right, top, bottom; all >= 0) and apply the 2-D FIR ``fir * gain`` to every channel.

    This is a true convolution (the kernel is mirrored before the cross-correlation that ``conv2d``
    computes), over the 'valid' region of the padded image.
    """
    channels = x.shape[1]
    x = F.pad(x, list(pad))
    kernel = (fir * gain).flip([0, 1]).to(x.dtype)
    kernel = kernel.reshape(1, 1, *fir.shape).expand(channels, 1, *fir.shape)
    return F.conv2d(x, kernel, groups=channels)


def _upsample_image(img: Tensor, fir: Tensor) -> Tensor:
    """2x upsampling of the running RGB image: insert zeros, pad, FIR low-pass with gain 4.

    After zero insertion the image has a quarter of its samples; gain 4 (2 per axis) restores the level.
    A K-tap filter needs K - 1 extra samples; with up = 2 they are split as (K + 1) // 2 before and
    (K - 2) // 2 after, which centres the filter on the original samples (2 and 1 for K = 4).
    """
    n, c, h, w = img.shape
    stuffed = img.new_zeros(n, c, 2 * h, 2 * w)
    stuffed[:, :, ::2, ::2] = img
    taps_y, taps_x = fir.shape
    pad = ((taps_x + 1) // 2, (taps_x - 2) // 2, (taps_y + 1) // 2, (taps_y - 2) // 2)
    return _fir_filter(stuffed, fir, pad, gain=4.0)


def _per_sample_weights(weight: Tensor, styles: Tensor, demodulate: bool) -> Tensor:
    """Modulate (O, I, k, k) by styles (N, I) into (N, O, I, k, k), optionally demodulated per sample.

    Demodulation divides every output filter by its L2 norm (plus a tiny epsilon), so the output of a
    unit-variance input keeps unit variance whatever the styles are.
    """
    modulated = weight.unsqueeze(0) * styles[:, None, :, None, None]
    if demodulate:
        norms = torch.sqrt(modulated.pow(2).sum(dim=(2, 3, 4), keepdim=True) + DEMOD_EPS)
        modulated = modulated / norms
    return modulated


def _grouped_conv_same(x: Tensor, weights: Tensor) -> Tensor:
    """Cross-correlate each sample of x (N, I, H, W) with its own (O, I, k, k) kernel; 'same' padding."""
    n, out_ch, in_ch, k, _ = weights.shape
    h, w = x.shape[2:]
    y = F.conv2d(
        x.reshape(1, n * in_ch, h, w), weights.reshape(n * out_ch, in_ch, k, k), padding=k // 2, groups=n
    )
    return y.reshape(n, out_ch, h, w)


def _grouped_conv_up2(x: Tensor, weights: Tensor, fir: Tensor) -> Tensor:
    """2x upsampling convolution of each sample with its own kernel, as NVlabs' reference path does it.

    Upsampling layers use true convolution (NVlabs ``flip_weight=False``), which is what a transposed
    convolution computes with an unmirrored kernel. The ideal result is: insert zeros (2H samples), FIR
    low-pass with gain 4 and the k x k convolution, both 'same'. The stride-2 transposed convolution does
    the zero insertion and the k x k convolution in one go, producing 2H + k - 2 samples that already
    cover k - 1 of the padding before and k - 2 after (its zero-stuffed input lacks the trailing zero).
    What is left for the FIR: the filter's own split ((K + 1) // 2, (K - 2) // 2) plus the layer's
    k // 2, minus what the transposed convolution covered. For k = 3 and K = 4 that is 1 on each side.
    """
    n, out_ch, in_ch, k, _ = weights.shape
    h, w = x.shape[2:]
    # A transposed convolution takes (in, out / groups, k, k) weights: swap O and I within each sample.
    transposed = weights.transpose(1, 2).reshape(n * in_ch, out_ch, k, k)
    y = F.conv_transpose2d(x.reshape(1, n * in_ch, h, w), transposed, stride=2, groups=n)
    y = y.reshape(n, out_ch, *y.shape[2:])
    taps_y, taps_x = fir.shape
    pad_x = ((taps_x + 1) // 2 + k // 2 - (k - 1), (taps_x - 2) // 2 + k // 2 - (k - 2))
    pad_y = ((taps_y + 1) // 2 + k // 2 - (k - 1), (taps_y - 2) // 2 + k // 2 - (k - 2))
    if min(pad_x + pad_y) < 0:
        raise ValueError(f"reference: unsupported kernel {k} / filter {fir.shape} combination")
    return _fir_filter(y, fir, (*pad_x, *pad_y), gain=4.0)


def _fir_from_state(state: StateDict, key: str) -> Tensor:
    """The block's stored FIR buffer (NVlabs keeps it in the checkpoint); [1, 3, 3, 1] if absent."""
    if key in state:
        return state[key].to(torch.float32)
    taps = torch.tensor(DEFAULT_FIR_TAPS)
    fir = torch.outer(taps, taps)
    return fir / fir.sum()


# ----------------------------------------------------------------------------------------------------------
# Layers.


def _synthesis_layer(
    state: StateDict,
    prefix: str,
    x: Tensor,
    w: Tensor,
    up: int,
    conv_clamp: float | None,
    noise_mode: str,
) -> Tensor:
    """Modulated, demodulated k x k conv (optionally 2x up) + scaled noise + bias, lrelu, clamp."""
    styles = _dense(w, state[f"{prefix}.affine.weight"], state[f"{prefix}.affine.bias"])
    weights = _per_sample_weights(state[f"{prefix}.weight"], styles, demodulate=True)
    if up == 1:
        y = _grouped_conv_same(x, weights)
    else:
        y = _grouped_conv_up2(x, weights, _fir_from_state(state, f"{prefix}.resample_filter"))
    strength_key = f"{prefix}.noise_strength"
    if strength_key in state and noise_mode != "none":
        if noise_mode == "const":
            noise = state[f"{prefix}.noise_const"]
        else:
            noise = torch.randn(y.shape[0], 1, *y.shape[2:], dtype=y.dtype, device=y.device)
        y = y + noise * state[strength_key]
    y = _lrelu(y + state[f"{prefix}.bias"].reshape(1, -1, 1, 1))
    if conv_clamp is not None:
        limit = conv_clamp * LRELU_GAIN
        y = y.clamp(-limit, limit)
    return y


def _torgb_layer(state: StateDict, prefix: str, x: Tensor, w: Tensor, conv_clamp: float | None) -> Tensor:
    """Modulated 1x1 conv without demodulation (styles scaled by 1/sqrt(fan_in)) + bias, linear, clamp."""
    weight = state[f"{prefix}.weight"]
    fan_in = weight.shape[1] * weight.shape[2] * weight.shape[3]
    styles = _dense(w, state[f"{prefix}.affine.weight"], state[f"{prefix}.affine.bias"]) / math.sqrt(fan_in)
    y = _grouped_conv_same(x, _per_sample_weights(weight, styles, demodulate=False))
    y = y + state[f"{prefix}.bias"].reshape(1, -1, 1, 1)
    if conv_clamp is not None:
        y = y.clamp(-conv_clamp, conv_clamp)
    return y


# ----------------------------------------------------------------------------------------------------------
# Networks.


def block_resolutions(config: Mapping[str, Any]) -> list[int]:
    """4, 8, ..., img_resolution."""
    resolution = int(config["img_resolution"])
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"img_resolution: expected a power of two >= 4, got {resolution}")
    return [2**i for i in range(2, resolution.bit_length())]


def num_ws(config: Mapping[str, Any]) -> int:
    """Latents consumed by synthesis: one per conv layer (1 at 4x4, 2 per later block) + the last toRGB."""
    return 2 * len(block_resolutions(config))


def reference_mapping(
    state: StateDict,
    config: Mapping[str, Any],
    z: Tensor,
    c: Tensor | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
) -> Tensor:
    """z (N, z_dim) [, c (N, c_dim)] -> ws (N, num_ws, w_dim), truncated toward ``mapping.w_avg``.

    z is normalised to unit second moment; a conditional network embeds c (plain dense layer),
    normalises that too and appends it. Then ``mapping_layers`` dense lrelu layers with lr multiplier
    0.01. The result is repeated for every synthesis latent; truncation replaces w by
    w_avg + psi * (w - w_avg) in the first ``truncation_cutoff`` latents (all when None).
    """
    x = _normalize_2nd_moment(z.to(torch.float32))
    if int(config.get("c_dim", 0)) > 0:
        if c is None:
            raise ValueError("c: the generator is conditional but no label was given")
        embedded = _dense(c.to(torch.float32), state["mapping.embed.weight"], state["mapping.embed.bias"])
        x = torch.cat([x, _normalize_2nd_moment(embedded)], dim=1)
    for idx in range(int(config.get("mapping_layers", 8))):
        weight, bias = state[f"mapping.fc{idx}.weight"], state[f"mapping.fc{idx}.bias"]
        x = _lrelu(_dense(x, weight, bias, MAPPING_LR_MULTIPLIER))
    ws = x.unsqueeze(1).repeat(1, num_ws(config), 1)
    if truncation_psi != 1:
        cutoff = ws.shape[1] if truncation_cutoff is None else truncation_cutoff
        w_avg = state["mapping.w_avg"].to(torch.float32)
        ws[:, :cutoff] = w_avg + truncation_psi * (ws[:, :cutoff] - w_avg)
    return ws


def reference_synthesis(
    state: StateDict, config: Mapping[str, Any], ws: Tensor, noise_mode: str = "const"
) -> Tensor:
    """ws (N, num_ws, w_dim) -> image (N, img_channels, R, R) with the 'skip' architecture.

    Block 4x4 starts from the learned constant and has one conv; every later block has an upsampling
    conv0 and a conv1. Latent i drives the i-th conv layer in order; each block's toRGB uses the latent
    after its last conv (the one the next block's conv0 also uses). The image is the sum of all toRGB
    outputs, each earlier partial image upsampled 2x by the FIR before the next block's RGB is added.
    """
    if noise_mode not in ("const", "random", "none"):
        raise ValueError(f"noise_mode: expected 'const', 'random' or 'none', got {noise_mode!r}")
    expected = num_ws(config)
    if ws.ndim != 3 or ws.shape[1] != expected:
        raise ValueError(f"ws: expected shape [N, {expected}, w_dim], got {list(ws.shape)}")
    ws = ws.to(torch.float32)
    conv_clamp = config.get("conv_clamp")
    x: Tensor | None = None
    img: Tensor | None = None
    latent = 0  # index of the latent that the next conv layer consumes
    for res in block_resolutions(config):
        block = f"synthesis.b{res}"
        if x is None:
            const = state[f"{block}.const"]
            x = const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = _synthesis_layer(state, f"{block}.conv0", x, ws[:, latent], 2, conv_clamp, noise_mode)
            latent += 1
        x = _synthesis_layer(state, f"{block}.conv1", x, ws[:, latent], 1, conv_clamp, noise_mode)
        latent += 1
        rgb = _torgb_layer(state, f"{block}.torgb", x, ws[:, latent], conv_clamp)
        if img is None:
            img = rgb
        else:
            img = _upsample_image(img, _fir_from_state(state, f"{block}.resample_filter")) + rgb
    assert img is not None  # block_resolutions always contains 4
    return img


def reference_generate(
    state: StateDict,
    config: Mapping[str, Any],
    z: Tensor,
    truncation_psi: float = 1.0,
    noise_mode: str = "const",
    *,
    c: Tensor | None = None,
    truncation_cutoff: int | None = None,
) -> Tensor:
    """Mapping then synthesis: z (N, z_dim) -> image (N, img_channels, R, R)."""
    ws = reference_mapping(state, config, z, c, truncation_psi, truncation_cutoff)
    return reference_synthesis(state, config, ws, noise_mode)
