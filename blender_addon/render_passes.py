"""Render one frame's passes headless and collect them as :class:`neural_backend.passes.FramePasses`.

``beauty`` is a Cycles render written as float EXR (linear RGB). ``region`` is a second Cycles render with
a one-sample emission override that reads the rig's per-face region attribute, so every pixel carries an
exact label (no anti-aliased mixtures). ``motion`` (pixel flow to the previous frame) is a third such
render: every vertex of the deformed mesh carries the offset from its projection in this frame to its
projection in the previous frame (each with that frame's camera), which Cycles interpolates over the
surface seen at each pixel centre; the background (no rig) has no motion. Landmarks come from the
evaluated (deformed) mesh, projected with the camera's intrinsics and extrinsics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import bpy
import numpy as np

from neural_backend.color import srgb_from_linear
from neural_backend.passes import FramePasses
from rigs.camera import project, transform
from rigs.lbs import barycentric_points

from . import camera as cam
from .images import load_pixels, save_png, set_render_output
from .names import (
    LANDMARK_BARY_PROP,
    LANDMARK_FACES_PROP,
    MOTION_ATTRIBUTE,
    MOTION_MATERIAL,
    REGION_ATTRIBUTE,
    REGION_MATERIAL,
)
from .rig_builder import RigObjects
from .rig_params import read_params

REGION_SCALE = 0.1  # emission value per label; labels 0..6 stay far apart after float round trips
MOTION_OFFSET = 4096.0  # added to the pixel offsets so the emission stays positive (float32: ~1e-4 px steps)
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


def render_frame_passes(
    scene: bpy.types.Scene, objects: RigObjects, frame: int, shot: str, passes_dir: Path
) -> FramePasses:
    """Render ``frame`` and return its passes; writes EXR/PNG/NPZ copies into ``passes_dir``."""
    passes_dir.mkdir(parents=True, exist_ok=True)
    scene.frame_set(frame)
    beauty_path = passes_dir / f"beauty_{frame:04d}.exr"
    beauty = _render_exr(scene, beauty_path)[..., :3]
    region_path = passes_dir / f"region_{frame:04d}.exr"
    with _emission_render_settings(scene, region_material()):
        region = np.rint(_render_exr(scene, region_path)[..., 0] / REGION_SCALE).astype(np.uint8)
    region_path.unlink()
    motion = motion_pass(scene, objects, frame, passes_dir / f"motion_{frame:04d}.exr")
    camera = scene.camera
    intrinsic, extrinsic = cam.intrinsics(scene, camera), cam.extrinsics(camera)
    passes = FramePasses(
        shot=shot,
        frame=frame,
        beauty=beauty,
        region=region,
        landmarks2d=project(landmark_points(objects), intrinsic, extrinsic).astype(np.float32),
        intrinsics=intrinsic,
        extrinsics=extrinsic,
        params=read_params(objects),
        extra={"motion": motion},
    )
    save_png(passes_dir / f"beauty_{frame:04d}.png", srgb_from_linear(beauty))
    save_png(passes_dir / f"region_{frame:04d}.png", REGION_PALETTE[np.minimum(region, 6)])
    np.savez_compressed(passes_dir / f"frame_{frame:04d}.npz", **passes.to_message().tensors)
    return passes


def landmark_points(objects: RigObjects) -> np.ndarray:
    """(L, 3) world positions of the rig's landmarks on the evaluated mesh at the current frame."""
    mesh_object = objects.mesh
    vertices, faces, world_from_local = _evaluated_mesh(mesh_object)
    face_idx = np.asarray(mesh_object[LANDMARK_FACES_PROP], dtype=np.int64)
    bary = np.asarray(mesh_object[LANDMARK_BARY_PROP], dtype=np.float64).reshape(-1, 3)
    local = barycentric_points(vertices, faces, face_idx, bary)
    return transform(world_from_local, local)


