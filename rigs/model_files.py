"""Read official model and landmark files (``.pkl``, ``.npz``, ``.npy``) into plain dicts, safely.

The container is recognised from the file's first bytes, not its name. Pickled content (whole ``.pkl``
files, object arrays inside ``.npy`` / ``.npz``) goes through :mod:`rigs.safe_pickle`; chumpy and scipy
objects come out as numpy arrays.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RigError
from .safe_pickle import loads, plain

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_STARTS = b"\x80(}]cdl"  # PROTO (protocol 2+), or the first opcodes of protocol 0/1 dict pickles


def read_mapping(path: Path) -> dict[str, Any]:
    """The named arrays of a model or landmark file.

    Args:
        path: a ``.npz`` archive, a ``.npy`` holding a pickled dict, or a pickle of a dict.

    Returns:
        Field name -> numpy array (or other plain value for non-array entries).

    Raises:
        RigError: naming ``path``: unreadable, truncated, a refused pickled class, or not a dict of arrays.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if data.startswith(_ZIP_MAGIC):
        return _read_npz(data, path)
    if not data.startswith(_NPY_MAGIC) and (not data or data[0] not in _PICKLE_STARTS):
        raise RigError(f"{path}: not a rig file (neither an .npz / .npy archive nor a pickle)")
    value = read_npy(data, str(path)) if data.startswith(_NPY_MAGIC) else plain(loads(data, str(path)))
    if not isinstance(value, dict):
        raise RigError(f"{path}: expected a dict of named arrays, got {type(value).__name__}")
    return {str(key): value[key] for key in value}


def read_npy(data: bytes, source: str) -> Any:
    """One ``.npy`` payload: a plain array, or the (plain) object a 0-d object array holds.

    Raises:
        RigError: naming ``source``: truncated or malformed, or a refused pickled class.
    """
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        if not dtype.hasobject:
            stream.seek(0)
            return np.lib.format.read_array(stream, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise RigError(f"{source}: truncated or malformed .npy data ({exc})") from None
    array = loads(data[stream.tell() :], source)
    if isinstance(array, np.ndarray) and array.dtype.hasobject and array.ndim == 0:
        return plain(array.item())
    if isinstance(array, np.ndarray) and array.dtype.hasobject:
        return plain(array.tolist())
    return plain(array)


def _read_npz(data: bytes, path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise RigError(f"{path}: truncated or corrupt .npz archive ({exc})") from None
    fields = {}
    for member, payload in members.items():
        if member.endswith(".npy"):  # np.savez writes nothing else; other members are not ours to read
            fields[member[:-4]] = read_npy(payload, f"{path} (entry {member[:-4]!r})")
    return fields
