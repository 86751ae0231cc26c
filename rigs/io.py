"""Rig files: the project's own ``.npz`` format, read and written without pickle.

A RigStyle rig file is an uncompressed-or-compressed numpy ``.npz`` holding every :class:`Rig` field under
its own name, strings as numpy unicode arrays, plus ``format = "rigstyle-rig"`` and ``version = 1``.
``np.load(path, allow_pickle=False)`` opens it.

:func:`load` detects the kind of file from its contents; official FLAME / SMPL-X model files are meant to be
added as further entries of ``_LOADERS``.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RigError
from .model import Rig

FORMAT_TAG = "rigstyle-rig"
FORMAT_VERSION = 1
_STRING_FIELDS = ("name",)
_NAME_LIST_FIELDS = ("joint_names", "expression_names")


def save(rig: Rig, path: str | os.PathLike[str]) -> None:
    """Write ``rig`` to ``path`` (exactly that name; no suffix is added), atomically.

    Args:
        rig: the rig to write.
        path: destination file, conventionally ``*.npz``.

    Raises:
        RigError: the file cannot be written.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_TAG),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
    }
    for field in fields(Rig):
        value = getattr(rig, field.name)
        if field.name in _STRING_FIELDS:
            arrays[field.name] = np.array(value, dtype=np.str_)
        elif field.name in _NAME_LIST_FIELDS:
            arrays[field.name] = np.array(list(value), dtype=np.str_).reshape(len(value))
        else:
            arrays[field.name] = np.asarray(value)
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise RigError(f"{path}: cannot write rig file ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as tmp:
            np.savez_compressed(tmp, **arrays)
        os.replace(tmp_name, path)
    except OSError as exc:
        raise RigError(f"{path}: cannot write rig file ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def load(path: str | os.PathLike[str], kind: str | None = None) -> Rig:
    """Read a rig file.

    Args:
        path: the model file.
        kind: the file kind (one of ``_LOADERS``: ``"rigstyle"``); None detects it from the contents.

    Returns:
        The rig.

    Raises:
        RigError: one line naming the file: it is missing, not a rig file, of an unknown kind or version,
            or lacks a field, or its arrays do not form a valid rig.
    """
    path = Path(path)
    if not path.is_file():
        raise RigError(f"{path}: no such rig file")
    kind = kind or detect_kind(path)
    loader = _LOADERS.get(kind)
    if loader is None:
        raise RigError(f"{path}: unknown rig kind {kind!r}, expected one of {sorted(_LOADERS)}")
    return loader(path)


def detect_kind(path: Path) -> str:
    """The kind of rig file at ``path``, from its contents (not its name)."""
    if not zipfile.is_zipfile(path):
        raise RigError(f"{path}: not a rig file (not an .npz archive)")
    with _open_npz(path) as npz:
        if "format" not in npz.files:
            raise RigError(f"{path}: not a RigStyle rig (.npz without a 'format' entry)")
        tag = _read_string(path, npz, "format")
    if tag != FORMAT_TAG:
        raise RigError(f"{path}: unknown format tag {tag!r}, expected {FORMAT_TAG!r}")
    return "rigstyle"


def _load_rigstyle(path: Path) -> Rig:
    with _open_npz(path) as npz:
        tag = _read_string(path, npz, "format") if "format" in npz.files else None
        if tag != FORMAT_TAG:
            raise RigError(f"{path}: format tag is {tag!r}, expected {FORMAT_TAG!r}")
        version = int(_read_array(path, npz, "version"))
        if version != FORMAT_VERSION:
            raise RigError(f"{path}: unsupported rig file version {version}, expected {FORMAT_VERSION}")
        values: dict[str, Any] = {}
        for field in fields(Rig):
            if field.name in _STRING_FIELDS:
                values[field.name] = _read_string(path, npz, field.name)
            elif field.name in _NAME_LIST_FIELDS:
                values[field.name] = tuple(str(s) for s in _read_array(path, npz, field.name).tolist())
            else:
                values[field.name] = _read_array(path, npz, field.name)
    try:
        return Rig(**values)
    except RigError as exc:
        raise RigError(f"{path}: {exc}") from None


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RigError(f"{path}: not a rig file ({exc})") from None


def _read_array(path: Path, npz: np.lib.npyio.NpzFile, key: str) -> np.ndarray:
    if key not in npz.files:
        raise RigError(f"{path}: missing field {key!r}")
    try:
        return npz[key]
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise RigError(f"{path}: field {key!r} is unreadable ({exc})") from None


def _read_string(path: Path, npz: np.lib.npyio.NpzFile, key: str) -> str:
    array = _read_array(path, npz, key)
    if array.ndim != 0 or array.dtype.kind != "U":
        raise RigError(f"{path}: field {key!r} must be a string")
    return str(array)


_LOADERS: dict[str, Callable[[Path], Rig]] = {
    "rigstyle": _load_rigstyle,
}
