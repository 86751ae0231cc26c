"""A shot folder: what a shot's stages read and write, and its manifest of finished frames.

Layout (one folder per shot, shared by every farm task of that shot)::

    manifest.json         which frames each stage finished, with checksums (see below)
    passes/frame_NNNN.npz the frame's passes (FramePasses tensors), plus beauty_NNNN.exr/png, region_NNNN.png
    refined/frame_NNNN.png the refined frame (sRGB, 8 bit); gan/frame_NNNN.png the generator's aligned output
    state/after_NNNN.npz  the shot's temporal state after frame NNNN (a refined segment's last frame)
    composite/frame_NNNN.png the compositor's output

A stage records a frame only after writing all of its files. A frame counts as finished when its record
exists, each recorded output file still has its checksum, and what it was made from (``inputs``: the scene
file for passes, the passes for refinement, the refined frame for the composite) still has the checksum it
had then. So a rerun redoes exactly the frames that are missing, damaged or stale, and a changed scene or
re-rendered passes invalidate what was made from them.

Checksums are SHA-256. An output whose size and modification time are unchanged since it was recorded is
trusted without hashing it again (like ``git``'s index); anything else is hashed. Tasks on several machines
may update one manifest: every update is a read-modify-write under an exclusive ``flock`` on
``.manifest.lock`` (NFSv4 and local disks support it), written atomically. Numpy only: the add-on imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
import zipfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..protocol.passes import EXTRA_PASSES, PARAM_SHAPES, PASS_NAMES, FramePasses, PassError

STAGES = ("passes", "refined", "composite")
MANIFEST = "manifest.json"
MANIFEST_VERSION = 1

Inputs = Callable[[int], Mapping[str, str]]  # frame -> {label: sha256} of what the frame is made from


class ShotFolderError(ValueError):
    """The shot folder cannot be used as asked; the message names the file or frame and what to do."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def parse_frames(text: str) -> list[int]:
    """``"A-B"`` (inclusive), ``"A"``, or a comma-separated list of both → sorted unique frame numbers.

    Raises:
        ValueError: naming the part that is not a frame or a range.
    """
    frames: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        first, sep, last = part.partition("-") if not part.startswith("-") else ("", "", part)
        try:
            start, end = (int(first), int(last)) if sep else (int(part), int(part))
        except ValueError:
            raise ValueError(f"frames: {part!r} is not a frame number or a range A-B") from None
        if end < start:
            raise ValueError(f"frames: the range {part!r} ends before it starts")
        frames.update(range(start, end + 1))
    return sorted(frames)


