"""Masked perceptual losses: the loss contract, weight files, the factory, MS-SSIM against NumPy, and
``Discriminator.features`` against ``Discriminator.forward``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

from neural_backend.refine.losses import (
    LPIPS_SCALE,
    LPIPS_SHIFT,
    MS_SSIM_WEIGHTS,
    FeatureLoss,
    MSSSIMLoss,
    PerceptualError,
    PerceptualLoss,
    load_lpips_weights,
    load_vgg16,
    make_perceptual,
    ms_ssim,
    resolve_kind,
)
from neural_backend.stylegan2 import Discriminator
from neural_backend.stylegan2.ops import downsample2d

# torchvision vgg16().features, written out independently of the module under test: (index, in, out).
VGG_CONVS = [
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
]
TAP_RELUS = [3, 8, 15, 22, 29]  # relu1_2 .. relu5_3
KINDS = ["lpips", "vgg", "discriminator", "ms-ssim"]
SIZE = 32


def vgg_state(upto: int = 30, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random He-initialised VGG16 ``features.*`` tensors (convolutions with index < ``upto``)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for index, cin, cout in VGG_CONVS:
        if index < upto:
            std = math.sqrt(2 / (9 * cin))
            state[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * std
            state[f"features.{index}.bias"] = torch.randn(cout, generator=gen) * 0.01
    return state


def lpips_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    channels = [64, 128, 256, 512, 512]
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=gen) for k, c in enumerate(channels)}


def small_discriminator(architecture: str = "resnet", c_dim: int = 0, seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(
        c_dim=c_dim,
        img_resolution=SIZE,
        channel_base=512,
        channel_max=32,
        architecture=architecture,
        mapping_layers=2,
    ).eval()


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(full-size random vgg16 file with a classifier key to ignore, LPIPS v0.1 vgg.pth-layout file)."""
    folder = tmp_path_factory.mktemp("weights")
    vgg, lpips = folder / "vgg16-random.pth", folder / "lpips-vgg.pth"
    torch.save({**vgg_state(), "classifier.0.weight": torch.zeros(4, 8)}, vgg)
    torch.save(lpips_state(), lpips)
    return vgg, lpips


@pytest.fixture(scope="module")
def losses(weight_files: tuple[Path, Path]) -> dict[str, PerceptualLoss]:
    vgg, lpips = weight_files
    return {
        "lpips": make_perceptual("lpips", vgg_weights=vgg, lpips_weights=lpips),
        "vgg": make_perceptual("vgg", vgg_weights=vgg),
        "discriminator": make_perceptual("discriminator", discriminator=small_discriminator()),
        "ms-ssim": make_perceptual("ms-ssim"),
        "none": make_perceptual("none"),
    }


