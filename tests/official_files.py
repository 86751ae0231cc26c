"""Synthetic model files in the official FLAME / SMPL-X formats, so tests need no licensed data.

Structure follows the distributed files (field names, shapes, dtypes, kinematic trees, sparse joint
regressors, chumpy objects, Python-2 pickles, landmark embeddings); values are random but smooth:

- the mesh is a blob of vertices around every joint (joints from the real kinematic tree), triangles
  within each blob; skinning weights mix a vertex's own joint with its parent's, rows sum to 1; each joint
  is regressed from its own blob with positive weights summing to 1 (so the regressor is sparse);
- blendshapes and pose correctives are low-frequency functions of the rest position;
- every float array is float32-exact, because smplx rounds model arrays through float32 even when asked
  for float64 (``to_np``), and the float64 parity checks must compare the same numbers.

Chumpy-style pickles are written by pickling stand-in classes registered under the real module names
(``chumpy.ch.Ch``, ``chumpy.reordering.Select`` / ``transpose``, ``scipy.sparse.csc.csc_matrix``) only for
the duration of the write, with a pickler that writes byte strings as Python 2 ``str`` (``BINSTRING``),
as the distributed Python-2-era files do. smplx itself cannot read those (it would need chumpy), so every
model is also written as the plain-numpy variant smplx reads.
"""

from __future__ import annotations

import contextlib
import pickle
import struct
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

FLAME_PARENTS = np.array([-1, 0, 1, 1, 1])
SMPLX_PARENTS = np.array(
    [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]
    + [20, 25, 26, 20, 28, 29, 20, 31, 32, 20, 34, 35, 20, 37, 38]
    + [21, 40, 41, 21, 43, 44, 21, 46, 47, 21, 49, 50, 21, 52, 53]
)
NUM_STATIC_LANDMARKS = 51
DYNAMIC_TABLE = (79, 17)  # head-yaw rows x contour landmarks
FULL_SIZE_SMPLX_VERTICES = 10_475


def f32(array: np.ndarray) -> np.ndarray:
    """``array`` rounded to float32 values (kept as float32)."""
    return np.asarray(array, dtype=np.float32)


# ----------------------------------------------------------------------------------------------- arrays


