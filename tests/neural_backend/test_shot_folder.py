"""The shot folder's manifest: finished frames with checksums (damage, deletion and stale inputs are
noticed), shot ownership, corrupt manifests, concurrent updates from several processes, frame ranges,
segments and passes files as the render stage writes them."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
from synthetic import synthetic_shot

from neural_backend.farm.shot_folder import (
    ShotFolder,
    ShotFolderError,
    file_sha256,
    parse_frames,
    segments,
)
from neural_backend.images.png import write_png


def write_refined(folder: ShotFolder, frame: int) -> Path:
    path = folder.refined_file(frame)
    write_png(path, np.full((4, 4, 3), frame / 10, np.float32))
    return path


def test_recorded_frames_are_finished_with_their_info(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path / "sh010")
    folder.begin("sh010")
    for frame in (1, 2, 3):
        path = write_refined(folder, frame)
        folder.record("refined", frame, [path], inputs={"passes": f"p{frame}"}, info={"backend": "b1"})
    assert folder.shot == "sh010"
    assert folder.finished("refined", [1, 2, 3, 4]) == [1, 2, 3]
    assert folder.finished("refined", [3, 1, 1]) == [1, 3]
    assert folder.finished("composite", [1, 2, 3]) == []
    assert folder.info("refined") == {1: {"backend": "b1"}, 2: {"backend": "b1"}, 3: {"backend": "b1"}}
    path = folder.refined_file(2)
    assert folder.output_sha256("refined", 2, path) == file_sha256(path)
    assert folder.output_sha256("refined", 9, path) is None

    manifest = json.loads((folder.root / "manifest.json").read_text())
    assert manifest["shot"] == "sh010"
    assert set(manifest["stages"]["refined"]["2"]["outputs"]) == {"refined/frame_0002.png"}
    assert not [p.name for p in folder.root.iterdir() if p.name.endswith(".partial")]

    again = ShotFolder(tmp_path / "sh010")  # another task, same folder
    assert again.finished("refined", [1, 2, 3]) == [1, 2, 3]


def test_a_damaged_or_deleted_output_is_not_finished(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path)
    paths = {frame: write_refined(folder, frame) for frame in (1, 2, 3)}
    for frame, path in paths.items():
        folder.record("refined", frame, [path])

    data = bytearray(paths[1].read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    paths[1].write_bytes(bytes(data))
    recorded_ns = os.stat(paths[1]).st_mtime_ns
    os.utime(paths[1], ns=(recorded_ns + 5_000_000_000, recorded_ns + 5_000_000_000))  # mtime surely moved
    paths[2].unlink()
    assert folder.finished("refined", [1, 2, 3]) == [3]

    # touched but unchanged: hashed again and still good
    stat = os.stat(paths[3])
    os.utime(paths[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))
    assert folder.finished("refined", [3]) == [3]

    # rewritten with the same bytes and recorded again: finished again
    write_refined(folder, 1)
    write_refined(folder, 2)
    folder.record("refined", 1, [paths[1]])
    folder.record("refined", 2, [paths[2]])
    assert folder.finished("refined", [1, 2, 3]) == [1, 2, 3]


def test_changed_inputs_make_a_frame_stale(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path)
    for frame in (1, 2):
        folder.record("refined", frame, [write_refined(folder, frame)], inputs={"passes": f"sha-{frame}"})
    now = {1: {"passes": "sha-1"}, 2: {"passes": "sha-2-rerendered"}}
    assert folder.finished("refined", [1, 2], inputs=lambda frame: now[frame]) == [1]
    assert folder.finished("refined", [1, 2], inputs=lambda frame: {}) == []
    assert folder.finished("refined", [1, 2]) == [1, 2]  # inputs not compared


def test_forget_drops_records(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path)
    for frame in (1, 2, 3):
        folder.record("refined", frame, [write_refined(folder, frame)])
    folder.forget("refined", [1, 3, 99])
    assert folder.finished("refined", [1, 2, 3]) == [2]
    assert folder.refined_file(1).exists()  # the files stay; only the records go
    with pytest.raises(ValueError, match="stage"):
        folder.forget("paint", [1])


def test_a_folder_holds_one_shot(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path / "out")
    assert folder.shot is None
    folder.begin("sh010")
    folder.begin("sh010")  # again: fine
    with pytest.raises(ShotFolderError) as other:
        folder.begin("sh020")
    assert "sh010" in str(other.value) and "sh020" in str(other.value)
    assert folder.shot == "sh010"


@pytest.mark.parametrize("text", ["{not json", '{"stages": {}}', "[1, 2]"])
def test_a_corrupt_manifest_names_the_file(tmp_path: Path, text: str) -> None:
    folder = ShotFolder(tmp_path)
    (tmp_path / "manifest.json").write_text(text)
    for action in (
        lambda: folder.finished("refined", [1]),
        lambda: folder.begin("sh010"),
        lambda: folder.record("refined", 1, []),
    ):
        with pytest.raises(ShotFolderError) as corrupt:
            action()
        assert str(tmp_path / "manifest.json") in str(corrupt.value)
    assert (tmp_path / "manifest.json").read_text() == text  # left alone


def test_an_output_outside_the_folder_is_refused(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path / "shot")
    outside = tmp_path / "elsewhere.png"
    outside.write_bytes(b"x")
    with pytest.raises(ShotFolderError, match="outside the shot folder"):
        folder.record("refined", 1, [outside])


def _record_frames(root: str, first: int, count: int) -> None:
    folder = ShotFolder(Path(root))
    for frame in range(first, first + count):
        path = folder.refined_file(frame)
        write_png(path, np.full((2, 2, 3), (frame % 7) / 7, np.float32))
        folder.record("refined", frame, [path], info={"pid": os.getpid()})


def test_concurrent_records_from_several_processes_are_all_kept(tmp_path: Path) -> None:
    processes, frames = 4, 10
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_record_frames, args=(str(tmp_path), i * frames, frames))
        for i in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert [worker.exitcode for worker in workers] == [0] * processes
    folder = ShotFolder(tmp_path)
    everything = list(range(processes * frames))
    assert folder.finished("refined", everything) == everything
    assert len({info["pid"] for info in folder.info("refined").values()}) == processes


@pytest.mark.parametrize(
    ("text", "frames"),
    [
        ("1-3", [1, 2, 3]),
        ("5", [5]),
        ("1-2,7", [1, 2, 7]),
        (" 7 , 1-2 ,2", [1, 2, 7]),
        ("1001-1003", [1001, 1002, 1003]),
        ("4-4", [4]),
    ],
)
def test_parse_frames(text: str, frames: list[int]) -> None:
    assert parse_frames(text) == frames


@pytest.mark.parametrize(("text", "named"), [("3-1", "3-1"), ("a", "a"), ("1,,2", "''"), ("1-b", "1-b")])
def test_parse_frames_refuses_naming_the_part(text: str, named: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_frames(text)
    assert named in str(refused.value)


def test_segments() -> None:
    assert segments([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert segments([5, 1, 2, 3, 9, 10], 10) == [[1, 2, 3], [5], [9, 10]]
    assert segments([1, 2, 3], 1) == [[1], [2], [3]]
    assert segments([], 3) == []
    with pytest.raises(ValueError, match="segment length"):
        segments([1], 0)


def test_passes_saved_like_the_render_stage_load_back(tmp_path: Path) -> None:
    folder = ShotFolder(tmp_path)
    folder.begin("moving")
    passes = synthetic_shot(2, size=32)[1]
    folder.passes_file(1).parent.mkdir(parents=True)
    np.savez_compressed(folder.passes_file(1), **passes.to_message().tensors)  # as render_passes.py does
    loaded = folder.load_passes(1)
    assert (loaded.shot, loaded.frame) == ("moving", 1)
    for name, tensor in passes.to_message().tensors.items():
        np.testing.assert_array_equal(loaded.to_message().tensors[name], tensor, err_msg=name)
    assert set(loaded.extra) == {"motion"}

    with pytest.raises(ShotFolderError) as missing:
        folder.load_passes(2)
    assert "frame 2" in str(missing.value) and str(folder.passes_file(2)) in str(missing.value)
    folder.passes_file(3).write_bytes(b"not an npz")
    with pytest.raises(ShotFolderError) as garbage:
        folder.load_passes(3)
    assert str(folder.passes_file(3)) in str(garbage.value)
    np.savez(folder.passes_file(4), beauty=passes.beauty, paint=np.zeros(2))
    with pytest.raises(ShotFolderError, match="paint"):
        folder.load_passes(4)
