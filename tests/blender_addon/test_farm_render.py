"""``rigstyle render`` and the farm stages end to end: real Blender (the bpy module, in a subprocess
started by the real CLI), real ``rigstyle serve`` processes, killed for real.

The reference is one uninterrupted run on one backend. A run whose backend is killed midway must fail
(non-zero exit) with the frames it finished recorded; the rerun must do only the rest and leave the
finished frames' files untouched, and the shot must come out byte-identical to the reference. With two
backends, killing the one in use must move the shot (with its saved state) to the other: the run completes,
every frame is refined and recorded exactly once, and again the frames equal the reference.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import bpy
import pytest
from serving_helpers import UNTRAINED, BackendProcess, backend_process

from blender_addon.demo_job import build_demo_scene
from neural_backend.farm.shot_folder import ShotFolder

pytestmark = [pytest.mark.blender, pytest.mark.slow]
SIZE, FRAMES, SEGMENT = 64, 4, 2
# Slow enough (about a second per segment here) that the kill lands while the second segment is refined.
BACKEND = (
    *UNTRAINED, "--gan-resolution", "32", "--shot-steps", "80", "--preview-steps", "2", "--threads", "1"
)  # fmt: skip
Line = dict[str, object]


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo shot saved as a .blend file, as a farm receives it."""
    path = tmp_path_factory.mktemp("scene") / "shot.blend"
    build_demo_scene(FRAMES, SIZE, SIZE, samples=1)
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return path


@pytest.fixture(scope="module")
def reference(scene_file: Path, tmp_path_factory: pytest.TempPathFactory) -> ShotFolder:
    """The shot rendered in one uninterrupted run on one backend."""
    folder = ShotFolder(tmp_path_factory.mktemp("reference") / "sh010")
    with backend_process(*BACKEND) as backend:
        code, lines = render(scene_file, folder, [backend.address])
    assert code == 0, lines
    return folder


def render(
    scene_file: Path,
    folder: ShotFolder,
    backends: list[str],
    on_line: Callable[[Line], None] = lambda line: None,
    *extra: str,
) -> tuple[int, list[Line]]:
    """Run ``rigstyle render`` with JSON progress; ``on_line`` sees each progress line as it arrives."""
    command = [sys.executable, "-m", "neural_backend", "render", str(scene_file), "--frames", f"1-{FRAMES}"]
    command += ["--out", str(folder.root), "--segment", str(SEGMENT), "--progress", "json", *extra]
    for address in backends:
        command += ["--backend", address]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)
    lines: list[Line] = []
    assert process.stdout is not None
    for text in process.stdout:
        if text.startswith("{"):
            lines.append(json.loads(text))
            on_line(lines[-1])
    return process.wait(timeout=300), lines


def kill_during_second_segment(backend: BackendProcess) -> Callable[[Line], None]:
    """Kill ``backend`` once the second segment was sent to it (its request is then in flight)."""
    second = f"refining frames {SEGMENT + 1}-{2 * SEGMENT} on {backend.address}"

    def on_line(line: Line) -> None:
        if line["event"] == "note" and line["message"] == second and not backend.killed:
            backend.kill()

    return on_line


def frames_of(lines: list[Line], stage: str) -> list[object]:
    return [line["frame"] for line in lines if line["event"] == "frame" and line["stage"] == stage]


def start_of(lines: list[Line], stage: str) -> Line:
    return next(line for line in lines if line["event"] == "start" and line["stage"] == stage)


