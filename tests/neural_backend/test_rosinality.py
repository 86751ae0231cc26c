"""rosinality stylegan2-pytorch ``.pt`` files: names, an independent forward pass, round trips, refusals.

The expected rosinality names and the reference forward passes below are written from rosinality's
``model.py`` conventions, independently of :mod:`neural_backend.checkpoints.rosinality` and of our
StyleGAN2 modules.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from nvlabs_files import Evil, write_nvlabs_pkl

from neural_backend.checkpoints.base import KIND_ROSINALITY, CheckpointError
from neural_backend.checkpoints.io import read_checkpoint
from neural_backend.checkpoints.rosinality import (
    W_AVG_SAMPLES,
    W_AVG_SEED,
    channel_table,
    infer_channel_config,
    read_rosinality,
    rosinality_channel_multiplier,
    save_rosinality,
)
from neural_backend.stylegan2 import Discriminator, Generator, estimate_w_avg

# Channels {4: 32, 8: 32, 16: 32, 32: 16}: small, so not of rosinality's 16384 * cm / 512 form.
SMALL_G: dict[str, Any] = {
    "z_dim": 32,
    "w_dim": 32,
    "img_resolution": 32,
    "mapping_layers": 3,
    "channel_base": 512,
    "channel_max": 32,
}
SMALL_D: dict[str, Any] = {"img_resolution": 32, "channel_base": 512, "channel_max": 32}
FIR = torch.tensor([1.0, 3.0, 3.0, 1.0])
BLUR = torch.outer(FIR, FIR) / 64  # rosinality make_kernel([1, 3, 3, 1])


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every bias, style bias and noise strength made non-trivial, so that no mix-up can hide."""
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
            noise = torch.randn(tensor.shape, generator=rng)
            if name.endswith("affine.bias"):
                tensor.copy_(1 + 0.2 * noise)
            elif name.endswith(("bias", "noise_strength", "w_avg")):
                tensor.copy_(0.3 * noise)
    return module.eval()


@pytest.fixture(scope="module")
def generator() -> Generator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(11)
        g = Generator(**SMALL_G)
    return randomised(g, 12)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def discriminator() -> Discriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(13)
        d = Discriminator(**SMALL_D)
    return randomised(d, 14)  # type: ignore[return-value]


@pytest.fixture
def written(tmp_path: Path, generator: Generator, discriminator: Discriminator) -> Path:
    path = tmp_path / "stylegan2-small.pt"
    save_rosinality(generator, path, discriminator, allow_nonstandard_channels=True)
    return path


