"""The ``motion`` pass from Blender's Vector pass: agrees with the rig's geometry, follows camera motion."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
import pytest
import torch

from blender_addon.demo_job import build_demo_scene
from blender_addon.render_passes import (
    REGION_PASS,
    motion_pass,
    render_emission,
    render_frame_passes,
    rig_motion_pass,
)
from blender_addon.rig_params import find_rig
from neural_backend.refine.motion import warp_previous
from rigs import regions

pytestmark = pytest.mark.blender

SIZE = 96


def near(mask: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool: some pixel within ``radius`` (Chebyshev) of each pixel is in ``mask``."""
    padded = np.pad(mask, radius)
    out = np.zeros_like(mask)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= padded[dy : dy + mask.shape[0], dx : dx + mask.shape[1]]
    return out


def add_textured_backdrop(scene: bpy.types.Scene, distance_behind: float) -> bpy.types.Object:
    """A large emissive plane with a smooth noise texture, facing the camera, behind the face."""
    camera = scene.camera
    bpy.ops.mesh.primitive_plane_add(size=4.0)
    plane = bpy.context.active_object
    plane.location = (camera.location.x, camera.location.y + distance_behind, camera.location.z)
    plane.rotation_euler = (np.pi / 2, 0.0, 0.0)
    material = bpy.data.materials.new("Backdrop")
    if material.node_tree is None:  # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    noise = tree.nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 6.0
    noise.inputs["Detail"].default_value = 1.0
    emission = tree.nodes.new("ShaderNodeEmission")
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(noise.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    plane.data.materials.append(material)
    return plane


def test_vector_flow_matches_the_rig_geometry_flow_with_a_static_camera(tmp_path: Path) -> None:
    build_demo_scene(frames=8, width=SIZE, height=SIZE, samples=1)
    scene = bpy.context.scene
    objects = find_rig(scene)
    render = scene.render
    settings = (render.use_motion_blur, render.film_transparent, scene.view_layers[0].use_pass_vector)
    vector = motion_pass(scene, objects, 3, tmp_path / "vector.exr")
    reference = rig_motion_pass(scene, objects, 3, tmp_path / "rig.exr")
    assert scene.frame_current == 3
    assert (render.use_motion_blur, render.film_transparent, scene.view_layers[0].use_pass_vector) == settings
    assert scene.compositing_node_group is None if hasattr(scene, "compositing_node_group") else True
    assert vector.shape == (SIZE, SIZE, 2) and vector.dtype == np.float32
    rig = render_emission(scene, REGION_PASS, tmp_path / "region.exr")[1] > 0.5
    assert rig.mean() > 0.1 and np.median(np.linalg.norm(reference[rig], axis=-1)) > 1.0, "the head moves"
    assert (vector[~rig] == 0).all(), "nothing else moves"
    # Both are exact renders (the surface point at each pixel centre), so they agree to float precision.
    error = np.linalg.norm(vector - reference, axis=-1)[rig]
    print(f"vector vs rig flow: median {np.median(error):.5f} px, p95 {np.percentile(error, 95):.5f} px")
    assert np.median(error) < 0.01 and np.percentile(error, 95) < 0.05


def test_vector_flow_follows_camera_motion_on_the_background(tmp_path: Path) -> None:
    build_demo_scene(frames=8, width=SIZE, height=SIZE, samples=4)
    scene = bpy.context.scene
    add_textured_backdrop(scene, 1.5)
    camera = scene.camera
    start = np.array(camera.location)
    for frame in (2, 3):  # pan right and up and dolly in while turning slightly
        step = frame - 2
        camera.location = tuple(start + step * np.array([0.03, 0.04, 0.02]))
        camera.rotation_euler[2] = 0.03 * step
        camera.keyframe_insert("location", frame=frame)
        camera.keyframe_insert("rotation_euler", frame=frame)
    objects = find_rig(scene)
    before = render_frame_passes(scene, objects, 2, "test", tmp_path, passes=())
    now = render_frame_passes(scene, objects, 3, "test", tmp_path, passes=("motion",))
    flow = now.extra["motion"]
    background = now.region == regions.BACKGROUND
    assert np.median(np.linalg.norm(flow[background], axis=-1)) > 2.0, "the camera moves the backdrop"

    def tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]

    warped, in_bounds = warp_previous(tensor(before.beauty), tensor(flow))
    warped_image = warped[0].permute(1, 2, 0).numpy()
    border = near(now.region != regions.BACKGROUND, 3) | near(before.region != regions.BACKGROUND, 3)
    checked = background & ~border & (in_bounds[0, 0].numpy() > 0)
    edge = np.zeros_like(checked)
    edge[2:-2, 2:-2] = True  # the warp fades the outermost half pixel toward 0
    checked &= edge
    assert checked.mean() > 0.3
    warped_error = np.abs(warped_image - now.beauty)[checked].mean()
    unwarped_error = np.abs(before.beauty - now.beauty)[checked].mean()
    print(f"background mean abs error: warped {warped_error:.5f}, unwarped {unwarped_error:.5f}")
    assert warped_error < 0.2 * unwarped_error, (warped_error, unwarped_error)


def test_the_users_compositor_is_restored(tmp_path: Path) -> None:
    build_demo_scene(frames=4, width=32, height=32, samples=1)
    scene = bpy.context.scene
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+: a node group with a Group Output
        tree = bpy.data.node_groups.new("User Compositor", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        output = tree.nodes.new("NodeGroupOutput").inputs[0]
        scene.compositing_node_group = tree
    else:  # Blender 4.x: the scene's own tree with a Composite node
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        output = tree.nodes.new("CompositorNodeComposite").inputs["Image"]
    blur = tree.nodes.new("CompositorNodeBlur")
    tree.links.new(tree.nodes.new("CompositorNodeRLayers").outputs["Image"], blur.inputs["Image"])
    tree.links.new(blur.outputs["Image"], output)
    groups, nodes = len(bpy.data.node_groups), sorted(node.name for node in tree.nodes)
    motion_pass(scene, find_rig(scene), 2, tmp_path / "motion.exr")
    assert getattr(scene, "compositing_node_group", tree) == tree and len(bpy.data.node_groups) == groups
    assert sorted(node.name for node in tree.nodes) == nodes
    assert [link.from_node for link in output.links] == [blur]
    assert not scene.view_layers[0].use_pass_vector and not (tmp_path / "motion.exr").exists()
