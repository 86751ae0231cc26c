"""Masked perceptual losses for GAN inversion: LPIPS, VGG16 features, discriminator features, MS-SSIM.

Every loss takes ``image`` and ``target`` (N, 3, H, W) in [-1, 1] and a skin ``mask`` (N, 1, H, W) of weights
in [0, 1], and returns one value per image (N,), >= 0, zero when ``image == target``. Masking is done by
compositing first, ``x = mask * image + (1 - mask) * target``, and comparing ``x`` with ``target``: pixels
with ``mask == 0`` are then exactly the target's, so they change nothing and get exactly zero gradient,
whatever the network's receptive field. The target is a constant: its features are computed without
gradient.

Feature losses (``vgg``, ``lpips``, ``discriminator``) unit-normalise each tap across channels at every pixel
and sum the per-pixel squared distances over channels (LPIPS: weighted by its learned linear layers),
average them over pixels and add the taps up. VGG16 runs without torchvision: :class:`VGG16Features` has
torchvision's ``vgg16().features`` indices, so its state dict loads by name.

Small images: VGG16's five taps sit behind four 2x poolings, and at 16 px the deepest (relu5_3) would be a
single pixel seen mostly through zero padding, so images whose smaller side is under 32 px are upsampled
(bilinear, aspect kept) to 32 px before VGG16. The discriminator is fed at its own resolution (bilinear
resize, antialiased when shrinking). MS-SSIM shrinks its window and its number of scales instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from ..stylegan2.discriminator import Discriminator
from ..stylegan2.ops import assert_shape

__all__ = [
    "KINDS",
    "LPIPS_CHANNELS",
    "MS_SSIM_WEIGHTS",
    "VGG16_CONVS",
    "VGG16_TAPS",
    "FeatureLoss",
    "MSSSIMLoss",
    "NoLoss",
    "PerceptualError",
    "PerceptualLoss",
    "VGG16Features",
    "composite",
    "feature_distance",
    "load_lpips_weights",
    "load_vgg16",
    "make_perceptual",
    "ms_ssim",
    "normalize_channels",
    "resolve_kind",
]

KINDS = ("auto", "lpips", "vgg", "discriminator", "ms-ssim", "none")

# torchvision ``vgg16().features``: (index, in_channels, out_channels) of each 3x3 convolution; every other
# index up to 30 is a ReLU except the 2x2 max-pools at 4, 9, 16, 23 and 30.
VGG16_CONVS: tuple[tuple[int, int, int], ...] = (
    (0, 3, 64),
    (2, 64, 64),
    (5, 64, 128),
    (7, 128, 128),
    (10, 128, 256),
    (12, 256, 256),
    (14, 256, 256),
    (17, 256, 512),
    (19, 512, 512),
    (21, 512, 512),
    (24, 512, 512),
    (26, 512, 512),
    (28, 512, 512),
)
VGG16_POOLS = (4, 9, 16, 23, 30)
# Index of the ReLU whose output is each tap.
VGG16_TAPS: dict[str, int] = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
VGG16_MIN_SIZE = 32  # smaller images are upsampled to this (see the module docstring)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)  # channels of the five taps = of LPIPS's lin0..lin4

# [-1, 1] input -> network input, as (x - shift) / scale per channel. ImageNet's mean/std on [0, 1] images
# become shift = 2 * mean - 1, scale = 2 * std on [-1, 1] images; LPIPS's ScalingLayer is given in [-1, 1].
IMAGENET_SHIFT = (2 * 0.485 - 1, 2 * 0.456 - 1, 2 * 0.406 - 1)
IMAGENET_SCALE = (2 * 0.229, 2 * 0.224, 2 * 0.225)
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003, finest scale first
SSIM_C1 = 0.01**2  # (K1 * data range)^2 for images in [0, 1]
SSIM_C2 = 0.03**2
# Each scale's similarity is clamped to at least this before the fractional power: contrast-structure can be
# negative (anti-correlated windows), and x ** w has an infinite derivative at 0 for w < 1.
MS_SSIM_FLOOR = 1e-6
MASK_EPS = 1e-8  # keeps an all-zero mask's weighted average at 1 (x == target there) instead of 0 / 0


class PerceptualError(ValueError):
    """A perceptual loss cannot be built: unknown kind, missing ingredient or unreadable weights file."""


class PerceptualLoss(Protocol):
    """A masked, per-image perceptual distance (see the module docstring for the contract)."""

    name: str  # "lpips", "vgg", "discriminator", "ms-ssim" or "none"

    def __call__(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image, target (N, 3, H, W) in [-1, 1], mask (N, 1, H, W) in [0, 1] -> loss (N,) >= 0."""
        ...


