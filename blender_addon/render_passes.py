"""Render one frame's passes headless and collect them as :class:`neural_backend.protocol.passes.FramePasses`.

``beauty`` is a render (Cycles or Eevee) written as float EXR (linear RGB). Every other pass is one more
render with an emission material override whose colour is ``scale * value + offset`` (the offset keeps signed
values positive), read back from a float EXR. Most are exact: one sample at each pixel centre and a
negligible pixel filter, so a pixel carries the value of the one surface point seen at its centre (no
anti-aliased mixtures) and 0 (depth: +inf) where no rig is seen:

- ``region``: the rig's per-face region label.
- ``motion`` (pixel flow to the previous frame): Blender's Vector pass (:mod:`.vector_pass`), so camera
  motion and every object count; 0 where only the world is seen. :func:`rig_motion_pass` computes it from
  the rig alone (the offset of every deformed vertex from its projection in this frame to its projection in
  the previous frame, interpolated over the surface), the reference the Vector pass is tested against.
- ``albedo``: the linear base colour of each face's material (its Principled BSDF's unlinked "Base Color",
  else its viewport colour), written as a face attribute at render time.
- ``normal``: the shading normal in OpenCV camera axes (x right, y down, z forward), unit length.
- ``depth``: the OpenCV camera z of the surface point (Cycles' "View Z Depth").
- ``uv``: the active render UV map; left out when the mesh has no UV map (the demo head has none).

``alpha`` is the coverage the beauty render would have with a transparent film: the same samples and pixel
filter as the beauty render, so it is fractional only along silhouettes. Landmarks come from the evaluated
(deformed) mesh, projected with the camera's intrinsics and extrinsics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from neural_backend.images.color import srgb_from_linear
from neural_backend.protocol.passes import EXTRA_PASSES, FramePasses
from rigs.camera import project, transform
from rigs.lbs import barycentric_points

from . import camera as cam
from .images import load_pixels, save_png, set_render_output
from .names import (
    ALBEDO_ATTRIBUTE,
    ALBEDO_MATERIAL,
    ALPHA_MATERIAL,
    DEPTH_MATERIAL,
    LANDMARK_BARY_PROP,
    LANDMARK_FACES_PROP,
    MOTION_ATTRIBUTE,
    MOTION_MATERIAL,
    NORMAL_MATERIAL,
    REGION_ATTRIBUTE,
    REGION_MATERIAL,
    UV_MATERIAL,
)
from .overrides import Setting, temporarily
from .rig_builder import RigObjects
from .rig_params import read_params
from .vector_pass import render_previous_flow

REGION_SCALE = 0.1  # emission value per label; labels 0..6 stay far apart after float round trips
MOTION_OFFSET = 4096.0  # added to the pixel offsets so the emission stays positive (float32: ~1e-4 px steps)
UNIT_OFFSET = 2.0  # added to unit normals: positive, and exact to ~1e-3 even in Eevee's half-float film
SIGNED_OFFSET = 64.0  # added to UVs so the emission stays positive (float32: ~4e-6 steps)
EEVEE_ENGINES = ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")  # 5.0 / 4.2-4.5 ids of the same engine
EXACT_FILTER = 0.01  # pixel filter width (px) of exact renders: the pixel-centre sample alone
DEFAULT_BASE_COLOR = (0.8, 0.8, 0.8)  # what Cycles shows on faces without a material
# Cycles' camera space looks down +z with +y up; OpenCV's looks down +z with +y down.
CYCLES_CAMERA_TO_OPENCV = np.array([1.0, -1.0, 1.0], dtype=np.float32)
REGION_PALETTE = np.array(
    [
        [0.0, 0.0, 0.0],  # background
        [0.9, 0.6, 0.5],  # skin
        [0.2, 0.6, 1.0],  # eyes
        [0.8, 0.1, 0.2],  # mouth interior
        [0.5, 0.3, 0.1],  # hair/scalp
        [0.3, 0.8, 0.3],  # neck/body
        [0.6, 0.6, 0.6],  # other
    ],
    dtype=np.float32,
)


Source = Callable[[bpy.types.NodeTree], "bpy.types.NodeSocket | None"]


@dataclass(frozen=True)
class EmissionPass:
    """How one pass is rendered: an override material emitting ``scale * source + offset``."""

    material: str  # name of the override material (rebuilt on every use, so it is never stale)
    source: Source  # adds the nodes giving the shown value to a node tree; None shows a constant
    scale: float = 1.0
    offset: float = 0.0
    exact: bool = True  # one sample at each pixel centre; False: the scene's own samples and pixel filter


def render_frame_passes(
    scene: bpy.types.Scene,
    objects: RigObjects,
    frame: int,
    shot: str,
    passes_dir: Path,
    passes: Collection[str] = tuple(EXTRA_PASSES),
) -> FramePasses:
    """Render ``frame`` and return its passes; writes EXR/PNG/NPZ copies into ``passes_dir``.

    Args:
        passes: the optional passes (names in :data:`neural_backend.protocol.passes.EXTRA_PASSES`) to
            render, one more render each; ``uv`` is left out when the mesh has no UV map.

    Raises:
        ValueError: ``passes`` names an unknown pass.
    """
    unknown = set(passes) - set(EXTRA_PASSES)
    if unknown:
        raise ValueError(f"unknown passes {sorted(unknown)}; known: {sorted(EXTRA_PASSES)}")
    passes_dir.mkdir(parents=True, exist_ok=True)
    scene.frame_set(frame)
    beauty_path = passes_dir / f"beauty_{frame:04d}.exr"
    beauty = _render_exr(scene, beauty_path)[..., :3]
    region_values, _ = render_emission(scene, REGION_PASS, passes_dir / f"region_{frame:04d}.exr")
    region = np.rint(region_values[..., 0]).astype(np.uint8)
    extra = {}
    for name in EXTRA_PASSES:
        if name in passes:
            value = EXTRA_RENDERERS[name](scene, objects, frame, passes_dir / f"{name}_{frame:04d}.exr")
            if value is not None:
                extra[name] = value
    camera = scene.camera
    intrinsic, extrinsic = cam.intrinsics(scene, camera), cam.extrinsics(camera)
    frame_passes = FramePasses(
        shot=shot,
        frame=frame,
        beauty=beauty,
        region=region,
        landmarks2d=project(landmark_points(objects), intrinsic, extrinsic).astype(np.float32),
        intrinsics=intrinsic,
        extrinsics=extrinsic,
        params=read_params(objects),
        extra=extra,
    )
    save_png(passes_dir / f"beauty_{frame:04d}.png", srgb_from_linear(beauty))
    save_png(passes_dir / f"region_{frame:04d}.png", REGION_PALETTE[np.minimum(region, 6)])
    np.savez_compressed(passes_dir / f"frame_{frame:04d}.npz", **frame_passes.to_message().tensors)
    return frame_passes


def landmark_points(objects: RigObjects) -> np.ndarray:
    """(L, 3) world positions of the rig's landmarks on the evaluated mesh at the current frame."""
    mesh_object = objects.mesh
    vertices, faces, world_from_local = _evaluated_mesh(mesh_object)
    face_idx = np.asarray(mesh_object[LANDMARK_FACES_PROP], dtype=np.int64)
    bary = np.asarray(mesh_object[LANDMARK_BARY_PROP], dtype=np.float64).reshape(-1, 3)
    local = barycentric_points(vertices, faces, face_idx, bary)
    return transform(world_from_local, local)


