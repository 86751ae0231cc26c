"""NVlabs StyleGAN2 / StyleGAN2-ADA network pickles, read without running any code from them.

An NVlabs ``.pkl`` is a plain pickle of ``{"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}`` in
which every network is ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {type: 'class', version, module_src, class_name, state}``. NVIDIA's loader executes ``module_src``;
this one never does. A :class:`pickle.Unpickler` whose ``find_class`` resolves only an allow-list turns each
network into an inert :class:`PersistentRecord` (its ``state`` is the module ``__dict__``); tensors are
rebuilt by torch's own functions, and embedded storages are read with ``torch.load(weights_only=True)``.
Any other global is refused with a :class:`~neural_backend.checkpoints.io.CheckpointError` naming it, before
it could be called. Our :class:`~neural_backend.stylegan2.Generator` is then built from ``_init_kwargs``
and loaded, strictly, from the flattened ``_parameters`` and ``_buffers``.
"""

from __future__ import annotations

import collections
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rigs.safe_pickle import AllowListUnpickler, Refused

from ..stylegan2 import Discriminator, Generator
from .base import KIND_NVLABS, Checkpoint, CheckpointError, build_network, check_tensor_names

STYLEGAN3_REFUSAL = "StyleGAN3 pickles are not supported yet (only StyleGAN2 / StyleGAN2-ADA generators)"
# synthesis kwargs and module names that only StyleGAN3 (T/R) networks have
_STYLEGAN3_KWARGS = frozenset(
    {"conv_kernel", "use_radial_filters", "magnitude_ema_beta", "num_critical", "first_cutoff", "margin_size"}
)
_STYLEGAN3_NAMES = ("synthesis.input.affine", "synthesis.input.transform")
# NVlabs kwargs our Generator cannot honour unless they have these (NVlabs default) values
_MAPPING_DEFAULTS: dict[str, Any] = {"lr_multiplier": 0.01, "embed_features": None, "layer_features": None}
_SYNTHESIS_DEFAULTS: dict[str, Any] = {
    "architecture": "skip",
    "resample_filter": [1, 3, 3, 1],
    "use_noise": True,
}
_D_BLOCK_DEFAULTS: dict[str, Any] = {"activation": "lrelu", "resample_filter": [1, 3, 3, 1]}
_D_EPILOGUE_DEFAULTS: dict[str, Any] = {"activation": "lrelu"}
_D_MAPPING_DEFAULTS: dict[str, Any] = {"lr_multiplier": 0.01, "embed_features": None, "layer_features": None}


class _Refused(Exception):
    """A global outside the allow-list, or a malformed persistent object."""


@dataclass
class PersistentRecord:
    """Inert stand-in for an NVlabs persistent object: the pickled ``meta``, never executed."""

    class_name: str
    module_src: str
    version: object
    state: dict[str, Any]


class EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict``: a plain dict (no attribute access needed)."""


def _reconstruct_persistent_obj(meta: object) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        kind = meta.get("type") if isinstance(meta, dict) else type(meta).__name__
        raise _Refused(f"refusing a persistent object of type {kind!r}")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise _Refused(f"refusing persistent object {meta.get('class_name')!r} without a state dict")
    return PersistentRecord(
        class_name=str(meta.get("class_name")),
        module_src=str(meta.get("module_src", "")),
        version=meta.get("version"),
        state=state,
    )


def _load_from_bytes(data: object) -> Any:
    """``torch.storage._load_from_bytes`` without its unrestricted ``torch.load``."""
    if not isinstance(data, bytes | bytearray):
        raise _Refused(f"refusing to load a storage from {type(data).__name__}")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")


_SCALAR: Any = np.float64(0.0).__reduce__()[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
}


def read_pickle(path: str | Path) -> Any:
    """Unpickle ``path`` with the allow-list; networks come back as :class:`PersistentRecord`.

    Raises:
        CheckpointError: ``"refusing to unpickle os.system in FILE"``, or a truncated or corrupt pickle.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            return AllowListUnpickler(handle, _ALLOWED).load()
    except (_Refused, Refused) as exc:
        raise CheckpointError(f"{exc} in {path}") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt pickle ({exc or 'ran out of data'})") from None
    except Exception as exc:  # noqa: BLE001 - any failure inside the allowed rebuilders is a corrupt file
        raise CheckpointError(f"{path}: corrupt pickle ({type(exc).__name__}: {exc})") from None


