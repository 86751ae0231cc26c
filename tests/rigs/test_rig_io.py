from __future__ import annotations

import dataclasses
import zipfile

import numpy as np
import pytest

import rigs
from rigs import Rig, RigError


def assert_rigs_equal(a: Rig, b: Rig) -> None:
    for field in dataclasses.fields(Rig):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), field.name
        else:
            assert x == y, field.name


def test_round_trip_small(small_rig, tmp_path):
    path = tmp_path / "small.npz"
    rigs.save(small_rig, path)
    assert_rigs_equal(rigs.load(path), small_rig)


def test_round_trip_demo_head(head, tmp_path):
    path = tmp_path / "head.rig"  # the name is kept as given, no suffix added
    rigs.save(head, path)
    assert [p.name for p in tmp_path.iterdir()] == ["head.rig"]
    loaded = rigs.load(str(path))
    assert_rigs_equal(loaded, head)
    np.testing.assert_array_equal(
        loaded.forward(pose=np.full((5, 3), 0.1)).vertices, head.forward(pose=np.full((5, 3), 0.1)).vertices
    )


def test_file_opens_without_pickle(small_rig, tmp_path):
    path = tmp_path / "small.npz"
    rigs.save(small_rig, path)
    with np.load(path, allow_pickle=False) as npz:
        assert str(npz["format"]) == "rigstyle-rig" and int(npz["version"]) == 1
        assert npz["joint_names"].dtype.kind == "U" and npz["name"].dtype.kind == "U"
        assert list(npz["expression_names"]) == ["e0", "e1"]
        for key in npz.files:
            assert npz[key].dtype != object


def rewrite(path, drop=(), **replace):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k not in drop}
    arrays.update(replace)
    np.savez(path, **arrays)


def check_error(path, fragment):
    with pytest.raises(RigError) as info:
        rigs.load(path)
    message = str(info.value)
    assert str(path) in message and fragment in message and "\n" not in message


def test_missing_file(tmp_path):
    check_error(tmp_path / "nope.npz", "no such rig file")


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive at all")
    check_error(path, "not a rig file")


def test_zip_that_is_not_an_npz(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    check_error(path, "'format'")


@pytest.mark.parametrize(
    "drop, replace, fragment",
    [
        (("format",), {}, "without a 'format' entry"),
        ((), {"format": np.array("something-else")}, "unknown format tag 'something-else'"),
        ((), {"version": np.array(2)}, "unsupported rig file version 2"),
        (("lbs_weights",), {}, "missing field 'lbs_weights'"),
        ((), {"lbs_weights": np.full((6, 2), 0.5)}, "lbs_weights: expected shape [6, 3], got [6, 2]"),
        ((), {"joint_names": np.array(["root", "a", "b"], dtype=object)}, "'joint_names'"),
    ],
    ids=[
        "no-format-tag",
        "wrong-format-tag",
        "future-version",
        "missing-field",
        "bad-shape",
        "pickled-entry",
    ],
)
def test_damaged_rig_files_name_the_file_and_the_problem(small_rig, tmp_path, drop, replace, fragment):
    path = tmp_path / "damaged.npz"
    rigs.save(small_rig, path)
    rewrite(path, drop=drop, **replace)
    check_error(path, fragment)


def test_unknown_kind(small_rig, tmp_path):
    path = tmp_path / "small.npz"
    rigs.save(small_rig, path)
    with pytest.raises(RigError, match="unknown rig kind 'mano'"):
        rigs.load(path, kind="mano")


def test_save_into_missing_directory(small_rig, tmp_path):
    with pytest.raises(RigError, match="cannot write"):
        rigs.save(small_rig, tmp_path / "missing" / "rig.npz")
