"""StyleGAN2 generator: NVlabs state-dict names, shapes, equalised learning rate, truncation, noise, ops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from neural_backend.checkpoints.io import load_generator, save_checkpoint
from neural_backend.stylegan2 import Generator, assert_shape
from neural_backend.stylegan2.ops import conv2d_resample, modulated_conv2d, setup_filter, upsample2d

SMALL = {
    "z_dim": 32,
    "w_dim": 24,
    "img_resolution": 16,
    "mapping_layers": 3,
    "channel_base": 256,
    "channel_max": 32,
}


def small_generator(seed: int = 0, noise_strength: float = 0.0, **overrides) -> Generator:
    torch.manual_seed(seed)
    generator = Generator(**{**SMALL, **overrides}).eval()
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(noise_strength)
    return generator


def nvlabs_names(resolution: int, mapping_layers: int) -> set[str]:
    """Every parameter and buffer name of an NVlabs stylegan2-ada-pytorch G_ema (unconditional, skip)."""
    names = {"mapping.w_avg"}
    names |= {f"mapping.fc{i}.{p}" for i in range(mapping_layers) for p in ("weight", "bias")}
    layer = [
        "weight",
        "bias",
        "noise_strength",
        "noise_const",
        "resample_filter",
        "affine.weight",
        "affine.bias",
    ]
    torgb = ["weight", "bias", "affine.weight", "affine.bias"]
    res = 4
    while res <= resolution:
        block = f"synthesis.b{res}"
        names |= {f"{block}.resample_filter"} | {f"{block}.torgb.{p}" for p in torgb}
        names |= {f"{block}.conv1.{p}" for p in layer}
        if res == 4:
            names.add(f"{block}.const")
        else:
            names |= {f"{block}.conv0.{p}" for p in layer}
        res *= 2
    return names


def test_state_dict_names_are_exactly_nvlabs():
    generator = small_generator()
    assert set(generator.state_dict()) == nvlabs_names(16, SMALL["mapping_layers"])
    buffers = {name for name, _ in generator.named_buffers()}
    for name in ("mapping.w_avg", "synthesis.b8.resample_filter", "synthesis.b8.conv0.resample_filter"):
        assert name in buffers
    for name in ("synthesis.b4.conv1.noise_const", "synthesis.b16.conv0.noise_const"):
        assert name in buffers


def test_config_f_ffhq_shapes_and_parameter_count():
    with torch.device("meta"):  # shapes only: no memory, no random init cost
        generator = Generator()
    state = generator.state_dict()
    assert generator.num_ws == 18
    assert set(state) == nvlabs_names(1024, 8)
    assert state["mapping.fc0.weight"].shape == (512, 512)
    assert state["synthesis.b4.const"].shape == (512, 4, 4)
    assert state["synthesis.b4.conv1.noise_const"].shape == (4, 4)
    assert state["synthesis.b8.resample_filter"].shape == (4, 4)
    assert state["synthesis.b64.conv0.weight"].shape == (512, 512, 3, 3)
    assert state["synthesis.b128.conv0.weight"].shape == (256, 512, 3, 3)
    assert state["synthesis.b1024.conv1.weight"].shape == (32, 32, 3, 3)
    assert state["synthesis.b1024.torgb.weight"].shape == (3, 32, 1, 1)
    assert state["synthesis.b1024.torgb.affine.weight"].shape == (32, 512)
    assert sum(p.numel() for p in generator.parameters()) == 30_370_060  # NVlabs FFHQ 1024 G


def test_output_shapes_and_num_ws():
    generator = small_generator()
    assert (generator.z_dim, generator.w_dim, generator.img_resolution) == (32, 24, 16)
    assert generator.num_ws == 2 * int(math.log2(16)) - 2
    z = torch.randn(3, 32)
    ws = generator.mapping(z)
    assert ws.shape == (3, generator.num_ws, 24)
    assert torch.equal(ws[:, 0], ws[:, -1])  # one W broadcast to every layer
    image = generator.synthesis(ws)
    assert image.shape == (3, 3, 16, 16) and image.dtype == torch.float32
    torch.testing.assert_close(generator(z), image)


def test_resolution_4_and_64_build():
    assert small_generator(img_resolution=4).synthesis.num_ws == 2
    assert small_generator(img_resolution=64).num_ws == 10
    with pytest.raises(ValueError, match="img_resolution"):
        Generator(**{**SMALL, "img_resolution": 48})


def test_mapping_uses_equalised_learning_rate_with_nvlabs_storage():
    generator = small_generator()
    fc0 = generator.mapping.fc0
    assert fc0.weight.std().item() == pytest.approx(100.0, rel=0.15)  # stored divided by lr_multiplier 0.01
    x = torch.randn(5, 32)
    w = fc0.weight * 0.01 / math.sqrt(32)
    expected = F.leaky_relu(x @ w.t() + fc0.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(fc0(x), expected)
    affine = generator.synthesis.b4.conv1.affine
    assert torch.all(affine.bias == 1.0)  # styles start near 1
    assert generator.synthesis.b4.torgb.weight_gain == pytest.approx(1 / math.sqrt(32))


def test_truncation_moves_latents_toward_w_avg():
    generator = small_generator()
    with torch.no_grad():
        generator.mapping.w_avg.copy_(torch.randn(24))
    z = torch.randn(4, 32)
    ws = generator.mapping(z)
    w_avg = generator.mapping.w_avg
    torch.testing.assert_close(generator.mapping(z, truncation_psi=0), w_avg.expand_as(ws))
    torch.testing.assert_close(generator.mapping(z, truncation_psi=0.5), w_avg + 0.5 * (ws - w_avg))
    cut = generator.mapping(z, truncation_psi=0, truncation_cutoff=2)
    torch.testing.assert_close(cut[:, :2], w_avg.expand(4, 2, 24))
    torch.testing.assert_close(cut[:, 2:], ws[:, 2:])


def test_noise_modes():
    generator = small_generator(noise_strength=0.5)
    ws = generator.mapping(torch.randn(2, 32))
    const_a = generator.synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, generator.synthesis(ws, noise_mode="const"))
    assert torch.equal(const_a, generator.synthesis(ws))  # 'const' is the default
    random_a = generator.synthesis(ws, noise_mode="random")
    random_b = generator.synthesis(ws, noise_mode="random")
    assert not torch.allclose(random_a, random_b)
    none = generator.synthesis(ws, noise_mode="none")
    assert torch.equal(none, generator.synthesis(ws, noise_mode="none"))
    assert not torch.allclose(none, const_a)
    silent = small_generator(noise_strength=0.0)
    torch.testing.assert_close(
        silent.synthesis(ws, noise_mode="none"), silent.synthesis(ws, noise_mode="random")
    )
    with pytest.raises(ValueError, match="noise_mode"):
        generator.synthesis(ws, noise_mode="loud")


def test_fused_and_unfused_modulation_agree():
    generator = small_generator(noise_strength=0.3)
    ws = generator.mapping(torch.randn(3, 32))
    torch.testing.assert_close(
        generator.synthesis(ws, fused_modconv=True),
        generator.synthesis(ws, fused_modconv=False),
        rtol=1e-4,
        atol=1e-4,
    )


def test_conditional_mapping():
    generator = small_generator(c_dim=5)
    assert "mapping.embed.weight" in generator.state_dict()
    assert generator(torch.randn(2, 32), torch.randn(2, 5)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="c:"):
        generator(torch.randn(2, 32))


def test_bad_shapes_raise_value_errors_naming_the_tensor():
    generator = small_generator()
    with pytest.raises(ValueError, match=r"z: expected shape \[\*, 32\], got \[2, 31\]"):
        generator.mapping(torch.randn(2, 31))
    with pytest.raises(ValueError, match="ws: expected shape"):
        generator.synthesis(torch.randn(2, generator.num_ws - 1, 24))
    with pytest.raises(ValueError, match="image: expected a tensor"):
        assert_shape([1, 2], [2], "image")


def test_upsample2d_keeps_a_constant_signal_inside():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and float(f.sum()) == pytest.approx(1.0)
    up = upsample2d(torch.full((1, 2, 6, 6), 3.0), f)
    assert up.shape == (1, 2, 12, 12)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], torch.full((1, 2, 10, 10), 3.0))


@pytest.mark.parametrize("flip_weight", [False, True])
def test_upsampling_convolution_matches_upsample_then_convolve_inside(flip_weight):
    f = setup_filter([1, 3, 3, 1])
    x, w = torch.randn(2, 5, 8, 8), torch.randn(4, 5, 3, 3)
    fused = conv2d_resample(x, w, f, up=2, padding=1, flip_weight=flip_weight)
    reference = F.conv2d(upsample2d(x, f), w if flip_weight else w.flip([2, 3]), padding=1)
    assert fused.shape == (2, 4, 16, 16)
    torch.testing.assert_close(fused[..., 2:-2, 2:-2], reference[..., 2:-2, 2:-2], rtol=1e-4, atol=1e-4)


def test_builtin_generator_is_deterministic_small_and_centred():
    from neural_backend.stylegan2.builtin import BUILTIN_NAME, builtin_generator

    rng_before = torch.random.get_rng_state()
    a, b = builtin_generator(), builtin_generator()
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is left alone
    assert BUILTIN_NAME == "builtin-untrained"
    assert a.img_resolution == 64 and a.num_ws == 10
    assert sum(p.numel() for p in a.parameters()) < 1_000_000
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(builtin_generator(seed=1).synthesis.b4.const, a.synthesis.b4.const)
    with torch.no_grad():
        w = a.mapping(torch.randn(4096, a.z_dim, generator=torch.Generator().manual_seed(5)))[:, 0]
    spread = w.std(dim=0).mean()
    assert (w.mean(dim=0) - a.mapping.w_avg).abs().max() < 0.2 * spread


def test_fp16_modulated_conv_prenormalises_instead_of_overflowing():
    torch.manual_seed(0)
    x = torch.randn(2, 16, 8, 8)
    weight = torch.randn(8, 16, 3, 3) * 300.0  # products of these would overflow fp16 (max 65504)
    styles = torch.randn(2, 16) * 300.0
    expected = modulated_conv2d(x, weight, styles, padding=1)
    for fused in (True, False):
        half = modulated_conv2d(x.half(), weight, styles, padding=1, fused_modconv=fused)
        assert half.dtype == torch.float16 and torch.isfinite(half).all()
        assert (half.float() - expected).abs().max() <= 1e-2 * expected.abs().max()


def test_fp16_blocks_follow_the_nvlabs_rule_and_stay_fp32_on_the_cpu():
    generator = small_generator(img_resolution=32, num_fp16_res=2)
    assert [getattr(generator.synthesis, f"b{r}").use_fp16 for r in (4, 8, 16, 32)] == [
        False,
        False,
        True,
        True,
    ]
    z = torch.randn(2, SMALL["z_dim"])
    with torch.no_grad():
        assert torch.equal(generator(z), generator(z, force_fp32=True))  # the CPU never runs fp16


def test_channels_last_and_unfused_batches_give_the_same_images():
    generator = small_generator(noise_strength=0.2)
    z = torch.randn(3, SMALL["z_dim"], generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        reference = generator(z, channels_last=False, fused_modconv=True)
        for options in ({}, {"channels_last": True}, {"fused_modconv": False}):
            assert torch.allclose(generator(z, **options), reference, atol=1e-5), options


def test_compiled_generator_matches(tmp_path):
    generator = small_generator(img_resolution=8, noise_strength=0.2)
    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    compiled = load_generator(path, compile=True)
    assert set(compiled.state_dict()) == set(generator.state_dict())
    z = torch.randn(2, SMALL["z_dim"], generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(compiled(z, truncation_psi=0.8), generator(z, truncation_psi=0.8), atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("batch", [1, 4])
def test_fp16_synthesis_on_cuda_stays_close_to_fp32(batch):
    generator = small_generator(
        img_resolution=64, num_fp16_res=2, conv_clamp=256.0, noise_strength=0.1
    ).cuda()
    assert generator.synthesis.b64.use_fp16 and not generator.synthesis.b16.use_fp16
    z = torch.randn(batch, SMALL["z_dim"], device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    with torch.inference_mode():
        half = generator(z)
        full = generator(z, force_fp32=True)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    assert (half - full).abs().max() <= 2e-2 * full.abs().max()
