"""Pure-PyTorch StyleGAN2 operations, written to follow NVlabs ``torch_utils`` semantics.

Each function is the reference (non-CUDA) formulation of the NVlabs op of the same name, so a later parity
test can compare them one by one: ``upfirdn2d`` pads, zero-inserts and convolves with a normalised FIR
filter; ``conv2d_resample`` upsamples by a strided transposed convolution followed by the FIR filter;
``modulated_conv2d`` modulates, convolves and demodulates. Downsampling (the discriminator's) low-passes
first and then convolves with a stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

LRELU_ALPHA = 0.2
# Gain that keeps the activation variance of unit-variance input roughly unchanged (NVlabs ``def_gain``).
ACTIVATION_GAINS = {"linear": 1.0, "lrelu": math.sqrt(2.0)}


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``tensor.shape`` matches ``shape`` (None = any size)."""
    if not isinstance(tensor, torch.Tensor):
        kind = type(tensor).__name__
        raise ValueError(f"{name}: expected a tensor of shape {_shape_text(shape)}, got {kind}")
    actual = list(tensor.shape)
    if len(actual) != len(shape) or any(e is not None and e != a for e, a in zip(shape, actual, strict=True)):
        raise ValueError(f"{name}: expected shape {_shape_text(shape)}, got {actual}")


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` so that its mean square along ``dim`` is 1."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float | None = None,
    clamp: float | None = None,
    inplace: bool = False,
) -> torch.Tensor:
    """Add a per-channel bias (channels on dim 1), apply ``act``, scale by ``gain``, clamp to +-``clamp``.

    Args:
        x: (N, C, ...) float.
        b: (C,) float or None.
        act: ``'linear'`` or ``'lrelu'`` (slope 0.2).
        gain: output scale; None = the activation's default gain (1 or sqrt(2)).
        clamp: clamp the output to [-clamp, clamp]; None = no clamping.
        inplace: overwrite ``x`` (a caller's intermediate that needs no gradient): same values, no new
            allocations, which matters for the large activations of the highest resolutions.
    """
    if act not in ACTIVATION_GAINS:
        raise ValueError(f"act: expected one of {sorted(ACTIVATION_GAINS)}, got {act!r}")
    if inplace and torch.is_grad_enabled() and x.requires_grad:
        raise ValueError("inplace: x requires grad; in-place activation would break its backward pass")
    gain = ACTIVATION_GAINS[act] if gain is None else gain
    clamping = clamp is not None and clamp >= 0
    if inplace:
        if b is not None:
            x.add_(b.reshape([1, -1] + [1] * (x.ndim - 2)))
        if act == "lrelu":
            F.leaky_relu_(x, LRELU_ALPHA)
        if gain != 1:
            x.mul_(gain)
        return x.clamp_(-clamp, clamp) if clamping else x  # type: ignore[operator]
    if b is not None:
        x = x + b.reshape([1, -1] + [1] * (x.ndim - 2))
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_ALPHA)
    if gain != 1:
        x = x * gain
    return x.clamp(-clamp, clamp) if clamping else x  # type: ignore[operator]


def can_overwrite(x: torch.Tensor) -> bool:
    """True when intermediates derived from ``x`` need no gradient, so ops may work in place."""
    return not (torch.is_grad_enabled() and x.requires_grad)


def setup_filter(taps: Sequence[float], normalize: bool = True) -> torch.Tensor:
    """Outer product of a 1-D FIR kernel with itself, normalised to sum 1: (K, K) float32."""
    f = torch.as_tensor(list(taps), dtype=torch.float32)
    f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: Sequence[int] = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-insert upsample by ``up``, pad by (x0, x1, y0, y1) (negative crops), filter with ``f``, keep every
    ``down``-th sample.

    Args:
        x: (N, C, H, W) float.
        f: (kh, kw) FIR filter (see :func:`setup_filter`).
        gain: overall signal gain; the filter is scaled by ``gain ** (f.ndim / 2)`` per axis pair.

    Returns:
        (N, C, (H * up + y0 + y1 - kh) // down + 1, (W * up + x0 + x1 - kw) // down + 1) float.
    """
    assert_shape(x, [None, None, None, None], "x")
    n, c, h, w = x.shape
    px0, px1, py0, py1 = padding
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    conv_padding = [0, 0]
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        conv_padding = [py0, px0]  # the convolution pads itself: saves a copy of x
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
    f = f.to(x.dtype) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # conv2d correlates; flipping makes it a true convolution
    f = f[None, None].repeat(c, 1, 1, 1)
    # A strided depthwise convolution filters only the samples that are kept.
    return F.conv2d(x, f, groups=c, stride=down, padding=conv_padding)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample (N, C, H, W) by ``up`` with FIR filter ``f``, keeping the signal level: (N, C, H*up, W*up)."""
    fh, fw = f.shape
    padding = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def downsample2d(
    x: torch.Tensor,
    f: torch.Tensor,
    down: int = 2,
    padding: int = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> torch.Tensor:
    """Low-pass with FIR filter ``f`` and keep every ``down``-th sample: (N, C, H/down, W/down)."""
    fh, fw = f.shape
    pads = (
        padding + (fw - down + 1) // 2,
        padding + (fw - down) // 2,
        padding + (fh - down + 1) // 2,
        padding + (fh - down) // 2,
    )
    return upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> torch.Tensor:
    """2-D convolution with FIR up- or downsampling, as NVlabs ``conv2d_resample``.

    Args:
        x: (N, groups * I, H, W) float.
        w: (groups * O, I, kh, kw) float.
        f: FIR filter for resampling; required when ``up > 1`` or ``down > 1``.
        up: integer upsampling factor.
        down: integer downsampling factor.
        padding: padding with respect to the resampled image.
        flip_weight: True = correlation (like ``F.conv2d``), False = convolution.

    Returns:
        (N, groups * O, H * up / down, W * up / down) for a 'same' padding.
    """
    out_channels, in_per_group, kh, kw = w.shape
    if up == 1 and down == 1:
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=padding, groups=groups)
    if f is None:
        raise ValueError("f: an FIR filter is required when up > 1 or down > 1")
    if up > 1 and down > 1:
        raise ValueError(f"up={up}, down={down}: resampling in both directions at once is not supported")
    fh, fw = f.shape
    if down > 1:
        px0 = padding + (fw - down + 1) // 2
        px1 = padding + (fw - down) // 2
        py0 = padding + (fh - down + 1) // 2
        py1 = padding + (fh - down) // 2
        if kh == 1 and kw == 1:  # 1x1: subsample first, then the (cheaper) convolution
            x = upfirdn2d(x, f, down=down, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
            return F.conv2d(x, w, groups=groups)
        # Low-pass at full resolution, then a strided convolution keeps every down-th output.
        x = upfirdn2d(x, f, padding=(px0, px1, py0, py1), flip_filter=flip_filter)
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), stride=down, groups=groups)
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    # A transposed convolution wants (in, out / groups) weights; regroup per group before swapping.
    w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
    if flip_weight:  # the transposed convolution already flips; undo it to keep correlation semantics
        w = w.flip([2, 3])
    x = F.conv_transpose2d(x, w, stride=up, padding=[pyt, pxt], groups=groups)
    padding4 = (px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt)
    return upfirdn2d(x, f, padding=padding4, gain=up * up, flip_filter=flip_filter)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
    gain: float = 1.0,
) -> torch.Tensor:
    """StyleGAN2 modulated convolution: ``gain * modconv(x) + noise``.

    Args:
        x: (N, I, H, W) float activations.
        weight: (O, I, kh, kw) float, unscaled (demodulation makes the weight gain irrelevant).
        styles: (N, I) float per-sample input-channel scales.
        noise: broadcastable to (N, O, H*up, W*up), added after demodulation; or None.
        fused_modconv: True = one grouped convolution with per-sample weights; False = scale the
            activations before and after a shared-weight convolution (same result, cheaper gradients
            with respect to ``styles``).
        gain: output scale, folded into the (small) demodulation coefficients or styles instead of
            costing a pass over the output.

    Returns:
        (N, O, H*up, W*up) float.
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    assert_shape(x, [n, in_channels, None, None], "x")
    assert_shape(styles, [n, in_channels], "styles")

    if x.dtype == torch.float16 and demodulate:
        # Demodulation cancels any positive scale of weight and styles: normalise both first so that the
        # fp16 products cannot overflow (NVlabs does the same).
        weight = weight * (
            1 / math.sqrt(in_channels * kh * kw) / weight.abs().amax(dim=[1, 2, 3], keepdim=True)
        )
        styles = styles / styles.abs().amax(dim=1, keepdim=True)

    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # (N, O, I, kh, kw)
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # (N, O)
    if gain != 1:
        if dcoefs is not None:
            dcoefs = dcoefs * gain
        else:
            styles = styles * gain
            w = w * gain
    if noise is not None:
        noise = noise.to(x.dtype)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, padding=padding, flip_weight=flip_weight
        )
        if dcoefs is not None:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return _add_noise(x, noise)

    if dcoefs is not None:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw).to(x.dtype)
    x = conv2d_resample(x, w, f=resample_filter, up=up, padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    return _add_noise(x, noise)


def _add_noise(x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """``x + noise``, in place when ``x`` (a fresh convolution output) needs no gradient."""
    if noise is None:
        return x
    return x.add_(noise) if can_overwrite(x) else x + noise
