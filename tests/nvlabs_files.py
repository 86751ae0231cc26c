"""NVlabs StyleGAN2(-ADA) network pickles of exactly NVIDIA's structure, written for tests and benchmarks.

Stand-ins registered under the real module names ``torch_utils.persistence`` and ``dnnlib.util`` (only
while writing) make pickle emit the same globals as NVIDIA's files, and tensors are pickled the normal torch
way (``_rebuild_parameter``, ``_rebuild_tensor_v2``, ``torch.storage._load_from_bytes``). Each network is
``_reconstruct_persistent_obj(meta)`` with ``meta = {type, version, module_src, class_name, state}``.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neural_backend.stylegan2 import Discriminator, Generator

MODULE_SRC = "raise SystemExit('module_src was executed')\n"


@contextlib.contextmanager
def nvlabs_modules() -> Iterator[types.SimpleNamespace]:
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


class Evil:
    """Pickles as ``func(arg)``: a payload a safe loader must refuse."""

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
            num_fp16_res=config["num_fp16_res"],
            conv_clamp=config["conv_clamp"],
            **synthesis_extra,
        ),
    )


def _nvlabs_d_kwargs(nv: types.SimpleNamespace, discriminator: Discriminator) -> dict[str, Any]:
    config = discriminator.init_kwargs
    return nv.EasyDict(
        c_dim=config["c_dim"],
        img_resolution=config["img_resolution"],
        img_channels=config["img_channels"],
        architecture=config["architecture"],
        channel_base=config["channel_base"],
        channel_max=config["channel_max"],
        num_fp16_res=config["num_fp16_res"],
        conv_clamp=config["conv_clamp"],
        cmap_dim=config["cmap_dim"],
        block_kwargs=nv.EasyDict(),
        mapping_kwargs=nv.EasyDict(num_layers=config["mapping_layers"]),
        epilogue_kwargs=nv.EasyDict(
            mbstd_group_size=config["mbstd_group_size"], mbstd_num_channels=config["mbstd_num_channels"]
        ),
    )


def write_nvlabs_pkl(
    path: Path,
    generator: Generator,
    discriminator: Discriminator | None = None,
    separate_g: bool = False,
    **extra: Any,
) -> Path:
    """Write an NVlabs-structured pickle of ``generator`` (as G and G_ema) and ``discriminator`` (D).

    ``separate_g`` pickles G as its own copy of the weights, as in NVIDIA's files (which are then ~1.6x
    larger); otherwise G and G_ema are one object. ``extra`` adds top-level entries; ``synthesis_extra``
    adds generator synthesis kwargs.
    """
    with nvlabs_modules() as nv:
        data = _snapshot(nv, generator, discriminator, **extra)
        if separate_g:
            data["G"] = _record(nv, copy.deepcopy(generator), _nvlabs_kwargs(nv, generator))
        path.write_bytes(pickle.dumps(data, protocol=4))
    return path


def _snapshot(
    nv: types.SimpleNamespace, generator: Generator, discriminator: Discriminator | None, **extra: Any
) -> dict[str, Any]:
    g_ema = _record(nv, generator, _nvlabs_kwargs(nv, generator, **extra.pop("synthesis_extra", {})))
    if discriminator is None:  # something D-shaped that is not a discriminator
        d_record = _record(nv, torch.nn.Linear(4, 1), nv.EasyDict(c_dim=0, img_resolution=16))
    else:
        d_record = _record(nv, discriminator, _nvlabs_d_kwargs(nv, discriminator))
    data = {
        "G": g_ema,
        "D": d_record,
        "G_ema": g_ema,
        "augment_pipe": None,
        "training_set_kwargs": nv.EasyDict(resolution=16, xflip=np.bool_(False), scale=np.float32(0.5)),
        **extra,
    }
    return data
