"""RigStyle safetensors generator checkpoints: round trip and one-line errors that name the file."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from neural_backend.builtin_generator import builtin_generator
from neural_backend.checkpoint import CONFIG_KEY, CheckpointError, load_generator, save_generator
from neural_backend.stylegan2 import Generator


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
    save_generator(generator, path)
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
    from safetensors import safe_open

    path = tmp_path / "g.safetensors"
    save_generator(generator, path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "rigstyle-generator" and metadata["version"] == "1"
    assert json.loads(metadata[CONFIG_KEY]) == generator.init_kwargs


def test_missing_file(tmp_path):
    assert "no such checkpoint file" in _error_for(tmp_path / "absent.safetensors")


def test_not_a_safetensors_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"this is not a checkpoint at all")
    assert "not a safetensors file" in _error_for(path)


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
    save_generator(generator, path)
    assert next(load_generator(path, device="cpu").parameters()).device.type == "cpu"
    with pytest.raises(TypeError, match="Generator"):
        save_generator(torch.nn.Linear(2, 2), path)
