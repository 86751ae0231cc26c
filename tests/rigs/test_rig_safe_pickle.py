from __future__ import annotations

import pickle

import numpy as np
import pytest
from official_files import chumpy_pickle, flame_arrays, py2_pickle

import rigs
from rigs import RigError
from rigs.safe_pickle import loads, plain


def global_reduce(module: str, name: str, *args: str) -> bytes:
    """A protocol-0 pickle calling ``module.name(*args)`` on load."""
    arguments = "".join(f"V{a}\n" for a in args)
    return f"c{module}\n{name}\n({arguments}tR.".encode()


@pytest.mark.parametrize(("module", "name"), [("os", "system"), ("posix", "system"), ("builtins", "eval")])
def test_code_in_a_pickle_is_refused_before_it_runs(tmp_path, module, name):
    marker = tmp_path / "pwned"
    payload = global_reduce(module, name, f"touch {marker}" if name == "system" else "1 + 1")
    path = tmp_path / "model.pkl"
    path.write_bytes(payload)
    with pytest.raises(RigError) as info:
        rigs.load(path)
    assert str(info.value) == f"refusing to unpickle {module}.{name} in {path}"
    assert not marker.exists()
    pickle.loads(global_reduce("builtins", "len", "abc"))  # the payload shape does run when unrestricted


def test_unknown_chumpy_class_is_refused_naming_it():
    with pytest.raises(RigError, match=r"refusing to unpickle chumpy\.ch\.ChLambda in x\.pkl"):
        loads(b"\x80\x02cchumpy.ch\nChLambda\n)\x81.", "x.pkl")


@pytest.mark.parametrize("cut", [1, 50, 0.5, -2])
def test_truncated_pickles_are_one_clear_error(cut):
    data = py2_pickle({"a": np.arange(10.0)})
    end = int(len(data) * cut) if isinstance(cut, float) else cut
    with pytest.raises(RigError, match=r"^m\.pkl: truncated or corrupt pickle"):
        loads(data[:end], "m.pkl")


@pytest.mark.parametrize("protocol", [0, 1, 2, 4, 5])
def test_numpy_arrays_and_scalars_round_trip_in_every_protocol(protocol):
    value = {"a": np.arange(12.0).reshape(3, 4), "i": np.arange(5, dtype=np.uint32), "s": np.float32(2.5)}
    value["t"] = np.asfortranarray(np.arange(6).reshape(2, 3))
    out = plain(loads(pickle.dumps(value, protocol=protocol), "x"))
    for key in value:
        np.testing.assert_array_equal(out[key], value[key])
        assert np.asarray(out[key]).dtype == np.asarray(value[key]).dtype


def test_python2_chumpy_and_sparse_pickle_evaluates_to_the_same_arrays():
    arrays = flame_arrays(seed=5)
    data = chumpy_pickle(arrays)
    assert b"chumpy.ch" in data and b"scipy.sparse.csc" in data and b"__builtin__" in data
    out = plain(loads(data, "flame.pkl"))
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J_regressor", "f", "kintree_table"):
        assert isinstance(out[key], np.ndarray), key
        np.testing.assert_array_equal(out[key], arrays[key], err_msg=key)
    assert out["bs_style"] == "lbs"


def new_object_pickle(module: str, name: str, state: dict) -> bytes:
    """Protocol 2: ``module.name.__new__`` then ``__setstate__(state)``, as scipy matrices pickle."""
    body = pickle.dumps(state, protocol=2)[2:-1]  # without PROTO and STOP
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")\x81" + body + b"b."


@pytest.mark.parametrize(
    ("module", "name", "state"),
    [
        ("scipy.sparse._csr", "csr_matrix", {"_shape": (2, 3), "format": "csr", "indptr": [0, 1, 3]}),
        ("scipy.sparse.csc", "csc_matrix", {"shape": (2, 3), "format": "csc", "indptr": [0, 1, 2, 3]}),
    ],
)
def test_csr_and_csc_matrices_densify(module, name, state):
    data = {"data": np.array([2.0, 1, 3]), "indices": np.array([1, 0, 2])}
    if state["format"] == "csc":
        data = {"data": np.array([1.0, 2, 3]), "indices": np.array([1, 0, 1])}
    state = {**state, **data, "indptr": np.array(state["indptr"])}
    dense = plain(loads(new_object_pickle(module, name, state), "x"))
    np.testing.assert_array_equal(dense, [[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]])
    with pytest.raises(RigError, match="out-of-range indices"):
        plain(loads(new_object_pickle(module, name, {**state, "indices": np.array([1, 0, 7])}), "x"))


def test_chumpy_operations_evaluate():
    a = np.arange(6.0).reshape(2, 3)
    for op, state, expected in [
        ("transpose", {"a": a, "axes": None}, a.T),
        ("Reshape", {"a": a, "newshape": (3, 2)}, a.reshape(3, 2)),
        ("Select", {"a": a, "idxs": np.array([5, 0]), "preferred_shape": (2, 1)}, [[5.0], [0.0]]),
    ]:
        module = "chumpy.reordering"
        np.testing.assert_array_equal(plain(loads(new_object_pickle(module, op, state), "x")), expected)
    added = plain(loads(new_object_pickle("chumpy.ch_ops", "add", {"a": a, "b": a}), "x"))
    np.testing.assert_array_equal(added, 2 * a)
    with pytest.raises(RigError, match="without its 'x' term"):
        plain(loads(new_object_pickle("chumpy.ch", "Ch", {}), "x"))