def composite(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``mask * image + (1 - mask) * target``, checking the shapes of all three.

    Written as ``target + mask * (image - target)``: the same value, but exactly ``target`` wherever
    ``mask == 0`` or ``image == target`` (no rounding), which keeps those losses exactly zero.

    Args:
        image: (N, 3, H, W) float in [-1, 1]; the tensor being optimised.
        target: (N, 3, H, W) float in [-1, 1].
        mask: (N, 1, H, W) float weights in [0, 1].

    Returns:
        (N, 3, H, W) float32.

    Raises:
        ValueError: a shape does not match, naming the argument.
    """
    assert_shape(image, [None, 3, None, None], "image")
    n, _, h, w = image.shape
    assert_shape(target, [n, 3, h, w], "target")
    assert_shape(mask, [n, 1, h, w], "mask")
    image, target, mask = image.float(), target.float(), mask.float()
    return target + mask * (image - target)


def normalize_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Unit-normalise (N, C, H, W) features across channels at each pixel (LPIPS ``normalize_tensor``).

    ``vector_norm``'s backward is defined as 0 at an all-zero pixel (a plain ``sqrt(sum(x ** 2))`` gives NaN
    there), which matters for ReLU features.
    """
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)


def feature_distance(
    a: Sequence[torch.Tensor], b: Sequence[torch.Tensor], weights: Sequence[torch.Tensor] | None = None
) -> torch.Tensor:
    """Sum over taps of the pixel mean of the (weighted) channel sum of squared unit-feature differences.

    Args:
        a, b: one (N, C_k, H_k, W_k) tensor per tap, the same shapes in both.
        weights: None (all channels weigh 1) or one (C_k,) non-negative tensor per tap (LPIPS).

    Returns:
        (N,) float32.
    """
    if len(a) != len(b) or (weights is not None and len(weights) != len(a)):
        count = "no" if weights is None else len(weights)
        raise ValueError(f"feature_distance: {len(a)} and {len(b)} taps with {count} weights")
    total = a[0].new_zeros(a[0].shape[0], dtype=torch.float32)
    for k, (fa, fb) in enumerate(zip(a, b, strict=True)):
        diff = (normalize_channels(fa.float()) - normalize_channels(fb.float())).square()
        if weights is not None:
            diff = diff * weights[k].reshape(1, -1, 1, 1)
        total = total + diff.sum(dim=1).mean(dim=(1, 2))
    return total


