"""Rig files: the project's own ``.npz`` format, read and written without pickle.

A RigStyle rig file is an uncompressed-or-compressed numpy ``.npz`` holding every :class:`Rig` field under
its own name, strings as numpy unicode arrays, plus ``format = "rigstyle-rig"`` and ``version = 1``.
``np.load(path, allow_pickle=False)`` opens it.

:func:`load` also reads official FLAME and SMPL-X model files (:mod:`rigs.official`), detecting the kind of
file from its contents.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RigError
from .landmarks import LandmarkEmbedding, load_landmark_embedding
from .model import Rig
from .model_files import read_mapping
from .official import GENDERS, KINDS, official_rig
from .official import detect_kind as detect_official_kind

FORMAT_TAG = "rigstyle-rig"
FORMAT_VERSION = 1
_STRING_FIELDS = ("name", "kind", "gender")
_NAME_LIST_FIELDS = ("joint_names", "expression_names")
_INT_TUPLE_FIELDS = ("dynamic_landmark_chain",)
# Files smplx and the FLAME / SMPL-X downloads use, tried in this order when load() is given a folder.
_FOLDER_FILES = {
    "smplx": ("SMPLX_{G}.npz", "SMPLX_{G}.pkl"),
    "flame": ("FLAME_{G}.pkl", "FLAME_{G}.npz", "{g}_model.pkl", "flame2023.pkl", "flame2020.pkl"),
}
# FLAME landmark embeddings looked for next to the model file: (static, dynamic) pairs, in this order.
_FLAME_EMBEDDINGS = (
    ("flame_static_embedding.pkl", "flame_dynamic_embedding.npy"),
    ("landmark_embedding.npy", None),
    ("landmark_embedding.npz", None),
)


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
        elif field.name in _INT_TUPLE_FIELDS:
            arrays[field.name] = np.array(value, dtype=np.int64).reshape(len(value))
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


def load(
    path: str | os.PathLike[str],
    kind: str | None = None,
    gender: str | None = None,
    *,
    landmarks: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    num_betas: int | None = None,
    num_expressions: int | None = None,
) -> Rig:
    """Read a rig: a RigStyle rig file, or an official FLAME / SMPL-X model file.

    Official files: FLAME 2020 / 2023 ``.pkl`` (chumpy objects and scipy sparse matrices are read without
    chumpy or scipy, and no pickled code ever runs) and ``.npz``; SMPL-X ``.npz`` and ``.pkl`` with any
    number of shape / expression components, hand PCA and the landmark fields.

    Args:
        path: the model file, or a folder holding ``SMPLX_{GENDER}.npz|pkl`` or ``FLAME_{GENDER}.pkl|npz``
            (also FLAME's ``generic_model.pkl`` / ``{gender}_model.pkl``), as smplx's model folders.
        kind: ``"rigstyle"``, ``"flame"`` or ``"smplx"``; None detects it from the file's contents.
            A file of another kind than the one given is an error.
        gender: ``"neutral"``, ``"male"`` or ``"female"``: picks the file in a folder, and must match the
            file's gender where the file states one (a ``gender`` field or a gender in its name).
        landmarks: FLAME landmark embedding file(s), e.g. ``flame_static_embedding.pkl`` and
            ``flame_dynamic_embedding.npy``, or ``landmark_embedding.npy`` (see :mod:`rigs.landmarks`);
            for SMPL-X they replace the file's own landmark fields. None: for FLAME, the first of
            ``flame_static_embedding.pkl`` (+ ``flame_dynamic_embedding.npy``), ``landmark_embedding.npy``,
            ``landmark_embedding.npz`` found next to the model file; none found gives a rig without landmarks.
        num_betas: keep only the first shape components of an official file (None: all).
        num_expressions: keep only the first expression components of an official file (None: all).

    Returns:
        The rig.

    Raises:
        RigError: one line naming the file: missing, truncated, of another kind or gender than asked,
            a refused pickled class, a missing field, or arrays that do not form a valid rig.
    """
    path = _resolve(Path(path), kind, gender)
    if kind is not None and kind not in _LOADERS and kind not in KINDS:
        raise RigError(f"{path}: unknown rig kind {kind!r}, expected one of {sorted([*_LOADERS, *KINDS])}")
    if _is_rigstyle(path):
        if kind not in (None, "rigstyle"):
            raise RigError(f"{path}: is a RigStyle rig file, not {KINDS[kind]}")
        return _LOADERS["rigstyle"](path)
    data = read_mapping(path)
    found = detect_official_kind(data, path)
    if kind == "rigstyle":
        raise RigError(f"{path}: is a {KINDS[found]} model, not a RigStyle rig file")
    embedding = _embedding(path, found, landmarks)
    return official_rig(data, path, kind or found, gender, embedding, num_betas, num_expressions)


def detect_kind(path: Path) -> str:
    """The kind of rig file at ``path`` from its contents: ``"rigstyle"``, ``"flame"`` or ``"smplx"``."""
    return "rigstyle" if _is_rigstyle(path) else detect_official_kind(read_mapping(path), path)


def _resolve(path: Path, kind: str | None, gender: str | None) -> Path:
    """The model file for ``path``: itself, or the file smplx would pick in a folder."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise RigError(f"{path}: no such rig file")
    if gender is not None and gender not in GENDERS:
        raise RigError(f"{path}: unknown gender {gender!r}, expected one of {list(GENDERS)}")
    g = gender or "neutral"
    names = [
        name.format(G=g.upper(), g="generic" if g == "neutral" else g)
        for k, patterns in _FOLDER_FILES.items()
        if kind in (None, k)
        for name in patterns
    ]
    for name in names:
        if (path / name).is_file():
            return path / name
    raise RigError(f"{path}: folder holds none of {names}")


def _is_rigstyle(path: Path) -> bool:
    """A RigStyle rig file is an .npz archive with a 'format' entry."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "format.npy" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _embedding(
    path: Path, kind: str, landmarks: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None
) -> LandmarkEmbedding | None:
    files: list[str | os.PathLike[str]] = []
    if landmarks is not None:
        files = [landmarks] if isinstance(landmarks, str | os.PathLike) else list(landmarks)
    elif kind == "flame":
        for static, dynamic in _FLAME_EMBEDDINGS:
            if (path.parent / static).is_file():
                files = [path.parent / static]
                if dynamic and (path.parent / dynamic).is_file():
                    files.append(path.parent / dynamic)
                break
    else:
        return None
    embedding = LandmarkEmbedding()
    for file in files:
        embedding = embedding.merged(load_landmark_embedding(file))
    return embedding


def _load_rigstyle(path: Path) -> Rig:
    with _open_npz(path) as npz:
        tag = _read_string(path, npz, "format") if "format" in npz.files else None
        if tag != FORMAT_TAG:
            raise RigError(f"{path}: unknown format tag {tag!r}, expected {FORMAT_TAG!r}")
        version = int(_read_array(path, npz, "version"))
        if version != FORMAT_VERSION:
            raise RigError(f"{path}: unsupported rig file version {version}, expected {FORMAT_VERSION}")
        values: dict[str, Any] = {}
        for field in fields(Rig):
            optional = field.default is not MISSING or field.default_factory is not MISSING
            if optional and field.name not in npz.files:
                continue  # written before the field existed: keep the default
            if field.name in _STRING_FIELDS:
                values[field.name] = _read_string(path, npz, field.name)
            elif field.name in _NAME_LIST_FIELDS:
                values[field.name] = tuple(str(s) for s in _read_array(path, npz, field.name).tolist())
            elif field.name in _INT_TUPLE_FIELDS:
                values[field.name] = tuple(int(j) for j in _read_array(path, npz, field.name).tolist())
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
