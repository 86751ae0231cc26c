"""``bpy.ops.rigstyle.render_shot`` and its failure modes, in real Blender against a real backend process.

The add-on is enabled through ``addon_utils`` (as Blender does), its preferences point at a
``rigstyle serve`` subprocess, and the operator runs headless (blocking: background mode has no timers).
Failures (backend down, a frame rejected, backend busy, cancel) must report what to do and leave the
compositor as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pytest
from serving_helpers import FAST_BACKEND, BackendProcess, backend_process

from blender_addon.compositor import is_wired, refined_switch
from blender_addon.connection import BackendSettings
from blender_addon.demo_job import build_demo_scene
from blender_addon.images import load_pixels
from blender_addon.names import REFINED_SWITCH
from blender_addon.render_passes import render_frame_passes
from blender_addon.rig_builder import RigObjects
from blender_addon.shot import ShotJob, Stage
from blender_addon.ui import context_rig
from neural_backend.client.blocking import Client
from neural_backend.protocol.passes import FramePasses
from neural_backend.protocol.wire import REFINE_SHOT, Message
from neural_backend.serving.ports import free_port

pytestmark = [pytest.mark.blender, pytest.mark.slow]
SIZE, FRAMES = 96, 3


@pytest.fixture
def addon(tmp_path: Path) -> Iterator[bpy.types.AddonPreferences]:
    """The demo scene (built first: loading factory settings disables add-ons), then the add-on enabled."""
    demo_scene(tmp_path)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    try:
        yield bpy.context.preferences.addons["blender_addon"].preferences
    finally:
        addon_utils.disable("blender_addon", default_set=True)


def demo_scene(tmp_path: Path) -> bpy.types.Scene:
    build_demo_scene(FRAMES, SIZE, SIZE, samples=1)
    scene = bpy.context.scene
    scene.render.filepath = f"{tmp_path / 'render'}/"
    return scene


def compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The compositor in effect (Blender 5.0: the scene's node group; 4.2: its tree when use_nodes is on)."""
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def test_render_shot_refines_writes_and_wires_the_compositor(
    backend: BackendProcess, addon: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    addon.address = backend.address
    scene = bpy.context.scene
    assert bpy.ops.rigstyle.render_shot(shot="hero") == {"FINISHED"}

    shot = tmp_path / "render" / "rigstyle_hero"  # next to the render output
    for frame in range(1, FRAMES + 1):
        refined = load_pixels(shot / "refined" / f"frame_{frame:04d}.png")[..., :3]
        composite = load_pixels(shot / "composite" / f"frame_{frame:04d}.png")[..., :3]
        assert refined.shape == (SIZE, SIZE, 3)
        np.testing.assert_allclose(composite, refined, atol=1.5 / 255)
        assert (shot / "passes" / f"beauty_{frame:04d}.exr").is_file()
    assert is_wired(scene) and refined_switch(scene) is True
    assert scene.render.filepath == f"{tmp_path / 'render'}/", "the user's output path is restored"
    assert scene.render.image_settings.file_format == "PNG"

    # The switch's other side is the plain render: the beauty pass of the same frame.
    node = compositor(scene).nodes[REFINED_SWITCH]
    if hasattr(node, "check"):
        node.check = False
    else:
        node.inputs["Switch"].default_value = False
    scene.render.filepath = str(tmp_path / "plain" / "frame_####")
    scene.frame_start = scene.frame_end = 2
    bpy.ops.render.render(animation=True)
    plain = load_pixels(tmp_path / "plain" / "frame_0002.png")[..., :3]
    beauty = load_pixels(shot / "passes" / "beauty_0002.png")[..., :3]
    np.testing.assert_allclose(plain, beauty, atol=2.5 / 255)

    # Passes rendered while the compositor is wired are still the scene's own render, not the composite.
    again = render_frame_passes(scene, context_rig(bpy.context), 2, "again", tmp_path / "again", passes=())
    np.testing.assert_allclose(again.beauty, np.load(shot / "passes" / "frame_0002.npz")["beauty"], atol=1e-6)


def test_backend_down_is_reported_with_what_to_do(addon: bpy.types.AddonPreferences, tmp_path: Path) -> None:
    addon.address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    scene = bpy.context.scene
    with pytest.raises(RuntimeError, match="No RigStyle backend answers at .*Start Local Backend"):
        bpy.ops.rigstyle.render_shot()
    assert not is_wired(scene) and compositor(scene) is None
    assert not list(tmp_path.rglob("refined/*.png"))


def test_a_rejected_frame_is_named_and_nothing_is_wired(
    backend: BackendProcess, addon: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    addon.address = backend.address
    scene = bpy.context.scene
    armature = context_rig(bpy.context).armature
    for frame, scale in ((1, 1.0), (2, 1e-6), (3, 1.0)):  # frame 2: the face collapses to a point
        armature.scale = (scale,) * 3
        armature.keyframe_insert("scale", frame=frame)
    with pytest.raises(RuntimeError, match=r"rejected .*frame 2: .*face.*in the camera.s view"):
        bpy.ops.rigstyle.render_shot(shot="collapsed")
    assert not is_wired(scene) and compositor(scene) is None
    assert not list(tmp_path.rglob("refined/*.png"))
    with Client(backend.address) as client:
        assert client.health()["held_frames"] == 0, "the failed shot's frames were dropped"


def test_a_blender_side_failure_stops_the_shot_and_names_it(
    backend: BackendProcess, addon: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    addon.address = backend.address
    scene = bpy.context.scene
    scene.camera.data.type = "ORTHO"  # passes need a perspective camera
    with pytest.raises(RuntimeError, match="only perspective cameras are supported"):
        bpy.ops.rigstyle.render_shot()
    assert not is_wired(scene) and compositor(scene) is None
    assert scene.render.filepath == f"{tmp_path / 'render'}/"


@pytest.fixture(scope="module")
def slow_backend() -> Iterator[BackendProcess]:
    """A backend with room for one waiting request whose shot inversion never ends."""
    with backend_process(*FAST_BACKEND, "--shot-steps", "100000", "--queue-size", "1") as process:
        yield process


def test_busy_backend_and_cancel(slow_backend: BackendProcess, tmp_path: Path) -> None:
    settings = BackendSettings(address=slow_backend.address, frame_timeout=60)
    scene = demo_scene(tmp_path)
    rig = context_rig(bpy.context)
    assert rig is not None

    # Cancel (what Esc does in the GUI): the refinement stops and nothing is wired.
    job = ShotJob(scene, rig, settings, [1, 2], tmp_path / "cancelled", "cancelled", report=lambda _: None)
    while job.step(wait=0.1) and job.progress <= 1 / 3:  # passes are a third: until optimisation steps
        pass
    assert job.stage is Stage.REFINE
    job.cancel()
    assert not job.step()
    assert job.stage is Stage.CANCELLED and job.error is not None and job.error.code == "cancelled"
    assert not is_wired(scene) and not list((tmp_path / "cancelled").glob("refined/*"))
    with Client(slow_backend.address) as client:
        for _ in range(100):  # the cancel reaches the backend, which drops the shot's frames
            health = client.health()
            if health["queue"]["running"] == 0 and health["held_frames"] == 0:
                break
            time.sleep(0.1)
        assert health["queue"]["running"] == 0 and health["held_frames"] == 0

    # Busy: another client's never-ending shot runs and one more waits, so the queue is full.
    with Client(slow_backend.address, timeout=60) as other:
        occupied = []
        for name in ("other-a", "other-b"):
            other.add_frame(job_passes(tmp_path, scene, rig, name))
            occupied.append(other.send(Message(REFINE_SHOT, fields={"shot": name})))
        busy = ShotJob(scene, rig, settings, [1], tmp_path / "busy", "busy", report=lambda _: None)
        while busy.step(wait=0.1):
            pass
        for request in occupied:
            other.cancel(request)
    assert busy.stage is Stage.FAILED and busy.error is not None and busy.error.code == "busy"
    assert "is busy" in str(busy.error) and "Wait until its other jobs finish" in str(busy.error)
    assert not is_wired(scene)


def job_passes(tmp_path: Path, scene: bpy.types.Scene, rig: RigObjects, shot: str) -> FramePasses:
    return render_frame_passes(scene, rig, 1, shot, tmp_path / shot, passes=())
