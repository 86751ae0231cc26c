"""Progress lines (JSON for farm managers, text for people) with an ETA from an injected clock, and the
numpy PNG encoder checked against Pillow's decoder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_backend.farm.progress import Progress
from neural_backend.images.png import SIGNATURE, encode_png, write_png


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_documented_fields_and_an_eta() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("json", stream, clock)
    progress.start("refine", total=4, skipped=2)
    clock.now += 3.0
    progress.frame(1001)
    clock.now += 5.0
    progress.frame(1002)
    progress.note("backend tcp://gpu1:7557 failed; moving the shot")
    progress.error("frame 1003: no face", frame=1003)
    progress.error("the backend is gone")
    clock.now += 2.0
    progress.finish()
    lines = json_lines(stream)
    assert lines == [
        {"event": "start", "stage": "refine", "total": 4, "skipped": 2},
        {"event": "frame", "stage": "refine", "frame": 1001, "done": 1, "total": 4, "elapsed_s": 3.0,
         "eta_s": 9.0},
        {"event": "frame", "stage": "refine", "frame": 1002, "done": 2, "total": 4, "elapsed_s": 8.0,
         "eta_s": 8.0},
        {"event": "note", "stage": "refine", "message": "backend tcp://gpu1:7557 failed; moving the shot"},
        {"event": "error", "stage": "refine", "message": "frame 1003: no face", "frame": 1003},
        {"event": "error", "stage": "refine", "message": "the backend is gone"},
        {"event": "finish", "stage": "refine", "done": 2, "total": 4, "elapsed_s": 10.0},
    ]  # fmt: skip


def test_the_eta_is_never_negative_and_a_new_stage_starts_over() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("json", stream, clock)
    progress.start("passes", total=1)
    clock.now += 1.0
    progress.frame(1)
    progress.frame(2)  # more frames than announced
    progress.start("composite", total=2)
    clock.now += 4.0
    progress.frame(1)
    lines = json_lines(stream)
    assert [line["eta_s"] for line in lines if line["event"] == "frame"] == [0.0, 0.0, 4.0]
    assert lines[-1]["stage"] == "composite" and lines[-1]["done"] == 1 and lines[-1]["elapsed_s"] == 4.0


def test_text_lines() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress("text", stream, clock)
    progress.start("refine", total=3, skipped=1)
    clock.now += 125.0
    progress.frame(7)
    progress.note("a note")
    progress.error("frame 8: broken", frame=8)
    clock.now += 3600.0
    progress.finish()
    one = Progress(stream=stream, clock=clock)
    one.start("passes", total=1)
    assert stream.getvalue().splitlines() == [
        "[refine] 3 frames to do, 1 already finished (the manifest says so; --overwrite redoes them)",
        "[refine] frame 7 done (1/3), ETA 4:10",
        "[refine] a note",
        "[refine] FAILED: frame 8: broken",
        "[refine] finished 1 frame in 1:02:05",
        "[passes] 1 frame to do",
    ]


def test_progress_goes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    Progress("json").start("refine", total=2)
    assert json.loads(capsys.readouterr().out) == {
        "event": "start",
        "stage": "refine",
        "total": 2,
        "skipped": 0,
    }


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="xml"):
        Progress("xml")  # type: ignore[arg-type]


# ---- PNG ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1, 3), (5, 7, 3), (64, 33, 3)])
def test_png_decodes_pixel_exact_in_pillow(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    rgb = rng.uniform(-0.2, 1.2, shape).astype(np.float32)  # outside [0, 1] is clipped
    rgb.flat[0] = np.nan  # NaN counts as 0
    data = encode_png(rgb)
    assert data.startswith(SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.mode == "RGB" and image.size == (shape[1], shape[0])
        decoded = np.asarray(image)
    expected = np.rint(np.clip(np.nan_to_num(rgb), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.flat[0] == 0
    assert encode_png(rgb) == data  # the same pixels give the same bytes


def test_png_of_float64_and_extremes() -> None:
    rgb = np.array([[[0.0, 0.5, 1.0], [1 / 255, 254.5 / 255, 2.0]]])
    with Image.open(io.BytesIO(encode_png(rgb))) as image:
        decoded = np.asarray(image)
    np.testing.assert_array_equal(decoded, np.rint(np.clip(rgb, 0, 1) * 255).astype(np.uint8))


def test_write_png_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "refined" / "frame_0001.png"
    rgb = np.full((4, 6, 3), 0.25, np.float32)
    write_png(path, rgb)
    assert path.read_bytes() == encode_png(rgb)
    assert [p.name for p in path.parent.iterdir()] == ["frame_0001.png"]


@pytest.mark.parametrize("shape", [(4, 4), (4, 4, 4), (4, 4, 1), (0, 4, 3), (4, 0, 3), (2, 4, 4, 3)])
def test_png_refuses_other_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError) as refused:
        encode_png(np.zeros(shape, np.float32))
    assert str(list(shape)) in str(refused.value)


def test_lines_name_their_shot_when_given_one() -> None:
    stream = io.StringIO()
    Progress("json", stream, Clock(), shot="sh010").start("refine", total=1)
    Progress("text", stream, Clock(), shot="sh020").note("hello")
    first, second = stream.getvalue().splitlines()
    assert json.loads(first) == {
        "event": "start",
        "shot": "sh010",
        "stage": "refine",
        "total": 1,
        "skipped": 0,
    }
    assert second == "[sh020 ] hello"  # no stage started yet
