"""StyleGAN2 checkpoints in every supported format, behind one :func:`read_checkpoint` entry point.

Formats, recognised by their leading bytes (never by the file name), and read without running code:

- RigStyle (``.safetensors``): ``Generator.state_dict()`` (NVlabs names) and, optionally, the
  discriminator's tensors under the ``D.`` prefix; metadata ``{"format": "rigstyle-generator",
  "version": "1", "rigstyle_config": <JSON generator kwargs>[, "rigstyle_discriminator_config": <JSON>]}``.
- NVlabs StyleGAN2 / StyleGAN2-ADA network pickles (``.pkl``): :mod:`neural_backend.nvlabs_pickle`.
- rosinality stylegan2-pytorch ``.pt`` files (``torch.save`` zip or legacy): :mod:`neural_backend.rosinality`.
"""

from __future__ import annotations

import inspect
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .stylegan2 import Discriminator, Generator

FORMAT_NAME = "rigstyle-generator"
FORMAT_VERSION = "1"
CONFIG_KEY = "rigstyle_config"
D_CONFIG_KEY = "rigstyle_discriminator_config"
D_PREFIX = "D."
KIND_RIGSTYLE = "rigstyle-safetensors"
KIND_NVLABS = "nvlabs-pkl"
KIND_ROSINALITY = "rosinality-pt"
_MAX_LISTED = 5  # names quoted in an error message before "... and N more"
# torch.save's legacy (non-zip) files start with a pickled magic number.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message is one line and names the file."""


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint file holds, loaded on the CPU in eval mode."""

    path: Path
    kind: str  # KIND_RIGSTYLE, KIND_NVLABS or KIND_ROSINALITY
    generator: Generator
    discriminator: Discriminator | None = None
    discriminator_problem: str | None = None  # why a discriminator in the file could not be loaded
    notes: tuple[str, ...] = ()  # facts worth telling the user, e.g. an estimated w_avg


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read any supported checkpoint, choosing the reader from the file's leading bytes.

    Raises:
        CheckpointError: missing or unreadable file, unsupported format, refused pickle content, bad
            config or mismatched tensors. The message is one line and names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    kind = sniff_format(path)
    reader = _READERS.get(kind)
    if reader is None:
        raise CheckpointError(f"{path}: not a StyleGAN2 checkpoint (unrecognised file format)")
    return reader(path)


def load_generator(
    path: str | Path, device: str | torch.device = "cpu", *, compile: bool = False
) -> Generator:
    """The generator (``G_ema`` / ``g_ema``) of any supported checkpoint, in eval mode on ``device``.

    ``compile=True`` compiles mapping and synthesis with ``torch.compile`` (state-dict names unchanged):
    the first call then takes tens of seconds, later calls run faster, mostly on GPUs.
    """
    generator = read_checkpoint(path).generator.to(device).eval()
    if compile:
        generator.mapping.compile()
        generator.synthesis.compile()
    return generator


def load_discriminator(path: str | Path, device: str | torch.device = "cpu") -> Discriminator:
    """The discriminator of any supported checkpoint, in eval mode on ``device``.

    Raises:
        CheckpointError: as :func:`read_checkpoint`, or the file holds no discriminator.
    """
    checkpoint = read_checkpoint(path)
    if checkpoint.discriminator_problem is not None:
        raise CheckpointError(f"{checkpoint.path}: {checkpoint.discriminator_problem}")
    if checkpoint.discriminator is None:
        raise CheckpointError(f"{checkpoint.path}: this {checkpoint.kind} checkpoint holds no discriminator")
    return checkpoint.discriminator.to(device).eval()


def save_checkpoint(
    generator: Generator, path: str | Path, discriminator: Discriminator | None = None
) -> None:
    """Write ``generator`` (and ``discriminator``) with their constructor configs in the RigStyle format."""
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    tensors: dict[str, torch.Tensor] = {}
    for prefix, key, module, cls in (
        ("", CONFIG_KEY, generator, Generator),
        (D_PREFIX, D_CONFIG_KEY, discriminator, Discriminator),
    ):
        if module is None:
            continue
        if not isinstance(module, cls):
            raise TypeError(f"expected a stylegan2.{cls.__name__}, got {type(module).__name__}")
        metadata[key] = json.dumps(module.init_kwargs, sort_keys=True)
        for name, t in module.state_dict().items():
            tensors[prefix + name] = t.detach().to("cpu").contiguous().clone()
    save_file(tensors, str(path), metadata=metadata)


def sniff_format(path: Path) -> str:
    """'safetensors', 'pickle', 'torch' (zip or legacy torch.save) or 'unknown', from the first bytes."""
    with path.open("rb") as handle:
        head = handle.read(len(_TORCH_LEGACY_MAGIC))
    size = path.stat().st_size
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"PK\x03\x04" or head == _TORCH_LEGACY_MAGIC:
        return "torch"
    if head[:1] == b"\x80":
        return "pickle"
    return "unknown"


def _read_rigstyle(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            _check_format(path, metadata)
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
            generator = build_network(path, Generator, _config(path, metadata, CONFIG_KEY))
            discriminator = None
            if D_CONFIG_KEY in metadata:
                discriminator = build_network(path, Discriminator, _config(path, metadata, D_CONFIG_KEY))
            expected = {name: list(t.shape) for name, t in generator.state_dict().items()}
            if discriminator is not None:
                expected |= {D_PREFIX + n: list(t.shape) for n, t in discriminator.state_dict().items()}
            check_tensor_names(path, shapes, expected)
            state = {name: handle.get_tensor(name) for name in shapes}
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    generator.load_state_dict({n: t for n, t in state.items() if not n.startswith(D_PREFIX)}, strict=True)
    if discriminator is not None:
        d_state = {n[len(D_PREFIX) :]: t for n, t in state.items() if n.startswith(D_PREFIX)}
        discriminator.load_state_dict(d_state, strict=True)
        discriminator.eval()
    return Checkpoint(path, KIND_RIGSTYLE, generator.eval(), discriminator)


def _check_format(path: Path, metadata: dict[str, str]) -> None:
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path}: not a RigStyle generator checkpoint (metadata 'format' is {metadata.get('format')!r}, "
            f"expected {FORMAT_NAME!r})"
        )
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {metadata.get('version')!r}")


def _config(path: Path, metadata: dict[str, str], key: str) -> dict[str, Any]:
    if key not in metadata:
        raise CheckpointError(f"{path}: missing network config (metadata key {key!r})")
    try:
        config = json.loads(metadata[key])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: invalid network config JSON in {key!r}: {error}") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{path}: network config {key!r} must be a JSON object, got {type(config).__name__}"
        )
    return config


Network = TypeVar("Network", Generator, Discriminator)


def build_network(path: Path, cls: type[Network], config: dict[str, Any]) -> Network:
    """``cls(**config)``, or a :class:`CheckpointError` naming unknown keys or the invalid value."""
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(config) - known)
    if unknown:
        raise CheckpointError(
            f"{path}: unknown {cls.__name__.lower()} config keys {unknown}; known: {sorted(known)}"
        )
    try:
        return cls(**config)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: invalid {cls.__name__.lower()} config {config}: {error}") from None


def check_tensor_names(path: Path, found: dict[str, list[int]], expected: dict[str, list[int]]) -> None:
    missing = sorted(set(expected) - set(found))
    if missing:
        raise CheckpointError(f"{path}: missing tensors {_listing(missing)}")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensors {_listing(unexpected)}")
    misshaped = [f"{n} {found[n]} (expected {expected[n]})" for n in sorted(found) if found[n] != expected[n]]
    if misshaped:
        raise CheckpointError(f"{path}: tensors with the wrong shape: {_listing(misshaped)}")


def _listing(names: list[str]) -> str:
    more = f" ... and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _read_nvlabs(path: Path) -> Checkpoint:
    from .nvlabs_pickle import read_nvlabs  # imports this module: loaded on first use

    return read_nvlabs(path)


def _read_rosinality(path: Path) -> Checkpoint:
    from .rosinality import read_rosinality  # imports this module: loaded on first use

    return read_rosinality(path)


# Format name (from sniff_format) -> reader.
_READERS: dict[str, Callable[[Path], Checkpoint]] = {
    "safetensors": _read_rigstyle,
    "pickle": _read_nvlabs,
    "torch": _read_rosinality,
}
