"""``rigstyle rig prefer``: the "A or B?" search at a terminal, answered on stdin by a simulated user or by
``--answers``; its pictures and estimate files, and mistakes as one line with exit code 2."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import RIGSTYLE, assert_one_line_error
from cli_helpers import run_rigstyle as run
from PIL import Image

QUERY = re.compile(r"query (\d+): (\S+)  A=\[([^\]]*)\] B=\[([^\]]*)\]")


def test_a_simulated_user_on_stdin_finds_the_target(tmp_path: Path) -> None:
    """Answer each printed pair with the candidate nearer a hidden target; the estimate finds it."""
    target = np.array([0.7, 0.25])
    out = tmp_path / "session"
    stderr = (tmp_path / "stderr.txt").open("w+")
    process = subprocess.Popen(
        [RIGSTYLE, "rig", "prefer", "demo", "--controls", "happiness,surprise", "--queries", "12",
         "--out", str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    watchdog = threading.Timer(180, process.kill)
    watchdog.start()
    assert process.stdin is not None and process.stdout is not None
    try:
        asked = []
        for line in process.stdout:
            match = QUERY.search(line)
            if match:
                a, b = (np.array(group.split(), dtype=float) for group in match.group(3, 4))
                asked.append(int(match.group(1)))
                nearer_a = np.sum((a - target) ** 2) < np.sum((b - target) ** 2)
                process.stdin.write("a\n" if nearer_a else "b\n")
                process.stdin.flush()
            if line.startswith("surprise "):
                break
        process.stdin.close()
        process.wait(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
    stderr.seek(0)
    assert process.returncode == 0, stderr.read()
    assert asked == list(range(1, 13))
    estimate = json.loads((out / "estimate.json").read_text())
    assert estimate["controls"] == ["happiness", "surprise"]
    assert estimate["asked"] == 12 and len(estimate["answers"]) == 12
    np.testing.assert_allclose(estimate["mean"], target, atol=0.15)
    assert np.asarray(estimate["covariance"]).shape == (2, 2)
    offset = np.load(out / "expression.npz")
    assert offset["expression"].shape == (12,) and offset["jaw"].shape == (3,)
    assert list(offset["controls"]) == ["happiness", "surprise"]
    assert Image.open(out / "estimate.png").size == (256, 256)


def test_scripted_answers_write_the_pairs_and_the_estimate(tmp_path: Path) -> None:
    out = tmp_path / "session"
    result = run("rig", "prefer", "demo", "--controls", "happiness,surprise", "--answers", "ab", "--out", out)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in out.glob("query_*.png")) == ["query_01.png", "query_02.png"]
    for name in ("query_01.png", "query_02.png"):
        with Image.open(out / name) as picture:
            assert picture.size == (512, 256)  # two 256 px faces side by side
            pixels = np.asarray(picture.convert("L"), dtype=float)
        assert pixels[:, :256].std() > 10 and pixels[:, 256:].std() > 10  # a face in each half
    estimate = json.loads((out / "estimate.json").read_text())
    assert estimate["answers"] == ["a", "b"]
    assert estimate["asked"] == 2 and len(estimate["queries"]) == 2
    mean, sd = np.asarray(estimate["mean"]), np.sqrt(np.diag(estimate["covariance"]))
    for name, value, spread in zip(estimate["controls"], mean, sd, strict=True):
        assert f"{name} {value:.2f} ± {spread:.2f}" in result.stdout
    assert (out / "estimate.png").exists() and (out / "expression.npz").exists()


def test_a_bad_interactive_answer_is_asked_again(tmp_path: Path) -> None:
    result = subprocess.run(
        [RIGSTYLE, "rig", "prefer", "demo", "--controls", "AU12,AU4", "--out", str(tmp_path / "s")],
        input="maybe\nB\nq\n", capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "'maybe' is not an answer" in result.stdout
    assert json.loads((tmp_path / "s" / "estimate.json").read_text())["answers"] == ["b"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--controls", "happiness,glee"], "unknown ['glee']"),
        (["--controls", "happiness"], "expected 2 to 6 different controls"),
        (["--controls", "AU1,AU2,AU4,AU5,AU6,AU7,AU9"], "expected 2 to 6 different controls"),
        (["--controls", "happiness,surprise", "--answers", "abx"], "'x' is not an answer"),
        (["--controls", "happiness,surprise", "--noise", "-1"], "noise: expected a positive number"),
        (["--controls", "happiness,surprise", "--noise", "lots"], "--noise"),
    ],
)
def test_mistakes_are_one_line_errors(tmp_path: Path, options: list[str], message: str) -> None:
    out = tmp_path / "session"
    assert_one_line_error(run("rig", "prefer", "demo", "--answers", "a", *options, "--out", out), message)
    assert not out.exists()
