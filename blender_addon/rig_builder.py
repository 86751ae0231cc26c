"""Build a :class:`rigs.Rig` as Blender data: a mesh with shape keys and vertex groups under an armature.

Conventions that make Blender's deformation equal the rig's linear blend skinning:
- The rig's own frame (Y up, face toward +Z, metres) lives inside the armature object, which is rotated
  +90° about X so the rig stands Z-up in Blender, looking toward -Y.
- Every bone points along the armature's +Y with zero roll, so its rest orientation is the identity and a
  pose bone's rotation is exactly the joint's axis-angle rotation in the parent's frame; the root pose
  bone's location is the rig's ``transl``.
- Shape keys ``shape.NN`` and ``expression.<name>`` hold the blendshapes; vertex groups hold the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from rigs import Rig
from rigs.regions import REGION_NAMES

from .names import (
    EXPRESSION_KEY_PREFIX,
    LANDMARK_BARY_PROP,
    LANDMARK_FACES_PROP,
    REGION_ATTRIBUTE,
    RIG_NAME_PROP,
    SHAPE_KEY_PREFIX,
)

BONE_LENGTH = 0.02  # metres; only the display length, never used by the deformation

# Beauty-pass base colours per region label (linear RGB); eyes/mouth/hair are what the GAN repaints.
REGION_COLORS = {
    "skin": (0.55, 0.33, 0.24),
    "eyes": (0.75, 0.75, 0.72),
    "mouth": (0.25, 0.05, 0.05),
    "hair": (0.08, 0.05, 0.03),
    "neck": (0.55, 0.33, 0.24),
    "other": (0.3, 0.3, 0.3),
}


@dataclass(frozen=True)
class RigObjects:
    """The Blender objects of one built rig."""

    armature: bpy.types.Object
    mesh: bpy.types.Object


def build_rig(rig: Rig, name: str = "RigStyle", collection: bpy.types.Collection | None = None) -> RigObjects:
    """Create the armature and skinned mesh of ``rig`` in ``collection`` (default: the scene's)."""
    collection = collection or bpy.context.scene.collection
    armature = _build_armature(rig, f"{name} Armature", collection)
    mesh = _build_mesh(rig, f"{name} Mesh", collection)
    mesh.parent = armature
    modifier = mesh.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    _add_vertex_groups(mesh, rig)
    _add_shape_keys(mesh, rig)
    _add_region_materials(mesh, rig)
    return RigObjects(armature=armature, mesh=mesh)


def _build_armature(rig: Rig, name: str, collection: bpy.types.Collection) -> bpy.types.Object:
    data = bpy.data.armatures.new(name)
    armature = bpy.data.objects.new(name, data)
    armature.rotation_euler = (math.pi / 2, 0.0, 0.0)
    armature[RIG_NAME_PROP] = rig.name
    collection.objects.link(armature)
    previous_active = bpy.context.view_layer.objects.active
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        joints = rig.rest_joints
        bones: list[bpy.types.EditBone] = []
        for index, joint_name in enumerate(rig.joint_names):
            bone = data.edit_bones.new(joint_name)
            bone.head = joints[index]
            bone.tail = joints[index] + np.array([0.0, BONE_LENGTH, 0.0])
            bone.roll = 0.0
            parent = int(rig.parents[index])
            if parent >= 0:
                bone.parent = bones[parent]
            bones.append(bone)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        bpy.context.view_layer.objects.active = previous_active
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    return armature


def _build_mesh(rig: Rig, name: str, collection: bpy.types.Collection) -> bpy.types.Object:
    data = bpy.data.meshes.new(name)
    faces = rig.faces.astype(np.int32)
    data.vertices.add(rig.num_vertices)
    data.vertices.foreach_set("co", rig.v_template.astype(np.float32).ravel())
    data.loops.add(faces.size)
    data.loops.foreach_set("vertex_index", faces.ravel())
    data.polygons.add(len(faces))
    data.polygons.foreach_set("loop_start", np.arange(0, faces.size, 3, dtype=np.int32))
    data.polygons.foreach_set("loop_total", np.full(len(faces), 3, dtype=np.int32))
    data.update(calc_edges=True)
    data.validate()
    data.polygons.foreach_set("use_smooth", np.ones(len(faces), dtype=bool))
    attribute = data.attributes.new(REGION_ATTRIBUTE, "INT", "FACE")
    attribute.data.foreach_set("value", rig.face_regions.astype(np.int32))
    mesh = bpy.data.objects.new(name, data)
    mesh[LANDMARK_FACES_PROP] = rig.landmark_faces.astype(int).tolist()
    mesh[LANDMARK_BARY_PROP] = rig.landmark_bary.astype(float).ravel().tolist()
    collection.objects.link(mesh)
    return mesh


def _add_vertex_groups(mesh: bpy.types.Object, rig: Rig) -> None:
    for joint, joint_name in enumerate(rig.joint_names):
        group = mesh.vertex_groups.new(name=joint_name)
        weights = rig.lbs_weights[:, joint]
        for vertex in np.flatnonzero(weights > 0):
            group.add([int(vertex)], float(weights[vertex]), "REPLACE")


def _add_shape_keys(mesh: bpy.types.Object, rig: Rig) -> None:
    mesh.shape_key_add(name="Basis", from_mix=False)
    template = rig.v_template
    named_dirs = [(f"{SHAPE_KEY_PREFIX}{i:02d}", rig.shapedirs[:, :, i]) for i in range(rig.num_betas)]
    named_dirs += [
        (f"{EXPRESSION_KEY_PREFIX}{n}", rig.exprdirs[:, :, i]) for i, n in enumerate(rig.expression_names)
    ]
    for key_name, direction in named_dirs:
        key = mesh.shape_key_add(name=key_name, from_mix=False)
        key.slider_min, key.slider_max = -5.0, 5.0
        key.data.foreach_set("co", (template + direction).astype(np.float32).ravel())
        key.value = 0.0


def _add_region_materials(mesh: bpy.types.Object, rig: Rig) -> None:
    """One material slot per region label, so the beauty render shows the regions' base colours."""
    labels = sorted(set(int(r) for r in rig.face_regions))
    slot_of = {}
    for label in labels:
        region = REGION_NAMES[label]
        material = bpy.data.materials.get(f"RigStyle {region}") or _make_material(
            f"RigStyle {region}", REGION_COLORS.get(region, REGION_COLORS["other"])
        )
        mesh.data.materials.append(material)
        slot_of[label] = len(mesh.data.materials) - 1
    indices = np.array([slot_of[int(r)] for r in rig.face_regions], dtype=np.int32)
    mesh.data.polygons.foreach_set("material_index", indices)


def _make_material(name: str, color: tuple[float, float, float]) -> bpy.types.Material:
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender < 5.0 creates materials without nodes
        material.use_nodes = True
    bsdf = material.node_tree.nodes.get("Principled BSDF")
    bsdf.inputs["Base Color"].default_value = (*color, 1.0)
    bsdf.inputs["Roughness"].default_value = 0.55
    return material
