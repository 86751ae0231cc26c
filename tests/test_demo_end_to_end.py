"""The whole chain at tiny size: ``rigstyle demo`` drives real headless Blender (bpy) and a real backend
process over the real socket, with the built-in untrained generator (fast: these test the plumbing, not the
default face prior) and with a saved checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from neural_backend.serving.ports import free_port

RIGSTYLE = str(Path(sys.executable).parent / "rigstyle")
TINY = ["--frames", "3", "--resolution", "96", "--samples", "2", "--shot-steps", "150"]
UNTRAINED = ["--checkpoint", "builtin-untrained"]
FFHQ = {"name": "ffhq", "scale": 1.0, "offset": [0.0, 0.0]}

pytestmark = [pytest.mark.blender, pytest.mark.slow]


def run_demo(out: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    result = subprocess.run(
        [RIGSTYLE, "demo", "--out", str(out), *TINY, *extra],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result, json.loads((out / "report.json").read_text())


def test_demo_writes_every_output_and_fits_the_skin(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result, report = run_demo(out, *UNTRAINED, "--gan-resolution", "32")
    assert "UNTRAINED" in result.stdout
    for stage in ("[1/4]", "[2/4]", "[3/4]", "[4/4]"):
        assert stage in result.stdout
    assert report["checkpoint"] == {
        "name": "builtin-untrained",
        "path": None,
        "sha256": None,
        "untrained": True,
        "alignment": FFHQ,
    }
    assert report["frame_count"] == 3 and [f["frame"] for f in report["frames"]] == [1, 2, 3]
    assert report["resolution"] == [96, 96]
    for stage in ("backend_start", "scene", "passes", "refine", "composite", "contact_sheet", "total"):
        assert report["seconds"][stage] > 0
    for frame in report["frames"]:
        assert frame["skin_loss_final"] <= 0.1 * frame["skin_loss_init"], frame
        assert 10 < frame["skin_psnr"] < 100 and frame["seconds"] > 0
    # Frames after the first are measured against the previous one through Blender's motion pass.
    for frame in report["frames"][1:]:
        assert frame["temporal_error"] >= 0 and frame["latent_drift"] > 0
    assert "temporal_error" not in report["frames"][0]
    shot = report["shot"]
    assert shot["frames"] == 3 and shot["seconds_per_frame"] > 0 and shot["skin_psnr"] > 10
    assert {"skin_psnr", "temporal_error", "latent_drift", "seconds"} <= set(report["metric_definitions"])
    assert np.load(out / "passes" / "frame_0002.npz")["motion"].shape == (96, 96, 2)
    assert_scene_is_the_animated_rig(out / "scene.blend", frames=3)
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.height >= 4 * 100
    for frame in (1, 2, 3):
        render = np.asarray(Image.open(out / "passes" / f"beauty_{frame:04d}.png"), dtype=np.float32)
        refined = np.asarray(Image.open(out / "refined" / f"frame_{frame:04d}.png"), dtype=np.float32)
        composite = np.asarray(Image.open(out / "composite" / f"frame_{frame:04d}.png"), dtype=np.float32)
        region = np.load(out / "passes" / f"frame_{frame:04d}.npz")["region"]
        assert render.shape == refined.shape == composite.shape == (96, 96, 3)
        # The compositor shows the refined frame, not the plain render.
        assert np.abs(composite - refined).max() <= 2.0
        # CGI skin is kept (exactly, away from the feathered border); the generator paints eyes and hair.
        deep_skin = np.pad(region == 1, 4)
        deep_skin = np.lib.stride_tricks.sliding_window_view(deep_skin, (9, 9)).all(axis=(-1, -2))
        assert deep_skin.sum() > 50
        assert np.abs(refined[deep_skin] - render[deep_skin]).max() <= 1.0
        painted = np.isin(region, (2, 4))
        assert np.abs(refined[painted] - render[painted]).mean() > 3.0


def test_demo_runs_from_a_saved_checkpoint(tmp_path: Path) -> None:
    from neural_backend.checkpoints.io import save_checkpoint
    from neural_backend.farm.shot_folder import file_sha256
    from neural_backend.stylegan2.builtin import builtin_generator

    checkpoint = tmp_path / "g.safetensors"
    save_checkpoint(builtin_generator(32, seed=3), checkpoint)
    result, report = run_demo(tmp_path / "demo", "--checkpoint", str(checkpoint))
    assert "UNTRAINED" not in result.stdout
    assert report["checkpoint"] == {
        "name": str(checkpoint),
        "path": str(checkpoint.resolve()),
        "sha256": file_sha256(checkpoint),
        "untrained": False,
        "alignment": FFHQ,
    }
    assert report["gan_resolution"] == 32


def assert_scene_is_the_animated_rig(path: Path, frames: int) -> None:
    """The saved .blend reopens in real Blender with the rig, camera and keyframed performance."""
    import bpy

    from blender_addon.rig_params import find_rig, read_params

    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    assert (scene.frame_start, scene.frame_end) == (1, frames)
    assert scene.camera is not None and scene.render.engine == "CYCLES"
    objects = find_rig(scene)
    neck = list(objects.armature.pose.bones.keys()).index("neck")
    yaws = []
    for frame in (1, frames):
        scene.frame_set(frame)
        yaws.append(read_params(objects)["pose"][neck][1])
    assert yaws[0] < -0.2 < 0.2 < yaws[1], "the head turns across the shot"


def test_backend_death_mid_shot_fails_loudly_without_unrefined_frames(tmp_path: Path) -> None:
    out, port = tmp_path / "demo", free_port()
    command = [RIGSTYLE, "demo", "--out", str(out), "--frames", "4", "--resolution", "96", "--samples", "1",
               *UNTRAINED, "--gan-resolution", "32", "--shot-steps", "100000",
               "--port", str(port)]  # fmt: skip
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert demo.stdout is not None
    for line in demo.stdout:
        if "[2/4]" in line:  # the backend is up and Blender is rendering the first frame
            break
    found = subprocess.run(
        ["pgrep", "-f", f"serve --host 127.0.0.1 --port {port}"], capture_output=True, text=True
    )
    time.sleep(5)  # the frames reach the backend, whose 100,000-step shot inversion never ends
    os.kill(int(found.stdout.split()[0]), signal.SIGKILL)
    _, stderr = demo.communicate(timeout=120)
    assert demo.returncode == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "backend exited" in lines[0]
    assert not list(out.glob("refined/*.png")), "no unrefined frame may be written as refined"
    assert not (out / "report.json").exists()
