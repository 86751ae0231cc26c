"""Generator checkpoints: the project's own safetensors format, behind one ``load_generator`` entry point.

Also reads NVlabs StyleGAN2(-ADA) ``.pkl`` network pickles without running code from them
(:mod:`neural_backend.nvlabs_pickle`).

RigStyle format: a safetensors file holding ``Generator.state_dict()`` (NVlabs names), with metadata
``{"format": "rigstyle-generator", "version": "1", "rigstyle_config": <JSON constructor kwargs>}``. Nothing
in it is executed when loading. Other formats (NVlabs ``.pkl``, rosinality ``.pt``) are recognised by their
leading bytes and get their own loader in :data:`_LOADERS` when they are supported.
"""

from __future__ import annotations

import inspect
import json
import struct
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .stylegan2 import Generator

FORMAT_NAME = "rigstyle-generator"
FORMAT_VERSION = "1"
CONFIG_KEY = "rigstyle_config"
_MAX_LISTED = 5  # names quoted in an error message before "... and N more"


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded; the message is one line and names the file."""


def save_generator(generator: Generator, path: str | Path) -> None:
    """Write ``generator`` (weights, buffers and constructor config) to ``path`` in the RigStyle format."""
    config = getattr(generator, "init_kwargs", None)
    if not isinstance(config, dict):
        raise TypeError(f"generator: expected a stylegan2.Generator, got {type(generator).__name__}")
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in generator.state_dict().items()}
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        CONFIG_KEY: json.dumps(config, sort_keys=True),
    }
    save_file(tensors, str(path), metadata=metadata)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """Load a generator checkpoint, choosing the reader from the file's leading bytes.

    Returns:
        The generator in eval mode on ``device``.

    Raises:
        CheckpointError: missing or unreadable file, unsupported format, bad config or mismatched tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    kind = _sniff_format(path)
    loader = _LOADERS.get(kind)
    if loader is None:
        raise CheckpointError(f"{path}: {_UNSUPPORTED.get(kind, 'unrecognised file format')}")
    return loader(path).to(device).eval()


def _sniff_format(path: Path) -> str:
    """'safetensors', 'pickle', 'torch-zip' or 'unknown', from the first bytes of the file."""
    with path.open("rb") as handle:
        head = handle.read(9)
    size = path.stat().st_size
    if len(head) == 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x80":
        return "pickle"
    if head[:4] == b"PK\x03\x04":
        return "torch-zip"
    return "unknown"


_UNSUPPORTED = {
    "torch-zip": "looks like a torch.save file (rosinality .pt); only RigStyle safetensors checkpoints are "
    "supported so far",
    "unknown": "not a safetensors file (unrecognised header)",
}


def _load_rigstyle(path: Path) -> Generator:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            generator = _generator_from_metadata(path, metadata)
            expected = generator.state_dict()
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
            check_tensor_names(path, shapes, {name: list(t.shape) for name, t in expected.items()})
            state = {name: handle.get_tensor(name) for name in shapes}
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    generator.load_state_dict(state, strict=True)
    return generator


def _generator_from_metadata(path: Path, metadata: dict[str, str]) -> Generator:
    if metadata.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path}: not a RigStyle generator checkpoint (metadata 'format' is {metadata.get('format')!r}, "
            f"expected {FORMAT_NAME!r})"
        )
    if metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint version {metadata.get('version')!r}")
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"{path}: missing generator config (metadata key {CONFIG_KEY!r})")
    try:
        config = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path}: invalid generator config JSON in {CONFIG_KEY!r}: {error}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: generator config must be a JSON object, got {type(config).__name__}")
    known = set(inspect.signature(Generator).parameters)
    unknown = sorted(set(config) - known)
    if unknown:
        raise CheckpointError(f"{path}: unknown generator config keys {unknown}; known: {sorted(known)}")
    try:
        return Generator(**config)
    except (TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: invalid generator config {config}: {error}") from None


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


def _load_nvlabs(path: Path) -> Generator:
    from .nvlabs_pickle import load_nvlabs  # imports this module: loaded on first use

    return load_nvlabs(path).generator


# Format name (from _sniff_format) -> reader. The rosinality .pt ('torch-zip') reader is added here; each
# returns a Generator with the weights loaded.
_LOADERS: dict[str, Callable[[Path], Generator]] = {"safetensors": _load_rigstyle, "pickle": _load_nvlabs}
