"""StyleGAN2 parity: our generator vs an independent reference, and our ops vs NumPy oracles.

Two levels, each against something written separately from ``neural_backend.stylegan2``:

* the whole generator against ``benchmarks/stylegan2_reference.py`` (a straightforward forward pass over
  the NVlabs-named state dict), within 1e-5 relative, for configs where each feature actually changes
  the output (noise, a binding ``conv_clamp``, truncation with a cutoff, a label, batch > 1);
* every op against a float64 NumPy oracle built from NVlabs' definitions (zero insertion, pad/crop, true
  FIR convolution, subsampling; the generic conv2d_resample path; per-sample modulated weights), with
  asymmetric filters and kernels and non-square images so that a flip or an axis swap cannot cancel out.

Plus a smoke run of ``benchmarks/bench_generator.py --quick``.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from neural_backend.stylegan2 import Generator
from neural_backend.stylegan2.ops import (
    bias_act,
    conv2d_resample,
    downsample2d,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE_PATH = REPO / "benchmarks" / "stylegan2_reference.py"
BENCH_PATH = REPO / "benchmarks" / "bench_generator.py"
REL_TOLERANCE = 1e-5
ATOL = 1e-5

SMALL = {
    "z_dim": 64,
    "w_dim": 64,
    "mapping_layers": 2,
    "channel_base": 512,
    "channel_max": 64,
}


def load_reference() -> ModuleType:
    """Import benchmarks/stylegan2_reference.py by path (benchmarks/ is not a package on sys.path)."""
    spec = importlib.util.spec_from_file_location("stylegan2_reference", REFERENCE_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference()


# ----------------------------------------------------------------------------------------------------------
# Generator vs the independent reference.


def randomised_generator(seed: int, noise_strength: float = 0.0, **overrides: object) -> Generator:
    """Small generator whose biases, noise strengths and w_avg are nonzero, so every term is exercised."""
    torch.manual_seed(seed)
    generator = Generator(**{**SMALL, **overrides}).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise_strength)
            elif name.endswith("affine.bias"):
                param.add_(0.2 * torch.randn_like(param))  # styles near 1, as trained networks have
            elif name.endswith("bias"):
                param.copy_(0.2 * torch.randn_like(param))
        generator.mapping.w_avg.copy_(0.5 * torch.randn_like(generator.mapping.w_avg))
    return generator


def relative_difference(ours: torch.Tensor, ref: torch.Tensor) -> float:
    """max|ours - ref| / max|ref|."""
    return ((ours - ref).abs().max() / ref.abs().max()).item()


def run_both(
    generator: Generator,
    z: torch.Tensor,
    c: torch.Tensor | None = None,
    truncation_psi: float = 1.0,
    truncation_cutoff: int | None = None,
    noise_mode: str = "const",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ours, reference) images for the same inputs and weights."""
    with torch.inference_mode():
        ours = generator(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, noise_mode=noise_mode
        )
        ref = reference.reference_generate(
            generator.state_dict(),
            generator.init_kwargs,
            z,
            truncation_psi,
            noise_mode,
            c=c,
            truncation_cutoff=truncation_cutoff,
        )
    return ours, ref


@pytest.mark.parametrize("resolution", [32, 64])
def test_unconditional_generator_matches_reference(resolution: int) -> None:
    generator = randomised_generator(0, img_resolution=resolution)
    z = torch.randn(1, SMALL["z_dim"])
    ours, ref = run_both(generator, z)
    assert ours.shape == ref.shape == (1, 3, resolution, resolution)
    assert ref.abs().max() > 0.1  # a meaningful signal, not a near-zero image
    assert relative_difference(ours, ref) <= REL_TOLERANCE


def test_nonzero_noise_matches_reference_in_const_and_none_modes() -> None:
    generator = randomised_generator(1, noise_strength=0.3, img_resolution=32)
    z = torch.randn(3, SMALL["z_dim"])
    ours_const, ref_const = run_both(generator, z, noise_mode="const")
    ours_none, ref_none = run_both(generator, z, noise_mode="none")
    assert relative_difference(ours_const, ref_const) <= REL_TOLERANCE
    assert relative_difference(ours_none, ref_none) <= REL_TOLERANCE
    assert relative_difference(ref_none, ref_const) > 1e-2  # the noise really contributes


