"""Snapshot files, the run's config, and the data sources, in-process."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from neural_backend.train import snapshot as snapshot_module
from neural_backend.train.config import TrainConfig
from neural_backend.train.data import DataError, FolderData, TeacherData, check_resolution, load_image_folder
from neural_backend.train.snapshot import (
    SnapshotError,
    latest_snapshot,
    list_snapshots,
    optimizer_tensors,
    read_snapshot,
    restore_optimizer,
    write_snapshot,
)
from neural_backend.train.teacher import load_teacher


def _tensors(value: float) -> dict[str, torch.Tensor]:
    return {"G.weight": torch.full([2, 3], value), "rng.data": torch.arange(4, dtype=torch.uint8)}


def test_a_snapshot_reads_back_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "snapshot-000007.safetensors"
    write_snapshot(path, _tensors(1.5), '{"x": 1}', step=7, seconds=2.25, nimg=112)
    snapshot = read_snapshot(path)
    assert (snapshot.path, snapshot.config_json, snapshot.step, snapshot.seconds, snapshot.nimg) == (
        path,
        '{"x": 1}',
        7,
        2.25,
        112,
    )
    assert torch.equal(snapshot.tensors["G.weight"], torch.full([2, 3], 1.5))
    assert snapshot.section("G").keys() == {"weight"} and snapshot.section("rng").keys() == {"data"}
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # the partial file was renamed into place


def test_a_write_that_fails_midway_leaves_the_previous_snapshot_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot-000003.safetensors"
    write_snapshot(path, _tensors(1.0), "{}", step=3, seconds=1.0, nimg=6)

    def dies_halfway(tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str]) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(snapshot_module, "save_file", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_snapshot(path, _tensors(2.0), "{}", step=3, seconds=9.0, nimg=6)
    snapshot = read_snapshot(path)
    assert snapshot.seconds == 1.0 and torch.equal(snapshot.tensors["G.weight"], torch.ones([2, 3]))
    assert list_snapshots(tmp_path) == [path]  # a leftover partial file is never taken for a snapshot


def test_list_and_latest_sort_by_step_and_ignore_other_files(tmp_path: Path) -> None:
    for step in (999999, 5, 1000000, 40):
        (tmp_path / f"snapshot-{step:06d}.safetensors").write_bytes(b"")
    for other in (
        ".snapshot-000041.safetensors.12.partial",
        "snapshot-7.safetensors",
        "network-000050.safetensors",
    ):
        (tmp_path / other).write_bytes(b"")
    names = [p.name for p in list_snapshots(tmp_path)]
    assert names == [f"snapshot-{s:06d}.safetensors" for s in (5, 40, 999999, 1000000)]
    assert latest_snapshot(tmp_path).name == "snapshot-1000000.safetensors"
    chosen = tmp_path / "snapshot-000040.safetensors"
    assert latest_snapshot(chosen) == chosen
    assert list_snapshots(tmp_path / "missing") == []
    with pytest.raises(SnapshotError, match="no training snapshot"):
        latest_snapshot(tmp_path / "missing")


def test_files_that_are_not_snapshots_are_one_line_errors(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other), metadata={"format": "pt"})
    with pytest.raises(SnapshotError, match="not a training snapshot \\(format 'pt'"):
        read_snapshot(other)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 3)
    with pytest.raises(SnapshotError, match="not a readable safetensors file"):
        read_snapshot(garbage)
    incomplete = tmp_path / "incomplete.safetensors"
    save_file({"x": torch.zeros(1)}, str(incomplete), metadata={"format": "rigstyle-training-snapshot"})
    with pytest.raises(SnapshotError, match="metadata is incomplete"):
        read_snapshot(incomplete)


def test_adam_state_round_trips_through_named_tensors() -> None:
    rng = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn([5, 3], generator=rng)).square().sum().backward()
        optimizer.step()
    names = {id(p): n for n, p in model.named_parameters()}
    saved = optimizer_tensors("opt", optimizer, names)
    assert "opt.0.weight.exp_avg" in saved and float(saved["opt.1.bias.step"]) == 2

    fresh = torch.optim.Adam(model.parameters(), lr=0.1)
    restore_optimizer(fresh, {k[len("opt.") :]: v for k, v in saved.items()}, names)
    for param in model.parameters():
        for key, value in optimizer.state[param].items():
            assert torch.equal(fresh.state[param][key], value), key


def test_config_json_round_trips_and_refuses_unknown_keys() -> None:
    config = TrainConfig(
        source="folder", resolution=32, data="faces", augment=("color", "cutout"), generator={"w_dim": 8}
    )
    again = TrainConfig.from_json(config.to_json())
    assert again == config and again.augment == ("color", "cutout")
    assert not config.paired
    assert TrainConfig(source="teacher", resolution=64, l1=1.0).paired
    assert not TrainConfig(source="teacher", resolution=64).paired
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        TrainConfig.from_json(config.to_json()[:-1] + ', "colour": 1}')
    assert dataclasses.replace(config, steps=9).steps == 9


def test_a_face_folder_is_read_in_name_order_into_minus_one_to_one(
    tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    from PIL import Image

    paths = faces(tmp_path / "faces", 3, 16)
    (tmp_path / "faces" / "readme.txt").write_text("ignored")
    Image.new("RGB", (16, 16), (255, 0, 0)).save(tmp_path / "faces" / "a-red.png")
    images = load_image_folder(tmp_path / "faces", None)
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.float32
    assert torch.equal(images[0, 0], torch.ones(16, 16)) and torch.equal(images[0, 1], -torch.ones(16, 16))
    with Image.open(paths[0]) as first:
        expected = torch.from_numpy(np.asarray(first.convert("RGB")).copy()).permute(2, 0, 1)
    assert torch.allclose(images[1], expected.float() / 127.5 - 1)
    with pytest.raises(DataError, match="image is 16x16, expected 32x32"):
        load_image_folder(tmp_path / "faces", 32)


@pytest.mark.parametrize("value", [0, 4, 6, 12, 48, 100])
def test_resolutions_must_be_powers_of_two_of_at_least_8(value: int) -> None:
    with pytest.raises(DataError, match=f"^resolution {value} is not a power of two"):
        check_resolution(value)


def test_resolutions_that_are_powers_of_two_pass() -> None:
    assert [check_resolution(v) for v in (8, 16, 1024)] == [8, 16, 1024]


def test_folder_batches_come_from_the_generator_and_mirror_some_images(
    tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    faces(tmp_path / "faces", 5, 16)
    data = FolderData(tmp_path / "faces", None, torch.device("cpu"))
    assert data.resolution == 16 and data.describe() == f"5 images in {tmp_path / 'faces'}"
    a = data.batch(64, torch.Generator().manual_seed(1))
    b = data.batch(64, torch.Generator().manual_seed(1))
    assert a.z is None and a.features is None and torch.equal(a.images, b.images)
    originals = [img for img in data.images]
    mirrored = [img.flip(2) for img in data.images]
    kinds = []
    for image in a.images:
        if any(torch.equal(image, o) for o in originals):
            kinds.append("original")
        else:
            assert any(torch.equal(image, m) for m in mirrored)
            kinds.append("mirrored")
    assert set(kinds) == {"original", "mirrored"}
    plain = FolderData(tmp_path / "faces", 16, torch.device("cpu"), xflip=False)
    assert all(any(torch.equal(i, o) for o in originals) for i in plain.batch(32, torch.Generator()).images)


def test_teacher_batches_pair_z_with_the_teachers_image_and_features(teacher_file: Path) -> None:
    teacher = load_teacher("dcgan", teacher_file)
    data = TeacherData(teacher, torch.device("cpu"))
    batch = data.batch(3, torch.Generator().manual_seed(4))
    assert batch.z is not None and batch.features is not None
    assert batch.z.shape == (3, 8)
    assert torch.equal(batch.z, torch.randn([3, 8], generator=torch.Generator().manual_seed(4)))
    assert torch.equal(batch.images, teacher(batch.z))
    assert sorted(batch.features) == [4, 8, 16, 32]
    assert data.describe() == f"teacher dcgan {teacher_file}"
