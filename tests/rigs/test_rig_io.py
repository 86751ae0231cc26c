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


def test_npz_without_format_tag(small_rig, tmp_path):
    path = tmp_path / "untagged.npz"
    rigs.save(small_rig, path)
    rewrite(path, drop=("format",))
    check_error(path, "without a 'format' entry")


def test_wrong_format_tag(small_rig, tmp_path):
    path = tmp_path / "tagged.npz"
    rigs.save(small_rig, path)
    rewrite(path, format=np.array("something-else"))
    check_error(path, "unknown format tag 'something-else'")


def test_unsupported_version(small_rig, tmp_path):
    path = tmp_path / "v2.npz"
    rigs.save(small_rig, path)
    rewrite(path, version=np.array(2))
    check_error(path, "unsupported rig file version 2")


def test_missing_field(small_rig, tmp_path):
    path = tmp_path / "partial.npz"
    rigs.save(small_rig, path)
    rewrite(path, drop=("lbs_weights",))
    check_error(path, "missing field 'lbs_weights'")


def test_invalid_contents_name_the_file_and_field(small_rig, tmp_path):
    path = tmp_path / "bad.npz"
    rigs.save(small_rig, path)
    rewrite(path, lbs_weights=np.full((6, 2), 0.5))
    check_error(path, "lbs_weights: expected shape [6, 3], got [6, 2]")


def test_pickled_entries_are_refused(small_rig, tmp_path):
    path = tmp_path / "pickled.npz"
    rigs.save(small_rig, path)
    rewrite(path, joint_names=np.array(["root", "a", "b"], dtype=object))
    check_error(path, "'joint_names'")


def test_unknown_kind(small_rig, tmp_path):
    path = tmp_path / "small.npz"
    rigs.save(small_rig, path)
    with pytest.raises(RigError, match="unknown rig kind 'flame'"):
        rigs.load(path, kind="flame")


def test_save_into_missing_directory(small_rig, tmp_path):
    with pytest.raises(RigError, match="cannot write"):
        rigs.save(small_rig, tmp_path / "missing" / "rig.npz")