def raw(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def latents(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 32, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------- rosinality's names, written out


def rosinality_g_names(size: int, n_mlp: int) -> set[str]:
    """Every tensor name of rosinality's ``Generator(size, style_dim, n_mlp).state_dict()``."""
    log_size = int(math.log2(size))
    names = {f"style.{i}.{p}" for i in range(1, n_mlp + 1) for p in ("weight", "bias")} | {"input.input"}
    styled = [
        "conv.weight",
        "conv.modulation.weight",
        "conv.modulation.bias",
        "noise.weight",
        "activate.bias",
    ]
    rgb = ["conv.weight", "conv.modulation.weight", "conv.modulation.bias", "bias"]
    names |= {f"conv1.{p}" for p in styled} | {f"to_rgb1.{p}" for p in rgb}
    for i in range(log_size - 2):
        names |= {f"convs.{2 * i}.{p}" for p in [*styled, "conv.blur.kernel"]}
        names |= {f"convs.{2 * i + 1}.{p}" for p in styled}
        names |= {f"to_rgbs.{i}.{p}" for p in [*rgb, "upsample.kernel"]}
    names |= {f"noises.noise_{k}" for k in range((log_size - 2) * 2 + 1)}
    return names


def rosinality_d_names(size: int) -> set[str]:
    """Every tensor name of rosinality's ``Discriminator(size).state_dict()``."""
    names = {"convs.0.0.weight", "convs.0.1.bias"}
    block = ["conv1.0.weight", "conv1.1.bias", "conv2.0.kernel", "conv2.1.weight", "conv2.2.bias"]
    block += ["skip.0.kernel", "skip.1.weight"]
    for i in range(1, int(math.log2(size)) - 1):
        names |= {f"convs.{i}.{p}" for p in block}
    names |= {"final_conv.0.weight", "final_conv.1.bias"}
    names |= {f"final_linear.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}
    return names


def test_written_names_and_shapes_are_rosinality_s(written: Path) -> None:
    data = raw(written)
    keys = {"g_ema", "latent_avg", "d", "rigstyle_config", "rigstyle_discriminator_config"}
    assert set(data) == keys
    g, d = data["g_ema"], data["d"]
    assert set(g) == rosinality_g_names(32, 3)
    assert set(d) == rosinality_d_names(32)
    shapes = {
        "style.1.weight": (32, 32),
        "input.input": (1, 32, 4, 4),
        "conv1.conv.weight": (1, 32, 32, 3, 3),
        "conv1.noise.weight": (1,),
        "conv1.activate.bias": (32,),
        "to_rgb1.conv.weight": (1, 3, 32, 1, 1),
        "to_rgb1.bias": (1, 3, 1, 1),
        "convs.4.conv.weight": (1, 16, 32, 3, 3),
        "convs.5.conv.weight": (1, 16, 16, 3, 3),
        "to_rgbs.2.conv.weight": (1, 3, 16, 1, 1),
        "to_rgbs.2.conv.modulation.weight": (16, 32),
        "noises.noise_0": (1, 1, 4, 4),
        "noises.noise_6": (1, 1, 32, 32),
    }
    for name, shape in shapes.items():
        assert tuple(g[name].shape) == shape, name
    for name in ("convs.0.conv.blur.kernel", "to_rgbs.1.upsample.kernel"):
        assert torch.equal(g[name], BLUR * 4), name
    d_shapes = {
        "convs.0.0.weight": (16, 3, 1, 1),
        "convs.1.conv1.0.weight": (16, 16, 3, 3),
        "convs.1.conv2.1.weight": (32, 16, 3, 3),
        "convs.1.skip.1.weight": (32, 16, 1, 1),
        "final_conv.0.weight": (32, 33, 3, 3),
        "final_linear.0.weight": (32, 32 * 16),
        "final_linear.1.weight": (1, 32),
    }
    for name, shape in d_shapes.items():
        assert tuple(d[name].shape) == shape, name
    for name in ("convs.1.conv2.0.kernel", "convs.3.skip.0.kernel"):
        assert torch.equal(d[name], BLUR), name
    assert tuple(data["latent_avg"].shape) == (32,)
    assert type(data["rigstyle_config"]) is dict and data["rigstyle_config"]["channel_base"] == 512


# --------------------------------------------------------------------- rosinality's forward, written out


def fused_lrelu(x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x + bias.view([1, -1] + [1] * (x.ndim - 2)), 0.2) * math.sqrt(2)


def equal_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, lr_mul: float = 1.0, act: bool = False
):
    out = F.linear(x, weight * (lr_mul / math.sqrt(weight.shape[1])))
    return fused_lrelu(out, bias * lr_mul) if act else out + bias * lr_mul


def upfirdn(x: torch.Tensor, kernel: torch.Tensor, up: int, pad0: int, pad1: int) -> torch.Tensor:
    """Zero-insert ``up``, pad, convolve with the (flipped) kernel: rosinality's ``upfirdn2d_native``."""
    n, c, h, w = x.shape
    if up > 1:
        big = x.new_zeros(n, c, h * up, w * up)
        big[:, :, ::up, ::up] = x
        x = big
    x = F.pad(x, [pad0, pad1, pad0, pad1])
    return F.conv2d(x, kernel.flip([0, 1])[None, None].repeat(c, 1, 1, 1), groups=c)


def modulated_conv(state: dict, prefix: str, x: torch.Tensor, w: torch.Tensor, demod: bool, up: bool):
    weight = state[f"{prefix}.conv.weight"]  # (1, O, I, k, k)
    _, out_c, in_c, k, _ = weight.shape
    n = x.shape[0]
    style = equal_linear(
        w, state[f"{prefix}.conv.modulation.weight"], state[f"{prefix}.conv.modulation.bias"]
    )
    weight = weight / math.sqrt(in_c * k * k) * style.view(n, 1, in_c, 1, 1)
    if demod:
        weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(n, out_c, 1, 1, 1)
    x = x.reshape(1, n * in_c, *x.shape[2:])
    if up:  # transposed conv of the unflipped weight, then blur pad (1, 1)
        weight = weight.transpose(1, 2).reshape(n * in_c, out_c, k, k)
        out = F.conv_transpose2d(x, weight, padding=0, stride=2, groups=n)
        out = out.view(n, out_c, *out.shape[2:])
        return upfirdn(out, state[f"{prefix}.conv.blur.kernel"], up=1, pad0=1, pad1=1)
    out = F.conv2d(x, weight.view(n * out_c, in_c, k, k), padding=k // 2, groups=n)
    return out.view(n, out_c, *out.shape[2:])


def styled_conv(
    state: dict, prefix: str, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor, up: bool = False
):
    out = modulated_conv(state, prefix, x, w, demod=True, up=up)
    out = out + state[f"{prefix}.noise.weight"] * noise
    return fused_lrelu(out, state[f"{prefix}.activate.bias"])


def to_rgb(state: dict, prefix: str, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None):
    out = modulated_conv(state, prefix, x, w, demod=False, up=False) + state[f"{prefix}.bias"]
    if skip is not None:
        out = out + upfirdn(skip, state[f"{prefix}.upsample.kernel"], up=2, pad0=2, pad1=1)
    return out


def rosinality_generate(state: dict, z: torch.Tensor) -> torch.Tensor:
    """rosinality ``Generator([z], randomize_noise=False)``: stored noises, one style for every layer."""
    n_mlp = sum(1 for name in state if name.startswith("style.") and name.endswith(".weight"))
    blocks = sum(1 for name in state if name.startswith("to_rgbs.") and name.endswith(".conv.weight"))
    w = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, n_mlp + 1):
        w = equal_linear(w, state[f"style.{i}.weight"], state[f"style.{i}.bias"], lr_mul=0.01, act=True)
    noise = [state[f"noises.noise_{k}"] for k in range(2 * blocks + 1)]
    out = state["input.input"].repeat(z.shape[0], 1, 1, 1)
    out = styled_conv(state, "conv1", out, w, noise[0])
    skip = to_rgb(state, "to_rgb1", out, w, None)
    for i in range(blocks):
        out = styled_conv(state, f"convs.{2 * i}", out, w, noise[2 * i + 1], up=True)
        out = styled_conv(state, f"convs.{2 * i + 1}", out, w, noise[2 * i + 2])
        skip = to_rgb(state, f"to_rgbs.{i}", out, w, skip)
    return skip


def equal_conv(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    return F.conv2d(x, weight / math.sqrt(weight[0].numel()), stride=stride, padding=padding)


def rosinality_discriminate(state: dict, img: torch.Tensor) -> torch.Tensor:
    """rosinality ``Discriminator(img)``: ResBlocks, minibatch std (group 4, 1 feature), final layers."""
    x = fused_lrelu(equal_conv(img, state["convs.0.0.weight"]), state["convs.0.1.bias"])
    blocks = len({name.split(".")[1] for name in state if name.startswith("convs.")}) - 1
    for i in range(1, blocks + 1):
        p = f"convs.{i}"
        out = fused_lrelu(equal_conv(x, state[f"{p}.conv1.0.weight"], padding=1), state[f"{p}.conv1.1.bias"])
        out = upfirdn(out, state[f"{p}.conv2.0.kernel"], up=1, pad0=2, pad1=2)
        out = fused_lrelu(equal_conv(out, state[f"{p}.conv2.1.weight"], stride=2), state[f"{p}.conv2.2.bias"])
        skip = equal_conv(
            upfirdn(x, state[f"{p}.skip.0.kernel"], up=1, pad0=1, pad1=1), state[f"{p}.skip.1.weight"], 2
        )
        x = (out + skip) / math.sqrt(2)
    n, c, h, w = x.shape
    group = min(n, 4)
    std = torch.sqrt(x.view(group, -1, 1, c, h, w).var(0, unbiased=False) + 1e-8)
    std = std.mean([2, 3, 4], keepdim=True).squeeze(2).repeat(group, 1, h, w)
    x = torch.cat([x, std], dim=1)
    x = fused_lrelu(equal_conv(x, state["final_conv.0.weight"], padding=1), state["final_conv.1.bias"])
    x = equal_linear(x.view(n, -1), state["final_linear.0.weight"], state["final_linear.0.bias"], act=True)
    return equal_linear(x, state["final_linear.1.weight"], state["final_linear.1.bias"])


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


def test_an_independent_rosinality_forward_draws_our_image(written: Path, generator: Generator) -> None:
    state = raw(written)["g_ema"]
    assert all(float(state[f"convs.{k}.noise.weight"].abs()) > 0 for k in range(6))  # noise does matter
    z = latents(3, seed=1)
    with torch.no_grad():
        expected = rosinality_generate(state, z)
        ours = generator(z, noise_mode="const")
        loaded = read_rosinality(written).generator(z, noise_mode="const")
    assert expected.shape == (3, 3, 32, 32)
    assert relative_error(ours, expected) < 1e-5
    assert torch.equal(loaded, ours)


def test_an_independent_rosinality_discriminator_gives_our_scores(
    written: Path, discriminator: Discriminator
) -> None:
    state = raw(written)["d"]
    img = images(4, seed=2)
    with torch.no_grad():
        expected = rosinality_discriminate(state, img)
        ours = discriminator(img)
    assert expected.shape == (4, 1)
    assert relative_error(ours, expected) < 1e-5


# --------------------------------------------------------------------- round trips


def assert_same_tensors(got: torch.nn.Module, expected: torch.nn.Module) -> None:
    got_state, expected_state = got.state_dict(), expected.state_dict()
    assert set(got_state) == set(expected_state)
    for name, tensor in expected_state.items():
        assert got_state[name].dtype == tensor.dtype and torch.equal(got_state[name], tensor), name


def test_ours_to_pt_to_ours_is_bit_identical(
    written: Path, generator: Generator, discriminator: Discriminator
):
    checkpoint = read_checkpoint(written)
    assert (
        checkpoint.kind == KIND_ROSINALITY
        and checkpoint.notes == ()
        and checkpoint.discriminator_problem is None
    )
    assert checkpoint.generator.init_kwargs == generator.init_kwargs
    assert_same_tensors(checkpoint.generator, generator)
    assert checkpoint.discriminator is not None
    assert checkpoint.discriminator.init_kwargs == discriminator.init_kwargs
    assert_same_tensors(checkpoint.discriminator, discriminator)
    assert not checkpoint.generator.training and not checkpoint.discriminator.training


def test_nvlabs_pkl_to_rosinality_and_back_draws_the_same(
    tmp_path: Path, generator: Generator, discriminator: Discriminator
) -> None:
    pkl = write_nvlabs_pkl(tmp_path / "network-snapshot.pkl", generator, discriminator)
    from_pkl = read_checkpoint(pkl)
    assert from_pkl.discriminator is not None
    pt = tmp_path / "converted.pt"
    save_rosinality(from_pkl.generator, pt, from_pkl.discriminator, allow_nonstandard_channels=True)
    from_pt = read_rosinality(pt)
    assert from_pt.discriminator is not None
    z, img = latents(2, seed=3), images(4, seed=4)
    with torch.no_grad():
        assert torch.equal(
            from_pt.generator(z, noise_mode="const"), from_pkl.generator(z, noise_mode="const")
        )
        assert torch.equal(from_pt.generator(z, truncation_psi=0.5), generator(z, truncation_psi=0.5))
        assert torch.equal(from_pt.discriminator(img), from_pkl.discriminator(img))


def test_conv_clamp_and_fp16_survive_via_rigstyle_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = Generator(**{**SMALL_G, "conv_clamp": 256.0, "num_fp16_res": 2}).eval()
    discriminator = Discriminator(**{**SMALL_D, "conv_clamp": 128.0, "num_fp16_res": 1}).eval()
    path = tmp_path / "clamped.pt"
    save_rosinality(generator, path, discriminator, allow_nonstandard_channels=True)
    loaded = read_rosinality(path)
    assert loaded.generator.init_kwargs == generator.init_kwargs
    assert loaded.discriminator is not None and loaded.discriminator.init_kwargs == discriminator.init_kwargs
    # Without RigStyle's extra keys (as rosinality's own code would write it): no clamp, lowest channel_base.
    data = raw(path)
    del data["rigstyle_config"], data["rigstyle_discriminator_config"]
    torch.save(data, path)
    plain = read_rosinality(path)
    expected = {**generator.init_kwargs, "conv_clamp": None, "num_fp16_res": 0, "channel_base": 512}
    assert plain.generator.init_kwargs == expected
    assert_same_tensors(plain.generator, generator)


def test_a_rosinality_shaped_generator_is_written_by_default_and_read_as_16384_cm(tmp_path: Path) -> None:
    torch.manual_seed(0)
    generator = Generator(z_dim=16, w_dim=16, img_resolution=8, mapping_layers=1).eval()  # 512 channels
    path = tmp_path / "standard.pt"
    save_rosinality(generator, path)
    data = raw(path)
    del data["rigstyle_config"]
    torch.save(data, path)
    loaded = read_rosinality(path)
    assert loaded.generator.init_kwargs == generator.init_kwargs  # channel_base 32768 = 16384 * 2
    assert_same_tensors(loaded.generator, generator)


# --------------------------------------------------------------------- other layouts


def training_checkpoint(written: Path, **args: Any) -> dict[str, Any]:
    """rosinality ``train.py``'s layout: g, d, g_ema, optimizer states, args, ada_aug_p; no latent_avg."""
    data = raw(written)
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.Adam([param], lr=0.002, betas=(0.0, 0.99))
    param.grad = torch.ones(3)
    optimizer.step()
    namespace = argparse.Namespace(
        path="lmdb", arch="stylegan2", iter=800000, batch=16, size=32, r1=10.0, augment=False, ckpt=None,
        lr=0.002, latent=32, n_mlp=3, start_iter=0, distributed=False, **args,
    )  # fmt: skip
    return {
        "g": data["g_ema"],
        "d": data["d"],
        "g_ema": data["g_ema"],
        "g_optim": optimizer.state_dict(),
        "d_optim": optimizer.state_dict(),
        "args": namespace,
        "ada_aug_p": 0.25,
    }


@pytest.mark.parametrize("legacy", [False, True])
def test_a_training_checkpoint_loads_with_an_estimated_w_avg(
    written: Path, tmp_path: Path, generator: Generator, discriminator: Discriminator, legacy: bool
) -> None:
    path = tmp_path / "010000.pt"
    torch.save(training_checkpoint(written), path, _use_new_zipfile_serialization=not legacy)
    assert path.read_bytes()[:2] == (b"\x80\x02" if legacy else b"PK")
    rng_state = torch.get_rng_state()
    checkpoint = read_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the estimate used its own RNG
    assert checkpoint.kind == KIND_ROSINALITY
    assert len(checkpoint.notes) == 1 and "w_avg estimated" in checkpoint.notes[0]
    assert str(W_AVG_SAMPLES) in checkpoint.notes[0] and "no latent_avg" in checkpoint.notes[0]
    w_avg = checkpoint.generator.mapping.w_avg
    assert torch.equal(
        w_avg, estimate_w_avg(checkpoint.generator, W_AVG_SAMPLES, W_AVG_SEED)
    )  # deterministic
    with torch.no_grad():  # close to the mean W of other random z
        w = generator.mapping(torch.randn(20000, 32, generator=torch.Generator().manual_seed(9)))[:, 0]
    assert torch.allclose(w_avg, w.mean(dim=0), atol=4 * float(w.std(dim=0).max()) / math.sqrt(W_AVG_SAMPLES))
    for name, tensor in generator.state_dict().items():
        if name != "mapping.w_avg":
            assert torch.equal(checkpoint.generator.state_dict()[name], tensor), name
    assert checkpoint.discriminator is not None
    assert_same_tensors(checkpoint.discriminator, discriminator)


def test_a_bare_generator_state_dict_and_a_g_only_file_load(
    written: Path, tmp_path: Path, generator: Generator
):
    data = raw(written)
    bare = tmp_path / "bare.pt"
    torch.save(data["g_ema"], bare)
    assert read_rosinality(bare).generator.init_kwargs["channel_base"] == 512
    g_only = tmp_path / "g-only.pt"
    torch.save({"g": data["g_ema"], "latent_avg": data["latent_avg"]}, g_only)
    checkpoint = read_rosinality(g_only)
    assert any("'g'" in note for note in checkpoint.notes)
    assert_same_tensors(checkpoint.generator, generator)


@pytest.mark.parametrize(
    "args, message",
    [
        ({"size": 64}, "args.size=64 disagrees"),
        ({"n_mlp": 8}, "args.n_mlp=8 disagrees"),
        ({"latent": 512}, "args.latent=512 disagrees"),
        ({"channel_multiplier": 2}, "args.channel_multiplier=2 disagrees"),
        ({"arch": "swagan"}, "args.arch='swagan' is not supported"),
    ],
)
def test_args_that_disagree_with_the_tensors_are_refused(
    written: Path, tmp_path: Path, args: dict[str, Any], message: str
) -> None:
    data = training_checkpoint(written)
    for name, value in args.items():
        setattr(data["args"], name, value)
    path = tmp_path / "disagree.pt"
    torch.save(data, path)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


# --------------------------------------------------------------------- refusals and broken files


def one_line_error(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return message


@pytest.mark.parametrize("func, name", [(os.system, "system"), (eval, "builtins.eval")])
def test_a_forbidden_global_is_refused_without_side_effects(
    written: Path, tmp_path: Path, func: Any, name: str
):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    data = raw(written)
    data["payload"] = Evil(func, arg)
    path = tmp_path / "evil.pt"
    torch.save(data, path)
    message = one_line_error(path)
    assert message.startswith("refusing to unpickle ") and name in message
    assert not marker.exists()


def test_a_namespace_anywhere_but_args_is_refused(written: Path, tmp_path: Path) -> None:
    data = raw(written)
    data["g_ema"] = {**data["g_ema"], "hidden": argparse.Namespace(size=32)}
    path = tmp_path / "namespace.pt"
    torch.save(data, path)
    assert "argparse.Namespace is only accepted as the top-level 'args'" in one_line_error(path)
    assert argparse.Namespace not in torch.serialization.get_safe_globals()  # allowed only during the load


def test_a_truncated_file_is_one_clear_error(written: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.pt"
    path.write_bytes(written.read_bytes()[: written.stat().st_size // 2])
    assert "truncated or corrupt torch file" in one_line_error(path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda d: d["g_ema"].pop("convs.1.conv.modulation.bias"),
            "missing tensors g_ema.convs.1.conv.modulation.bias",
        ),
        (
            lambda d: d["g_ema"].update({"noises.noise_0": torch.zeros(1, 1, 4, 5)}),
            "g_ema.noises.noise_0 [1, 1, 4, 5]",
        ),
        (
            lambda d: d["g_ema"].update({"extra.weight": torch.zeros(2)}),
            "unexpected tensors g_ema.extra.weight",
        ),
        (lambda d: d["g_ema"].update({"input.input": torch.zeros(1, 16, 4, 4)}), "is not of the form"),
        (lambda d: d["g_ema"].update({"style.1.weight": "not a tensor"}), "g_ema.style.1.weight is a str"),
        (lambda d: d.update({"latent_avg": torch.zeros(7)}), "latent_avg has shape [7]"),
        (lambda d: d["rigstyle_config"].update({"z_dim": 64}), "says z_dim=64 but the tensors say 32"),
        (lambda d: d.pop("g_ema"), "no 'g_ema' or 'g' state dict"),
    ],
)
def test_broken_tensors_are_named(written: Path, tmp_path: Path, edit: Any, message: str) -> None:
    data = raw(written)
    edit(data)
    path = tmp_path / "broken.pt"
    torch.save(data, path)
    assert message in one_line_error(path)


def test_a_broken_discriminator_does_not_stop_the_generator(
    written: Path, tmp_path: Path, generator: Generator
):
    data = raw(written)
    del data["d"]["final_linear.1.bias"]
    path = tmp_path / "broken-d.pt"
    torch.save(data, path)
    checkpoint = read_checkpoint(path)
    assert checkpoint.discriminator is None
    assert (
        checkpoint.discriminator_problem
        == "discriminator d not loaded: missing tensors d.final_linear.1.bias"
    )
    assert_same_tensors(checkpoint.generator, generator)


@pytest.mark.parametrize(
    "g_kwargs, d_kwargs, message",
    [
        ({"c_dim": 4}, None, "conditional generators (c_dim=4)"),
        ({"w_dim": 24}, None, "z_dim == w_dim (got 32 and 24)"),
        ({"img_channels": 1}, None, "img_channels=1"),
        ({}, {"architecture": "skip"}, "discriminator: rosinality discriminators are 'resnet'"),
        ({}, {"mbstd_group_size": 8}, "mbstd_group_size=4 (got 8)"),
    ],
)
def test_networks_rosinality_cannot_represent_are_refused(
    tmp_path: Path, g_kwargs: dict[str, Any], d_kwargs: dict[str, Any] | None, message: str
) -> None:
    generator = Generator(**{**SMALL_G, **g_kwargs})
    discriminator = None if d_kwargs is None else Discriminator(**{**SMALL_D, **d_kwargs})
    path = tmp_path / "refused.pt"
    with pytest.raises(CheckpointError) as info:
        save_rosinality(generator, path, discriminator, allow_nonstandard_channels=True)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    assert not path.exists()


def test_a_channel_table_rosinality_cannot_build_needs_the_flag(tmp_path: Path, generator: Generator) -> None:
    path = tmp_path / "small.pt"
    with pytest.raises(CheckpointError, match=r"min\(16384 \* channel_multiplier // r, 512\), not \{4: 32"):
        save_rosinality(generator, path)
    assert not path.exists()
    with pytest.raises(TypeError, match="stylegan2.Generator"):
        save_rosinality(torch.nn.Linear(2, 2), path)  # type: ignore[arg-type]


# --------------------------------------------------------------------- pure channel-table functions


def test_rosinality_channel_multipliers() -> None:
    assert rosinality_channel_multiplier(channel_table(32768, 512, 1024)) == 2  # FFHQ config-f
    assert rosinality_channel_multiplier(channel_table(16384, 512, 256)) == 1  # NVlabs paper256
    assert rosinality_channel_multiplier(channel_table(32768, 512, 32)) == 2  # all 512: the default
    assert rosinality_channel_multiplier(channel_table(32768, 512, 32), hint=1) == 1
    assert rosinality_channel_multiplier(channel_table(2048, 64, 64)) is None
    assert channel_table(16384 * 2, 512, 1024) == {
        4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32
    }  # fmt: skip


@pytest.mark.parametrize(
    "base, cmax, res", [(512, 32, 32), (300, 40, 64), (2048, 64, 256), (100, 7, 16), (64, 512, 8)]
)
def test_infer_channel_config_reproduces_any_table(base: int, cmax: int, res: int) -> None:
    table = channel_table(base, cmax, res)
    found = infer_channel_config(table)
    assert channel_table(*found, res) == table
    assert infer_channel_config(table, preferred=[(1, 1), (base, cmax)]) == (base, cmax)


@pytest.mark.parametrize("table", [{4: 16, 8: 32}, {4: 32, 8: 32, 16: 24, 32: 16}, {4: 8, 8: 0}])
def test_infer_channel_config_refuses_other_tables(table: dict[int, int]) -> None:
    with pytest.raises(ValueError, match="is not of the form"):
        infer_channel_config(table)
