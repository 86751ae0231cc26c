"""A restricted unpickler for model files: plain data out, no code run, no chumpy or scipy needed.

Official FLAME / SMPL(-X) ``.pkl`` files are Python-2-era pickles whose arrays may be chumpy ``Ch`` objects
and whose joint regressor may be a scipy sparse matrix. :func:`loads` resolves every global the pickle
names against a short allow-list: numpy's own reconstructors, a few builtins, and inert stand-ins for the
known chumpy and scipy classes (they only record their pickled state). Anything else is refused with a
:class:`RigError` naming the global, before it could be called. :func:`plain` then turns the stand-ins
into numpy arrays.
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np

from .errors import RigError

# numpy's ndarray and scalar reconstructors, wherever this numpy version keeps them
_RECONSTRUCT: Callable[..., Any] = np.zeros(1).__reduce__()[0]  # type: ignore[assignment]
_SCALAR: Callable[..., Any] = np.float64(0.0).__reduce__()[0]  # type: ignore[assignment]


class Refused(RigError):
    """The pickle names a global that is not on the allow-list."""


class ChumpyStandIn:
    """Inert stand-in for a chumpy object: keeps the pickled ``__dict__``, evaluates with :func:`plain`."""

    op = "Ch"  # the chumpy class this stands in for

    def __setstate__(self, state: object) -> None:
        self.state = state if isinstance(state, dict) else {}


class SparseStandIn:
    """Inert stand-in for a scipy CSC/CSR matrix: keeps the pickled ``__dict__``, densifies with plain()."""

    def __setstate__(self, state: object) -> None:
        self.state = state if isinstance(state, dict) else {}


def _chumpy_class(op: str) -> type[ChumpyStandIn]:
    return type(f"Chumpy_{op}", (ChumpyStandIn,), {"op": op})


_CHUMPY = {
    ("chumpy.ch", "Ch"): "Ch",
    ("chumpy.reordering", "transpose"): "transpose",
    ("chumpy.reordering", "Reshape"): "Reshape",
    ("chumpy.reordering", "Select"): "Select",
    ("chumpy.ch_ops", "add"): "add",
    ("chumpy.ch_ops", "subtract"): "subtract",
    ("chumpy.ch_ops", "multiply"): "multiply",
}
_SPARSE_MODULES = ("scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr", "scipy.sparse._csr")
_SPARSE_NAMES = ("csc_matrix", "csr_matrix", "csc_array", "csr_array")


def _reconstruct(subtype: object, shape: object, dtype: object) -> np.ndarray:
    if subtype is not np.ndarray:
        raise Refused(f"refusing to reconstruct an array of type {subtype!r}")
    return np.asarray(_RECONSTRUCT(np.ndarray, shape, dtype))


def _frombuffer(buffer: object, dtype: object, shape: object, order: object) -> np.ndarray:
    array = np.frombuffer(bytes(buffer), dtype=np.dtype(dtype))  # type: ignore[call-overload]
    return np.array(array.reshape(shape, order=order))  # type: ignore[call-overload]


def _reconstructor(cls: object, base: object, state: object) -> object:
    """Protocol 0/1 object construction (``copy_reg._reconstructor``), for the stand-ins only."""
    if not (isinstance(cls, type) and issubclass(cls, ChumpyStandIn | SparseStandIn)) or base is not object:
        raise Refused(f"refusing to reconstruct {cls!r} from {base!r}")
    return object.__new__(cls)


def _encode(text: object, encoding: object = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 writes bytes into protocol-2 pickles; only text to latin-1 bytes."""
    if not isinstance(text, str) or encoding != "latin1":
        raise Refused(f"refusing _codecs.encode of {type(text).__name__} to {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], object] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("_codecs", "encode"): _encode,
    ("builtins", "object"): object,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = _SCALAR
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = _frombuffer
for _key, _op in _CHUMPY.items():
    _ALLOWED[_key] = _chumpy_class(_op)
_SPARSE_CLASS = {name: type(name, (SparseStandIn,), {}) for name in _SPARSE_NAMES}
for _module in _SPARSE_MODULES:
    for _name in _SPARSE_NAMES:
        _ALLOWED[(_module, _name)] = _SPARSE_CLASS[_name]


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves globals only through ``allowed`` and never loads persistent ids.

    Python 2 names (copy_reg, __builtin__) are mapped first, as the standard unpickler does for protocols
    below 3; anything else raises :class:`Refused` naming the global.
    """

    def __init__(self, file: IO[bytes], allowed: Mapping[tuple[str, str], Any], **kwargs: Any):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = self._allowed.get((module, name))
        if found is None:
            raise Refused(f"refusing to unpickle {module}.{name}")
        return found

    def persistent_load(self, pid: object) -> Any:
        raise Refused("refusing to unpickle a persistent id")


def loads(data: bytes, source: str) -> Any:
    """Unpickle ``data`` with the allow-list; stand-ins stay stand-ins (see :func:`plain`).

    Args:
        data: the pickle bytes (Python 2 strings are decoded as latin-1, as numpy arrays need).
        source: file name used in error messages.

    Returns:
        The unpickled object.

    Raises:
        RigError: ``"refusing to unpickle os.system in FILE"``, or the data is truncated or corrupt.
    """
    try:
        return AllowListUnpickler(io.BytesIO(data), _ALLOWED, encoding="latin1").load()
    except Refused as exc:
        raise RigError(f"{exc} in {source}") from None
    except RigError:
        raise
    except (pickle.UnpicklingError, EOFError) as exc:
        raise RigError(f"{source}: truncated or corrupt pickle ({exc or 'ran out of data'})") from None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise RigError(f"{source}: corrupt pickle ({type(exc).__name__}: {exc})") from None


def plain(value: object) -> object:
    """Replace chumpy and sparse stand-ins (also inside dicts, lists and tuples) by numpy arrays.

    Raises:
        RigError: a stand-in lacks the state its class needs.
    """
    if isinstance(value, ChumpyStandIn):
        return _evaluate_chumpy(value)
    if isinstance(value, SparseStandIn):
        return _densify(value.state)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(item) for item in value)
    return value


def _term(node: ChumpyStandIn, key: str) -> Any:
    if key not in node.state:
        raise RigError(f"chumpy {node.op} object without its {key!r} term")
    return node.state[key]


def _array(node: ChumpyStandIn, key: str) -> np.ndarray:
    return np.asarray(plain(_term(node, key)))


_CHUMPY_OPS: dict[str, Callable[[ChumpyStandIn], np.ndarray]] = {
    "Ch": lambda n: _array(n, "x"),
    "transpose": lambda n: np.transpose(_array(n, "a"), n.state.get("axes")),
    "Reshape": lambda n: _array(n, "a").reshape(_term(n, "newshape")),
    "Select": lambda n: (
        _array(n, "a").ravel()[np.asarray(_term(n, "idxs"))].reshape(n.state.get("preferred_shape", (-1,)))
    ),
    "add": lambda n: _array(n, "a") + _array(n, "b"),
    "subtract": lambda n: _array(n, "a") - _array(n, "b"),
    "multiply": lambda n: _array(n, "a") * _array(n, "b"),
}


def _evaluate_chumpy(node: ChumpyStandIn) -> np.ndarray:
    try:
        return np.array(_CHUMPY_OPS[node.op](node))
    except (ValueError, TypeError, IndexError) as exc:
        raise RigError(f"chumpy {node.op} object cannot be evaluated ({exc})") from None


def _densify(state: dict[str, Any]) -> np.ndarray:
    """A dense (rows, cols) array from the pickled state of a CSC or CSR matrix."""
    try:
        shape = tuple(int(s) for s in state.get("_shape", state.get("shape", ())))
        data, indices, indptr = (np.asarray(state[k]) for k in ("data", "indices", "indptr"))
        fmt = str(state.get("format", state.get("_format", "csc")))
    except (KeyError, TypeError, ValueError) as exc:
        raise RigError(f"sparse matrix without its arrays ({exc})") from None
    if len(shape) != 2 or fmt not in ("csc", "csr"):
        raise RigError(f"sparse matrix of shape {shape} and format {fmt!r} is not supported")
    major, minor = (shape[1], shape[0]) if fmt == "csc" else shape
    if indptr.shape != (major + 1,) or indices.shape != data.shape or indptr[-1] != data.shape[0]:
        raise RigError(f"sparse {fmt} matrix of shape {shape} has inconsistent index arrays")
    if indices.size and (indices.min() < 0 or indices.max() >= minor):
        raise RigError(f"sparse {fmt} matrix of shape {shape} has out-of-range indices")
    outer = np.repeat(np.arange(major), np.diff(indptr))
    dense = np.zeros((major, minor), dtype=np.result_type(data.dtype, np.float64))
    np.add.at(dense, (outer, indices), data)
    return dense.T.copy() if fmt == "csc" else dense