def motion_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W, 2) float32 pixel flow from ``frame`` to ``frame - 1``: the point seen at pixel centre p was at
    p + flow[p] in the previous frame, for the rig, other objects and camera motion alike (Blender's
    Vector pass, one exact render); 0 where only the world is seen. Leaves the scene at ``frame``."""
    scene.frame_set(frame)
    with _emission_render_settings(scene, _emission_material(COVERAGE_PASS), exact=True):
        return render_previous_flow(scene, exr_path)


def rig_motion_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W, 2) float32 pixel flow from ``frame`` to ``frame - 1`` from the rig's geometry alone: the rig
    point seen at pixel centre p was at p + flow[p] in the previous frame (each frame with its camera).
    0 where no rig is seen, which is right only for what does not move on screen. The reference for
    :func:`motion_pass`; exact with Cycles' float film only (Eevee's half-float film rounds the offset
    emission to ~2 px). Leaves the scene at ``frame``."""
    scene.frame_set(frame - 1)
    before = _projected_vertices(scene, objects.mesh)
    scene.frame_set(frame)
    offsets = np.zeros((len(before), 3), dtype=np.float32)
    offsets[:, :2] = before - _projected_vertices(scene, objects.mesh)
    _set_vector_attribute(objects.mesh.data, MOTION_ATTRIBUTE, "POINT", offsets)
    return render_emission(scene, MOTION_PASS, exr_path)[0][..., :2]


