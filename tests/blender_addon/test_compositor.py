"""Refined frames wired into the real compositor come out as the composite, frame by frame."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest

from blender_addon.images import load_pixels, save_png
from blender_addon.names import REFINED_IMAGE
from blender_addon.shot import composite_shot

pytestmark = pytest.mark.blender


def test_composite_renders_the_refined_sequence(tmp_path: Path) -> None:
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 40, 30
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"
    frames = [3, 4, 5]
    expected = {}
    for frame in frames:
        image = np.zeros((30, 40, 3), np.float32)
        image[..., 0] = frame / 10
        image[:10, :, 1] = 1.0  # a top band, to catch flipped rows
        save_png(tmp_path / "refined" / f"frame_{frame:04d}.png", image)
        expected[frame] = image
    composite_shot(scene, tmp_path, frames)
    for frame in frames:
        got = load_pixels(tmp_path / "composite" / f"frame_{frame:04d}.png")[..., :3]
        np.testing.assert_allclose(got, expected[frame], atol=1.5 / 255)
    tree = scene.compositing_node_group if hasattr(scene, "compositing_node_group") else scene.node_tree
    image_nodes = [n for n in tree.nodes if n.bl_idname == "CompositorNodeImage"]
    assert len(image_nodes) == 1 and image_nodes[0].image.name == REFINED_IMAGE
    assert image_nodes[0].outputs["Image"].is_linked
