"""``rigstyle rig emotion``: a take file in, the take with an emotion (speech kept) out; mistakes are one
line and exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import run_rigstyle as run

import rigs
from rigs.demo.talking import talking_take
from rigs.expression import speech_preserving_offset
from rigs.sequences import load_sequence, save_sequence


@pytest.fixture()
def take_file(tmp_path: Path) -> Path:
    path = tmp_path / "talk.npz"
    save_sequence(path, talking_take(rigs.demo_head(), frames=20))
    return path


def test_an_emotion_is_added_to_a_take_file(tmp_path: Path, take_file: Path) -> None:
    out = tmp_path / "happy.npz"
    result = run("rig", "emotion", "demo", str(take_file), "--emotion", "happiness", "--intensity", "0.5",
                 "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    before, after = load_sequence(take_file), load_sequence(out)
    np.testing.assert_array_equal(after.pose, before.pose)
    offset = speech_preserving_offset(rigs.demo_head(), "happiness").expression
    np.testing.assert_allclose(
        after.expression - before.expression, np.tile(0.5 * offset, (20, 1)), atol=1e-9
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--emotion", "glee"], "unknown 'glee'"),
        (["--emotion", "anger", "--intensity", "3"], "intensity: expected a number in [0, 1]"),
        ([], "give an emotion label or a reference take"),
    ],
)
def test_mistakes_are_one_line_errors(
    tmp_path: Path, take_file: Path, options: list[str], message: str
) -> None:
    out = tmp_path / "out.npz"
    assert_one_line_error(run("rig", "emotion", "demo", str(take_file), *options, "--out", str(out)), message)
    assert not out.exists()