def snapshot(folder: ShotFolder, stage: str, frames: list[int]) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time of every file ``stage`` recorded for ``frames``."""
    records = folder.read()["stages"][stage]
    names = [name for frame in frames for name in records[str(frame)]["outputs"]]
    return {
        name: ((folder.root / name).read_bytes(), (folder.root / name).stat().st_mtime_ns) for name in names
    }


def assert_same_refined_frames(folder: ShotFolder, reference: ShotFolder) -> None:
    for frame in range(1, FRAMES + 1):
        for path, expected in ((folder.refined_file(frame), reference.refined_file(frame)),
                               (folder.gan_file(frame), reference.gan_file(frame))):  # fmt: skip
            assert path.read_bytes() == expected.read_bytes(), f"{path.name} differs from the reference"


def test_killed_backend_fails_the_run_and_the_rerun_does_only_the_missing_frames(
    scene_file: Path, reference: ShotFolder, tmp_path: Path
) -> None:
    folder = ShotFolder(tmp_path / "sh010")
    with backend_process(*BACKEND) as backend:
        code, lines = render(scene_file, folder, [backend.address], kill_during_second_segment(backend))
    assert backend.killed
    assert code != 0, "a run with unrefined frames must fail"
    assert any(line["event"] == "error" and "went away" in str(line["message"]) for line in lines), lines
    done = folder.finished("refined", range(1, FRAMES + 1))
    assert done == list(range(1, SEGMENT + 1)), "exactly the first segment was finished when it died"
    assert not folder.finished("composite", range(1, FRAMES + 1)), "nothing is composited from a failed run"
    before = snapshot(folder, "refined", done) | snapshot(folder, "passes", list(range(1, FRAMES + 1)))

    with backend_process(*BACKEND) as backend:
        code, lines = render(scene_file, folder, [backend.address])
    assert code == 0, lines
    assert start_of(lines, "passes") == {**start_of(lines, "passes"), "total": 0, "skipped": FRAMES}
    assert start_of(lines, "refine") == {
        **start_of(lines, "refine"),
        "total": FRAMES - SEGMENT,
        "skipped": SEGMENT,
    }
    assert frames_of(lines, "refine") == list(range(SEGMENT + 1, FRAMES + 1)), "only the missing frames"
    assert frames_of(lines, "composite") == list(range(1, FRAMES + 1))
    assert (
        snapshot(folder, "refined", done) | snapshot(folder, "passes", list(range(1, FRAMES + 1))) == before
    ), "the rerun left every finished frame's files untouched"
    assert folder.finished("composite", range(1, FRAMES + 1)) == list(range(1, FRAMES + 1))
    assert_same_refined_frames(folder, reference)  # resumed from the saved state: as if it never stopped


def test_two_backends_one_killed_halfway_completes_without_losing_or_repeating_a_frame(
    scene_file: Path, reference: ShotFolder, tmp_path: Path
) -> None:
    folder = ShotFolder(tmp_path / "sh010")
    with backend_process(*BACKEND) as first, backend_process(*BACKEND) as second:
        code, lines = render(
            scene_file, folder, [first.address, second.address], kill_during_second_segment(first)
        )
    assert first.killed
    assert code == 0, lines
    assert frames_of(lines, "refine") == list(range(1, FRAMES + 1)), "each frame refined once, in order"
    assert frames_of(lines, "composite") == list(range(1, FRAMES + 1))
    notes = [str(line["message"]) for line in lines if line["event"] == "note"]
    assert any(first.address in note and "moving the shot" in note for note in notes), notes
    records = folder.read()["stages"]["refined"]
    assert sorted(int(frame) for frame in records) == list(range(1, FRAMES + 1))
    backends = [records[str(frame)]["info"]["backend"] for frame in range(1, FRAMES + 1)]
    assert backends == [first.address] * SEGMENT + [second.address] * (FRAMES - SEGMENT)
    assert sorted(p.name for p in (folder.root / "refined").iterdir()) == [
        f"frame_{frame:04d}.png" for frame in range(1, FRAMES + 1)
    ]
    assert_same_refined_frames(folder, reference)  # the shot moved with its state: same frames


@pytest.fixture
def blender_shim(tmp_path: Path) -> Iterator[Path]:
    """An executable with the Blender binary's command line (``-b FILE --python-exit-code 1 --python-expr
    EXPR``) that runs it through the bpy module, since this machine has no Blender binary. It records its
    argv so the test sees exactly what a farm worker's Blender would get."""
    shim = tmp_path / "blender"
    log = tmp_path / "argv.json"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"json.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n"
        "args = sys.argv[1:]\n"
        "assert args[0] == '-b' and args[2:5] == ['--python-exit-code', '1', '--python-expr'], args\n"
        "from blender_addon.blend_runner import main\n"
        "sys.exit(main([args[1], args[5]]))\n"
    )
    shim.chmod(0o755)
    yield shim


def test_stages_split_like_a_farm_give_the_reference_frames(
    scene_file: Path, reference: ShotFolder, blender_shim: Path, tmp_path: Path
) -> None:
    folder = ShotFolder(tmp_path / "sh010")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def rigstyle(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "neural_backend", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)

    out = ("--out", str(folder.root))
    first = rigstyle("passes", str(scene_file), "--frames", "1-2", *out, "--shot", "sh010")
    second = rigstyle("passes", str(scene_file), "--frames", "3-4", *out, "--blender", str(blender_shim))
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:5] == ["-b", str(scene_file.resolve()), "--python-exit-code", "1", "--python-expr"]
    assert argv[5].startswith("import bpy; bpy.ops.rigstyle.farm(stage='passes', frames='3-4'")

    early = rigstyle("composite", str(scene_file), "--frames", "1-4", *out)
    assert early.returncode != 0 and "not refined yet" in early.stdout + early.stderr

    with backend_process(*BACKEND) as backend:
        refined = rigstyle(
            "refine", str(folder.root), "--backend", backend.address, "--segment", str(SEGMENT)
        )
    assert refined.returncode == 0, refined.stdout + refined.stderr
    composite = rigstyle(
        "composite", str(scene_file), "--frames", "1-4", *out, "--blender", str(blender_shim)
    )
    assert composite.returncode == 0, composite.stdout + composite.stderr
    assert folder.finished("composite", range(1, FRAMES + 1)) == list(range(1, FRAMES + 1))
    assert_same_refined_frames(folder, reference)


def test_a_scene_without_a_rig_fails_with_exit_code_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.blend"
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.wm.save_as_mainfile(filepath=str(empty))
    command = [sys.executable, "-m", "neural_backend", "passes", str(empty), "--frames", "1-2"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "shot")], capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 1
    assert "needs a camera and a RigStyle rig" in result.stdout + result.stderr
