"""Pickle payloads a malicious weights file could carry, for tests that prove they are refused unrun."""

from __future__ import annotations

import os
from pathlib import Path

import torch

PAYLOADS = ("reduce", "function", "instance")


class RunsACommand:
    """Unpickling this runs ``touch MARKER``: what a malicious weights file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch '{self.marker}'",)


class PlainObject:
    pass


def save_hostile_teacher(path: Path, state: dict[str, torch.Tensor], payload: str, marker: Path) -> None:
    """A teacher file in the DCGAN layout that also holds ``payload`` (one of ``PAYLOADS``)."""
    extra = {"reduce": RunsACommand(marker), "function": os.system, "instance": PlainObject()}[payload]
    torch.save({"netG_state_dict": state, "extra": extra}, path)
