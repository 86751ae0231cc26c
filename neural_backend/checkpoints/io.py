"""StyleGAN2 checkpoints in every supported format, behind one :func:`read_checkpoint` entry point.

Formats, recognised by their leading bytes (never by the file name), and read without running code:

- RigStyle (``.safetensors``): ``Generator.state_dict()`` (NVlabs names) and, optionally, the
  discriminator's tensors under the ``D.`` prefix; metadata ``{"format": "rigstyle-generator",
  "version": "1", "rigstyle_config": <JSON generator kwargs>[, "rigstyle_discriminator_config": <JSON>]}``.
- NVlabs StyleGAN2 / StyleGAN2-ADA network pickles (``.pkl``): :mod:`neural_backend.checkpoints.nvlabs`.
- rosinality stylegan2-pytorch ``.pt`` files (``torch.save`` zip or legacy):
  :mod:`neural_backend.checkpoints.rosinality`.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..refine.framing import FFHQ, Alignment, AlignmentError
from ..stylegan2 import Discriminator, Generator
from .base import (
    ALIGNMENT_KEY,
    CONFIG_KEY,
    D_CONFIG_KEY,
    D_PREFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    KIND_BUILTIN,
    KIND_RIGSTYLE,
    Checkpoint,
    CheckpointError,
    build_network,
    check_tensor_names,
)
from .names import FACE_PRIOR_NAME, UNTRAINED_NAME
from .nvlabs import read_nvlabs
from .rosinality import read_rosinality

# Generators by name, usable wherever a checkpoint path is: the shipped face prior (a 64 px StyleGAN2
# distilled from a DCGAN trained on DigiFace-1M, docs/face-prior.md) and the untrained generator (tests).
FACE_PRIOR_PATH = Path(__file__).parents[1] / "stylegan2" / "weights" / "face_prior.safetensors"
# torch.save's legacy (non-zip) files start with a pickled magic number.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def read_checkpoint(path: str | Path, untrained_resolution: int = 64) -> Checkpoint:
    """Read any supported checkpoint, choosing the reader from the file's leading bytes.

    ``path`` may also be a built-in name: ``builtin-face-prior`` (the shipped prior) or
    ``builtin-untrained`` (built at ``untrained_resolution``; nothing learned, for tests).

    Raises:
        CheckpointError: missing or unreadable file, unsupported format, refused pickle content, bad
            config or mismatched tensors. The message is one line and names the file.
    """
    if str(path) == UNTRAINED_NAME:
        from ..stylegan2.builtin import builtin_generator

        generator = builtin_generator(untrained_resolution)
        return Checkpoint(Path(UNTRAINED_NAME), KIND_BUILTIN, generator, name=UNTRAINED_NAME, untrained=True)
    if str(path) == FACE_PRIOR_NAME:
        if not FACE_PRIOR_PATH.is_file():
            raise CheckpointError(f"{FACE_PRIOR_NAME}: the packaged file {FACE_PRIOR_PATH} is missing")
        return dataclasses.replace(read_checkpoint(FACE_PRIOR_PATH), name=FACE_PRIOR_NAME)
    checkpoint = _read_file(Path(path))
    return checkpoint if checkpoint.name else dataclasses.replace(checkpoint, name=str(path))


def _read_file(path: Path) -> Checkpoint:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    kind = sniff_format(path)
    reader = _READERS.get(kind)
    if reader is None:
        raise CheckpointError(f"{path}: not a StyleGAN2 checkpoint (unrecognised file format)")
    return reader(path)


def load_generator(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    compile: bool = False,
    untrained_resolution: int = 64,
) -> Generator:
    """The generator (``G_ema`` / ``g_ema``) of any supported checkpoint, in eval mode on ``device``.

    ``path`` may be a built-in name: ``"builtin-face-prior"`` or ``"builtin-untrained"`` (built at
    ``untrained_resolution``).

    ``compile=True`` compiles mapping and synthesis with ``torch.compile`` (state-dict names unchanged):
    the first call then takes tens of seconds, later calls run faster, mostly on GPUs.
    """
    generator = read_checkpoint(path, untrained_resolution).generator.to(device).eval()
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
    generator: Generator,
    path: str | Path,
    discriminator: Discriminator | None = None,
    metadata: dict[str, str] | None = None,
    alignment: Alignment | None = None,
    half: bool = False,
) -> None:
    """Write ``generator`` (and ``discriminator``) with their constructor configs in the RigStyle format.

    ``metadata`` adds string entries (e.g. ``rigstyle_training``) to the file's own; ``alignment`` is stored
    unless it is ffhq (the default of files without one). ``half`` stores floating tensors as float16
    (loading converts back to float32): half the size, for shipping.
    """
    metadata = {**(metadata or {}), "format": FORMAT_NAME, "version": FORMAT_VERSION}
    if alignment is not None and alignment != FFHQ:
        metadata[ALIGNMENT_KEY] = alignment.to_json()
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
            t = t.detach().to("cpu")
            tensors[prefix + name] = (t.half() if half and t.is_floating_point() else t).contiguous().clone()
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
            state = {name: _float32(handle.get_tensor(name)) for name in shapes}
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        alignment = Alignment.from_json(metadata[ALIGNMENT_KEY]) if ALIGNMENT_KEY in metadata else FFHQ
    except AlignmentError as error:
        raise CheckpointError(f"{path}: metadata {ALIGNMENT_KEY!r}: {error}") from None
    extra = tuple(
        sorted(
            (k, v)
            for k, v in metadata.items()
            if k.startswith("rigstyle_") and k not in (CONFIG_KEY, D_CONFIG_KEY, ALIGNMENT_KEY)
        )
    )
    generator.load_state_dict({n: t for n, t in state.items() if not n.startswith(D_PREFIX)}, strict=True)
    if discriminator is not None:
        d_state = {n[len(D_PREFIX) :]: t for n, t in state.items() if n.startswith(D_PREFIX)}
        discriminator.load_state_dict(d_state, strict=True)
        discriminator.eval()
    return Checkpoint(
        path, KIND_RIGSTYLE, generator.eval(), discriminator, alignment=alignment, metadata=extra
    )


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


# Format name (from sniff_format) -> reader.
_READERS: dict[str, Callable[[Path], Checkpoint]] = {
    "safetensors": _read_rigstyle,
    "pickle": read_nvlabs,
    "torch": read_rosinality,
}


def _float32(tensor: torch.Tensor) -> torch.Tensor:
    """Half-precision storage (shipped files) is loaded as float32; other dtypes are kept."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


def write_alignment(path: str | Path, alignment: Alignment) -> None:
    """Store ``alignment`` in a RigStyle checkpoint's metadata, tensors untouched (atomic rewrite).

    Raises:
        CheckpointError: not a RigStyle safetensors checkpoint (other formats: convert first).
    """
    path = Path(path)
    if not path.is_file() or sniff_format(path) != "safetensors":
        raise CheckpointError(
            f"{path}: alignment can only be written into a RigStyle .safetensors checkpoint"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            _check_format(path, metadata)
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except SafetensorError as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    metadata.pop(ALIGNMENT_KEY, None)
    if alignment != FFHQ:
        metadata[ALIGNMENT_KEY] = alignment.to_json()
    partial = path.with_name(f".{path.name}.partial")
    save_file(tensors, str(partial), metadata=metadata)
    partial.replace(path)