def flatten_state(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """``_parameters`` and ``_buffers`` of ``record`` and its ``_modules``, recursively, by dotted name."""
    out: dict[str, torch.Tensor] = {}
    state = record.state
    non_persistent = state.get("_non_persistent_buffers_set") or set()
    for key in ("_parameters", "_buffers"):
        for name, value in (state.get(key) or {}).items():
            if value is None or (key == "_buffers" and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise _Refused(f"{prefix}{name} is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    for name, child in (state.get("_modules") or {}).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise _Refused(f"submodule {prefix}{name} is a {type(child).__name__}, not a network")
        out.update(flatten_state(child, f"{prefix}{name}."))
    return out


def read_nvlabs(path: str | Path) -> Checkpoint:
    """Read an NVlabs StyleGAN2(-ADA) pickle: our generator from ``G_ema`` (or ``G``) and discriminator ``D``.

    A discriminator that cannot be loaded does not stop the generator: the reason is kept in
    :attr:`Checkpoint.discriminator_problem`.

    Raises:
        CheckpointError: a refused global, not an NVlabs network pickle, a StyleGAN3 pickle, unsupported
            constructor kwargs, or tensors that do not match the architecture.
    """
    path = Path(path)
    data = read_pickle(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not an NVlabs network pickle (top level is a {type(data).__name__})")
    key = "G_ema" if "G_ema" in data else "G"
    record = data.get(key)
    if not isinstance(record, PersistentRecord):
        raise CheckpointError(f"{path}: not an NVlabs network pickle (no 'G_ema' or 'G' network)")
    tensors, kwargs = _tensors_and_kwargs(path, key, record)
    if _is_stylegan3(record, kwargs, tensors):
        raise CheckpointError(f"{path}: {STYLEGAN3_REFUSAL}")
    if record.class_name != "Generator":
        raise CheckpointError(f"{path}: network {key} is a {record.class_name!r}, expected 'Generator'")
    generator = _loaded(path, build_network(path, Generator, _generator_config(path, kwargs)), tensors)
    discriminator, problem = None, None
    d_record = data.get("D")
    if isinstance(d_record, PersistentRecord):
        try:
            d_tensors, d_kwargs = _tensors_and_kwargs(path, "D", d_record)
            config = _discriminator_config(path, d_kwargs)
            discriminator = _loaded(path, build_network(path, Discriminator, config), d_tensors, "D.")
        except CheckpointError as exc:
            problem = "discriminator D not loaded: " + str(exc).removeprefix(f"{path}: ")
    return Checkpoint(path, KIND_NVLABS, generator, discriminator, problem)


def _tensors_and_kwargs(
    path: Path, key: str, record: PersistentRecord
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = flatten_state(record)
    except _Refused as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    kwargs = record.state.get("_init_kwargs")
    if not isinstance(kwargs, dict):
        raise CheckpointError(f"{path}: network {key} has no constructor kwargs ('_init_kwargs')")
    return tensors, kwargs


def _loaded(path: Path, network: Any, tensors: dict[str, torch.Tensor], label: str = "") -> Any:
    """``network`` with ``tensors`` loaded strictly (names and shapes checked first), in eval mode."""
    expected = {label + name: list(t.shape) for name, t in network.state_dict().items()}
    check_tensor_names(path, {label + name: list(t.shape) for name, t in tensors.items()}, expected)
    network.load_state_dict({name: t.detach() for name, t in tensors.items()}, strict=True)
    return network.eval()


def _is_stylegan3(record: PersistentRecord, kwargs: dict[str, Any], tensors: dict[str, torch.Tensor]) -> bool:
    synthesis = kwargs.get("synthesis_kwargs") or {}
    if isinstance(synthesis, dict) and _STYLEGAN3_KWARGS & set(synthesis):
        return True
    if any(name.startswith(_STYLEGAN3_NAMES) for name in tensors):
        return True
    return "class SynthesisInput" in record.module_src


def _generator_config(path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Our Generator's constructor kwargs from NVlabs ``Generator._init_kwargs``."""
    mapping = dict(kwargs.get("mapping_kwargs") or {})
    synthesis = dict(kwargs.get("synthesis_kwargs") or {})
    _check_defaults(path, "mapping_kwargs", mapping, _MAPPING_DEFAULTS)
    _check_defaults(path, "synthesis_kwargs", synthesis, _SYNTHESIS_DEFAULTS)
    config: dict[str, Any] = {}
    for option in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"):
        if option not in kwargs:
            raise CheckpointError(f"{path}: generator kwargs lack {option!r}")
        config[option] = int(kwargs[option])
    config["mapping_layers"] = int(mapping.get("num_layers", 8))
    config["channel_base"] = int(synthesis.get("channel_base", 32768))
    config["channel_max"] = int(synthesis.get("channel_max", 512))
    clamp = synthesis.get("conv_clamp")
    config["conv_clamp"] = None if clamp is None else float(clamp)
    config["num_fp16_res"] = int(synthesis.get("num_fp16_res", 0))
    return config


def _discriminator_config(path: Path, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Our Discriminator's constructor kwargs from NVlabs ``Discriminator._init_kwargs``."""
    groups = {
        "block_kwargs": (dict(kwargs.get("block_kwargs") or {}), _D_BLOCK_DEFAULTS),
        "epilogue_kwargs": (dict(kwargs.get("epilogue_kwargs") or {}), _D_EPILOGUE_DEFAULTS),
        "mapping_kwargs": (dict(kwargs.get("mapping_kwargs") or {}), _D_MAPPING_DEFAULTS),
    }
    for name, (options, defaults) in groups.items():
        _check_defaults(path, name, options, defaults)
    config: dict[str, Any] = {}
    for option in ("c_dim", "img_resolution", "img_channels"):
        if option not in kwargs:
            raise CheckpointError(f"{path}: discriminator kwargs lack {option!r}")
        config[option] = int(kwargs[option])
    config["architecture"] = str(kwargs.get("architecture", "resnet"))
    config["channel_base"] = int(kwargs.get("channel_base", 32768))
    config["channel_max"] = int(kwargs.get("channel_max", 512))
    config["num_fp16_res"] = int(kwargs.get("num_fp16_res", 0))
    clamp = kwargs.get("conv_clamp")
    config["conv_clamp"] = None if clamp is None else float(clamp)
    cmap_dim = kwargs.get("cmap_dim")
    config["cmap_dim"] = None if cmap_dim is None else int(cmap_dim)
    config["mapping_layers"] = int(groups["mapping_kwargs"][0].get("num_layers", 8))
    epilogue = groups["epilogue_kwargs"][0]
    group_size = epilogue.get("mbstd_group_size", 4)
    config["mbstd_group_size"] = None if group_size is None else int(group_size)
    config["mbstd_num_channels"] = int(epilogue.get("mbstd_num_channels", 1))
    return config


def _check_defaults(path: Path, name: str, options: dict[str, Any], defaults: dict[str, Any]) -> None:
    for option, default in defaults.items():
        if option in options and not _same(options[option], default):
            raise CheckpointError(
                f"{path}: unsupported {name}.{option}={options[option]!r} (only {default!r} is supported)"
            )


def _same(value: object, default: object) -> bool:
    try:
        return bool(np.array_equal(np.asarray(value), np.asarray(default)))
    except (TypeError, ValueError):
        return False
