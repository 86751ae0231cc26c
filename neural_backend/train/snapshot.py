"""Training snapshots: networks, optimiser and RNG state in one safetensors file, written atomically.

Layout (tensor names): ``G.<name>``, ``G_ema.<name>``, ``D.<name>`` (NVlabs state names),
``opt_G.<param>.<exp_avg|exp_avg_sq|step>``, ``opt_D.…``, ``rng.data`` (the run's torch.Generator) and
``rng.torch`` / ``rng.cuda`` (torch's global generators, which per-pixel noise draws from). Metadata:
``format`` = ``rigstyle-training-snapshot``, ``config`` (the :class:`TrainConfig` JSON), ``step``,
``seconds`` (training time so far) and ``nimg`` (images shown).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

SNAPSHOT_FORMAT = "rigstyle-training-snapshot"
SNAPSHOT_PATTERN = re.compile(r"^snapshot-(\d{6,})\.safetensors$")


class SnapshotError(ValueError):
    """A snapshot that cannot be resumed from; one line, names the file."""


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot file holds."""

    path: Path
    config_json: str
    step: int
    seconds: float
    nimg: int
    tensors: dict[str, torch.Tensor]

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix.`` with the prefix removed."""
        start = len(prefix) + 1
        return {name[start:]: t for name, t in self.tensors.items() if name.startswith(prefix + ".")}


def snapshot_name(step: int) -> str:
    return f"snapshot-{step:06d}.safetensors"


def write_snapshot(
    path: Path, tensors: dict[str, torch.Tensor], config_json: str, step: int, seconds: float, nimg: int
) -> None:
    """Write atomically: a reader (or a run killed mid-write) never sees half a snapshot."""
    metadata = {
        "format": SNAPSHOT_FORMAT,
        "config": config_json,
        "step": str(step),
        "seconds": repr(float(seconds)),
        "nimg": str(nimg),
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    try:
        save_file(cpu, str(partial), metadata=metadata)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_snapshot(path: Path) -> Snapshot:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != SNAPSHOT_FORMAT:
                raise SnapshotError(
                    f"{path}: not a training snapshot (format {metadata.get('format')!r}, "
                    f"expected {SNAPSHOT_FORMAT!r})"
                )
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except SafetensorError as error:
        raise SnapshotError(f"{path}: not a readable safetensors file ({error})") from None
    try:
        return Snapshot(
            path,
            metadata["config"],
            int(metadata["step"]),
            float(metadata["seconds"]),
            int(metadata["nimg"]),
            tensors,
        )
    except (KeyError, ValueError) as error:
        raise SnapshotError(f"{path}: snapshot metadata is incomplete ({error})") from None


def snapshot_step(path: Path) -> int:
    """The step in a snapshot file's name."""
    match = SNAPSHOT_PATTERN.match(path.name)
    if match is None:
        raise SnapshotError(f"{path}: not a snapshot-NNNNNN.safetensors name")
    return int(match.group(1))


def list_snapshots(folder: Path) -> list[Path]:
    """The snapshots in a run folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_snapshot(folder_or_file: Path) -> Path:
    """``folder_or_file`` itself if it is a file, else the newest snapshot in that run folder."""
    if folder_or_file.is_file():
        return folder_or_file
    snapshots = list_snapshots(folder_or_file)
    if not snapshots:
        raise SnapshotError(f"{folder_or_file}: no training snapshot (snapshot-NNNNNN.safetensors) to resume")
    return snapshots[-1]


def optimizer_tensors(
    prefix: str, optimizer: torch.optim.Optimizer, names: dict[int, str]
) -> dict[str, torch.Tensor]:
    """Adam-style per-parameter state as named tensors (``names``: id(param) -> parameter name)."""
    out: dict[str, torch.Tensor] = {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                tensor = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
                out[f"{prefix}.{names[id(param)]}.{key}"] = tensor
    return out


def restore_optimizer(
    optimizer: torch.optim.Optimizer, saved: dict[str, torch.Tensor], names: dict[int, str]
) -> None:
    """Inverse of :func:`optimizer_tensors` (``saved`` without the prefix)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            name = names[id(param)]
            state = {key[len(name) + 1 :]: t for key, t in saved.items() if key.rsplit(".", 1)[0] == name}
            if state:
                optimizer.state[param] = {
                    key: t.to(param.device) if key != "step" else t.clone() for key, t in state.items()
                }
