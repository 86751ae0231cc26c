"""Wire a refined image sequence into the scene's compositor (Blender 5.0 node groups, 4.2 node_tree)."""

from __future__ import annotations

from pathlib import Path

import bpy

from .names import COMPOSITOR_GROUP, REFINED_IMAGE


def wire_refined_sequence(
    scene: bpy.types.Scene, first_frame: Path, frame_start: int, frame_count: int
) -> bpy.types.NodeTree:
    """Make the compositor output the refined frames (an image-sequence node) and return the tree.

    Blender 5.0 keeps the compositor in ``scene.compositing_node_group`` with a Group Output node;
    4.2 keeps it in ``scene.node_tree`` with a Composite node. Feature detection picks the path.
    """
    image = bpy.data.images.get(REFINED_IMAGE)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(str(first_frame), check_existing=False)
    image.name = REFINED_IMAGE
    image.source = "SEQUENCE"
    tree, output_socket = _compositor_tree(scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.name = node.label = REFINED_IMAGE
    node.image = image
    _configure_sequence(node, frame_start, frame_count)
    tree.links.new(node.outputs["Image"], output_socket)
    return tree


def _configure_sequence(node: bpy.types.Node, frame_start: int, frame_count: int) -> None:
    user = getattr(node, "image_user", node)  # 4.x keeps these on an ImageUser, 5.0 on the node
    user.frame_start = frame_start
    user.frame_duration = frame_count
    user.frame_offset = frame_start - 1


def _compositor_tree(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, bpy.types.NodeSocket]:
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None or tree.name != COMPOSITOR_GROUP:
            tree = bpy.data.node_groups.new(COMPOSITOR_GROUP, "CompositorNodeTree")
            tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            scene.compositing_node_group = tree
        tree.nodes.clear()
        output = tree.nodes.new("NodeGroupOutput")
        return tree, output.inputs[0]
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    output = tree.nodes.new("CompositorNodeComposite")
    return tree, output.inputs["Image"]