def images(n: int = 2, size: int = SIZE, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image, target) smooth-ish random images in [-1, 1] and a mask: left 0, a soft band, right 1."""
    gen = torch.Generator().manual_seed(seed)

    def smooth() -> torch.Tensor:
        coarse = torch.rand(n, 3, size // 4, size // 4, generator=gen) * 2 - 1
        fine = torch.rand(n, 3, size, size, generator=gen) * 0.4 - 0.2
        return (F.interpolate(coarse, size=(size, size), mode="bilinear") * 0.7 + fine).clamp(-1, 1)

    mask = torch.zeros(n, 1, size, size)
    mask[..., size // 2 :] = 1
    mask[..., 3 * size // 8 : size // 2] = 0.5
    return smooth(), smooth(), mask


# ----------------------------------------------------------------------------------------------------------
# The loss contract, for every kind.


@pytest.mark.parametrize("kind", [*KINDS, "none"])
def test_identical_inputs_give_exactly_zero(losses: dict[str, PerceptualLoss], kind: str) -> None:
    _, target, mask = images()
    loss = losses[kind](target.clone(), target, mask)
    assert losses[kind].name == kind
    assert loss.shape == (2,) and loss.dtype == torch.float32
    assert torch.equal(loss, torch.zeros(2))


@pytest.mark.parametrize("kind", KINDS)
def test_loss_grows_with_perturbation(losses: dict[str, PerceptualLoss], kind: str) -> None:
    _, target, _ = images(n=1)
    target = (target * 0.5).expand(3, 3, SIZE, SIZE)
    noise = torch.rand(target.shape[1:], generator=torch.Generator().manual_seed(5)) * 2 - 1
    image = target + torch.tensor([0.05, 0.2, 0.5]).reshape(3, 1, 1, 1) * noise  # one batch, three sizes
    values = losses[kind](image, target, torch.ones(3, 1, SIZE, SIZE))
    assert (values > 0).all()
    assert (values[1:] > values[:-1]).all(), values


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_is_exactly_zero_outside_the_mask(losses: dict[str, PerceptualLoss], kind: str) -> None:
    image, target, mask = images()
    image.requires_grad_(True)
    losses[kind](image, target, mask).sum().backward()
    grad = image.grad
    assert grad is not None and torch.isfinite(grad).all()
    outside = (mask == 0).expand_as(grad)
    assert torch.equal(grad[outside], torch.zeros_like(grad[outside]))
    for i in range(2):  # every image gets a gradient inside its mask
        assert grad[i][~outside[i]].abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_pixels_outside_the_mask_do_not_change_the_loss(losses: dict[str, PerceptualLoss], kind: str) -> None:
    image, target, mask = images()
    changed = image.clone()
    outside = (mask == 0).expand_as(image)
    changed[outside] = torch.rand(int(outside.sum()), generator=torch.Generator().manual_seed(9)) * 2 - 1
    assert not torch.equal(changed, image)
    assert torch.equal(losses[kind](changed, target, mask), losses[kind](image, target, mask))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_gives_per_image_losses(losses: dict[str, PerceptualLoss], kind: str) -> None:
    image, target, mask = images(n=3)
    batched = losses[kind](image, target, mask)
    single = torch.cat([losses[kind](image[i : i + 1], target[i : i + 1], mask[i : i + 1]) for i in range(3)])
    assert batched.shape == (3,) and (batched > 0).all()
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [16, 48])
def test_other_image_sizes(losses: dict[str, PerceptualLoss], kind: str, size: int) -> None:
    """16 px (VGG upsamples, MS-SSIM uses one scale, D resizes up) and 48 px (D resizes down) work."""
    image, target, mask = images(size=size)
    image.requires_grad_(True)
    loss = losses[kind](image, target, mask)
    assert loss.shape == (2,) and (loss > 0).all()
    assert torch.equal(losses[kind](target, target, mask), torch.zeros(2))
    loss.sum().backward()
    assert image.grad is not None and torch.isfinite(image.grad).all()
    assert (image.grad[(mask == 0).expand_as(image)] == 0).all()


def test_non_square_images(losses: dict[str, PerceptualLoss]) -> None:
    image, target = torch.rand(2, 1, 3, 16, 24).unbind(0)
    image, target = image * 2 - 1, target * 2 - 1
    for kind in KINDS:
        loss = losses[kind](image, target, torch.ones(1, 1, 16, 24))
        assert loss.shape == (1,) and loss.item() > 0, kind


def test_none_returns_zeros(losses: dict[str, PerceptualLoss]) -> None:
    image, target, mask = images(n=3)
    assert torch.equal(losses["none"](image, target, mask), torch.zeros(3))


@pytest.mark.parametrize("kind", [*KINDS, "none"])
def test_shapes_are_checked(losses: dict[str, PerceptualLoss], kind: str) -> None:
    image, target, mask = images()
    with pytest.raises(ValueError, match="mask"):
        losses[kind](image, target, mask.expand(2, 3, SIZE, SIZE))
    with pytest.raises(ValueError, match="target"):
        losses[kind](image, target[:, :, :16], mask)
    with pytest.raises(ValueError, match="image"):
        losses[kind](image[:, :1], target, mask)


# ----------------------------------------------------------------------------------------------------------
# VGG16 and LPIPS.


def run_taps(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """torchvision-style: run ``features`` layer by layer on an already normalised input, keep the taps."""
    taps = []
    for index, layer in enumerate(net.features):  # type: ignore[arg-type]
        x = layer(x)
        if index in TAP_RELUS:
            taps.append(x)
    return taps


def test_vgg_loads_by_torchvision_names_and_taps_the_right_layers(weight_files: tuple[Path, Path]) -> None:
    net = load_vgg16(weight_files[0])
    state = vgg_state()
    assert set(net.state_dict()) == set(state)
    assert not net.training and not any(p.requires_grad for p in net.parameters())
    x = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
    taps = net(x)
    assert [tuple(t.shape) for t in taps] == [(2, 64, 32, 32), (2, 128, 16, 16), (2, 256, 8, 8)] + [
        (2, 512, 4, 4),
        (2, 512, 2, 2),
    ]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = ((x + 1) / 2 - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)
    w0, b0, w2, b2 = (state[f"features.{i}.{p}"] for i in (0, 2) for p in ("weight", "bias"))
    relu1_2 = F.relu(F.conv2d(F.relu(F.conv2d(normalised, w0, b0, padding=1)), w2, b2, padding=1))
    torch.testing.assert_close(taps[0], relu1_2, rtol=1e-4, atol=1e-4 * relu1_2.abs().max().item())
    for ours, reference in zip(taps, run_taps(net, normalised), strict=True):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item())


def test_vgg_upsamples_small_images_to_32(weight_files: tuple[Path, Path]) -> None:
    net = load_vgg16(weight_files[0])
    assert [tuple(t.shape[2:]) for t in net(torch.zeros(1, 3, 16, 16))] == [(32, 32), (16, 16), (8, 8)] + [
        (4, 4),
        (2, 2),
    ]
    assert tuple(net(torch.zeros(1, 3, 16, 24))[0].shape[2:]) == (32, 48)


def test_lpips_matches_the_reference_formula(weight_files: tuple[Path, Path]) -> None:
    """LPIPS v0.1: scaling layer, unit-normalised taps, 1x1 lin weights, spatial mean, sum over taps."""
    vgg, lpips = weight_files
    loss = make_perceptual(vgg_weights=vgg, lpips_weights=lpips)
    assert loss.name == "lpips"
    image, target, _ = images()
    net = load_vgg16(vgg)
    shift = torch.tensor([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)
    lin = lpips_state()
    expected = torch.zeros(2)
    taps = zip(run_taps(net, (image - shift) / scale), run_taps(net, (target - shift) / scale), strict=True)
    for k, (a, b) in enumerate(taps):
        a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
        expected += ((a - b).square() * lin[f"lin{k}.model.1.weight"]).sum(1).mean(dim=(1, 2))
    torch.testing.assert_close(loss(image, target, torch.ones(2, 1, SIZE, SIZE)), expected, rtol=1e-4, atol=0)
    assert load_lpips_weights(lpips)[0].shape == (64,)
    assert (LPIPS_SHIFT, LPIPS_SCALE) == ((-0.030, -0.088, -0.188), (0.458, 0.448, 0.450))


def test_vgg_gradient_is_finite_for_dark_images(losses: dict[str, PerceptualLoss]) -> None:
    """All-zero ReLU features at a pixel must not give NaN gradients through the unit normalisation."""
    image = torch.full((1, 3, SIZE, SIZE), -1.0, requires_grad=True)
    target = torch.ones(1, 3, SIZE, SIZE)
    for kind in ("vgg", "lpips"):
        losses[kind](image, target, torch.ones(1, 1, SIZE, SIZE)).sum().backward()
        assert image.grad is not None and torch.isfinite(image.grad).all()


# ----------------------------------------------------------------------------------------------------------
# Factory: "auto" order and errors.


def test_auto_selection_order(weight_files: tuple[Path, Path]) -> None:
    vgg, lpips = weight_files
    d = small_discriminator()
    assert resolve_kind() == "ms-ssim"
    assert resolve_kind(discriminator=d) == "discriminator"
    assert resolve_kind(vgg_weights=vgg, discriminator=d) == "vgg"
    assert resolve_kind(vgg_weights=vgg, lpips_weights=lpips, discriminator=d) == "lpips"
    assert make_perceptual().name == "ms-ssim"
    assert make_perceptual(discriminator=d).name == "discriminator"
    assert make_perceptual(vgg_weights=vgg, discriminator=d).name == "vgg"
    assert make_perceptual(vgg_weights=vgg, lpips_weights=lpips, discriminator=d).name == "lpips"
    with pytest.raises(PerceptualError, match="lpips_weights given without vgg_weights"):
        make_perceptual(lpips_weights=lpips, discriminator=d)


def test_explicit_kind_without_ingredients(weight_files: tuple[Path, Path]) -> None:
    vgg, lpips = weight_files
    assert issubclass(PerceptualError, ValueError)
    with pytest.raises(PerceptualError, match="'vgg' needs vgg_weights"):
        make_perceptual("vgg", discriminator=small_discriminator())
    with pytest.raises(PerceptualError, match="'lpips' needs vgg_weights and lpips_weights"):
        make_perceptual("lpips")
    with pytest.raises(PerceptualError, match="'lpips' needs lpips_weights"):
        make_perceptual("lpips", vgg_weights=vgg)
    with pytest.raises(PerceptualError, match="without vgg_weights"):
        make_perceptual("lpips", lpips_weights=lpips)
    with pytest.raises(PerceptualError, match="'discriminator' needs discriminator"):
        make_perceptual("discriminator", vgg_weights=vgg)
    with pytest.raises(PerceptualError, match="kind: expected one of"):
        make_perceptual("alexnet")
    assert make_perceptual("ms-ssim", vgg_weights=vgg).name == "ms-ssim"  # extra ingredients are fine


def expect_error(path: Path, match: str, kind: str = "vgg", **kwargs: object) -> None:
    with pytest.raises(PerceptualError, match=match) as info:
        make_perceptual(kind, **kwargs)  # type: ignore[arg-type]
    assert path.name in str(info.value)


def test_vgg_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "vgg16-truncated.pth"
    torch.save(vgg_state(upto=10), missing)
    expect_error(missing, "vgg_weights: .* has no key 'features.10.weight'", vgg_weights=missing)
    wrong = tmp_path / "vgg16-wrong.pth"
    torch.save({**vgg_state(upto=10), "features.0.weight": torch.zeros(64, 3, 5, 5)}, wrong)
    expect_error(
        wrong,
        r"key 'features.0.weight' has shape \[64, 3, 5, 5\], expected \[64, 3, 3, 3\]",
        vgg_weights=wrong,
    )
    absent = tmp_path / "vgg16-absent.pth"
    expect_error(absent, "vgg_weights: cannot read", vgg_weights=absent)
    garbage = tmp_path / "vgg16-garbage.pth"
    garbage.write_bytes(b"this is not a torch file")
    expect_error(garbage, "vgg_weights: cannot read", vgg_weights=garbage)
    listed = tmp_path / "vgg16-list.pth"
    torch.save([torch.zeros(1)], listed)
    expect_error(listed, "holds a list, expected a state dict", vgg_weights=listed)
    not_tensor = tmp_path / "vgg16-not-tensor.pth"
    torch.save({**vgg_state(upto=10), "features.2.bias": [0.0] * 64}, not_tensor)
    expect_error(not_tensor, "'features.2.bias' is a list, expected a tensor", vgg_weights=not_tensor)


def test_lpips_file_errors(tmp_path: Path, weight_files: tuple[Path, Path]) -> None:
    vgg = weight_files[0]
    cases = {
        "lin3-missing": (
            {k: v for k, v in lpips_state().items() if not k.startswith("lin3")},
            "no key 'lin3",
        ),
        "lin0-shape": ({**lpips_state(), "lin0.model.1.weight": torch.rand(1, 32, 1, 1)}, r"\[1, 32, 1, 1\]"),
        "lin1-negative": ({**lpips_state(), "lin1.model.1.weight": -torch.rand(1, 128, 1, 1)}, "negative"),
    }
    for name, (state, match) in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(state, path)
        expect_error(path, f"lpips_weights: .*{match}", kind="lpips", vgg_weights=vgg, lpips_weights=path)


def test_discriminator_is_frozen_and_gets_no_gradient() -> None:
    d = small_discriminator()
    d.train()
    loss = make_perceptual("discriminator", discriminator=d)
    assert not d.training and not any(p.requires_grad for p in d.parameters())
    image, target, mask = images()
    image.requires_grad_(True)
    loss(image, target, mask).sum().backward()
    assert all(p.grad is None for p in d.parameters())
    assert isinstance(loss, FeatureLoss)


# ----------------------------------------------------------------------------------------------------------
# MS-SSIM against an independent float64 NumPy implementation.


def gaussian_filter_np(a: np.ndarray, size: int) -> np.ndarray:
    """'Valid' 2-D Gaussian filter (sigma 1.5) of each channel of a (C, H, W) float64 array."""
    coords = np.arange(size) - (size - 1) / 2
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    return np.einsum("chwzij,ij->chw", sliding_window_view(a, (1, size, size)), window)


def ssim_maps_np(x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(SSIM, contrast-structure) maps of (C, H, W) float64 images in [0, 1], 'valid' positions."""
    mu_x, mu_y = gaussian_filter_np(x, size), gaussian_filter_np(y, size)
    var_x = gaussian_filter_np(x * x, size) - mu_x**2
    var_y = gaussian_filter_np(y * y, size) - mu_y**2
    cov = gaussian_filter_np(x * y, size) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return luminance * cs, cs