def motion_pass(scene: bpy.types.Scene, objects: RigObjects, frame: int, exr_path: Path) -> np.ndarray:
    """(H, W, 2) float32 pixel flow from ``frame`` to ``frame - 1``: the rig point seen at pixel centre p
    was at p + flow[p] in the previous frame. 0 where no rig is seen. Leaves the scene at ``frame``."""
    scene.frame_set(frame - 1)
    before = _projected_vertices(scene, objects.mesh)
    scene.frame_set(frame)
    now = _projected_vertices(scene, objects.mesh)
    offsets = np.zeros((len(now), 3), dtype=np.float32)
    offsets[:, :2] = before - now + MOTION_OFFSET
    data = objects.mesh.data
    attribute = data.attributes.get(MOTION_ATTRIBUTE)
    if attribute is None:
        attribute = data.attributes.new(MOTION_ATTRIBUTE, "FLOAT_VECTOR", "POINT")
    attribute.data.foreach_set("vector", offsets.ravel())
    data.update()
    try:
        with _emission_render_settings(scene, motion_material()):
            pixels = _render_exr(scene, exr_path)
    finally:
        exr_path.unlink(missing_ok=True)
    seen = pixels[..., 3:4] > 0.5
    return np.where(seen, pixels[..., :2] - MOTION_OFFSET, 0.0).astype(np.float32)


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
    set_render_output(scene, str(path), "OPEN_EXR", "32", "RGBA")
    bpy.ops.render.render(write_still=True)
    return load_pixels(path)


@contextlib.contextmanager
def _emission_render_settings(scene: bpy.types.Scene, material: bpy.types.Material) -> Iterator[None]:
    """One-sample, unfiltered emission-only render with ``material`` on everything; restores it all after.

    One sample at each pixel centre with a negligible filter gives the exact attribute value there (no
    anti-aliased mixtures)."""
    view_layer = scene.view_layers[0]
    cycles = scene.cycles
    saved = {
        "samples": cycles.samples,
        "use_denoising": cycles.use_denoising,
        "use_adaptive_sampling": cycles.use_adaptive_sampling,
        "filter_width": cycles.filter_width,
        "max_bounces": cycles.max_bounces,
    }
    saved_override = view_layer.material_override
    saved_transparent = scene.render.film_transparent
    cycles.samples = 1
    cycles.use_denoising = False
    cycles.use_adaptive_sampling = False
    cycles.filter_width = 0.01
    cycles.max_bounces = 0
    view_layer.material_override = material
    scene.render.film_transparent = True
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(cycles, name, value)
        view_layer.material_override = saved_override
        scene.render.film_transparent = saved_transparent


def region_material() -> bpy.types.Material:
    """Emission material whose strength is ``REGION_SCALE * region`` label of each face."""
    return _attribute_emission(REGION_MATERIAL, REGION_ATTRIBUTE, "Fac", "Strength", REGION_SCALE)


def motion_material() -> bpy.types.Material:
    """Emission material whose colour is the per-vertex motion attribute (interpolated over each face)."""
    return _attribute_emission(MOTION_MATERIAL, MOTION_ATTRIBUTE, "Vector", "Color", 1.0)


def _attribute_emission(
    name: str, attribute_name: str, attribute_output: str, emission_input: str, scale: float
) -> bpy.types.Material:
    """An emission material (made once, then reused by name) showing a geometry attribute: its
    ``attribute_output`` times ``scale`` drives the emission's ``emission_input``; the other input is 1."""
    material = bpy.data.materials.get(name)
    if material is not None:
        return material
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    attribute = nodes.new("ShaderNodeAttribute")
    attribute.attribute_type = "GEOMETRY"
    attribute.attribute_name = attribute_name
    scaled = nodes.new("ShaderNodeVectorMath" if attribute_output == "Vector" else "ShaderNodeMath")
    scaled.operation = "SCALE" if attribute_output == "Vector" else "MULTIPLY"
    scaled.inputs[3 if attribute_output == "Vector" else 1].default_value = scale
    emission = nodes.new("ShaderNodeEmission")
    emission.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    emission.inputs["Strength"].default_value = 1.0
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(attribute.outputs[attribute_output], scaled.inputs[0])
    links.new(scaled.outputs[0], emission.inputs[emission_input])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material
