"""Landmark embeddings: static landmarks and the head-yaw dependent contour table of FLAME / SMPL-X.

File formats read by :func:`load_landmark_embedding` (any container :mod:`rigs.model_files` reads):

- ``flame_static_embedding.pkl``: ``lmk_face_idx`` (L,), ``lmk_b_coords`` (L, 3) -- static only.
- ``flame_dynamic_embedding.npy``: the same two keys shaped (Y, D) and (Y, D, 3) -- dynamic only.
- ``landmark_embedding.npy`` / ``.npz`` (RingNet / DECA): ``static_lmk_faces_idx``,
  ``static_lmk_bary_coords``, ``dynamic_lmk_faces_idx``, ``dynamic_lmk_bary_coords`` (and
  ``full_lmk_faces_idx`` / ``full_lmk_bary_coords``, the fixed 68-point set, kept as ``full_*``).
- SMPL-X model files: ``lmk_faces_idx``, ``lmk_bary_coords``, ``dynamic_lmk_faces_idx``,
  ``dynamic_lmk_bary_coords``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RigError

# (faces key, barycentric key) -> embedding part, in the order the keys are looked up.
_KEYS = {
    "static": (("lmk_faces_idx", "lmk_bary_coords"), ("static_lmk_faces_idx", "static_lmk_bary_coords")),
    "dynamic": (("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"),),
    "full": (("full_lmk_faces_idx", "full_lmk_bary_coords"),),
}
_FLAME_KEYS = ("lmk_face_idx", "lmk_b_coords")  # FLAME's own files: 1-d faces static, 2-d dynamic


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Landmarks as barycentric points on mesh faces; empty arrays where a file has no such part."""

    static_faces: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (L,)
    static_bary: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (L, 3)
    dynamic_faces: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))  # (Y, D)
    dynamic_bary: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3)))  # (Y, D, 3)
    full_faces: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (68,) fixed set
    full_bary: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # (68, 3)

    def merged(self, other: LandmarkEmbedding) -> LandmarkEmbedding:
        """This embedding with the parts it lacks taken from ``other``."""
        parts = {}
        for name in ("static", "dynamic", "full"):
            mine = getattr(self, f"{name}_faces").size > 0
            source = self if mine else other
            parts[f"{name}_faces"] = getattr(source, f"{name}_faces")
            parts[f"{name}_bary"] = getattr(source, f"{name}_bary")
        return LandmarkEmbedding(**parts)


def load_landmark_embedding(path: str | os.PathLike[str]) -> LandmarkEmbedding:
    """Read a FLAME / SMPL-X landmark embedding file (formats in the module docstring).

    Args:
        path: the embedding file.

    Returns:
        The embedding; parts the file does not hold are empty.

    Raises:
        RigError: naming the file: unreadable, refused pickled class, or no known landmark fields.
    """
    from .model_files import read_mapping  # model_files -> safe_pickle; kept lazy to stay import-light

    path = Path(path)
    if not path.is_file():
        raise RigError(f"{path}: no such landmark embedding file")
    embedding = embedding_from_mapping(read_mapping(path), str(path))
    if not any(getattr(embedding, f"{n}_faces").size for n in ("static", "dynamic", "full")):
        raise RigError(f"{path}: not a landmark embedding (no lmk_face_idx / lmk_faces_idx fields)")
    return embedding


def embedding_from_mapping(data: Mapping[str, Any], source: str) -> LandmarkEmbedding:
    """The landmark fields of a model or embedding file's dict (missing parts stay empty).

    Raises:
        RigError: a field has the wrong shape; the message names ``source`` and the field.
    """
    parts: dict[str, np.ndarray] = {}
    for part, candidates in _KEYS.items():
        for faces_key, bary_key in candidates:
            if faces_key in data and bary_key in data:
                parts[f"{part}_faces"], parts[f"{part}_bary"] = _pair(data, faces_key, bary_key, source)
                break
    if _FLAME_KEYS[0] in data and _FLAME_KEYS[1] in data:
        faces, bary = _pair(data, *_FLAME_KEYS, source)
        parts.update({"dynamic_faces": faces, "dynamic_bary": bary} if faces.ndim == 2 else {})
        parts.update({"static_faces": faces, "static_bary": bary} if faces.ndim == 1 else {})
    if "full_faces" in parts:  # stored as (1, 68) and (1, 68, 3)
        parts["full_faces"] = parts["full_faces"].reshape(-1)
        parts["full_bary"] = parts["full_bary"].reshape(-1, 3)
    return LandmarkEmbedding(**parts)


def _pair(
    data: Mapping[str, Any], faces_key: str, bary_key: str, source: str
) -> tuple[np.ndarray, np.ndarray]:
    try:
        faces = np.asarray(data[faces_key])
        bary = np.asarray(data[bary_key], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RigError(f"{source}: {faces_key}/{bary_key} are not numeric arrays ({exc})") from None
    if not np.issubdtype(faces.dtype, np.integer):
        if not (np.issubdtype(faces.dtype, np.floating) and np.array_equal(faces, np.round(faces))):
            raise RigError(f"{source}: {faces_key} must hold face indices, got dtype {faces.dtype}")
    if faces.ndim not in (1, 2) or bary.shape != (*faces.shape, 3):
        raise RigError(
            f"{source}: {bary_key} must have shape {[*faces.shape, 3]} to match {faces_key}, "
            f"got {list(bary.shape)}"
        )
    return faces.astype(np.int64), bary


def dynamic_landmark_row(head_rotation: np.ndarray, num_rows: int) -> int:
    """The row of a dynamic landmark table for a head rotation (smplx's ``find_dynamic_lmk_idx_and_bcoords``).

    The table has one row per whole degree of ``a = -yaw`` (yaw: the Y Euler angle of the rotation):
    rows ``0..h`` for ``a = 0..h`` and rows ``h+1..2h`` for ``a = -1..-h``, ``h = (num_rows - 1) // 2``
    (39 in FLAME and SMPL-X files); angles beyond the table are clamped to its last rows.

    Args:
        head_rotation: (3, 3) rotation of the head (the product of the chain's joint rotations).
        num_rows: Y, rows of the table (79).

    Returns:
        The row index in ``[0, num_rows)``.
    """
    half = (num_rows - 1) // 2
    r = np.asarray(head_rotation, dtype=np.float64)
    yaw = np.degrees(np.arctan2(-r[2, 0], np.sqrt(r[0, 0] ** 2 + r[1, 0] ** 2)))
    step = int(np.round(min(-yaw, half)))  # numpy and torch both round half to even
    if step >= 0:
        return step
    return 2 * half if step < -half else half - step
