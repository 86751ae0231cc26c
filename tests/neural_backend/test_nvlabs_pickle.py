"""NVlabs StyleGAN2(-ADA) network pickles: loaded bit-exactly without running code, foreign globals refused.

The pickles are written by :mod:`nvlabs_files` with exactly NVIDIA's structure and globals.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import run_rigstyle
from nvlabs_files import Evil, write_nvlabs_pkl

from neural_backend.checkpoints.base import CheckpointError
from neural_backend.checkpoints.io import load_discriminator, load_generator, save_checkpoint
from neural_backend.checkpoints.nvlabs import STYLEGAN3_REFUSAL, read_nvlabs, read_pickle
from neural_backend.stylegan2 import Discriminator, Generator
from neural_backend.stylegan2.builtin import builtin_generator


@pytest.fixture(scope="module")
def generator() -> Generator:
    return builtin_generator(resolution=16, seed=5)


@pytest.fixture(scope="module")
def discriminator() -> Discriminator:
    torch.manual_seed(6)
    return Discriminator(img_resolution=16, channel_base=256, channel_max=32, conv_clamp=256.0).eval()


@pytest.fixture
def good_pkl(tmp_path: Path, generator: Generator, discriminator: Discriminator) -> Path:
    return write_nvlabs_pkl(tmp_path / "network-snapshot.pkl", generator, discriminator)


def test_the_pickle_uses_the_nvlabs_globals(good_pkl: Path) -> None:
    data = good_pkl.read_bytes()
    for name in (b"_reconstruct_persistent_obj", b"EasyDict", b"_rebuild_parameter", b"_rebuild_tensor_v2"):
        assert name in data
    assert b"_load_from_bytes" in data and b"scalar" in data
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_every_tensor_arrives_bit_identical(good_pkl: Path, generator: Generator) -> None:
    loaded = read_nvlabs(good_pkl)
    assert loaded.kind == "nvlabs-pkl"
    assert loaded.generator.init_kwargs == generator.init_kwargs
    expected, got = generator.state_dict(), loaded.generator.state_dict()
    assert set(expected) == set(got)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def test_the_discriminator_arrives_bit_identical_and_scores_the_same(
    good_pkl: Path, discriminator: Discriminator
) -> None:
    loaded = read_nvlabs(good_pkl).discriminator
    assert loaded is not None and loaded.init_kwargs == discriminator.init_kwargs
    expected, got = discriminator.state_dict(), loaded.state_dict()
    assert set(expected) == set(got)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), name
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(load_discriminator(good_pkl)(images), discriminator(images))


@pytest.mark.parametrize(
    "d_kwargs",
    [
        {"architecture": "skip", "c_dim": 3},
        {
            "architecture": "orig",
            "mbstd_group_size": None,
            "mbstd_num_channels": 2,
            "cmap_dim": 8,
            "c_dim": 2,
        },
    ],
)
def test_other_discriminator_configs_load(
    tmp_path: Path, generator: Generator, d_kwargs: dict[str, Any]
) -> None:
    torch.manual_seed(7)
    discriminator = Discriminator(img_resolution=16, channel_base=256, channel_max=32, **d_kwargs).eval()
    path = write_nvlabs_pkl(tmp_path / "d.pkl", generator, discriminator)
    loaded = load_discriminator(path)
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    c = torch.randn(4, d_kwargs["c_dim"], generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(loaded(images, c), discriminator(images, c))


def test_an_unloadable_discriminator_does_not_stop_the_generator(
    tmp_path: Path, generator: Generator
) -> None:
    path = write_nvlabs_pkl(tmp_path / "odd-d.pkl", generator)  # D is not a discriminator
    checkpoint = read_nvlabs(path)
    assert checkpoint.discriminator is None and checkpoint.generator.img_resolution == 16
    assert (
        checkpoint.discriminator_problem is not None
        and "discriminator D not loaded" in checkpoint.discriminator_problem
    )
    with pytest.raises(CheckpointError, match="discriminator D not loaded"):
        load_discriminator(path)


def test_the_loaded_generator_draws_the_same_image(good_pkl: Path, generator: Generator) -> None:
    z = torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(1))
    loaded = load_generator(good_pkl)
    with torch.no_grad():
        assert torch.equal(loaded(z, truncation_psi=0.7), generator(z, truncation_psi=0.7))


@pytest.mark.parametrize("func, name", [(os.system, "system"), (eval, "builtins.eval")])
def test_a_foreign_global_is_refused_without_side_effects(
    tmp_path: Path, generator: Generator, func: Any, name: str
) -> None:
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    path = write_nvlabs_pkl(tmp_path / "evil.pkl", generator, payload=Evil(func, arg))
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert message.startswith("refusing to unpickle ") and name in message and str(path) in message
    assert "\n" not in message
    assert not marker.exists()


def test_stylegan3_pickles_are_refused_clearly(tmp_path: Path, generator: Generator) -> None:
    extra = {"synthesis_extra": {"magnitude_ema_beta": 0.999, "conv_kernel": 1, "use_radial_filters": True}}
    path = write_nvlabs_pkl(tmp_path / "stylegan3-r.pkl", generator, **extra)
    with pytest.raises(CheckpointError, match="StyleGAN3 pickles are not supported yet"):
        load_generator(path)
    assert "StyleGAN3" in STYLEGAN3_REFUSAL


def test_unsupported_nvlabs_options_are_refused(tmp_path: Path, generator: Generator) -> None:
    path = write_nvlabs_pkl(tmp_path / "resnet.pkl", generator, synthesis_extra={"architecture": "resnet"})
    with pytest.raises(CheckpointError, match="architecture='resnet'"):
        load_generator(path)


def test_a_non_nvlabs_pickle_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(CheckpointError, match="not an NVlabs network pickle"):
        load_generator(path)
    assert read_pickle(path) == {"weights": [1, 2, 3]}


def test_a_truncated_pickle_is_one_clear_error(good_pkl: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(good_pkl.read_bytes()[:5000])
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def _inspect(path: Path) -> subprocess.CompletedProcess[str]:
    return run_rigstyle("checkpoint", "inspect", path)


def test_inspect_an_nvlabs_pickle(good_pkl: Path, generator: Generator) -> None:
    result = _inspect(good_pkl)
    assert result.returncode == 0, result.stderr
    params = sum(p.numel() for p in generator.parameters())
    for line in (
        "kind:           nvlabs-pkl",
        "resolution:     16",
        f"mapping depth:  {generator.init_kwargs['mapping_layers']}",
        f"num_ws:         {generator.num_ws}",
        f"parameters:     {params:,}",
        "discriminator:  yes",
    ):
        assert line in result.stdout, result.stdout


def test_inspect_a_rigstyle_checkpoint(tmp_path: Path, generator: Generator) -> None:
    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    result = _inspect(path)
    assert result.returncode == 0, result.stderr
    assert "kind:           rigstyle-safetensors" in result.stdout
    assert "discriminator:  no" in result.stdout


@pytest.mark.parametrize("content", [b"garbage, not a checkpoint", b"\x80\x04junk", pickle.dumps([1, 2])])
def test_inspect_a_bad_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    result = _inspect(path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rigstyle: error:") and str(path) in lines[0], (
        result.stderr
    )
