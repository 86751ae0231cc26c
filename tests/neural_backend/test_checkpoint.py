"""RigStyle safetensors generator checkpoints: round trip and one-line errors that name the file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from neural_backend.checkpoints.base import CONFIG_KEY, CheckpointError
from neural_backend.checkpoints.io import load_discriminator, load_generator, read_checkpoint, save_checkpoint
from neural_backend.stylegan2 import Discriminator, Generator
from neural_backend.stylegan2.builtin import builtin_generator


@pytest.fixture(scope="module")
def generator() -> Generator:
    return builtin_generator(resolution=16, seed=3)


def _raw_checkpoint(generator: Generator, path: Path, tensors=None, metadata=None, config=None) -> Path:
    """Write a safetensors file with optionally altered tensors, metadata or config."""
    state = {k: v.clone() for k, v in generator.state_dict().items()} if tensors is None else tensors
    meta = {"format": "rigstyle-generator", "version": "1"}
    meta[CONFIG_KEY] = json.dumps(generator.init_kwargs if config is None else config)
    save_file(state, str(path), metadata=meta if metadata is None else metadata)
    return path


def _error_for(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_round_trip_gives_identical_images(generator, tmp_path):
    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    loaded = load_generator(path)
    assert loaded.init_kwargs == generator.init_kwargs
    assert not loaded.training
    for name, tensor in generator.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    ws = generator.mapping(torch.randn(2, generator.z_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        assert torch.equal(loaded.synthesis(ws), generator.synthesis(ws))
    assert torch.equal(loaded.mapping.w_avg, generator.mapping.w_avg)


def test_metadata_holds_format_version_and_config(generator, tmp_path):

    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "rigstyle-generator" and metadata["version"] == "1"
    assert json.loads(metadata[CONFIG_KEY]) == generator.init_kwargs


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in _error_for(tmp_path / "absent.safetensors")


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"this is not a checkpoint at all")
    assert "not a StyleGAN2 checkpoint (unrecognised file format)" in _error_for(path)


def test_corrupt_safetensors_header(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    header = b'{"broken": '
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert "safetensors" in _error_for(path)


def test_pickles_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(pickle.dumps({"G_ema": None}))
    assert "pickle" in _error_for(path)


def test_missing_or_wrong_metadata(generator, tmp_path):
    assert "format" in _error_for(_raw_checkpoint(generator, tmp_path / "a.safetensors", metadata={}))
    meta = {"format": "rigstyle-generator", "version": "1"}
    assert CONFIG_KEY in _error_for(_raw_checkpoint(generator, tmp_path / "b.safetensors", metadata=meta))
    bad_json = {**meta, CONFIG_KEY: "{not json"}
    assert "JSON" in _error_for(_raw_checkpoint(generator, tmp_path / "c.safetensors", metadata=bad_json))
    version = {**meta, "version": "99"}
    assert "version" in _error_for(_raw_checkpoint(generator, tmp_path / "d.safetensors", metadata=version))


def test_invalid_config(generator, tmp_path):
    unknown = {**generator.init_kwargs, "colour": "blue"}
    assert "colour" in _error_for(_raw_checkpoint(generator, tmp_path / "a.safetensors", config=unknown))
    bad_res = {**generator.init_kwargs, "img_resolution": 20}
    assert "img_resolution" in _error_for(
        _raw_checkpoint(generator, tmp_path / "b.safetensors", config=bad_res)
    )
    assert "JSON object" in _error_for(_raw_checkpoint(generator, tmp_path / "c.safetensors", config=[1, 2]))


def test_missing_unexpected_and_misshaped_tensors(generator, tmp_path):
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    missing = {k: v for k, v in state.items() if k != "synthesis.b8.conv0.weight"}
    message = _error_for(_raw_checkpoint(generator, tmp_path / "a.safetensors", tensors=missing))
    assert "missing tensors" in message and "synthesis.b8.conv0.weight" in message

    extra = {**state, "synthesis.b8.skip.weight": torch.zeros(1)}
    message = _error_for(_raw_checkpoint(generator, tmp_path / "b.safetensors", tensors=extra))
    assert "unexpected tensors" in message and "synthesis.b8.skip.weight" in message

    wrong = {**state, "mapping.w_avg": torch.zeros(7)}
    message = _error_for(_raw_checkpoint(generator, tmp_path / "c.safetensors", tensors=wrong))
    assert "wrong shape" in message and "mapping.w_avg [7]" in message


def test_another_generators_weights_do_not_fit(generator, tmp_path):
    bigger = builtin_generator(resolution=32)
    config = generator.init_kwargs  # claims 16 px but holds 32 px weights
    message = _error_for(_raw_checkpoint(bigger, tmp_path / "a.safetensors", config=config))
    assert "unexpected tensors" in message and "synthesis.b32" in message


def test_load_to_device_and_save_rejects_other_modules(generator, tmp_path):
    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    assert next(load_generator(path, device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(TypeError, match="Generator"):
        save_checkpoint(torch.nn.Linear(2, 2), path)


def test_generator_and_discriminator_round_trip_in_one_file(generator, tmp_path):
    torch.manual_seed(3)
    discriminator = Discriminator(img_resolution=16, channel_base=256, channel_max=32, c_dim=2).eval()
    path = tmp_path / "gd.safetensors"
    save_checkpoint(generator, path, discriminator)
    loaded = read_checkpoint(path)
    assert loaded.kind == "rigstyle-safetensors" and loaded.discriminator is not None
    assert loaded.discriminator.init_kwargs == discriminator.init_kwargs
    for name, tensor in discriminator.state_dict().items():
        assert torch.equal(loaded.discriminator.state_dict()[name], tensor), name
    images, c = torch.randn(4, 3, 16, 16), torch.randn(4, 2)
    with torch.no_grad():
        assert torch.equal(load_discriminator(path)(images, c), discriminator(images, c))
    with safe_open(str(path), framework="pt") as handle:  # G's names stay unprefixed for other readers
        assert "mapping.w_avg" in handle.keys() and "D.b4.out.weight" in handle.keys()


def test_load_discriminator_without_one_names_the_file(generator, tmp_path):
    path = tmp_path / "g.safetensors"
    save_checkpoint(generator, path)
    with pytest.raises(CheckpointError, match="holds no discriminator") as info:
        load_discriminator(path)
    assert str(path) in str(info.value)
