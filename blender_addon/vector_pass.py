"""Blender's Vector render pass as pixel flow to the previous frame (Cycles and Eevee, headless).

Render Result pixels cannot be read from Python, so the pass goes out through a temporary compositor that
routes the Render Layers node's Vector output to the compositor output, written as a float RGBA EXR and read
back. Blender 5.0 keeps the compositor in ``scene.compositing_node_group`` (a node group with a Group
Output); 4.2 keeps it in ``scene.node_tree`` (a Composite node). Feature detection picks the path, and the
user's compositor is restored afterwards.

The Vector pass holds, per pixel, the screen motion to the previous frame in its first two channels and to
the next frame in the last two, in pixels with Blender's y up: the point seen at pixel centre p in frame N
was at ``p + (v[0], -v[1])`` (x right, y down) in frame N - 1. Cycles only writes it with motion blur off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np

from .images import load_pixels, set_render_output
from .overrides import temporarily

VECTOR_GROUP = "RigStyle Vector Pass"  # temporary compositor node group (Blender 5.0+)
VECTOR_NODE = "RigStyle Vector Pass"  # temporary Render Layers node (Blender 4.x, in the user's tree)
# Vector pass channels (to previous frame, Blender axes) -> our flow (x right, y down).
PREVIOUS_FRAME_SIGN = np.array([1.0, -1.0], dtype=np.float32)


def render_previous_flow(scene: bpy.types.Scene, exr_path: Path) -> np.ndarray:
    """Render the current frame's Vector pass to ``exr_path`` (deleted after) as (H, W, 2) float32 flow.

    The point seen at pixel centre p was at ``p + flow[p]`` in the previous frame; 0 where nothing but the
    world is seen. Renders with the scene's current settings (callers pick samples and filter); motion
    blur is switched off for the render and every changed setting is restored.
    """
    view_layer = scene.view_layers[0]
    try:
        with _vector_settings(scene, view_layer), _vector_compositor(scene, view_layer):
            set_render_output(scene, str(exr_path), "OPEN_EXR", "32", "RGBA")
            bpy.ops.render.render(write_still=True)
        pixels = load_pixels(exr_path)
    finally:
        exr_path.unlink(missing_ok=True)
    return (pixels[..., :2] * PREVIOUS_FRAME_SIGN).astype(np.float32)


def _vector_settings(
    scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer
) -> contextlib.AbstractContextManager[None]:
    """Vector pass on, motion blur off, compositing on, sequencer off; all restored after."""
    return temporarily(
        [
            (view_layer, "use_pass_vector", True),
            (scene.render, "use_motion_blur", False),
            (scene.render, "use_compositing", True),
            (scene.render, "use_sequencer", False),
        ]
    )


@contextlib.contextmanager
def _vector_compositor(scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer) -> Iterator[None]:
    """A compositor whose output is ``view_layer``'s Vector pass; the user's compositor is restored after."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5.0+: swap in a node group of our own
        saved_group = scene.compositing_node_group
        tree = bpy.data.node_groups.new(VECTOR_GROUP, "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = _render_layers(tree, scene, view_layer)
        tree.links.new(layers.outputs["Vector"], tree.nodes.new("NodeGroupOutput").inputs[0])
        scene.compositing_node_group = tree
        try:
            yield
        finally:
            scene.compositing_node_group = saved_group
            bpy.data.node_groups.remove(tree)
        return
    # Blender 4.x: one tree per scene; add our nodes to it and relink the Composite node afterwards.
    saved_use_nodes = scene.use_nodes
    created = scene.node_tree is None
    scene.use_nodes = True  # makes a tree with Render Layers and Composite nodes when there was none
    tree = scene.node_tree
    if created:
        tree.nodes.clear()
    composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    added = composite is None
    if composite is None:
        composite = tree.nodes.new("CompositorNodeComposite")
    target = composite.inputs["Image"]
    saved_source = target.links[0].from_socket if target.is_linked else None
    layers = _render_layers(tree, scene, view_layer)
    tree.links.new(layers.outputs["Vector"], target)
    try:
        yield
    finally:
        tree.nodes.remove(layers)
        if saved_source is not None:
            tree.links.new(saved_source, target)
        if added:
            tree.nodes.remove(composite)
        scene.use_nodes = saved_use_nodes


def _render_layers(
    tree: bpy.types.NodeTree, scene: bpy.types.Scene, view_layer: bpy.types.ViewLayer
) -> bpy.types.Node:
    node = tree.nodes.new("CompositorNodeRLayers")
    node.name = node.label = VECTOR_NODE
    node.scene = scene
    node.layer = view_layer.name
    return node
