"""Wire a shot's refined frames into the scene's compositor, with the plain render kept on a switch.

The wiring: two image-sequence nodes, the refined frames and the plain render (the beauty pass), into a
Switch node (on: refined) that feeds the compositor's output. Flip the switch (:func:`set_refined_switch`, the
render panel's Refined / Plain toggle) to see the plain render; :func:`unwire` (*Restore Compositor*) gives
the scene its own compositor back.
No Render Layers node: rendering the composite reads the two sequences and does not re-render the scene.

Feature detection picks one of two layouts:

- Blender 5.0 keeps the compositor in ``scene.compositing_node_group`` (a node group with a Group
  Output). RigStyle assigns its own group and remembers the one it replaced, which :func:`unwire` gives back.
- Blender 4.2 keeps it in ``scene.node_tree``, whose (first) Composite node is the output; a second one
  could not be made the output from Python. RigStyle adds its nodes (names starting with "RigStyle") and
  links them to that Composite node; :func:`unwire` removes them and restores the node's previous link.
  A Render Layers node the user has in that tree stays, so there compositing re-renders the scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import bpy

from .names import (
    COMPOSITOR_GROUP,
    PLAIN_IMAGE,
    PREVIOUS_COMPOSITOR_PROP,
    REFINED_IMAGE,
    REFINED_SWITCH,
)

NODE_PREFIX = "RigStyle"  # every node RigStyle adds to a 4.2 scene tree
COMPOSITE_NODE = f"{NODE_PREFIX} Composite"  # the Composite node RigStyle adds when a 4.2 tree has none


@dataclass(frozen=True)
class SequenceSource:
    """An image sequence: its first file and the scene frames it covers."""

    first_file: Path
    frame_start: int
    frame_count: int


def wire_refined_sequence(
    scene: bpy.types.Scene, refined: SequenceSource, plain: SequenceSource | None = None
) -> bpy.types.NodeTree:
    """Make the compositor output ``refined`` (``plain`` on the switch's other side) and return the tree.

    Wiring again replaces RigStyle's previous wiring; the user's own compositor is kept aside (5.0) or
    left in place (4.2) and comes back with :func:`unwire`.
    """
    tree, output_socket = _rigstyle_tree(scene)
    refined_node = _sequence_node(tree, REFINED_IMAGE, refined)
    if plain is None:
        tree.links.new(refined_node.outputs["Image"], output_socket)
        return tree
    plain_node = _sequence_node(tree, PLAIN_IMAGE, plain)
    switch = tree.nodes.new("CompositorNodeSwitch")
    switch.name = switch.label = REFINED_SWITCH
    _set_switch(switch, True)
    tree.links.new(plain_node.outputs["Image"], switch.inputs["Off"])
    tree.links.new(refined_node.outputs["Image"], switch.inputs["On"])
    tree.links.new(switch.outputs["Image"], output_socket)
    return tree


def unwire(scene: bpy.types.Scene) -> None:
    """Remove RigStyle's wiring and give the scene back the compositor it had before (a no-op if unwired)."""
    if hasattr(scene, "compositing_node_group"):
        group = scene.compositing_node_group
        if group is not None and group.name == COMPOSITOR_GROUP:
            previous = scene.get(PREVIOUS_COMPOSITOR_PROP, "")
            scene.compositing_node_group = bpy.data.node_groups.get(previous) if previous else None
            bpy.data.node_groups.remove(group)
        scene.pop(PREVIOUS_COMPOSITOR_PROP, None)
    elif scene.node_tree is not None:
        tree = scene.node_tree
        for node in [n for n in tree.nodes if n.name.startswith(NODE_PREFIX)]:
            tree.nodes.remove(node)
        if PREVIOUS_COMPOSITOR_PROP in scene:
            previous = json.loads(scene.pop(PREVIOUS_COMPOSITOR_PROP))
            composite = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
            source = tree.nodes.get(previous["link"][0]) if previous["link"] else None
            if composite is not None and source is not None:
                socket = next(s for s in source.outputs if s.identifier == previous["link"][1])
                tree.links.new(socket, composite.inputs["Image"])
            scene.use_nodes = previous["use_nodes"]
    for name in (REFINED_IMAGE, PLAIN_IMAGE):
        image = bpy.data.images.get(name)
        if image is not None:
            bpy.data.images.remove(image)


def is_wired(scene: bpy.types.Scene) -> bool:
    """Whether the scene's compositor currently shows RigStyle's refined frames."""
    tree = _current_tree(scene)
    return tree is not None and any(n.name == REFINED_IMAGE for n in tree.nodes)


def refined_switch(scene: bpy.types.Scene) -> bool | None:
    """The switch's state (True: refined frames), or None when the scene is not wired with a switch."""
    tree = _current_tree(scene)
    node = tree.nodes.get(REFINED_SWITCH) if tree is not None else None
    if node is None:
        return None
    return bool(node.check) if hasattr(node, "check") else bool(node.inputs["Switch"].default_value)


def set_refined_switch(scene: bpy.types.Scene, on: bool) -> bool:
    """Show the refined frames (``on``) or the plain render; False when the scene has no RigStyle switch."""
    tree = _current_tree(scene)
    node = tree.nodes.get(REFINED_SWITCH) if tree is not None else None
    if node is None:
        return False
    _set_switch(node, on)
    return True


def _set_switch(node: bpy.types.Node, on: bool) -> None:
    """Blender 4.2 keeps the switch state in ``check``; 5.0 in the node's boolean "Switch" input."""
    if hasattr(node, "check"):
        node.check = on
    else:
        node.inputs["Switch"].default_value = on


def _sequence_node(tree: bpy.types.NodeTree, name: str, source: SequenceSource) -> bpy.types.Node:
    image = bpy.data.images.get(name)
    if image is not None:
        bpy.data.images.remove(image)
    image = bpy.data.images.load(str(source.first_file), check_existing=False)
    image.name = name
    image.source = "SEQUENCE"
    node = tree.nodes.new("CompositorNodeImage")
    node.name = node.label = name
    node.image = image
    user = getattr(node, "image_user", node)  # 4.x keeps these on an ImageUser, 5.0 on the node
    user.frame_start = source.frame_start
    user.frame_duration = source.frame_count
    user.frame_offset = source.frame_start - 1
    return node


def _current_tree(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def _rigstyle_tree(scene: bpy.types.Scene) -> tuple[bpy.types.NodeTree, bpy.types.NodeSocket]:
    """RigStyle's compositor tree, emptied of RigStyle's earlier nodes, and the socket that outputs."""
    if hasattr(scene, "compositing_node_group"):
        current = scene.compositing_node_group
        if current is None or current.name != COMPOSITOR_GROUP:
            scene[PREVIOUS_COMPOSITOR_PROP] = current.name if current is not None else ""
            stale = bpy.data.node_groups.get(COMPOSITOR_GROUP)
            if stale is not None:
                bpy.data.node_groups.remove(stale)
            tree = bpy.data.node_groups.new(COMPOSITOR_GROUP, "CompositorNodeTree")
            tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
            scene.compositing_node_group = tree
        tree = scene.compositing_node_group
        tree.nodes.clear()
        return tree, tree.nodes.new("NodeGroupOutput").inputs[0]
    created = scene.node_tree is None
    saved_use_nodes = scene.use_nodes
    scene.use_nodes = True  # makes a tree with Render Layers and Composite nodes when there was none
    tree = scene.node_tree
    if created:
        tree.nodes.clear()  # a Render Layers node would re-render the scene under the composite
    for node in [n for n in tree.nodes if n.name.startswith(NODE_PREFIX) and n.name != COMPOSITE_NODE]:
        tree.nodes.remove(node)
    composite = tree.nodes.get(COMPOSITE_NODE) or next(
        (n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None
    )
    if composite is None:
        composite = tree.nodes.new("CompositorNodeComposite")
        composite.name = COMPOSITE_NODE
    target = composite.inputs["Image"]
    if PREVIOUS_COMPOSITOR_PROP not in scene:  # what unwire gives back: use_nodes and the output's link
        source = target.links[0].from_socket if target.is_linked else None
        link = [source.node.name, source.identifier] if source is not None else []
        scene[PREVIOUS_COMPOSITOR_PROP] = json.dumps({"use_nodes": saved_use_nodes, "link": link})
    return tree, target