def albedo_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W, 3) float32 linear base colour of the material seen at each pixel centre; 0 where no rig."""
    mesh_object = objects.mesh
    colors = np.array(
        [_base_color(slot.material) for slot in mesh_object.material_slots] or [DEFAULT_BASE_COLOR],
        dtype=np.float32,
    )
    data = mesh_object.data
    slots = np.empty(len(data.polygons), dtype=np.int32)
    data.polygons.foreach_get("material_index", slots)
    _set_vector_attribute(data, ALBEDO_ATTRIBUTE, "FACE", colors[np.clip(slots, 0, len(colors) - 1)])
    return render_emission(scene, ALBEDO_PASS, exr_path)[0]


def normal_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W, 3) float32 unit shading normal in OpenCV camera axes at each pixel centre; 0 where no rig."""
    normals = render_emission(scene, NORMAL_PASS, exr_path)[0] * CYCLES_CAMERA_TO_OPENCV
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    return np.where(length > 0, normals / np.maximum(length, 1e-12), 0.0).astype(np.float32)


def depth_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W) float32 OpenCV camera z of the surface point at each pixel centre; +inf where no rig."""
    values, seen = render_emission(scene, DEPTH_PASS, exr_path)
    return np.where(seen > 0.5, values[..., 0], np.inf).astype(np.float32)


def uv_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray | None:
    """(H, W, 2) float32 active render UV map at each pixel centre (0 where no rig); None without a UV map."""
    if not objects.mesh.data.uv_layers:
        return None
    return render_emission(scene, UV_PASS, exr_path)[0][..., :2]


def alpha_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W) float32 coverage of each pixel by the rig, with the beauty render's samples and filter."""
    return render_emission(scene, ALPHA_PASS, exr_path)[1]


