"""`rigstyle rig to-blend`: a model (+ motion) becomes a .blend that reopens animated; or one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import bpy
import numpy as np
import pytest
from official_files import write_flame, write_smplx

from blender_addon.rig_params import find_rig, read_params

pytestmark = pytest.mark.blender
RIGSTYLE = str(Path(sys.executable).parent / "rigstyle")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RIGSTYLE, "rig", "to-blend", *args], capture_output=True, text=True, timeout=300)


def test_smplx_model_with_an_amass_take_becomes_an_animated_blend(tmp_path: Path) -> None:
    model = write_smplx(tmp_path / "models")
    rng = np.random.default_rng(3)
    poses = np.linspace(0, 1, 13)[:, None] * rng.normal(0.0, 0.4, (1, 165))
    np.savez(tmp_path / "take.npz", poses=poses, trans=np.zeros((13, 3)), betas=np.zeros(10),
             mocap_frame_rate=np.array(60.0))  # fmt: skip
    out = tmp_path / "take.blend"
    result = run(str(model), "--sequence", str(tmp_path / "take.npz"), "--fps", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "smplx rig" in result.stdout and "7 frames" in result.stdout
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, 7) and scene.render.fps == 30
    objects = find_rig(scene)
    scene.frame_set(7)
    np.testing.assert_allclose(read_params(objects)["pose"], poses[-1].reshape(55, 3), atol=1e-5)


@pytest.mark.parametrize(
    "problem, words",
    [("joints", "sequence has 5 joints, the rig has 55"), ("model", "truncated or corrupt pickle")],
)
def test_bad_inputs_are_one_line_errors(tmp_path: Path, problem: str, words: str) -> None:
    model = write_smplx(tmp_path / "models")
    take = tmp_path / "take.npz"
    np.savez(take, poses=np.zeros((4, 15)), trans=np.zeros((4, 3)), betas=np.zeros(10),
             mocap_frame_rate=np.array(30.0))  # fmt: skip
    if problem == "model":
        model = tmp_path / "broken.pkl"
        model.write_bytes(b"\x80\x02garbage")
    result = run(str(model), "--sequence", str(take), "--out", str(tmp_path / "x.blend"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert not (tmp_path / "x.blend").exists()


def test_flame_chumpy_pickle_without_motion(tmp_path: Path) -> None:
    model = write_flame(tmp_path / "flame", "chumpy")
    result = run(str(model), "--out", str(tmp_path / "head.blend"))
    assert result.returncode == 0, result.stderr
    assert "flame rig" in result.stdout and (tmp_path / "head.blend").stat().st_size > 0


def test_flame_tracker_take_keys_jaw_and_expression(tmp_path: Path) -> None:
    model = write_flame(tmp_path / "flame", "chumpy")
    rng = np.random.default_rng(4)
    jaw = np.linspace(0.0, 0.3, 10)[:, None] * np.array([[1.0, 0.0, 0.0]])
    take = tmp_path / "track.npz"
    np.savez(take, shape=np.zeros(300), exp=rng.normal(0.0, 1.0, (10, 50)),
             pose=np.concatenate([np.zeros((10, 3)), jaw], 1), trans=np.zeros((10, 3)))  # fmt: skip
    out = tmp_path / "track.blend"
    result = run(str(model), "--sequence", str(take), "--fps", "30", "--out", str(out))
    assert result.returncode == 0, result.stderr
    bpy.ops.wm.open_mainfile(filepath=str(out))
    scene = bpy.context.scene
    assert scene.frame_end == 10
    scene.frame_set(10)
    params = read_params(find_rig(scene))
    np.testing.assert_allclose(params["pose"][2], [0.3, 0.0, 0.0], atol=1e-5)  # FLAME joint 2 is the jaw
    assert np.abs(params["expression"][:50]).max() > 0.1 and np.abs(params["expression"][50:]).max() == 0