class VGG16Features(torch.nn.Module):
    """torchvision's VGG16 ``features`` stack: [-1, 1] image (N, 3, H, W) -> the five ReLU taps.

    Parameters are named ``features.{i}.weight|bias`` as in torchvision, so its state dict loads by name.
    The input is mapped with ``(x - shift) / scale`` per channel (ImageNet or LPIPS scaling) and upsampled
    to ``min_size`` on the smaller side when smaller.
    """

    shift: torch.Tensor  # buffer (1, 3, 1, 1)
    scale: torch.Tensor  # buffer (1, 3, 1, 1)

    def __init__(
        self,
        shift: Sequence[float] = IMAGENET_SHIFT,  # Per-channel input shift, in [-1, 1] units.
        scale: Sequence[float] = IMAGENET_SCALE,  # Per-channel input scale, in [-1, 1] units.
        min_size: int = VGG16_MIN_SIZE,  # Upsample images whose smaller side is below this.
    ):
        super().__init__()
        convs = {index: (cin, cout) for index, cin, cout in VGG16_CONVS}
        layers: list[torch.nn.Module] = []
        for index in range(VGG16_POOLS[-1] + 1):
            if index in convs:
                layers.append(torch.nn.Conv2d(*convs[index], kernel_size=3, padding=1))
            elif index in VGG16_POOLS:
                layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(torch.nn.ReLU())
        self.features = torch.nn.Sequential(*layers)
        # Not persistent: the state dict is exactly torchvision's ``features.*`` keys.
        as_buffer = torch.tensor(shift, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.register_buffer("shift", as_buffer, persistent=False)
        as_buffer = torch.tensor(scale, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.register_buffer("scale", as_buffer, persistent=False)
        self.min_size = min_size
        self.taps = tuple(VGG16_TAPS.values())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, 3, H, W) in [-1, 1] -> [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3] (N, C_k, H_k, W_k)."""
        assert_shape(x, [None, 3, None, None], "x")
        x = (x - self.shift) / self.scale
        h, w = x.shape[2:]
        if min(h, w) < self.min_size:
            factor = self.min_size / min(h, w)
            size = (max(self.min_size, round(h * factor)), max(self.min_size, round(w * factor)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        taps: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                taps.append(x)
                if len(taps) == len(self.taps):
                    break
        return taps


def _read_state(path: Path, what: str) -> Mapping[str, Any]:
    """``torch.load`` a state dict without executing pickled code; errors name ``what`` and the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # FileNotFoundError, unpickling errors, corrupt zip archives, ...
        raise PerceptualError(f"{what}: cannot read {path}: {err}") from err
    if not isinstance(state, Mapping):
        raise PerceptualError(f"{what}: {path} holds a {type(state).__name__}, expected a state dict")
    return state


def _take(state: Mapping[str, Any], key: str, shape: Sequence[int], path: Path, what: str) -> torch.Tensor:
    """``state[key]`` as float32 after checking it is a tensor of ``shape``."""
    if key not in state:
        raise PerceptualError(f"{what}: {path} has no key {key!r}")
    value = state[key]
    if not isinstance(value, torch.Tensor):
        raise PerceptualError(f"{what}: {path} key {key!r} is a {type(value).__name__}, expected a tensor")
    if list(value.shape) != list(shape):
        raise PerceptualError(
            f"{what}: {path} key {key!r} has shape {list(value.shape)}, expected {list(shape)}"
        )
    return value.to(torch.float32)


def load_vgg16(
    path: Path,
    shift: Sequence[float] = IMAGENET_SHIFT,
    scale: Sequence[float] = IMAGENET_SCALE,
    device: str | torch.device = "cpu",
) -> VGG16Features:
    """A frozen :class:`VGG16Features` (eval mode, no gradients) from a torchvision ``vgg16-*.pth`` file.

    Only ``features.{i}.weight|bias`` are read; the classifier's keys and any others are ignored.

    Raises:
        PerceptualError: the file cannot be read, or a key is missing or has the wrong shape (names both).
    """
    what = "vgg_weights"
    state = _read_state(path, what)
    selected: dict[str, torch.Tensor] = {}
    for index, cin, cout in VGG16_CONVS:
        selected[f"features.{index}.weight"] = _take(
            state, f"features.{index}.weight", (cout, cin, 3, 3), path, what
        )
        selected[f"features.{index}.bias"] = _take(state, f"features.{index}.bias", (cout,), path, what)
    net = VGG16Features(shift, scale)
    net.load_state_dict(selected)
    return net.to(device).eval().requires_grad_(False)


def load_lpips_weights(path: Path, device: str | torch.device = "cpu") -> list[torch.Tensor]:
    """LPIPS v0.1 VGG linear layers (richzhang/PerceptualSimilarity ``lpips/weights/v0.1/vgg.pth``).

    Returns:
        Five (C_k,) float32 tensors, C = ``LPIPS_CHANNELS``, from keys ``lin{k}.model.1.weight``
        of shape (1, C_k, 1, 1).

    Raises:
        PerceptualError: the file cannot be read, a key is missing, has the wrong shape or negative weights
            (LPIPS clamps them to >= 0 in training; negative ones would make the loss negative).
    """
    what = "lpips_weights"
    state = _read_state(path, what)
    weights = []
    for k, channels in enumerate(LPIPS_CHANNELS):
        key = f"lin{k}.model.1.weight"
        weight = _take(state, key, (1, channels, 1, 1), path, what)
        if bool((weight < 0).any()):
            raise PerceptualError(f"{what}: {path} key {key!r} has negative weights")
        weights.append(weight.reshape(channels).to(device))
    return weights


class FeatureLoss:
    """Masked :func:`feature_distance` between a frozen extractor's features of the composite and the target.

    The extractor must be frozen (no parameter requiring grad), or the backward pass accumulates into it.
    """

    def __init__(
        self,
        name: str,  # Kind reported to callers ("vgg", "lpips", "discriminator").
        extract: Callable[[torch.Tensor], list[torch.Tensor]],  # [-1, 1] (N, 3, H, W) -> feature maps.
        weights: Sequence[torch.Tensor] | None = None,  # Per-tap (C_k,) channel weights; None = 1.
    ):
        self.name = name
        self.extract = extract
        self.weights = None if weights is None else list(weights)

    def __call__(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image, target (N, 3, H, W) in [-1, 1], mask (N, 1, H, W) in [0, 1] -> loss (N,) >= 0."""
        x = composite(image, target, mask)
        with torch.no_grad():
            reference = self.extract(target.float())
        return feature_distance(self.extract(x), reference, self.weights)


def _discriminator_extractor(discriminator: Discriminator) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """[-1, 1] images of any size -> ``discriminator.features`` at its resolution."""
    res = discriminator.img_resolution

    def extract(x: torch.Tensor) -> list[torch.Tensor]:
        if tuple(x.shape[2:]) != (res, res):
            shrinking = max(x.shape[2:]) > res
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=shrinking)
        return discriminator.features(x)

    return extract


def _gaussian_window(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    """(size,) float32 normalised Gaussian."""
    coords = torch.arange(size, dtype=torch.float32, device=device) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def _filter(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter of each channel: (N, C, H, W) -> (N, C, H - k + 1, W - k + 1)."""
    c, k = x.shape[1], window.shape[0]
    x = F.conv2d(x, window.reshape(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, window.reshape(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ms_ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    window_size: int = 11,
    sigma: float = 1.5,
    scales: int | None = None,
) -> torch.Tensor:
    """Mask-weighted multi-scale SSIM of [-1, 1] images (mapped to [0, 1], data range 1).

    Per scale, SSIM's maps (C1 = 0.01^2, C2 = 0.03^2, Gaussian window, 'valid' positions only) are averaged
    with weights = the mask filtered by the same window (each window's mass inside the mask; 1 everywhere for
    a full mask), per channel. Images and mask are 2x average-pooled between scales. The finest scales
    contribute contrast-structure, the coarsest full SSIM, combined as a product with the standard weights
    ``MS_SSIM_WEIGHTS`` renormalised over the scales used. Each scale's value is clamped to >= 1e-6 before
    its power (contrast-structure can be negative; see ``MS_SSIM_FLOOR``). The result is averaged over
    channels. With one scale this is plain (masked) SSIM.

    Small images: the window shrinks to the smaller side (kept odd) below 11 px, and ``scales`` defaults to
    as many (at most 5, at least 1) as keep the smaller side >= the window size.

    Args:
        x, y: (N, C, H, W) float in [-1, 1].
        mask: (N, 1, H, W) float weights in [0, 1]; None = all ones.
        window_size: Gaussian window size before shrinking.
        sigma: Gaussian standard deviation in pixels.
        scales: number of scales (1..5); None = as many as fit.

    Returns:
        (N,) float32 in [0, 1] (up to rounding): 1 for identical images.
    """
    assert_shape(x, [None, None, None, None], "x")
    n, c, h, w = x.shape
    assert_shape(y, [n, c, h, w], "y")
    if mask is None:
        mask = x.new_ones(n, 1, h, w)
    assert_shape(mask, [n, 1, h, w], "mask")
    side = min(h, w)
    size = min(window_size, side if side % 2 else side - 1)
    fitting = max(1, sum(1 for j in range(len(MS_SSIM_WEIGHTS)) if side >> j >= size))
    scales = fitting if scales is None else scales
    if not 1 <= scales <= fitting:
        raise ValueError(f"scales: expected 1..{fitting} for {h}x{w} images and window {size}, got {scales}")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float32, device=x.device)
    weights = weights / weights.sum()
    window = _gaussian_window(size, sigma, x.device)
    x, y, mask = (x.float() + 1) / 2, (y.float() + 1) / 2, mask.float()
    result = x.new_ones(n, c)
    for j in range(scales):
        if j > 0:
            x, y, mask = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2), F.avg_pool2d(mask, 2)
        stats = _filter(torch.cat([x, y, x * x, y * y, x * y, mask], dim=1), window)
        mu_x, mu_y, xx, yy, xy, m = stats.split([c, c, c, c, c, 1], dim=1)
        var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
        sim = (2 * cov + SSIM_C2) / (var_x + var_y + SSIM_C2)  # contrast-structure
        if j == scales - 1:
            sim = sim * (2 * mu_x * mu_y + SSIM_C1) / (mu_x * mu_x + mu_y * mu_y + SSIM_C1)  # times luminance
        value = ((sim * m).sum(dim=(2, 3)) + MASK_EPS) / (m.sum(dim=(2, 3)) + MASK_EPS)  # (N, C)
        result = result * value.clamp_min(MS_SSIM_FLOOR) ** weights[j]
    return result.mean(dim=1)


class MSSSIMLoss:
    """``1 - ms_ssim(composite, target, mask)``, clamped to >= 0 against rounding."""

    name = "ms-ssim"

    def __init__(
        self,
        window_size: int = 11,  # Gaussian window size (shrunk for small images).
        sigma: float = 1.5,  # Gaussian standard deviation in pixels.
        scales: int | None = None,  # Number of scales; None = as many as fit (<= 5).
    ):
        self.window_size = window_size
        self.sigma = sigma
        self.scales = scales

    def __call__(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image, target (N, 3, H, W) in [-1, 1], mask (N, 1, H, W) in [0, 1] -> loss (N,) in [0, 1]."""
        x = composite(image, target, mask)
        similarity = ms_ssim(
            x, target, mask, window_size=self.window_size, sigma=self.sigma, scales=self.scales
        )
        return (1 - similarity).clamp_min(0)


class NoLoss:
    """Kind "none": zeros (N,) (a constant, carrying no gradient), after the usual shape checks."""

    name = "none"

    def __call__(self, image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image, target (N, 3, H, W), mask (N, 1, H, W) -> zeros (N,) float32."""
        return composite(image, target, mask).new_zeros(image.shape[0])


def resolve_kind(
    kind: str = "auto",
    *,
    vgg_weights: Path | None = None,
    lpips_weights: Path | None = None,
    discriminator: Discriminator | None = None,
) -> str:
    """The concrete kind that ``make_perceptual`` builds, checking that its ingredients are there.

    "auto" picks "lpips" (VGG16 and LPIPS weights), else "vgg" (VGG16 weights), else "discriminator", else
    "ms-ssim" (needs nothing).

    Raises:
        PerceptualError: unknown kind; an explicit kind without its ingredients (names them); LPIPS weights
            without the VGG16 weights they sit on (also under "auto": a given file is never silently ignored).
    """
    if kind not in KINDS:
        raise PerceptualError(f"kind: expected one of {KINDS}, got {kind!r}")
    if lpips_weights is not None and vgg_weights is None and kind in ("auto", "lpips"):
        raise PerceptualError("lpips_weights given without vgg_weights (the VGG16 backbone LPIPS runs on)")
    if kind == "auto":
        if vgg_weights is not None:
            return "lpips" if lpips_weights is not None else "vgg"
        return "discriminator" if discriminator is not None else "ms-ssim"
    needs: dict[str, dict[str, object]] = {
        "lpips": {"vgg_weights": vgg_weights, "lpips_weights": lpips_weights},
        "vgg": {"vgg_weights": vgg_weights},
        "discriminator": {"discriminator": discriminator},
    }
    missing = [name for name, value in needs.get(kind, {}).items() if value is None]
    if missing:
        raise PerceptualError(f"kind {kind!r} needs {' and '.join(missing)}: not given")
    return kind


def make_perceptual(
    kind: str = "auto",
    *,
    vgg_weights: Path | None = None,
    lpips_weights: Path | None = None,
    discriminator: Discriminator | None = None,
    device: str | torch.device = "cpu",
) -> PerceptualLoss:
    """Build a masked perceptual loss (see :func:`resolve_kind` for what "auto" picks).

    Args:
        kind: "auto", "lpips", "vgg", "discriminator", "ms-ssim" or "none" (zeros).
        vgg_weights: torchvision ``vgg16-*.pth`` state dict (for "vgg" and "lpips").
        lpips_weights: LPIPS v0.1 ``vgg.pth`` linear layers (for "lpips").
        discriminator: a StyleGAN2 discriminator with 3 image channels (for "discriminator"). It is frozen
            IN PLACE — ``.eval().requires_grad_(False)`` — and moved to ``device``, so that backpropagating
            the loss never accumulates gradients into it; pass a copy if you train it.
        device: where the loss's networks live; inputs must be there too.

    Raises:
        PerceptualError: see :func:`resolve_kind`, :func:`load_vgg16` and :func:`load_lpips_weights`.
    """
    kind = resolve_kind(
        kind, vgg_weights=vgg_weights, lpips_weights=lpips_weights, discriminator=discriminator
    )
    if kind == "vgg":
        assert vgg_weights is not None
        return FeatureLoss("vgg", load_vgg16(Path(vgg_weights), device=device))
    if kind == "lpips":
        assert vgg_weights is not None and lpips_weights is not None
        lin = load_lpips_weights(Path(lpips_weights), device=device)
        return FeatureLoss("lpips", load_vgg16(Path(vgg_weights), LPIPS_SHIFT, LPIPS_SCALE, device), lin)
    if kind == "discriminator":
        assert discriminator is not None
        if discriminator.img_channels != 3:
            raise PerceptualError(
                f"discriminator: expected 3 image channels, got {discriminator.img_channels}"
            )
        discriminator.to(device).eval().requires_grad_(False)
        return FeatureLoss("discriminator", _discriminator_extractor(discriminator))
    if kind == "ms-ssim":
        return MSSSIMLoss()
    return NoLoss()