def pool_np(a: np.ndarray) -> np.ndarray:
    """2x2 average pooling of (C, H, W), dropping an odd last row/column."""
    c, h, w = a.shape
    return a[:, : h // 2 * 2, : w // 2 * 2].reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def ms_ssim_np(x: np.ndarray, y: np.ndarray, mask: np.ndarray, scales: int, size: int = 11) -> float:
    """Masked MS-SSIM of one (3, H, W) [-1, 1] image pair with a (1, H, W) mask, float64."""
    x, y = (x + 1) / 2, (y + 1) / 2
    weights = np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    result = np.ones(3)
    for j in range(scales):
        if j > 0:
            x, y, mask = pool_np(x), pool_np(y), pool_np(mask)
        ssim, cs = ssim_maps_np(x, y, size)
        sim = ssim if j == scales - 1 else cs
        m = gaussian_filter_np(mask, size)  # each window's mass inside the mask
        value = ((sim * m).sum(axis=(1, 2)) + 1e-8) / (m.sum() + 1e-8)
        result = result * np.maximum(value, 1e-6) ** weights[j]
    return float(result.mean())


@pytest.mark.parametrize(
    ("size", "scales", "expected_scales"),
    [(16, None, 1), (64, 1, 1), (64, None, 3), (48, 2, 2), (12, None, 1)],
)
@pytest.mark.parametrize("masked", [False, True])
def test_ms_ssim_matches_numpy(size: int, scales: int | None, expected_scales: int, masked: bool) -> None:
    image, target, mask = images(n=2, size=size, seed=size)
    if not masked:
        mask = torch.ones_like(mask)
    ours = ms_ssim(image, target, mask, scales=scales)
    window = 11 if size >= 11 else size - 1 + size % 2
    for i in range(2):
        x, y, m = (a[i].double().numpy() for a in (image, target, mask))
        reference = ms_ssim_np(x, y, m, expected_scales, window)
        assert ours[i].item() == pytest.approx(reference, abs=2e-5)


@pytest.mark.parametrize(("size", "scales"), [(16, None), (64, 1)])
def test_single_scale_loss_is_one_minus_ssim(size: int, scales: int | None) -> None:
    """Full mask, one scale: 1 - mean of the SSIM map (correlated images, so no scale is clamped)."""
    noise, target, mask = images(n=2, size=size, seed=3)
    image = (target + 0.3 * noise).clamp(-1, 1)
    loss = MSSSIMLoss(scales=scales)(image, target, torch.ones_like(mask))
    for i in range(2):
        x, y = ((a[i].double().numpy() + 1) / 2 for a in (image, target))
        assert loss[i].item() == pytest.approx(1 - ssim_maps_np(x, y, 11)[0].mean(), abs=2e-5)


def test_ms_ssim_shrinks_the_window_for_tiny_images() -> None:
    image, target, _ = images(n=1, size=8)
    ours = ms_ssim(image, target)
    reference = ms_ssim_np(image[0].double().numpy(), target[0].double().numpy(), np.ones((1, 8, 8)), 1, 7)
    assert ours.item() == pytest.approx(reference, abs=2e-5)
    with pytest.raises(ValueError, match="scales: expected 1..1"):
        ms_ssim(image, target, scales=2)


def test_ms_ssim_of_an_empty_mask_is_one() -> None:
    image, target, mask = images()
    assert torch.equal(make_perceptual("ms-ssim")(image, target, torch.zeros_like(mask)), torch.zeros(2))


# ----------------------------------------------------------------------------------------------------------
# Discriminator.features.


def epilogue_input(d: Discriminator, img: torch.Tensor) -> torch.Tensor | None:
    """The image the 4x4 epilogue receives: downsampled by every block for 'skip', else None."""
    if d.init_kwargs["architecture"] != "skip":
        return None
    for res in d.block_resolutions:
        img = downsample2d(img, getattr(d, f"b{res}").resample_filter)
    return img


@pytest.mark.parametrize("architecture", ["resnet", "skip", "orig"])
@pytest.mark.parametrize("c_dim", [0, 5])
def test_discriminator_features_reproduce_forward(architecture: str, c_dim: int) -> None:
    d = small_discriminator(architecture, c_dim)
    img = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    c = torch.randn(4, c_dim) if c_dim else None
    with torch.no_grad():
        features = d.features(img, c)
        assert len(features) == len(d.block_resolutions) == 3
        channels = [min(512 // (r // 2), 32) for r in d.block_resolutions]
        expected = [(4, ch, r // 2, r // 2) for ch, r in zip(channels, d.block_resolutions, strict=True)]
        assert [tuple(f.shape) for f in features] == expected
        cmap = d.mapping(None, c) if c_dim else None
        scores = d.b4(features[-1], epilogue_input(d, img), cmap)
        assert torch.equal(scores, d(img, c))


def test_discriminator_features_check_shapes() -> None:
    d = small_discriminator(c_dim=5)
    with pytest.raises(ValueError, match="img"):
        d.features(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="c"):
        d.features(torch.zeros(2, 3, SIZE, SIZE), torch.zeros(2, 4))
    assert len(d.features(torch.zeros(2, 3, SIZE, SIZE))) == 3  # the label is optional: blocks ignore it