def model_arrays(parents: np.ndarray, num_vertices: int, num_components: int, seed: int) -> dict[str, Any]:
    """The fields shared by FLAME and SMPL-X files, for a kinematic tree and a mesh size.

    Args:
        parents: (J,) parents, ``parents[0] == -1``.
        num_vertices: V, at least 3 per joint.
        num_components: K, shape + expression components in ``shapedirs``.
        seed: random seed.

    Returns:
        ``v_template`` (V, 3), ``f`` (F, 3) uint32, ``shapedirs`` (V, 3, K), ``posedirs`` (V, 3, (J-1)*9),
        ``J_regressor`` (J, V), ``weights`` (V, J), ``kintree_table`` (2, J) uint32, ``J`` (J, 3).
    """
    rng = np.random.default_rng(seed)
    num_joints = len(parents)
    joints = np.zeros((num_joints, 3))
    for j in range(1, num_joints):
        joints[j] = joints[parents[j]] + rng.normal(scale=0.08, size=3) + [0.0, 0.06, 0.0]
    owner = np.sort(np.arange(num_vertices) % num_joints)  # joint of every vertex, blobs contiguous
    directions = rng.normal(size=(num_vertices, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    v_template = joints[owner] + 0.03 * directions
    faces = _blob_faces(owner)
    weights = np.zeros((num_vertices, num_joints))
    own = rng.uniform(0.5, 1.0, num_vertices)
    weights[np.arange(num_vertices), owner] = own
    parent = np.maximum(parents[owner], 0)
    weights[np.arange(num_vertices), parent] += 1.0 - own
    regressor = np.zeros((num_joints, num_vertices))
    regressor[owner, np.arange(num_vertices)] = rng.uniform(0.5, 1.5, num_vertices)
    basis = _smooth_basis(v_template, rng)
    shapedirs = basis @ rng.normal(scale=0.01, size=(basis.shape[1], 3 * num_components))
    posedirs = basis @ rng.normal(scale=0.005, size=(basis.shape[1], 3 * (num_joints - 1) * 9))
    kintree = np.stack([parents, np.arange(num_joints)]).astype(np.int64) % 2**32
    return {
        "v_template": f32(v_template),
        "f": faces.astype(np.uint32),
        "shapedirs": f32(shapedirs.reshape(num_vertices, 3, num_components)),
        "posedirs": f32(posedirs.reshape(num_vertices, 3, -1)),
        "J_regressor": f32(regressor / regressor.sum(axis=1, keepdims=True)),
        "weights": f32(weights / weights.sum(axis=1, keepdims=True)),
        "kintree_table": kintree.astype(np.uint32),
        "J": f32(joints),
    }


def _blob_faces(owner: np.ndarray) -> np.ndarray:
    """Triangles (i, i+1, i+2) around each joint's blob of vertices."""
    faces = []
    for joint in np.unique(owner):
        members = np.flatnonzero(owner == joint)
        n = len(members)
        faces += [[members[i], members[(i + 1) % n], members[(i + 2) % n]] for i in range(n)]
    return np.array(faces)


def _smooth_basis(points: np.ndarray, rng: np.random.Generator, count: int = 12) -> np.ndarray:
    """(V, count) low-frequency functions of position: sines of random plane waves."""
    freq = rng.normal(scale=3.0, size=(3, count))
    phase = rng.uniform(0.0, 2 * np.pi, count)
    return np.sin(points @ freq + phase)


def landmark_arrays(num_faces: int, seed: int) -> dict[str, np.ndarray]:
    """Static (51) and dynamic (79 x 17) landmark faces and barycentrics (rows sum to 1)."""
    rng = np.random.default_rng(seed)

    def bary(*shape: int) -> np.ndarray:
        b = rng.uniform(0.05, 1.0, size=(*shape, 3))
        b = f32(b / b.sum(axis=-1, keepdims=True))
        b[..., 2] = 1.0 - b[..., 0] - b[..., 1]  # rows sum to 1 to float32 precision
        return b

    return {
        "lmk_faces_idx": rng.integers(0, num_faces, NUM_STATIC_LANDMARKS),
        "lmk_bary_coords": bary(NUM_STATIC_LANDMARKS),
        "dynamic_lmk_faces_idx": rng.integers(0, num_faces, DYNAMIC_TABLE),
        "dynamic_lmk_bary_coords": bary(*DYNAMIC_TABLE),
    }


def flame_arrays(seed: int = 0, num_vertices: int = 200, num_components: int = 400) -> dict[str, Any]:
    """A FLAME model's fields (5 joints: root, neck, jaw, eyes), as in ``generic_model.pkl``."""
    arrays = model_arrays(FLAME_PARENTS, num_vertices, num_components, seed)
    arrays.update(bs_style="lbs", bs_type="lrotmin")
    return arrays


def smplx_arrays(
    seed: int = 0, num_vertices: int = 440, num_components: int = 400, gender: str | None = None
) -> dict[str, Any]:
    """A SMPL-X model's fields (the real 55-joint tree), with hand PCA and landmark embedding."""
    rng = np.random.default_rng(seed + 1000)
    arrays = model_arrays(SMPLX_PARENTS, num_vertices, num_components, seed)
    arrays.update(landmark_arrays(len(arrays["f"]), seed + 2000))
    for side in "lr":
        components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
        arrays[f"hands_components{side}"] = f32(components)
        arrays[f"hands_mean{side}"] = f32(rng.normal(scale=0.15, size=45))
        arrays[f"hands_coeffs{side}"] = f32(rng.normal(size=(8, 45)))
    arrays["joint2num"] = np.array({"pelvis": 0, "jaw": 22}, dtype=object)  # pickled dict entries exist
    if gender is not None:
        arrays["gender"] = np.array(gender)
    return arrays


# ------------------------------------------------------------------------------------------- pickles


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Protocol 2 with byte and ASCII strings written as Python 2 ``str`` (``BINSTRING``)."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes | str) -> None:
        if isinstance(obj, str):
            if not obj.isascii():
                return pickle._Pickler.save_str(self, obj)  # type: ignore[attr-defined, no-any-return]
            obj = obj.encode("ascii")
        n = len(obj)
        header = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(header + obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def py2_pickle(obj: object) -> bytes:
    """``obj`` pickled as Python 2 (protocol 2, ``copy_reg`` / ``__builtin__`` names, ``str`` bytes)."""
    import io

    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _stand_in(module: str, name: str, base: type) -> type:
    return type(name, (base,), {"__module__": module, "__qualname__": name})


class _Chumpy:
    """Pickles like a chumpy object: protocol-2 ``__newobj__`` plus its ``__dict__`` minus caches."""

    def __init__(self, **terms: Any) -> None:
        self.__dict__.update(terms)
        self.__dict__.update(_dirty_vars=set(terms), _itr=None, _depends_on_deps={})
        self.__dict__.update(_make_dense=False, _make_sparse=False)


class _Sparse:
    """Pickles like an old scipy ``csc_matrix``: ``__newobj__`` plus its ``__dict__``."""

    def __init__(self, dense: np.ndarray) -> None:
        cols = [np.flatnonzero(dense[:, c]) for c in range(dense.shape[1])]
        self.__dict__.update(
            _shape=dense.shape,
            maxprint=50,
            format="csc",
            indices=np.concatenate(cols).astype(np.int32),
            indptr=np.concatenate([[0], np.cumsum([len(c) for c in cols])]).astype(np.int32),
            data=np.concatenate([dense[c, k] for k, c in enumerate(cols)]),
        )


@contextlib.contextmanager
def _fake_modules() -> Iterator[dict[str, type]]:
    """Register stand-in chumpy / scipy modules under their real names while pickling, then remove them."""
    classes = {
        "Ch": _stand_in("chumpy.ch", "Ch", _Chumpy),
        "Select": _stand_in("chumpy.reordering", "Select", _Chumpy),
        "transpose": _stand_in("chumpy.reordering", "transpose", _Chumpy),
        "csc_matrix": _stand_in("scipy.sparse.csc", "csc_matrix", _Sparse),
    }
    saved: dict[str, types.ModuleType | None] = {}
    for cls in classes.values():  # fresh fake modules, even if the real ones happen to be installed
        parts = cls.__module__.split(".")
        for k in range(1, len(parts) + 1):
            name = ".".join(parts[:k])
            if name not in saved:
                saved[name] = sys.modules.get(name)
                sys.modules[name] = types.ModuleType(name)
        setattr(sys.modules[cls.__module__], cls.__name__, cls)
    try:
        yield classes
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def chumpy_pickle(arrays: dict[str, Any]) -> bytes:
    """The Python-2 chumpy-style pickle of a model: ``v_template`` / ``shapedirs`` as ``Ch``, ``posedirs``
    as a ``Select``, ``weights`` as a ``transpose`` and ``J_regressor`` as a sparse ``csc_matrix``."""
    with _fake_modules() as cls:
        out = dict(arrays)
        out["v_template"] = cls["Ch"](x=arrays["v_template"])
        out["shapedirs"] = cls["Ch"](x=arrays["shapedirs"])
        posedirs = arrays["posedirs"]
        select = {"idxs": np.arange(posedirs.size), "preferred_shape": posedirs.shape}
        out["posedirs"] = cls["Select"](a=cls["Ch"](x=posedirs.ravel()), **select)
        out["weights"] = cls["transpose"](a=cls["Ch"](x=np.ascontiguousarray(arrays["weights"].T)), axes=None)
        out["J_regressor"] = cls["csc_matrix"](np.asarray(arrays["J_regressor"], dtype=np.float64))
        return py2_pickle({k: v for k, v in out.items() if k not in ("joint2num", "gender")})


def plain_pickle(arrays: dict[str, Any]) -> bytes:
    """A plain numpy pickle (protocol 2) as smplx reads it."""
    return pickle.dumps({k: v for k, v in arrays.items() if k != "joint2num"}, protocol=2)


# -------------------------------------------------------------------------------------------- writers


def write_flame(
    folder: Path,
    variant: str = "plain",
    gender: str = "neutral",
    seed: int = 0,
    embedding: str | None = "smplx",
    name: str | None = None,
    **sizes: int,
) -> Path:
    """Write a FLAME model (and its landmark embedding) into ``folder``.

    Args:
        folder: destination (created).
        variant: ``"plain"`` (numpy pickle, dense regressor: what smplx reads), ``"chumpy"`` (Python-2
            chumpy + sparse pickle, as distributed) or ``"npz"``.
        gender: used in the default file name ``FLAME_{GENDER}.pkl|npz``.
        seed: random seed (the same seed gives the same model in every variant).
        embedding: ``"smplx"`` writes ``flame_static_embedding.pkl`` + ``flame_dynamic_embedding.npy``;
            ``"deca"`` writes ``landmark_embedding.npy``; None writes none.
        name: file name instead of the default.
        **sizes: ``num_vertices`` / ``num_components`` for :func:`flame_arrays`.

    Returns:
        The model file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    arrays = flame_arrays(seed, **sizes)
    ext = "npz" if variant == "npz" else "pkl"
    path = folder / (name or f"FLAME_{gender.upper()}.{ext}")
    if variant == "npz":
        np.savez(path, **arrays)
    else:
        path.write_bytes(chumpy_pickle(arrays) if variant == "chumpy" else plain_pickle(arrays))
    lmk = landmark_arrays(len(arrays["f"]), seed + 2000)
    if embedding == "smplx":
        write_flame_static_embedding(folder / "flame_static_embedding.pkl", lmk)
        write_flame_dynamic_embedding(folder / "flame_dynamic_embedding.npy", lmk)
    elif embedding == "deca":
        write_deca_embedding(folder / "landmark_embedding.npy", lmk)
    return path


def write_flame_static_embedding(path: Path, lmk: dict[str, np.ndarray]) -> None:
    """``flame_static_embedding.pkl``: a Python-2 pickle of ``lmk_face_idx`` (uint32) and ``lmk_b_coords``."""
    data = {"lmk_face_idx": lmk["lmk_faces_idx"].astype(np.uint32), "lmk_b_coords": lmk["lmk_bary_coords"]}
    path.write_bytes(py2_pickle(data))


def write_flame_dynamic_embedding(path: Path, lmk: dict[str, np.ndarray]) -> None:
    """``flame_dynamic_embedding.npy``: a 0-d object array holding the (79, 17) contour table dict."""
    data = {"lmk_face_idx": lmk["dynamic_lmk_faces_idx"], "lmk_b_coords": lmk["dynamic_lmk_bary_coords"]}
    np.save(path, np.array(data, dtype=object), allow_pickle=True)


def write_deca_embedding(path: Path, lmk: dict[str, np.ndarray]) -> None:
    """RingNet / DECA ``landmark_embedding.npy`` (or ``.npz``): static, dynamic and full 68-point fields."""
    data = {
        "static_lmk_faces_idx": lmk["lmk_faces_idx"],
        "static_lmk_bary_coords": lmk["lmk_bary_coords"],
        "dynamic_lmk_faces_idx": lmk["dynamic_lmk_faces_idx"],
        "dynamic_lmk_bary_coords": lmk["dynamic_lmk_bary_coords"],
        "full_lmk_faces_idx": np.concatenate([lmk["dynamic_lmk_faces_idx"][0], lmk["lmk_faces_idx"]])[None],
        "full_lmk_bary_coords": np.concatenate([lmk["dynamic_lmk_bary_coords"][0], lmk["lmk_bary_coords"]])[
            None
        ],
    }
    if path.suffix == ".npz":
        np.savez(path, **data)
    else:
        np.save(path, np.array(data, dtype=object), allow_pickle=True)


def write_smplx(
    folder: Path,
    variant: str = "npz",
    gender: str = "neutral",
    seed: int = 0,
    name: str | None = None,
    gender_field: bool = False,
    **sizes: int,
) -> Path:
    """Write a SMPL-X model into ``folder``.

    Args:
        folder: destination (created).
        variant: ``"npz"`` (as smplx reads it, with a pickled ``joint2num`` entry), ``"plain"`` (numpy
            pickle) or ``"chumpy"`` (Python-2 chumpy + sparse regressor pickle).
        gender: used in the default name ``SMPLX_{GENDER}.npz|pkl`` (and the ``gender`` field).
        seed: random seed (the same seed gives the same model in every variant).
        name: file name instead of the default.
        gender_field: also store a ``gender`` field.
        **sizes: ``num_vertices`` / ``num_components`` for :func:`smplx_arrays`.

    Returns:
        The model file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    arrays = smplx_arrays(seed, gender=gender if gender_field else None, **sizes)
    path = folder / (name or f"SMPLX_{gender.upper()}.{'npz' if variant == 'npz' else 'pkl'}")
    if variant == "npz":
        np.savez(path, **arrays)
    else:
        path.write_bytes(chumpy_pickle(arrays) if variant == "chumpy" else plain_pickle(arrays))
    return path


def write_full_size_smplx(folder: Path, gender: str = "neutral", seed: int = 0) -> Path:
    """A SMPL-X-like ``.npz`` of official size for benchmarks: 10,475 vertices, 300 shape + 100 expression
    components, 486 pose correctives (about 115 MB, float32)."""
    return write_smplx(folder, "npz", gender, seed, num_vertices=FULL_SIZE_SMPLX_VERTICES, num_components=400)
