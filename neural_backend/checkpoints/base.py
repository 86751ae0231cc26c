"""What every checkpoint reader shares: the :class:`Checkpoint` it returns, its error, the RigStyle format's
metadata keys, and building a network from a config with one-line errors naming the file."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..refine.framing import FFHQ, Alignment
from ..stylegan2 import Discriminator, Generator

FORMAT_NAME = "rigstyle-generator"
FORMAT_VERSION = "1"
CONFIG_KEY = "rigstyle_config"
D_CONFIG_KEY = "rigstyle_discriminator_config"
D_PREFIX = "D."
ALIGNMENT_KEY = "rigstyle_alignment"  # metadata: Alignment JSON (absent = ffhq)
TRAINING_KEY = "rigstyle_training"  # metadata: how `rigstyle train` made the file (JSON)
KIND_BUILTIN = "builtin"
KIND_RIGSTYLE = "rigstyle-safetensors"
KIND_NVLABS = "nvlabs-pkl"
KIND_ROSINALITY = "rosinality-pt"
MAX_LISTED = 5  # names quoted in an error message before "... and N more"


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
    name: str = ""  # a built-in name, or the file path as given
    alignment: Alignment = FFHQ  # how the generator frames faces (file metadata; NVlabs/rosinality: ffhq)
    untrained: bool = False  # True only for the built-in untrained generator
    metadata: tuple[tuple[str, str], ...] = ()  # other RigStyle metadata entries (e.g. rigstyle_training)


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
        raise CheckpointError(f"{path}: missing tensors {listing(missing)}")
    unexpected = sorted(set(found) - set(expected))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensors {listing(unexpected)}")
    misshaped = [f"{n} {found[n]} (expected {expected[n]})" for n in sorted(found) if found[n] != expected[n]]
    if misshaped:
        raise CheckpointError(f"{path}: tensors with the wrong shape: {listing(misshaped)}")


def listing(names: list[str]) -> str:
    more = f" ... and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
    return ", ".join(names[:MAX_LISTED]) + more
