"""The render panel's behaviour in real Blender: settings saved with the .blend, Render refused while a shot
runs and Cancel stopping it, a fast failure with no backend (nothing rendered), Restore Compositor and the
Refined / Plain toggle, the preview image packed and kept out of pinned Image Editors, and the backend
status checked off the main thread (with Stop for a local backend).

The panel's drawing itself needs a window region, which background mode does not draw; the tests drive what
its buttons and fields do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import addon_utils
import bpy
import numpy as np
import pytest
import zmq
from serving_helpers import BackendProcess

from blender_addon import preferences, preview
from blender_addon.compositor import SequenceSource, is_wired, refined_switch, wire_refined_sequence
from blender_addon.connection import HEALTH_TIMEOUT, backend_settings
from blender_addon.demo_job import build_demo_scene
from blender_addon.images import save_png
from blender_addon.names import PLAIN_IMAGE, PREVIEW_IMAGE, REFINED_IMAGE, REFINED_SWITCH
from blender_addon.operators import result_line
from blender_addon.shot import ShotJob, Stage, running_job, set_running
from blender_addon.ui import context_rig
from neural_backend.protocol.passes import RefinedFrame
from neural_backend.serving.ports import free_port

pytestmark = pytest.mark.blender
USER_NODE = "User Blur"  # a node of the user's own compositor


@pytest.fixture
def demo() -> Iterator[bpy.types.AddonPreferences]:
    """The demo scene (built first: it loads factory settings, which disables add-ons), then the add-on."""
    build_demo_scene(2, 48, 48, samples=1)
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    try:
        yield bpy.context.preferences.addons["blender_addon"].preferences
    finally:
        addon_utils.disable("blender_addon", default_set=True)


@contextlib.contextmanager
def silent_backend() -> Iterator[str]:
    """An address where a socket accepts connections and never answers."""
    context = zmq.Context.instance()
    socket = context.socket(zmq.ROUTER)
    address = f"tcp://127.0.0.1:{free_port()}"
    socket.bind(address)
    try:
        yield address
    finally:
        socket.close(linger=0)


def compositor(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def wire_a_shot(scene: bpy.types.Scene, folder: Path) -> None:
    """What a finished shot does to the compositor (the function its composite stage calls)."""
    for stem in ("frame", "beauty"):
        for frame in (1, 2):
            save_png(folder / f"{stem}_{frame:04d}.png", np.full((8, 8, 3), 0.5, np.float32))
    wire_refined_sequence(
        scene,
        SequenceSource(folder / "frame_0001.png", 1, 2),
        SequenceSource(folder / "beauty_0001.png", 1, 2),
    )


def test_render_settings_are_saved_with_the_blend(addon: bpy.types.AddonPreferences, tmp_path: Path) -> None:
    settings = bpy.context.scene.rigstyle_render
    assert (settings.preview_auto, settings.preview_scale) == (False, 50)
    settings.preview_auto, settings.preview_scale = True, 30
    settings.shot, settings.out_dir = "hero", str(tmp_path / "shots")
    settings.last_frames, settings.last_folder = 24, str(tmp_path / "shots" / "hero")
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    settings.preview_auto, settings.preview_scale, settings.shot = False, 80, "other"

    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    settings = bpy.context.scene.rigstyle_render
    assert (settings.preview_auto, settings.preview_scale) == (True, 30)
    assert (settings.shot, settings.out_dir) == ("hero", str(tmp_path / "shots"))
    assert result_line(settings.last_frames, settings.last_folder) == f"24 frames → {tmp_path}/shots/hero"
    assert not hasattr(bpy.context.window_manager, "rigstyle_preview_auto"), "not a per-session setting"
    assert "INTERNAL" in bpy.types.RIGSTYLE_OT_farm.bl_options, "the farm operator stays out of F3 search"


def test_render_is_refused_while_a_shot_runs_and_cancel_stops_it(
    demo: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    scene = bpy.context.scene
    rig = context_rig(bpy.context)
    assert rig is not None
    with silent_backend() as address:
        demo.address = address
        job = ShotJob(scene, rig, backend_settings(), [1, 2], tmp_path / "running", "running", lambda _: None)
        set_running(job)  # what the Render operator does when it starts its modal job in the GUI
        try:
            assert running_job() is job
            assert job.progress_text() == f"checking the backend at {address}"
            assert bpy.context.window_manager.rigstyle_shot_progress == job.progress == 0.0
            assert not bpy.ops.rigstyle.render_shot.poll()
            with pytest.raises(RuntimeError, match="A refined shot is already running: cancel it first"):
                bpy.ops.rigstyle.render_shot()
            with pytest.raises(RuntimeError, match="A refined shot is already running: cancel it first"):
                bpy.ops.rigstyle.preview()
            assert not preview.auto_preview(bpy.context), "auto preview waits while the shot renders frames"

            assert bpy.ops.rigstyle.cancel_shot() == {"FINISHED"}  # the panel's Cancel button
            assert not job.step()  # the Render operator's next timer step ends the job
            assert job.stage is Stage.CANCELLED and job.error is not None and job.error.code == "cancelled"
        finally:
            set_running(None)  # the Render operator's cleanup
    assert bpy.ops.rigstyle.render_shot.poll()
    with pytest.raises(RuntimeError, match="No refined shot is rendering"):
        bpy.ops.rigstyle.cancel_shot()
    assert not list((tmp_path / "running").rglob("passes/*")), "no pass was rendered"


def test_with_no_backend_the_shot_and_the_preview_fail_fast(
    demo: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    demo.address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"No RigStyle backend answers at tcp://127\.0\.0\.1:\d+"):
        bpy.ops.rigstyle.render_shot(out_dir=str(tmp_path / "shot"))
    print(f"the shot failed after {time.monotonic() - start:.1f} s")
    assert not list((tmp_path / "shot").rglob("passes/*")), "it failed before rendering any pass"
    assert running_job() is None

    start = time.monotonic()  # not the per-frame timeout, and not blamed on load
    with pytest.raises(RuntimeError, match=r"No RigStyle backend answers at tcp://127\.0\.0\.1:\d+"):
        bpy.ops.rigstyle.preview()
    print(f"the preview failed after {time.monotonic() - start:.1f} s")


def test_restore_compositor_brings_back_the_users_tree(
    addon: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    scene = bpy.context.scene
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0: the scene's compositor node group
        users = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
        scene.compositing_node_group = users
    else:  # Blender 4.2: the scene's tree
        scene.use_nodes = True
        users = scene.node_tree
    users.nodes.new("CompositorNodeBlur").name = USER_NODE
    with pytest.raises(RuntimeError, match="The compositor shows no refined shot"):
        bpy.ops.rigstyle.restore_compositor()

    wire_a_shot(scene, tmp_path)
    rigstyle = {REFINED_IMAGE, PLAIN_IMAGE, REFINED_SWITCH}
    assert is_wired(scene) and rigstyle <= set(compositor(scene).nodes.keys())
    # Undoable: registered with UNDO (undo itself cannot be stepped in background mode).
    assert "UNDO" in bpy.types.RIGSTYLE_OT_restore_compositor.bl_options
    assert not bpy.ops.ed.undo.poll()
    assert bpy.ops.rigstyle.restore_compositor() == {"FINISHED"}
    assert not is_wired(scene) and compositor(scene) == users
    assert USER_NODE in users.nodes and not rigstyle & set(users.nodes.keys())
    assert bpy.data.images.get(REFINED_IMAGE) is None


def test_the_refined_plain_toggle_switches_the_compositor(
    addon: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    scene = bpy.context.scene
    settings = scene.rigstyle_render
    settings.show_refined = False  # nothing wired: nothing to switch
    assert settings.show_refined and refined_switch(scene) is None

    wire_a_shot(scene, tmp_path)
    assert settings.show_refined and refined_switch(scene) is True
    settings.show_refined = False
    assert refined_switch(scene) is False and not settings.show_refined
    settings.show_refined = True
    assert refined_switch(scene) is True
    node = compositor(scene).nodes[REFINED_SWITCH]  # flipped in the compositor: the toggle follows
    if hasattr(node, "check"):
        node.check = False
    else:
        node.inputs["Switch"].default_value = False
    assert not settings.show_refined


def test_the_preview_is_packed_and_pinned_image_editors_are_left_alone(tmp_path: Path) -> None:
    areas = bpy.context.window_manager.windows[0].screen.areas
    pinned, free = areas[0], areas[1]
    pinned.type = free.type = "IMAGE_EDITOR"
    users = bpy.data.images.new("User Plate", 4, 4)
    pinned.spaces.active.image = users
    pinned.spaces.active.use_image_pin = True
    image = np.zeros((6, 8, 3), np.float32)
    image[:2] = 0.25  # the top rows, to catch flipped rows
    preview.show(RefinedFrame("s", 1, image, np.zeros((4, 4, 3), np.float32)))
    assert pinned.spaces.active.image == users
    assert free.spaces.active.image == bpy.data.images[PREVIEW_IMAGE]
    assert bpy.data.images[PREVIEW_IMAGE].packed_file is not None

    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "preview.blend"))
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "preview.blend"))
    saved = bpy.data.images[PREVIEW_IMAGE]
    pixels = np.empty(8 * 6 * 4, np.float32)
    saved.pixels.foreach_get(pixels)
    np.testing.assert_allclose(pixels.reshape(6, 8, 4)[::-1, :, :3], image, atol=1e-3)


def test_the_health_check_runs_off_the_main_thread(addon: bpy.types.AddonPreferences) -> None:
    with silent_backend() as address:
        addon.address = address
        check = preferences.refresh_health(backend_settings())
        assert check.result() is None and preferences.checking(), "it returned before any answer"
        assert preferences.health_summary() == "checking"
        health = check.result(wait=HEALTH_TIMEOUT + 10)
    assert health is not None and not health.ok
    assert preferences.health_summary().startswith(f"not reachable at {address}")
    assert not preferences.checking() and health.details() == [address]


@pytest.mark.slow
def test_status_details_and_a_local_backend_started_and_stopped(
    backend: BackendProcess, addon: bpy.types.AddonPreferences
) -> None:
    addon.address = backend.address
    health = preferences.refresh_health(backend_settings()).result(wait=HEALTH_TIMEOUT + 10)
    assert health is not None and health.ok
    lines = health.details()
    assert lines[:3] == [backend.address, "builtin-untrained (untrained, built in)", "32 px on cpu"]
    assert lines[3].startswith("queue: 0 running, 0 waiting")

    addon.address = f"tcp://127.0.0.1:{free_port()}"
    addon.backend_command = "rigstyle serve --address {address} --echo"
    with pytest.raises(RuntimeError, match="No local backend started from this Blender session is running"):
        bpy.ops.rigstyle.stop_backend()
    assert bpy.ops.rigstyle.start_backend() == {"FINISHED"}
    started = preferences.pending_check()  # the status follows the starting backend by itself
    assert started is not None and started.result() is None
    health = started.result(wait=120)
    assert health is not None and health.ok, health
    assert preferences.health_summary().startswith("ok: echo")
    local = preferences.local_backend()
    assert local is not None and local.running()
    assert bpy.ops.rigstyle.stop_backend() == {"FINISHED"}
    assert preferences.health_summary() == "stopping"
    stopped = preferences.pending_check()  # waits for the process to exit, then asks
    assert stopped is not None
    health = stopped.result(wait=60)
    assert health is not None and not health.ok
    assert local.process.returncode == 0 and not bpy.ops.rigstyle.stop_backend.poll()
    assert preferences.health_summary().startswith(f"not reachable at {addon.address}")


@pytest.mark.slow
def test_the_progress_bar_follows_a_shot_through_its_stages(
    backend: BackendProcess, demo: bpy.types.AddonPreferences, tmp_path: Path
) -> None:
    demo.address = backend.address
    rig = context_rig(bpy.context)
    assert rig is not None
    scene = bpy.context.scene
    job = ShotJob(scene, rig, backend_settings(), [1, 2], tmp_path / "shot", "bar", lambda _: None)
    texts, shares = [job.progress_text()], [job.progress]
    while job.step(wait=0.1):  # what the Render operator's timer does, and the panel draws after each step
        texts.append(job.progress_text())
        shares.append(job.progress)
    assert job.stage is Stage.DONE, job.error
    assert texts[0] == f"checking the backend at {backend.address}"
    stages = [text.split(":")[0] for text in texts]
    assert stages.index("rendering passes") < stages.index("compositing")
    assert "rendering passes: frame 2 of 2" in {text.split(",")[0] for text in texts}
    assert shares == sorted(shares) and job.progress == 1.0 and job.progress_text() == "done"
