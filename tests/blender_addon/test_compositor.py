"""Refined frames wired into the real compositor come out as the composite, frame by frame; the switch
shows the plain render instead, and unwiring gives the scene its own compositor back."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from blender_addon.compositor import (
    SequenceSource,
    is_wired,
    refined_switch,
    unwire,
    wire_refined_sequence,
)
from blender_addon.images import load_pixels, save_png, set_render_output
from blender_addon.names import PLAIN_IMAGE, REFINED_IMAGE, REFINED_SWITCH
from blender_addon.stages import render_composite_frame

pytestmark = pytest.mark.blender
FRAMES = [3, 4, 5]


def write_sequence(folder: Path, stem: str, value: float) -> dict[int, np.ndarray]:
    expected = {}
    for frame in FRAMES:
        image = np.zeros((30, 40, 3), np.float32)
        image[..., 0] = frame / 10
        image[..., 2] = value
        image[:10, :, 1] = 1.0  # a top band, to catch flipped rows
        save_png(folder / f"{stem}_{frame:04d}.png", image)
        expected[frame] = image
    return expected


def compositor_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    return scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree


def set_switch(scene: bpy.types.Scene, on: bool) -> None:
    node = compositor_tree(scene).nodes[REFINED_SWITCH]
    if hasattr(node, "check"):
        node.check = on
    else:
        node.inputs["Switch"].default_value = on


def render_composites(scene: bpy.types.Scene, out: Path) -> dict[int, np.ndarray]:
    set_render_output(scene, str(out / "frame_####"), "PNG", "8")
    for frame in FRAMES:
        render_composite_frame(scene, frame)
    return {f: load_pixels(out / f"frame_{f:04d}.png")[..., :3] for f in FRAMES}


@pytest.fixture
def scene() -> bpy.types.Scene:
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 40, 30
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    return scene


def test_composite_renders_the_refined_sequence_and_the_switch_shows_the_plain_render(
    scene: bpy.types.Scene, tmp_path: Path
) -> None:
    refined = write_sequence(tmp_path / "refined", "frame", 0.25)
    plain = write_sequence(tmp_path / "passes", "beauty", 0.75)
    wire_refined_sequence(
        scene,
        SequenceSource(tmp_path / "refined" / "frame_0003.png", 3, 3),
        SequenceSource(tmp_path / "passes" / "beauty_0003.png", 3, 3),
    )
    assert is_wired(scene) and refined_switch(scene) is True
    tree = compositor_tree(scene)
    images = {n.name: n.image.name for n in tree.nodes if n.bl_idname == "CompositorNodeImage"}
    assert images == {REFINED_IMAGE: REFINED_IMAGE, PLAIN_IMAGE: PLAIN_IMAGE}
    assert not [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"], "no scene re-render"

    for frame, got in render_composites(scene, tmp_path / "composite").items():
        np.testing.assert_allclose(got, refined[frame], atol=1.5 / 255)
    set_switch(scene, False)
    assert refined_switch(scene) is False
    for frame, got in render_composites(scene, tmp_path / "plain").items():
        np.testing.assert_allclose(got, plain[frame], atol=1.5 / 255)


def test_unwire_gives_back_the_users_compositor(scene: bpy.types.Scene, tmp_path: Path) -> None:
    write_sequence(tmp_path / "refined", "frame", 0.25)
    source = SequenceSource(tmp_path / "refined" / "frame_0003.png", 3, 3)
    if hasattr(scene, "compositing_node_group"):
        users = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
        users.nodes.new("CompositorNodeBlur")
        scene.compositing_node_group = users
    else:
        scene.use_nodes = True
        users = scene.node_tree
    before = sorted(n.name for n in users.nodes)

    wire_refined_sequence(scene, source)
    wire_refined_sequence(scene, source)  # wiring again replaces RigStyle's wiring, nothing piles up
    assert is_wired(scene) and refined_switch(scene) is None
    unwire(scene)
    assert not is_wired(scene)
    assert compositor_tree(scene) == users and sorted(n.name for n in users.nodes) == before
    assert bpy.data.images.get(REFINED_IMAGE) is None
    unwire(scene)  # a no-op when not wired
    assert compositor_tree(scene) == users
