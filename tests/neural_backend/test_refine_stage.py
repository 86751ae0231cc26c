"""``rigstyle refine`` over shot folders of synthetic passes, against real ``rigstyle serve`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import FAST_BACKEND, backend_process
from synthetic import synthetic_shot

from neural_backend.farm.shot_folder import ShotFolder

pytestmark = pytest.mark.slow
FRAMES, SEGMENT = 4, 2


def shot_folder(root: Path, shot: str) -> ShotFolder:
    """A shot folder whose passes stage is finished, as ``rigstyle passes`` leaves it."""
    folder = ShotFolder(root / shot)
    folder.begin(shot)
    for passes in synthetic_shot(FRAMES, 64, shot=shot):
        path = folder.passes_file(passes.frame)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **passes.to_message().tensors)
        folder.record("passes", passes.frame, [path])
    return folder


def refine(*args: str) -> tuple[int, list[dict[str, object]]]:
    command = [sys.executable, "-m", "neural_backend", "refine", *args, "--progress", "json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    return result.returncode, [
        json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")
    ]


def test_several_shots_spread_over_the_backends_one_per_backend(tmp_path: Path) -> None:
    shots = [shot_folder(tmp_path, "sh010"), shot_folder(tmp_path, "sh020")]
    with backend_process(*FAST_BACKEND) as first, backend_process(*FAST_BACKEND) as second:
        code, lines = refine(
            *(str(folder.root) for folder in shots),
            "--backend", first.address, "--backend", second.address,
            "--in-flight", "1", "--segment", str(SEGMENT),
        )  # fmt: skip
    assert code == 0, lines
    used = []
    for folder in shots:
        records = folder.read()["stages"]["refined"]
        assert sorted(int(frame) for frame in records) == list(range(FRAMES))
        backends = {records[frame]["info"]["backend"] for frame in records}
        assert len(backends) == 1, f"{folder.root.name} kept to one backend"
        used.append(backends.pop())
        refined = [
            line["frame"] for line in lines if line["event"] == "frame" and line["shot"] == folder.shot
        ]
        assert refined == list(range(FRAMES))
    assert sorted(used) == sorted([first.address, second.address]), "one shot per backend (in-flight 1)"


def test_frames_without_passes_and_no_backend_fail_with_exit_code_1(tmp_path: Path) -> None:
    folder = shot_folder(tmp_path, "sh030")
    with backend_process(*FAST_BACKEND) as backend:
        code, lines = refine(str(folder.root), "--backend", backend.address, "--frames", f"0-{FRAMES + 1}")
    assert code == 1
    errors = [line for line in lines if line["event"] == "error"]
    assert len(errors) == 1 and f"frames {FRAMES}-{FRAMES + 1} have no finished passes" in str(
        errors[0]["message"]
    )
    assert not folder.finished("refined", range(FRAMES)), "nothing refined from a shot with missing passes"

    code, lines = refine(str(folder.root), "--backend", "tcp://127.0.0.1:9")
    assert code == 1
    assert any("no backend can take work: tcp://127.0.0.1:9" in str(line.get("message")) for line in lines)
