"""Live preview in real Blender against a real backend process: the operator (blocking in background mode),
newest request wins, and auto mode requests again when the frame or a rig parameter changes."""

from __future__ import annotations

from collections.abc import Iterator

import addon_utils
import bpy
import numpy as np
import pytest
from serving_helpers import BackendProcess

from blender_addon import preview
from blender_addon.connection import BackendSettings
from blender_addon.demo_job import build_demo_scene
from blender_addon.images import image_rgb
from blender_addon.names import EXPRESSION_KEY_PREFIX, PREVIEW_IMAGE
from blender_addon.rig_params import shape_keys
from blender_addon.ui import context_rig

pytestmark = [pytest.mark.blender, pytest.mark.slow]
SIZE = 96


@pytest.fixture
def scene() -> Iterator[bpy.types.Scene]:
    build_demo_scene(4, SIZE, SIZE, samples=1)
    try:
        yield bpy.context.scene
    finally:
        preview.close_session()


def preview_pixels() -> np.ndarray:
    return image_rgb(PREVIEW_IMAGE)


def test_preview_operator_shows_the_refined_frame_with_the_cgi_skin(
    backend: BackendProcess, scene: bpy.types.Scene
) -> None:
    addon_utils.enable("blender_addon", default_set=True, handle_error=None)
    try:
        bpy.context.preferences.addons["blender_addon"].preferences.address = backend.address
        scene.rigstyle_render.preview_scale = 100
        scene.frame_set(2)
        assert bpy.ops.rigstyle.preview() == {"FINISHED"}  # background mode: it waits for the result
        session = preview.current_session()
        assert session is not None and [r.frame for r in session.requests] == [2]
    finally:
        addon_utils.disable("blender_addon", default_set=True)
    assert preview.current_session() is None, "disabling the add-on closes the preview session"

    shown = preview_pixels()
    passes = np.load(session.passes_dir / "frame_0002.npz")
    beauty, skin = passes["beauty"], passes["region"] == 1
    inner = skin.copy()  # the skin eroded by 4 px, beyond the blend's feather
    for shift in range(1, 5):
        for axis in (0, 1):
            inner &= np.roll(skin, shift, axis) & np.roll(skin, -shift, axis)
    assert shown.shape == beauty.shape and inner.sum() > 100
    assert np.median(np.abs(shown - beauty)[inner]) < 1e-3, "the CGI skin is kept"
    assert np.abs(shown - beauty)[~skin].mean() > 0.01, "the generator painted outside the skin"


def test_newest_request_wins_and_auto_mode_follows_changes(
    backend: BackendProcess, scene: bpy.types.Scene
) -> None:
    rig = context_rig(bpy.context)
    assert rig is not None
    session = preview.session(BackendSettings(address=backend.address, frame_timeout=60), scale=0.5)
    for frame in (1, 2, 3):
        scene.frame_set(frame)
        session.request(scene, rig)
    result = session.wait()
    assert result.number == 3 and result.frame is not None and result.frame.frame == 3, "newest wins"
    assert preview_pixels().shape == (SIZE // 2, SIZE // 2, 3)
    assert session.client.poll() is None, "no older result arrives after the newest"

    # Auto mode: what the GUI timer runs. Nothing changed: no request.
    asked = len(session.requests)
    preview.tick(scene, rig, auto=True)
    assert len(session.requests) == asked
    scene.frame_set(4)  # the frame changed
    preview.tick(scene, rig, auto=True)
    assert [r.frame for r in session.requests[asked:]] == [4]
    preview.tick(scene, rig, auto=True)
    assert len(session.requests) == asked + 1
    shape_keys(rig, EXPRESSION_KEY_PREFIX)[0].value = 0.7  # a rig parameter changed
    preview.tick(scene, rig, auto=True)
    assert len(session.requests) == asked + 2
    preview.tick(scene, rig, auto=False)  # auto off: changes are not followed
    scene.frame_set(1)
    preview.tick(scene, rig, auto=False)
    assert len(session.requests) == asked + 2
    result = session.wait()
    assert result.number == session.requests[-1].number and result.frame is not None
    assert result.frame.frame == 4