class ShotFolder:
    """One shot's folder and manifest (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # ---- paths -----------------------------------------------------------------------------------

    @property
    def passes_dir(self) -> Path:
        return self.root / "passes"

    def passes_file(self, frame: int) -> Path:
        return self.passes_dir / f"frame_{frame:04d}.npz"

    def beauty_exr(self, frame: int) -> Path:
        return self.passes_dir / f"beauty_{frame:04d}.exr"

    def refined_file(self, frame: int) -> Path:
        return self.root / "refined" / f"frame_{frame:04d}.png"

    def gan_file(self, frame: int) -> Path:
        return self.root / "gan" / f"frame_{frame:04d}.png"

    def state_file(self, frame: int) -> Path:
        return self.root / "state" / f"after_{frame:04d}.npz"

    def composite_file(self, frame: int) -> Path:
        return self.root / "composite" / f"frame_{frame:04d}.png"

    # ---- the manifest ----------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        """The manifest (an empty one when the folder has none yet).

        Raises:
            ShotFolderError: the manifest is not valid JSON or not a RigStyle shot manifest.
        """
        path = self.root / MANIFEST
        try:
            text = path.read_text()
        except FileNotFoundError:
            return {"rigstyle_shot": MANIFEST_VERSION, "shot": None, "stages": {s: {} for s in STAGES}}
        try:
            manifest = json.loads(text)
        except json.JSONDecodeError as exc:
            message = f"{path}: not valid JSON ({exc}); delete it to start the shot again"
            raise ShotFolderError(message) from None
        if not isinstance(manifest, dict) or manifest.get("rigstyle_shot") != MANIFEST_VERSION:
            raise ShotFolderError(f"{path}: not a RigStyle shot manifest (version {MANIFEST_VERSION})")
        for stage in STAGES:
            manifest.setdefault("stages", {}).setdefault(stage, {})
        return manifest

    @property
    def shot(self) -> str | None:
        """The shot's name, once a stage has started it."""
        return self.read().get("shot")

    def begin(self, shot: str) -> None:
        """Make this folder ``shot``'s (or check that it is).

        Raises:
            ShotFolderError: the folder already holds another shot.
        """
        with self._update() as manifest:
            if manifest["shot"] not in (None, shot):
                raise ShotFolderError(
                    f"{self.root} holds shot {manifest['shot']!r}, not {shot!r}; use another --out folder"
                )
            manifest["shot"] = shot

    def record(
        self,
        stage: str,
        frame: int,
        outputs: Iterable[Path],
        inputs: Mapping[str, str] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Record ``frame`` as finished by ``stage``: its ``outputs`` (files in this folder, hashed now),
        the checksums of its ``inputs`` and any ``info`` (metrics, backend, seconds)."""
        files = {}
        for path in outputs:
            stat = path.stat()
            files[self._relative(path)] = {
                "sha256": file_sha256(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
            }
        entry = {
            "outputs": files,
            "inputs": dict(inputs or {}),
            "info": dict(info or {}),
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        with self._update() as manifest:
            manifest["stages"][_stage(stage)][str(frame)] = entry

    def forget(self, stage: str, frames: Collection[int]) -> None:
        """Drop the records of ``frames`` (``--overwrite``): they count as not finished."""
        with self._update() as manifest:
            records = manifest["stages"][_stage(stage)]
            for frame in frames:
                records.pop(str(frame), None)

    def finished(self, stage: str, frames: Iterable[int], inputs: Inputs | None = None) -> list[int]:
        """Those of ``frames`` that ``stage`` finished and that are intact and up to date (sorted).

        ``inputs(frame)``: the checksums the frame's inputs have now; a record made from other inputs is
        stale. None: inputs are not compared."""
        records = self.read()["stages"][_stage(stage)]
        done = []
        for frame in sorted(set(frames)):
            entry = records.get(str(frame))
            if entry is None or not self._intact(entry["outputs"]):
                continue
            if inputs is not None and dict(entry.get("inputs", {})) != dict(inputs(frame)):
                continue
            done.append(frame)
        return done

    def output_sha256(self, stage: str, frame: int, path: Path) -> str | None:
        """The checksum ``stage`` recorded for ``path`` of ``frame`` (None when it has none)."""
        entry = self.read()["stages"][_stage(stage)].get(str(frame))
        if entry is None:
            return None
        output = entry["outputs"].get(self._relative(path))
        return None if output is None else str(output["sha256"])

    def info(self, stage: str) -> dict[int, dict[str, Any]]:
        """Each recorded frame's ``info`` for ``stage``."""
        records = self.read()["stages"][_stage(stage)]
        return {int(frame): dict(entry.get("info", {})) for frame, entry in records.items()}

    # ---- passes ----------------------------------------------------------------------------------

    def load_passes(self, frame: int) -> FramePasses:
        """The passes of ``frame`` as a render stage wrote them.

        Raises:
            ShotFolderError: no readable passes file for ``frame``.
        """
        path = self.passes_file(frame)
        shot = self.shot
        try:
            with np.load(path, allow_pickle=False) as data:
                tensors = {name: data[name] for name in data.files}
            return FramePasses(shot or "shot", frame, **_split(tensors))
        except FileNotFoundError:
            raise ShotFolderError(f"frame {frame}: no passes at {path}; run the passes stage first") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, PassError, TypeError) as exc:
            raise ShotFolderError(f"frame {frame}: {path} is not a passes file ({exc})") from None

    # ---- internals -------------------------------------------------------------------------------

    def _relative(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            raise ShotFolderError(f"{path} is outside the shot folder {self.root}") from None

    def _intact(self, outputs: Mapping[str, Mapping[str, Any]]) -> bool:
        for name, recorded in outputs.items():
            path = self.root / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                return False
            if stat.st_size != recorded["size"]:
                return False
            if stat.st_mtime_ns != recorded["mtime_ns"] and file_sha256(path) != recorded["sha256"]:
                return False
        return True

    @contextlib.contextmanager
    def _update(self) -> Iterator[dict[str, Any]]:
        """The manifest under an exclusive lock; written back atomically when the block succeeds."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".manifest.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = self.read()
                yield manifest
                path = self.root / MANIFEST
                partial = path.with_name(f".{MANIFEST}.{os.getpid()}.partial")
                partial.write_text(json.dumps(manifest, indent=1, sort_keys=True))
                os.replace(partial, path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def segments(frames: Sequence[int], length: int) -> list[list[int]]:
    """Split ``frames`` into runs of consecutive frames, each at most ``length`` long.

    Callers split the whole shot, not just the frames still to do, so a rerun refines the same segments
    as the first run did."""
    if length < 1:
        raise ValueError(f"segment length: expected >= 1, got {length}")
    runs: list[list[int]] = []
    for frame in sorted(frames):
        if runs and frame == runs[-1][-1] + 1 and len(runs[-1]) < length:
            runs[-1].append(frame)
        else:
            runs.append([frame])
    return runs


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise ValueError(f"stage: expected one of {list(STAGES)}, got {stage!r}")
    return stage


def _split(tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    unknown = set(tensors) - set(PASS_NAMES) - set(PARAM_SHAPES) - set(EXTRA_PASSES)
    if unknown:
        raise PassError(f"unknown tensors {sorted(unknown)}")
    return {
        **{name: tensors.get(name) for name in PASS_NAMES},
        "params": {k: v for k, v in tensors.items() if k in PARAM_SHAPES},
        "extra": {k: v for k, v in tensors.items() if k in EXTRA_PASSES},
    }
