"""Official FLAME and SMPL-X model files -> :class:`Rig`, with smplx's conventions.

Fields read (``.pkl`` or ``.npz``, see :mod:`rigs.model_files`): ``v_template`` (V, 3), ``f`` (F, 3),
``shapedirs`` (V, 3, K), ``posedirs`` (V, 3, (J - 1) * 9), ``J_regressor`` (J, V) dense or sparse,
``weights`` (V, J), ``kintree_table`` (2, J); SMPL-X also ``hands_meanl/r`` (45,),
``hands_componentsl/r`` (45, 45) and the landmark fields of :mod:`rigs.landmarks`; optional ``gender``.

``shapedirs`` is split as smplx splits it: with K >= 400 components the first 300 are shape and the next
100 expression; with fewer, the first 10 are shape and the next (up to) 10 expression.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import regions
from .errors import RigError
from .landmarks import LandmarkEmbedding, embedding_from_mapping
from .lbs import check_parents
from .model import Rig
from .pose import FLAME_JOINT_NAMES, SMPLX_JOINT_NAMES

KINDS = {"flame": "FLAME", "smplx": "SMPL-X"}
GENDERS = ("neutral", "male", "female")
_JOINTS_TO_KIND = {5: "flame", 55: "smplx"}
_UNSUPPORTED = {24: "SMPL", 52: "SMPL+H", 16: "MANO"}
_NECK = {"flame": 0, "smplx": 12}  # smplx's NECK_IDX: start of the chain that gives head yaw
_EYES = {"flame": (3, 4), "smplx": (23, 24)}
_HEAD = {"flame": (0, 1, 2), "smplx": (12, 15, 22)}  # joints whose vertices are skin; others neck/body
_FULL_SPACE = (300, 100)  # shape and expression components of a full file
_SMALL_SPACE = (10, 10)  # ... and of a file with fewer than 400


def detect_kind(data: Mapping[str, Any], path: Path) -> str:
    """``"flame"`` or ``"smplx"`` from a model file's fields (its joint count).

    Raises:
        RigError: naming ``path``: a landmark embedding, another model family, or not a model at all.
    """
    if not all(key in data for key in ("kintree_table", "v_template", "shapedirs")):
        if any("lmk" in key for key in data):
            raise RigError(f"{path}: is a landmark embedding, not a model (use rigs.load_landmark_embedding)")
        raise RigError(
            f"{path}: not a rig file: not a RigStyle rig (.npz without a 'format' entry) nor a FLAME / "
            "SMPL-X model (no kintree_table / v_template / shapedirs)"
        )
    num_joints = int(np.shape(data["kintree_table"])[-1])
    if num_joints in _UNSUPPORTED:
        raise RigError(f"{path}: is a {_UNSUPPORTED[num_joints]} model, only FLAME and SMPL-X are supported")
    if num_joints not in _JOINTS_TO_KIND:
        raise RigError(f"{path}: a model with {num_joints} joints is neither FLAME (5) nor SMPL-X (55)")
    return _JOINTS_TO_KIND[num_joints]


def file_gender(data: Mapping[str, Any], path: Path) -> str | None:
    """The gender a model file states: its ``gender`` field, else a NEUTRAL/MALE/FEMALE token in its name."""
    if "gender" in data:
        value = np.asarray(data["gender"]).reshape(-1)
        text = value[0].decode("latin1") if isinstance(value[0], bytes) else str(value[0])
        if text.lower() in GENDERS:
            return text.lower()
    tokens = path.stem.lower().replace("-", "_").split("_")
    found = [g for g in ("female", "male", "neutral", "generic") if g in tokens]
    return ("neutral" if found[0] == "generic" else found[0]) if found else None


def official_rig(
    data: Mapping[str, Any],
    path: Path,
    kind: str,
    gender: str | None = None,
    landmarks: LandmarkEmbedding | None = None,
    num_betas: int | None = None,
    num_expressions: int | None = None,
) -> Rig:
    """Build the rig of an official FLAME / SMPL-X model file's fields.

    Args:
        data: the file's fields (:func:`rigs.model_files.read_mapping`).
        path: the file, for messages and the rig name.
        kind: ``"flame"`` or ``"smplx"``; must match the file (:func:`detect_kind`).
        gender: the gender asked for; must match the file's if it states one. None: the file's, or neutral.
        landmarks: landmark embedding to use; None: the file's own landmark fields (SMPL-X), if any.
        num_betas: keep only the first shape components (None: all the file has).
        num_expressions: keep only the first expression components (None: all the file has).

    Raises:
        RigError: one line naming ``path``: wrong kind or gender, a missing or malformed field.
    """
    found = detect_kind(data, path)
    if found != kind:
        raise RigError(f"{path}: is a {KINDS[found]} model, not {KINDS.get(kind, kind)}")
    stated = file_gender(data, path)
    if gender is not None and gender not in GENDERS:
        raise RigError(f"{path}: unknown gender {gender!r}, expected one of {list(GENDERS)}")
    if gender is not None and stated is not None and gender != stated:
        raise RigError(f"{path}: is a {stated} model, but gender {gender!r} was asked for")
    try:
        values = _arrays(data, kind, num_betas, num_expressions)
        embedding = landmarks if landmarks is not None else embedding_from_mapping(data, str(path))
        chain = _chain(values["parents"], _NECK[kind]) if embedding.dynamic_faces.size else ()
        return Rig(
            name=f"{KINDS[kind]} {gender or stated or 'neutral'} ({path.name})",
            kind=kind,
            gender=gender or stated or "neutral",
            landmark_faces=embedding.static_faces,
            landmark_bary=embedding.static_bary,
            dynamic_landmark_faces=embedding.dynamic_faces,
            dynamic_landmark_bary=embedding.dynamic_bary,
            dynamic_landmark_chain=chain,
            face_regions=_face_regions(values["faces"], values["lbs_weights"], kind),
            **values,
        )
    except RigError as exc:
        raise RigError(f"{path}: {exc}") from None


def _arrays(
    data: Mapping[str, Any], kind: str, num_betas: int | None, num_expressions: int | None
) -> dict[str, Any]:
    v_template = _field(data, "v_template", 2)
    shapedirs = _field(data, "shapedirs", 3 if np.ndim(data["shapedirs"]) == 3 else 2)
    shapedirs = shapedirs if shapedirs.ndim == 3 else shapedirs[:, :, None]
    num_shape, num_expr = _FULL_SPACE if shapedirs.shape[2] >= sum(_FULL_SPACE) else _SMALL_SPACE
    exprdirs = shapedirs[:, :, num_shape : num_shape + num_expr]
    shapedirs = shapedirs[:, :, :num_shape]
    shapedirs = shapedirs[:, :, : _count("num_betas", num_betas, shapedirs.shape[2])]
    exprdirs = exprdirs[:, :, : _count("num_expressions", num_expressions, exprdirs.shape[2])]
    posedirs = _field(data, "posedirs", 3)
    kintree = np.asarray(data["kintree_table"])
    if kintree.ndim != 2 or kintree.shape[0] != 2:
        raise RigError(f"kintree_table: expected shape [2, J], got {list(kintree.shape)}")
    parents = kintree[0].astype(np.int64)
    parents[0] = -1  # stored as an unsigned -1
    check_parents(parents)
    values: dict[str, Any] = {
        "v_template": v_template,
        "faces": _field(data, "f", 2),
        "shapedirs": shapedirs,
        "exprdirs": exprdirs,
        "posedirs": posedirs.reshape(-1, posedirs.shape[-1]).T,
        "j_regressor": _field(data, "J_regressor", 2),
        "lbs_weights": _field(data, "weights", 2),
        "parents": parents,
        "joint_names": SMPLX_JOINT_NAMES if kind == "smplx" else FLAME_JOINT_NAMES,
        "expression_names": tuple(f"expression_{k:03d}" for k in range(exprdirs.shape[2])),
    }
    if kind == "smplx" and "hands_meanl" in data:
        values["hand_mean"] = np.stack([_field(data, f"hands_mean{s}", 1) for s in "lr"])
        values["hand_components"] = np.stack([_field(data, f"hands_components{s}", 2) for s in "lr"])
    return values


def _field(data: Mapping[str, Any], key: str, ndim: int) -> np.ndarray:
    if key not in data:
        raise RigError(f"missing field {key!r}")
    try:
        array = np.asarray(data[key])
    except (TypeError, ValueError) as exc:
        raise RigError(f"field {key!r} is not an array ({exc})") from None
    if array.ndim != ndim or array.dtype.kind not in "iuf":
        raise RigError(f"field {key!r}: expected a {ndim}-d numeric array, got {array.ndim}-d {array.dtype}")
    return array


def _count(name: str, asked: int | None, available: int) -> int:
    if asked is None:
        return available
    if not 0 <= asked <= available:
        raise RigError(f"{name}: the file has {available} components, {asked} were asked for")
    return asked


def _chain(parents: np.ndarray, start: int) -> tuple[int, ...]:
    """Joint ``start`` and its ancestors up to the root (smplx's ``find_joint_kin_chain``)."""
    chain = [start]
    while parents[chain[-1]] >= 0:
        chain.append(int(parents[chain[-1]]))
    return tuple(chain)


def _face_regions(faces: np.ndarray, weights: np.ndarray, kind: str) -> np.ndarray:
    """Eyes where a face's vertices follow the eye joints, skin on the head, neck/body elsewhere."""
    dominant = np.asarray(weights).argmax(axis=1)[np.asarray(faces)]  # (F, 3)
    labels = np.full(faces.shape[0], regions.NECK, dtype=np.uint8)
    labels[np.isin(dominant, _HEAD[kind]).sum(axis=1) >= 2] = regions.SKIN
    labels[np.isin(dominant, _EYES[kind]).sum(axis=1) >= 2] = regions.EYES
    return labels
