"""NVlabs StyleGAN2(-ADA) network pickles: loaded bit-exactly without running code, foreign globals refused.

The pickles are built here with exactly NVlabs' structure: stand-ins registered under the real module names
``torch_utils.persistence`` and ``dnnlib.util`` (only while writing) make pickle emit the same globals, and
tensors are pickled the normal torch way (``_rebuild_parameter``, ``_rebuild_tensor_v2``,
``torch.storage._load_from_bytes``).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from neural_backend.builtin_generator import builtin_generator
from neural_backend.checkpoint import CheckpointError, load_generator, save_generator
from neural_backend.nvlabs_pickle import STYLEGAN3_REFUSAL, load_nvlabs, read_pickle
from neural_backend.stylegan2 import Generator

RIGSTYLE = str(Path(sys.executable).parent / "rigstyle")
MODULE_SRC = "raise SystemExit('module_src was executed')\n"


@pytest.fixture(scope="module")
def generator() -> Generator:
    return builtin_generator(resolution=16, seed=5)


@contextlib.contextmanager
def _nvlabs_modules() -> Iterator[types.SimpleNamespace]:
    """``torch_utils.persistence._reconstruct_persistent_obj`` and ``dnnlib.util.EasyDict`` while writing."""

    def _reconstruct_persistent_obj(meta: object) -> object:  # never called: we only pickle
        raise AssertionError("the writer's stand-in must not be called")

    class EasyDict(dict):
        pass

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    names = {
        "torch_utils": types.ModuleType("torch_utils"),
        "torch_utils.persistence": types.ModuleType("torch_utils.persistence"),
        "dnnlib": types.ModuleType("dnnlib"),
        "dnnlib.util": types.ModuleType("dnnlib.util"),
    }
    names["torch_utils.persistence"]._reconstruct_persistent_obj = _reconstruct_persistent_obj  # type: ignore[attr-defined]
    names["dnnlib.util"].EasyDict = EasyDict  # type: ignore[attr-defined]
    assert not set(names) & set(sys.modules)
    sys.modules.update(names)
    try:
        yield types.SimpleNamespace(reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict)
    finally:
        for name in names:
            del sys.modules[name]


class _Persistent:
    """Pickles as ``_reconstruct_persistent_obj(meta)``, as NVlabs' persistent classes do."""

    def __init__(self, reconstruct: Any, meta: dict[str, Any]) -> None:
        self.reconstruct, self.meta = reconstruct, meta

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.reconstruct, (self.meta,))


class _Evil:
    def __init__(self, func: Any, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, (self.arg,))


def _record(
    nv: types.SimpleNamespace, module: torch.nn.Module, init_kwargs: dict[str, Any] | None = None
) -> Any:
    """An NVlabs-style persistent record of ``module`` (its ``__dict__`` as state, submodules recursively)."""
    state: dict[str, Any] = {
        "training": False,
        "_parameters": collections.OrderedDict(module._parameters),
        "_buffers": collections.OrderedDict(module._buffers),
        "_non_persistent_buffers_set": set(),
        "_backward_hooks": collections.OrderedDict(),
        "_forward_hooks": collections.OrderedDict(),
        "_forward_pre_hooks": collections.OrderedDict(),
        "_state_dict_hooks": collections.OrderedDict(),
        "_load_state_dict_pre_hooks": collections.OrderedDict(),
        "_modules": collections.OrderedDict(
            (n, _record(nv, c)) for n, c in module._modules.items() if c is not None
        ),
        "_init_args": (),
        "_init_kwargs": nv.EasyDict(init_kwargs or {}),
    }
    state.update(
        {k: v for k, v in vars(module).items() if isinstance(v, int | float | str) and k not in state}
    )
    meta = {
        "type": "class",
        "version": 6,
        "module_src": MODULE_SRC,
        "class_name": type(module).__name__,
        "state": state,
    }
    return _Persistent(nv.reconstruct, meta)


def _nvlabs_kwargs(nv: types.SimpleNamespace, generator: Generator, **synthesis_extra: Any) -> dict[str, Any]:
    config = generator.init_kwargs
    return nv.EasyDict(
        z_dim=config["z_dim"],
        c_dim=config["c_dim"],
        w_dim=config["w_dim"],
        img_resolution=config["img_resolution"],
        img_channels=config["img_channels"],
        mapping_kwargs=nv.EasyDict(num_layers=config["mapping_layers"]),
        synthesis_kwargs=nv.EasyDict(
            channel_base=config["channel_base"],
            channel_max=config["channel_max"],
            num_fp16_res=4,
            conv_clamp=config["conv_clamp"],
            **synthesis_extra,
        ),
    )


def _write_pkl(path: Path, generator: Generator, **extra: Any) -> Path:
    with _nvlabs_modules() as nv:
        path.write_bytes(pickle.dumps(_snapshot(nv, generator, **extra), protocol=4))
    return path


def _snapshot(nv: types.SimpleNamespace, generator: Generator, **extra: Any) -> dict[str, Any]:
    g_ema = _record(nv, generator, _nvlabs_kwargs(nv, generator, **extra.pop("synthesis_extra", {})))
    data = {
        "G": g_ema,
        "D": _record(nv, torch.nn.Linear(4, 1), nv.EasyDict(c_dim=0, img_resolution=16)),
        "G_ema": g_ema,
        "augment_pipe": None,
        "training_set_kwargs": nv.EasyDict(resolution=16, xflip=np.bool_(False), scale=np.float32(0.5)),
        **extra,
    }
    return data


@pytest.fixture
def good_pkl(tmp_path: Path, generator: Generator) -> Path:
    return _write_pkl(tmp_path / "network-snapshot.pkl", generator)


def test_the_pickle_uses_the_nvlabs_globals(good_pkl: Path) -> None:
    data = good_pkl.read_bytes()
    for name in (b"_reconstruct_persistent_obj", b"EasyDict", b"_rebuild_parameter", b"_rebuild_tensor_v2"):
        assert name in data
    assert b"_load_from_bytes" in data and b"scalar" in data
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules


def test_every_tensor_arrives_bit_identical(good_pkl: Path, generator: Generator) -> None:
    loaded = load_nvlabs(good_pkl)
    assert loaded.has_discriminator
    assert loaded.generator.init_kwargs == generator.init_kwargs
    expected, got = generator.state_dict(), loaded.generator.state_dict()
    assert set(expected) == set(got)
    for name, tensor in expected.items():
        assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


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
    path = _write_pkl(tmp_path / "evil.pkl", generator, payload=_Evil(func, arg))
    with pytest.raises(CheckpointError) as info:
        load_generator(path)
    message = str(info.value)
    assert message.startswith("refusing to unpickle ") and name in message and str(path) in message
    assert "\n" not in message
    assert not marker.exists()


def test_stylegan3_pickles_are_refused_clearly(tmp_path: Path, generator: Generator) -> None:
    extra = {"synthesis_extra": {"magnitude_ema_beta": 0.999, "conv_kernel": 1, "use_radial_filters": True}}
    path = _write_pkl(tmp_path / "stylegan3-r.pkl", generator, **extra)
    with pytest.raises(CheckpointError, match="StyleGAN3 pickles are not supported yet"):
        load_generator(path)
    assert "StyleGAN3" in STYLEGAN3_REFUSAL


def test_unsupported_nvlabs_options_are_refused(tmp_path: Path, generator: Generator) -> None:
    path = _write_pkl(tmp_path / "resnet.pkl", generator, synthesis_extra={"architecture": "resnet"})
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
    return subprocess.run(
        [RIGSTYLE, "checkpoint", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


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
    save_generator(generator, path)
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