def test_binding_conv_clamp_matches_reference() -> None:
    clamped = randomised_generator(2, img_resolution=64, conv_clamp=1.0)
    unclamped = Generator(**{**clamped.init_kwargs, "conv_clamp": None}).eval()
    unclamped.load_state_dict(clamped.state_dict())
    z = torch.randn(3, SMALL["z_dim"])
    ours, ref = run_both(clamped, z)
    ours_free, ref_free = run_both(unclamped, z)
    assert relative_difference(ours, ref) <= REL_TOLERANCE
    assert relative_difference(ours_free, ref_free) <= REL_TOLERANCE
    # The clamp binds: clamping at +-1 (+-sqrt(2) after the lrelu gain) changes the image clearly.
    assert relative_difference(ours, ours_free) > 1e-2


def test_truncation_with_cutoff_matches_reference() -> None:
    generator = randomised_generator(3, noise_strength=0.1, img_resolution=64)
    z = torch.randn(3, SMALL["z_dim"])
    ours, ref = run_both(generator, z, truncation_psi=0.5, truncation_cutoff=3)
    assert relative_difference(ours, ref) <= REL_TOLERANCE
    _, ref_all = run_both(generator, z, truncation_psi=0.5)
    _, ref_untruncated = run_both(generator, z)
    assert relative_difference(ref, ref_all) > 1e-3  # the cutoff leaves later latents untouched
    assert relative_difference(ref, ref_untruncated) > 1e-3


def test_conditional_generator_and_unfused_synthesis_match_reference() -> None:
    generator = randomised_generator(4, noise_strength=0.2, img_resolution=32, c_dim=5)
    z = torch.randn(3, SMALL["z_dim"])
    c = torch.randn(3, 5)
    ours, ref = run_both(generator, z, c, truncation_psi=0.7)
    assert relative_difference(ours, ref) <= REL_TOLERANCE
    with torch.inference_mode():
        ws = generator.mapping(z, c, truncation_psi=0.7)
        unfused = generator.synthesis(ws, fused_modconv=False)
    assert relative_difference(unfused, ref) <= REL_TOLERANCE