def render_emission(
    scene: bpy.types.Scene, spec: EmissionPass, exr_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``spec`` to ``exr_path`` (deleted after) and decode it.

    Returns:
        (H, W, 3) float32 values ``(colour - offset) / scale`` (0 where no rig is seen) and the (H, W)
        float32 alpha (1 where the rig is seen; coverage for non-exact passes).
    """
    try:
        with _emission_render_settings(scene, _emission_material(spec), spec.exact):
            pixels = _render_exr(scene, exr_path)
    finally:
        exr_path.unlink(missing_ok=True)
    alpha = pixels[..., 3]
    values = np.where(alpha[..., None] > 0.5, (pixels[..., :3] - spec.offset) / spec.scale, 0.0)
    return values.astype(np.float32), alpha


def _attribute(name: str, output: str) -> Source:
    """A source reading the geometry attribute ``name`` through the Attribute node's ``output``."""

    def source(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
        node = tree.nodes.new("ShaderNodeAttribute")
        node.attribute_type = "GEOMETRY"
        node.attribute_name = name
        return node.outputs[output]

    return source


def _camera_normal(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    geometry = tree.nodes.new("ShaderNodeNewGeometry")
    to_camera = tree.nodes.new("ShaderNodeVectorTransform")
    to_camera.vector_type = "NORMAL"
    to_camera.convert_from, to_camera.convert_to = "WORLD", "CAMERA"
    tree.links.new(geometry.outputs["Normal"], to_camera.inputs["Vector"])
    return to_camera.outputs["Vector"]


def _view_depth(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    return tree.nodes.new("ShaderNodeCameraData").outputs["View Z Depth"]


def _uv(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    return tree.nodes.new("ShaderNodeTexCoord").outputs["UV"]


def _constant(tree: bpy.types.NodeTree) -> None:
    return None


REGION_PASS = EmissionPass(REGION_MATERIAL, _attribute(REGION_ATTRIBUTE, "Fac"), scale=REGION_SCALE)
MOTION_PASS = EmissionPass(MOTION_MATERIAL, _attribute(MOTION_ATTRIBUTE, "Vector"), offset=MOTION_OFFSET)
ALBEDO_PASS = EmissionPass(ALBEDO_MATERIAL, _attribute(ALBEDO_ATTRIBUTE, "Vector"))
NORMAL_PASS = EmissionPass(NORMAL_MATERIAL, _camera_normal, offset=UNIT_OFFSET)
DEPTH_PASS = EmissionPass(DEPTH_MATERIAL, _view_depth)
UV_PASS = EmissionPass(UV_MATERIAL, _uv, offset=SIGNED_OFFSET)
ALPHA_PASS = EmissionPass(ALPHA_MATERIAL, _constant, offset=1.0, exact=False)
COVERAGE_PASS = EmissionPass(ALPHA_MATERIAL, _constant, offset=1.0)  # cheapest material: for the Vector pass
PassRenderer = Callable[[bpy.types.Scene, RigObjects, int, Path], "np.ndarray | None"]
EXTRA_RENDERERS: dict[str, PassRenderer] = {
    "albedo": albedo_pass,
    "normal": normal_pass,
    "depth": depth_pass,
    "motion": motion_pass,
    "uv": uv_pass,
    "alpha": alpha_pass,
}


def _base_color(material: bpy.types.Material | None) -> tuple[float, float, float]:
    """The linear base colour of a material: its Principled BSDF's "Base Color" where nothing is linked
    to it, else its viewport colour (a textured base colour is not evaluated)."""
    if material is None:
        return DEFAULT_BASE_COLOR
    for node in material.node_tree.nodes if material.node_tree else ():
        if node.type == "BSDF_PRINCIPLED" and not node.inputs["Base Color"].is_linked:
            red, green, blue, _ = node.inputs["Base Color"].default_value
            return red, green, blue
    red, green, blue, _ = material.diffuse_color
    return red, green, blue


def _set_vector_attribute(data: bpy.types.Mesh, name: str, domain: str, values: np.ndarray) -> None:
    """Write (N, 3) ``values`` into the FLOAT_VECTOR attribute ``name`` on ``domain``, made if missing."""
    attribute = data.attributes.get(name)
    if attribute is None or attribute.domain != domain or attribute.data_type != "FLOAT_VECTOR":
        if attribute is not None:
            data.attributes.remove(attribute)
        attribute = data.attributes.new(name, "FLOAT_VECTOR", domain)
    attribute.data.foreach_set("vector", np.ascontiguousarray(values, dtype=np.float32).ravel())
    data.update()


def _projected_vertices(scene: bpy.types.Scene, mesh_object: bpy.types.Object) -> np.ndarray:
    """(V, 2) pixel positions of the evaluated mesh's vertices with the camera at the current frame."""
    vertices, _, world_from_local = _evaluated_mesh(mesh_object)
    camera = scene.camera
    return project(
        transform(world_from_local, vertices), cam.intrinsics(scene, camera), cam.extrinsics(camera)
    )


def _evaluated_mesh(mesh_object: bpy.types.Object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, 3) local vertices, (F, 3) triangles and the (4, 4) world matrix of the deformed mesh."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = mesh_object.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", vertices)
        faces = np.empty(len(mesh.polygons) * 3, dtype=np.int64)
        mesh.polygons.foreach_get("vertices", faces)
    finally:
        evaluated.to_mesh_clear()
    return vertices.reshape(-1, 3), faces.reshape(-1, 3), np.array(evaluated.matrix_world, dtype=float)


def _render_exr(scene: bpy.types.Scene, path: Path) -> np.ndarray:
    """Render the scene itself to a float EXR: compositor and sequencer are bypassed (a compositor wired to
    refined frames would otherwise replace the render), and restored after."""
    set_render_output(scene, str(path), "OPEN_EXR", "32", "RGBA")
    with temporarily([(scene.render, "use_compositing", False), (scene.render, "use_sequencer", False)]):
        bpy.ops.render.render(write_still=True)
    return load_pixels(path)


def _emission_render_settings(
    scene: bpy.types.Scene, material: bpy.types.Material, exact: bool = True
) -> contextlib.AbstractContextManager[None]:
    """Emission-only render with ``material`` on everything and a transparent film; restores it all after.

    ``exact``: one sample at each pixel centre with a negligible filter, which gives the exact value there
    (no anti-aliased mixtures); otherwise the scene's own samples and pixel filter."""
    view_layer = scene.view_layers[0]
    return temporarily(
        _engine_changes(scene, exact)
        + [(view_layer, "material_override", material), (scene.render, "film_transparent", True)]
    )


def _engine_changes(scene: bpy.types.Scene, exact: bool) -> list[Setting]:
    """(owner, setting, value) for an emission-only render with the scene's engine; ``exact``: one sample
    at the pixel centre and a negligible pixel filter.

    Raises:
        ValueError: the engine is neither Cycles nor Eevee (override materials need one of them).
    """
    engine = scene.render.engine
    if engine == "CYCLES":
        cycles = scene.cycles
        changes: list[Setting] = [
            (cycles, "use_denoising", False),
            (cycles, "max_bounces", 0),
            (cycles, "film_exposure", 1.0),
        ]
        if exact:
            changes += [
                (cycles, "samples", 1),
                (cycles, "use_adaptive_sampling", False),
                (cycles, "filter_width", EXACT_FILTER),
            ]
        return changes
    if engine in EEVEE_ENGINES:  # Eevee has no bounces or denoiser to switch off for emission
        if not exact:
            return []
        return [(scene.eevee, "taa_render_samples", 1), (scene.render, "filter_size", EXACT_FILTER)]
    raise ValueError(f"render engine {engine!r}: the passes need Cycles or Eevee")


def _emission_material(spec: EmissionPass) -> bpy.types.Material:
    """The override material of ``spec`` (found by name, its nodes rebuilt): emission colour
    ``scale * source + offset`` at strength 1."""
    material = bpy.data.materials.get(spec.material) or bpy.data.materials.new(spec.material)
    if material.node_tree is None:  # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    affine = tree.nodes.new("ShaderNodeVectorMath")
    affine.operation = "MULTIPLY_ADD"
    affine.inputs[0].default_value = (0.0, 0.0, 0.0)
    affine.inputs[1].default_value = (spec.scale,) * 3
    affine.inputs[2].default_value = (spec.offset,) * 3
    source = spec.source(tree)
    if source is not None:
        tree.links.new(source, affine.inputs[0])
    emission = tree.nodes.new("ShaderNodeEmission")
    emission.inputs["Strength"].default_value = 1.0
    output = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(affine.outputs[0], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material
