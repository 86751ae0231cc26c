"""``rigstyle train`` user errors: one line on stderr, exit code 2, and nothing trained or written."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_helpers import run_rigstyle
from hostile_pickles import PAYLOADS, save_hostile_teacher
from PIL import Image

from neural_backend.checkpoints.io import save_checkpoint
from neural_backend.stylegan2 import Generator


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rigstyle: error:"), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])


def train(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_rigstyle("train", *args, "--steps", "2", "--batch", "2", "--threads", "1", timeout=120)


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_teacher_holding_a_pickled_callable_is_refused_and_nothing_runs(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor], payload: str
) -> None:
    marker = tmp_path / "ran"
    teacher = tmp_path / "weights.tar"
    save_hostile_teacher(teacher, dcgan_state, payload, marker)
    out = tmp_path / "run"
    assert_one_line_error(train("--teacher", teacher, "--out", out), str(teacher), "refused")
    assert not marker.exists()
    assert not out.exists()


def test_a_teacher_wheel_holding_a_callable_is_refused(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor]
) -> None:
    import zipfile

    marker = tmp_path / "ran"
    inner = tmp_path / "inner.tar"
    save_hostile_teacher(inner, dcgan_state, "reduce", marker)
    wheel = tmp_path / "gan_face_generate-1.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.write(inner, "gan_face_generate/weights.tar")
    out = tmp_path / "run"
    assert_one_line_error(train("--teacher", wheel, "--out", out), str(wheel), "refused")
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("text", ["not a readable torch.save file"]),
        ("no-key", ["expected a dict with 'netG_state_dict'"]),
        ("wrong-shape", ["wrong shapes", "main.1.weight"]),
        ("missing", ["no such teacher file"]),
    ],
)
def test_unusable_teachers_are_one_line_errors(
    tmp_path: Path, dcgan_state: dict[str, torch.Tensor], kind: str, words: list[str]
) -> None:
    teacher = tmp_path / "weights.tar"
    if kind == "text":
        teacher.write_text("these are not weights\n")
    elif kind == "no-key":
        torch.save({"generator": dcgan_state}, teacher)
    elif kind == "wrong-shape":
        torch.save({"netG_state_dict": {**dcgan_state, "main.1.weight": torch.ones(5)}}, teacher)
    out = tmp_path / "run"
    assert_one_line_error(train("--teacher", teacher, "--out", out), str(teacher), *words)
    assert not out.exists()


def _corrupt(folder: Path, paths: list[Path]) -> Path:
    paths[1].write_bytes(b"\x00\x01 definitely not a PNG" * 10)
    return paths[1]


def _truncated(folder: Path, paths: list[Path]) -> Path:
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) // 2])
    return paths[1]


def _wrong_size(folder: Path, paths: list[Path]) -> Path:
    Image.new("RGB", (16, 8), (10, 20, 30)).save(paths[2])
    return paths[2]


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (_corrupt, ["not a readable image"]),
        (_truncated, ["not a readable image"]),
        (_wrong_size, ["16x8", "expected 16x16"]),
    ],
    ids=["garbage-png", "truncated-png", "wrong-size"],
)
def test_a_bad_image_among_good_ones_is_named(
    tmp_path: Path,
    faces: Callable[..., list[Path]],
    damage: Callable[[Path, list[Path]], Path],
    words: list[str],
) -> None:
    folder = tmp_path / "faces"
    bad = damage(folder, faces(folder, 4, 16))
    out = tmp_path / "run"
    assert_one_line_error(train("--data", folder, "--out", out), str(bad), *words)
    assert not out.exists()


def test_a_resolution_that_is_not_a_power_of_two_is_refused(
    tmp_path: Path, faces: Callable[..., list[Path]]
) -> None:
    folder = tmp_path / "faces"
    faces(folder, 3, 48)
    out = tmp_path / "run"
    assert_one_line_error(train("--data", folder, "--out", out), "48", "not a power of two")
    assert not out.exists()


def test_a_missing_data_folder_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert_one_line_error(
        train("--data", missing, "--out", tmp_path / "run"), str(missing), "no such data folder"
    )
    assert not (tmp_path / "run").exists()


def test_a_data_folder_without_images_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here\n")
    assert_one_line_error(train("--data", empty, "--out", tmp_path / "run"), str(empty), "no images")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("sources", "words"),
    [("none", ["exactly one source"]), ("both", ["exactly one source"]), ("no-out", ["--out is required"])],
)
def test_exactly_one_source_and_an_out_folder_are_required(
    tmp_path: Path, teacher_file: Path, sources: str, words: list[str]
) -> None:
    out = ["--out", tmp_path / "run"]
    args = {
        "none": out,
        "both": ["--teacher", teacher_file, "--data", tmp_path / "faces", *out],
        "no-out": ["--teacher", teacher_file],
    }[sources]
    assert_one_line_error(train(*args), *words)
    assert not (tmp_path / "run").exists()


def test_a_teacher_run_refuses_another_resolution_and_an_init_that_does_not_fit(
    tmp_path: Path, teacher_file: Path
) -> None:
    out = tmp_path / "run"
    assert_one_line_error(
        train("--teacher", teacher_file, "--out", out, "--resolution", "32"), "--resolution 32", "64"
    )
    assert_one_line_error(
        train("--teacher", teacher_file, "--out", out, "--init", teacher_file), str(teacher_file)
    )
    small, wide = tmp_path / "small.safetensors", tmp_path / "wide.safetensors"
    save_checkpoint(Generator(z_dim=8, w_dim=8, img_resolution=32, mapping_layers=1, channel_max=4), small)
    save_checkpoint(Generator(z_dim=16, w_dim=8, img_resolution=64, mapping_layers=1, channel_max=4), wide)
    assert_one_line_error(train("--teacher", teacher_file, "--out", out, "--init", small), "--init", "64px")
    assert_one_line_error(
        train("--teacher", teacher_file, "--out", out, "--init", wide), "--init", "z_dim 16"
    )
    assert not out.exists()


def test_resume_needs_a_snapshot(tmp_path: Path) -> None:
    missing = tmp_path / "never-ran"
    assert_one_line_error(run_rigstyle("train", "--resume", missing), str(missing), "no training snapshot")
    started = tmp_path / "started"
    started.mkdir()
    (started / "metrics.jsonl").write_text("")
    assert_one_line_error(run_rigstyle("train", "--resume", started), str(started), "no training snapshot")
    assert sorted(p.name for p in started.iterdir()) == ["metrics.jsonl"]


def test_resume_of_an_unreadable_snapshot_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    bogus = run / "snapshot-000004.safetensors"
    bogus.write_bytes(b"not safetensors at all")
    assert_one_line_error(
        run_rigstyle("train", "--resume", run), str(bogus), "not a readable safetensors file"
    )


def test_resume_refuses_settings_it_would_ignore(tmp_path: Path, teacher_file: Path) -> None:
    out = tmp_path / "run"
    started = train("--teacher", teacher_file, "--out", out, "--steps", "1", "--batch", "2", "--threads", "1")
    assert started.returncode == 0, started.stderr
    before = sorted(p.name for p in out.iterdir())
    refused = run_rigstyle("train", "--resume", out, "--steps", "2", "--batch", "4", "--lr", "0.01")
    assert_one_line_error(refused, "--batch", "--lr", "keeps the settings")
    assert sorted(p.name for p in out.iterdir()) == before