def test_stored_resample_filter_is_normalised_1331() -> None:
    # The reference reads the FIR from the state dict, as NVlabs does; pin its value independently.
    taps = np.array([1.0, 3.0, 3.0, 1.0])
    expected = np.outer(taps, taps) / 64.0
    state = randomised_generator(0, img_resolution=8).state_dict()
    for key in ("synthesis.b8.resample_filter", "synthesis.b8.conv0.resample_filter"):
        np.testing.assert_allclose(state[key].numpy(), expected, rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------------------------------------
# NumPy oracles (float64, written from the definitions).


def np_upfirdn2d(
    x: np.ndarray,
    f: np.ndarray,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> np.ndarray:
    """NVlabs upfirdn2d by definition: zero-insert, pad (x0, x1, y0, y1; negative crops), FIR, subsample.

    The FIR step is a true convolution (correlation when ``flip_filter``) over the valid region, with the
    2-D filter scaled by gain ** (ndim / 2) = gain.
    """
    n, c, h, w = x.shape
    stuffed = np.zeros((n, c, h * up, w * up))
    stuffed[:, :, ::up, ::up] = x
    px0, px1, py0, py1 = padding
    padded = np.pad(stuffed, ((0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))))
    padded = padded[
        :, :, max(-py0, 0) : padded.shape[2] - max(-py1, 0), max(-px0, 0) : padded.shape[3] - max(-px1, 0)
    ]
    kernel = np.asarray(f, dtype=np.float64) * gain
    kh, kw = kernel.shape
    out_h, out_w = padded.shape[2] - kh + 1, padded.shape[3] - kw + 1
    out = np.zeros((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i : i + kh, j : j + kw]
            # y[i] = sum_t u[i + K - 1 - t] f[t] (convolution), or sum_t u[i + t] f[t] (correlation).
            taps = kernel if flip_filter else kernel[::-1, ::-1]
            out[:, :, i, j] = np.einsum("ncab,ab->nc", window, taps)
    return out[:, :, ::down, ::down]


def np_conv2d(x: np.ndarray, w: np.ndarray, groups: int = 1, flip_weight: bool = True) -> np.ndarray:
    """Valid grouped 2-D convolution by direct sums: correlation when ``flip_weight``, else convolution."""
    n, _, h, width = x.shape
    out_channels, per_group, kh, kw = w.shape
    out_per_group = out_channels // groups
    kernel = w if flip_weight else w[:, :, ::-1, ::-1]
    kernel = kernel.reshape(groups, out_per_group, per_group, kh, kw)
    out = np.zeros((n, out_channels, h - kh + 1, width - kw + 1))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, i : i + kh, j : j + kw].reshape(n, groups, per_group, kh, kw)
            out[:, :, i, j] = np.einsum("ngiab,goiab->ngo", window, kernel).reshape(n, out_channels)
    return out


def np_conv2d_resample(
    x: np.ndarray,
    w: np.ndarray,
    f: np.ndarray | None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> np.ndarray:
    """NVlabs' generic conv2d_resample: upfirdn2d(up, adjusted padding, gain up^2), conv, upfirdn2d(down)."""
    px0 = px1 = py0 = py1 = padding
    if f is None:
        f = np.ones((1, 1))
    fh, fw = f.shape
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    first_filter = f if up > 1 else np.ones((1, 1))  # NVlabs passes f=None (identity) unless upsampling
    x = np_upfirdn2d(
        x, first_filter, up=up, padding=(px0, px1, py0, py1), flip_filter=flip_filter, gain=up**2
    )
    x = np_conv2d(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = np_upfirdn2d(x, f, down=down, flip_filter=flip_filter)
    return x


def np_bias_act(
    x: np.ndarray, b: np.ndarray | None, act: str, gain: float | None, clamp: float | None
) -> np.ndarray:
    """x + b (per channel), lrelu (slope 0.2) or identity, times gain (default sqrt 2 / 1), clamp."""
    if b is not None:
        x = x + b.reshape(1, -1, 1, 1)
    if act == "lrelu":
        x = np.where(x >= 0, x, 0.2 * x)
    if gain is None:
        gain = np.sqrt(2.0) if act == "lrelu" else 1.0
    x = x * gain
    if clamp is not None:
        x = np.clip(x, -clamp, clamp)
    return x


def np_modulated_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    styles: np.ndarray,
    noise: np.ndarray | None,
    up: int,
    padding: int,
    f: np.ndarray | None,
    demodulate: bool,
    flip_weight: bool,
) -> np.ndarray:
    """Per sample: w[n] = weight * styles[n] (input channels), optionally / sqrt(sum w[n]^2 + 1e-8) per
    output channel, then the conv2d_resample oracle; noise added last."""
    outputs = []
    for n in range(x.shape[0]):
        w_n = weight * styles[n].reshape(1, -1, 1, 1)
        if demodulate:
            w_n = w_n / np.sqrt((w_n**2).sum(axis=(1, 2, 3), keepdims=True) + 1e-8)
        outputs.append(
            np_conv2d_resample(x[n : n + 1], w_n, f, up=up, padding=padding, flip_weight=flip_weight)
        )
    out = np.concatenate(outputs)
    return out if noise is None else out + noise


def as_f32(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Random unit-scale data, rounded to float32 so that ours and the oracle see identical inputs."""
    return rng.standard_normal(shape).astype(np.float32).astype(np.float64)


def asymmetric_filter(rng: np.random.Generator, fh: int, fw: int) -> np.ndarray:
    """Positive, normalised, non-symmetric FIR: mirroring it (or swapping its axes) changes the result."""
    f = rng.uniform(0.1, 1.0, size=(fh, fw))
    return (f / f.sum()).astype(np.float32).astype(np.float64)


def t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(torch.float32)


def assert_close(ours: torch.Tensor, oracle: np.ndarray) -> None:
    assert tuple(ours.shape) == oracle.shape
    np.testing.assert_allclose(ours.double().numpy(), oracle, rtol=1e-5, atol=ATOL)


# ----------------------------------------------------------------------------------------------------------
# Op-level parity.


@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("down", [1, 2])
@pytest.mark.parametrize("padding", [(0, 0, 0, 0), (2, 1, 2, 1), (1, -1, -2, 3)])
@pytest.mark.parametrize("flip_filter", [False, True])
@pytest.mark.parametrize("gain", [1.0, 4.0])
def test_upfirdn2d_matches_oracle(
    up: int, down: int, padding: tuple[int, int, int, int], flip_filter: bool, gain: float
) -> None:
    rng = np.random.default_rng(10)
    x = as_f32(rng, 2, 3, 5, 6)
    f = asymmetric_filter(rng, 3, 4)
    ours = upfirdn2d(t(x), t(f), up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    assert_close(ours, np_upfirdn2d(x, f, up, down, padding, flip_filter, gain))


@pytest.mark.parametrize("up", [2, 3])
@pytest.mark.parametrize("filter_shape", [(4, 4), (4, 3)])
def test_upsample2d_matches_oracle(up: int, filter_shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(11)
    x = as_f32(rng, 2, 3, 5, 6)
    f = asymmetric_filter(rng, *filter_shape)
    fh, fw = f.shape
    pads = ((fw + up - 1) // 2, (fw - up) // 2, (fh + up - 1) // 2, (fh - up) // 2)
    expected = np_upfirdn2d(x, f, up=up, padding=pads, gain=up * up)
    assert expected.shape == (2, 3, 5 * up, 6 * up)
    assert_close(upsample2d(t(x), t(f), up=up), expected)


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("flip_filter", [False, True])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_downsample2d_matches_oracle(padding: int, flip_filter: bool, gain: float) -> None:
    rng = np.random.default_rng(12)
    x = as_f32(rng, 2, 3, 8, 10)
    f = asymmetric_filter(rng, 4, 4)
    down = 2
    pads = (
        padding + (4 - down + 1) // 2,
        padding + (4 - down) // 2,
        padding + (4 - down + 1) // 2,
        padding + (4 - down) // 2,
    )
    expected = np_upfirdn2d(x, f, down=down, padding=pads, flip_filter=flip_filter, gain=gain)
    ours = downsample2d(t(x), t(f), down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    assert_close(ours, expected)
    if padding == 0:
        assert expected.shape[2:] == (4, 5)


@pytest.mark.parametrize(("up", "down"), [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("kernel", [3, 1])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("flip_weight", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
def test_conv2d_resample_matches_generic_oracle(
    up: int, down: int, kernel: int, padding: int, flip_weight: bool, groups: int
) -> None:
    rng = np.random.default_rng(13)
    x = as_f32(rng, 2, 2 * groups, 7, 8)
    w = as_f32(rng, 3 * groups, 2, kernel, kernel)
    f = asymmetric_filter(rng, 4, 4)
    expected = np_conv2d_resample(x, w, f, up, down, padding, groups, flip_weight)
    ours = conv2d_resample(
        t(x), t(w), t(f), up=up, down=down, padding=padding, groups=groups, flip_weight=flip_weight
    )
    assert_close(ours, expected)


@pytest.mark.parametrize(("up", "down"), [(2, 1), (1, 2)])
@pytest.mark.parametrize("kernel", [3, 1])
def test_conv2d_resample_flip_filter_matches_generic_oracle(up: int, down: int, kernel: int) -> None:
    rng = np.random.default_rng(14)
    x = as_f32(rng, 2, 4, 7, 8)
    w = as_f32(rng, 3, 4, kernel, kernel)
    f = asymmetric_filter(rng, 4, 4)
    expected = np_conv2d_resample(x, w, f, up, down, kernel // 2, flip_filter=True)
    ours = conv2d_resample(t(x), t(w), t(f), up=up, down=down, padding=kernel // 2, flip_filter=True)
    assert_close(ours, expected)


@pytest.mark.parametrize("act", ["linear", "lrelu"])
@pytest.mark.parametrize("gain", [None, 0.5])
@pytest.mark.parametrize("clamp", [None, 0.3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_bias_act_matches_oracle(act: str, gain: float | None, clamp: float | None, with_bias: bool) -> None:
    rng = np.random.default_rng(15)
    x = as_f32(rng, 2, 4, 3, 5)
    b = as_f32(rng, 4) if with_bias else None
    expected = np_bias_act(x, b, act, gain, clamp)
    ours = bias_act(t(x), None if b is None else t(b), act=act, gain=gain, clamp=clamp)
    assert_close(ours, expected)
    if clamp is not None:
        assert np.abs(expected).max() == pytest.approx(clamp)  # the clamp binds on this data


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
@pytest.mark.parametrize("fused_modconv", [True, False])
@pytest.mark.parametrize("flip_weight", [True, False])
def test_modulated_conv2d_matches_oracle(
    demodulate: bool, up: int, fused_modconv: bool, flip_weight: bool
) -> None:
    rng = np.random.default_rng(16)
    batch, in_channels, out_channels, h, w = 2, 4, 3, 6, 5
    x = as_f32(rng, batch, in_channels, h, w)
    weight = as_f32(rng, out_channels, in_channels, 3, 3)
    styles = 1.0 + 0.5 * as_f32(rng, batch, in_channels)
    styles = styles.astype(np.float32).astype(np.float64)
    noise = as_f32(rng, batch, 1, h * up, w * up)
    f = asymmetric_filter(rng, 4, 4)
    expected = np_modulated_conv2d(x, weight, styles, noise, up, 1, f, demodulate, flip_weight)
    ours = modulated_conv2d(
        t(x),
        t(weight),
        t(styles),
        noise=t(noise),
        up=up,
        padding=1,
        resample_filter=t(f),
        demodulate=demodulate,
        flip_weight=flip_weight,
        fused_modconv=fused_modconv,
    )
    assert_close(ours, expected)


# ----------------------------------------------------------------------------------------------------------
# Benchmark smoke test.


def test_bench_generator_quick_runs_and_reports_a_ratio() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH_PATH), "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ratios = re.findall(r"ratio ours/reference = (\d+\.\d+)", result.stdout)
    assert len(ratios) == 2 and all(float(r) > 0 for r in ratios), result.stdout
    assert result.stdout.count("PASS rel diff") == 2, result.stdout
