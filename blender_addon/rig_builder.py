"""Build a :class:`rigs.Rig` as Blender data: a mesh with shape keys and vertex groups under an armature.

Conventions that make Blender's deformation equal the rig's linear blend skinning:
- The rig's own frame (Y up, face toward +Z, metres) lives inside the armature object, which is rotated
  +90° about X so the rig stands Z-up in Blender, looking toward -Y.
- Every bone points along the armature's +Y with zero roll, so its rest orientation is the identity and a
  pose bone's rotation is exactly the joint's axis-angle rotation in the parent's frame; the root pose
  bone's location is the rig's ``transl``.
- Joint bones (named as the model's joints) carry the keyframes and do not deform; each has a deforming
  twin ``DEF-<joint>`` whose vertex group holds the skinning weights. ``live`` moves both with the
  shape-dependent joint offsets and rewrites the ``pose_correctives`` shape key on every frame.
- Shape keys ``shape.NN`` and ``expression.<name>`` hold the blendshapes.

Building is all or nothing: on any error every datablock created so far is removed before re-raising.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import bpy
import numpy as np

from rigs import Rig
from rigs.regions import OTHER, REGION_COLORS, REGION_NAMES

from . import live
from .names import (
    CORRECTIVE_KEY,
    DEFORM_BONE_PREFIX,
    EXPRESSION_KEY_PREFIX,
    HAND_MEAN_PROP,
    INTERNAL_BONE_COLLECTION,
    LANDMARK_BARY_PROP,
    LANDMARK_FACES_PROP,
    OFFSET_BONE,
    REGION_ATTRIBUTE,
    RIG_NAME_PROP,
    SHAPE_KEY_PREFIX,
)

BONE_LENGTH = 0.02  # metres; only the display length, never used by the deformation


@dataclass(frozen=True)
class RigObjects:
    """The Blender objects of one built rig."""

    armature: bpy.types.Object
    mesh: bpy.types.Object


def build_rig(rig: Rig, name: str = "RigStyle", collection: bpy.types.Collection | None = None) -> RigObjects:
    """Create the armature and skinned mesh of ``rig`` in ``collection`` (default: the scene's).

    Also installs the handlers that keep the pose correctives and joint offsets live (see ``live``), so
    headless scripts that never register the add-on get them too.

    Raises:
        Exception: whatever failed; nothing this call created is left in ``bpy.data``.
    """
    collection = collection or bpy.context.scene.collection
    before = _datablocks()
    try:
        objects = _build(rig, name, collection)
    except BaseException:
        _remove_new_datablocks(before)
        raise
    live.install_handlers()
    # GUI animation renders run the frame handlers on the render thread; locking the interface keeps the
    # viewport from evaluating (and reading) the rig while they write to it.
    bpy.context.scene.render.use_lock_interface = True
    live.update_scene(bpy.context.scene, bpy.context.evaluated_depsgraph_get())
    return objects


def _build(rig: Rig, name: str, collection: bpy.types.Collection) -> RigObjects:
    armature = _build_armature(rig, f"{name} Armature", collection)
    mesh = _build_mesh(rig, f"{name} Mesh", collection)
    mesh.parent = armature
    modifier = mesh.modifiers.new("Armature", "ARMATURE")
    modifier.object = armature
    _add_vertex_groups(mesh, rig)
    coeff_keys = _add_shape_keys(mesh, rig)
    _add_region_materials(mesh, rig)
    live.store_live_data(
        mesh.data,
        rig.posedirs,
        _joint_dirs(rig),
        coeff_keys,
        rig.joint_names,
        rig.parents,
    )
    return RigObjects(armature=armature, mesh=mesh)


_DATA_COLLECTIONS = ("objects", "meshes", "armatures", "materials", "shape_keys", "actions", "texts")


def _datablocks() -> set[int]:
    return {block.session_uid for attr in _DATA_COLLECTIONS for block in getattr(bpy.data, attr)}


def _remove_new_datablocks(before: set[int]) -> None:
    """Remove every datablock of the kinds a build creates that did not exist in ``before``."""
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    new = [b for attr in _DATA_COLLECTIONS for b in getattr(bpy.data, attr) if b.session_uid not in before]
    bpy.data.batch_remove(new)


def _joint_dirs(rig: Rig) -> np.ndarray:
    """(J * 3, S + E) joint offset per shape then expression coefficient (joints are regressed from both)."""
    dirs = np.concatenate([rig.shapedirs, rig.exprdirs], axis=2)  # (V, 3, K)
    return np.einsum("jv,vck->jck", rig.j_regressor, dirs).reshape(rig.num_joints * 3, -1)


def _build_armature(rig: Rig, name: str, collection: bpy.types.Collection) -> bpy.types.Object:
    data = bpy.data.armatures.new(name)
    armature = bpy.data.objects.new(name, data)
    armature.rotation_euler = (math.pi / 2, 0.0, 0.0)
    armature[RIG_NAME_PROP] = rig.name
    if rig.hand_mean.shape == (2, 45):  # SMPL-X's mean hand pose: the "relaxed" hand preset
        armature[HAND_MEAN_PROP] = rig.hand_mean.ravel().tolist()
    collection.objects.link(armature)
    previous_active = bpy.context.view_layer.objects.active
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        _add_bones(data, rig)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        bpy.context.view_layer.objects.active = previous_active
    for pose_bone in armature.pose.bones:
        pose_bone.rotation_mode = "QUATERNION"
    constraint = armature.pose.bones[rig.joint_names[0]].constraints.new("COPY_LOCATION")
    constraint.name = "RigStyle joint offset"
    constraint.target, constraint.subtarget = armature, OFFSET_BONE
    constraint.use_offset = True
    constraint.owner_space = constraint.target_space = "LOCAL"
    return armature


def _add_bones(data: bpy.types.Armature, rig: Rig) -> None:
    """Joint bones first (so pose.bones starts with the joints in tree order), then the internal bones."""
    joints = rig.rest_joints
    tip = np.array([0.0, BONE_LENGTH, 0.0])
    bones: list[bpy.types.EditBone] = []
    for index, joint_name in enumerate(rig.joint_names):
        bone = data.edit_bones.new(joint_name)
        bone.head, bone.tail, bone.roll = joints[index], joints[index] + tip, 0.0
        bone.use_deform = False
        parent = int(rig.parents[index])
        if parent >= 0:
            bone.parent = bones[parent]
        bones.append(bone)
    internal = data.collections.new(INTERNAL_BONE_COLLECTION)
    internal.is_visible = False
    for index, joint_name in enumerate(rig.joint_names):
        twin = data.edit_bones.new(DEFORM_BONE_PREFIX + joint_name)
        twin.head, twin.tail, twin.roll = joints[index], joints[index] + tip / 2, 0.0
        twin.parent = bones[index]
        internal.assign(twin)
    offset = data.edit_bones.new(OFFSET_BONE)
    offset.head, offset.tail, offset.roll = (0.0, 0.0, 0.0), tip, 0.0
    offset.use_deform = False
    internal.assign(offset)


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
    """One group per deforming bone; vertices sharing a weight are added in one call."""
    for joint, joint_name in enumerate(rig.joint_names):
        group = mesh.vertex_groups.new(name=DEFORM_BONE_PREFIX + joint_name)
        weights = rig.lbs_weights[:, joint]
        nonzero = np.flatnonzero(weights > 0)
        values, inverse = np.unique(weights[nonzero], return_inverse=True)
        for value_index, value in enumerate(values):
            group.add(nonzero[inverse == value_index].tolist(), float(value), "REPLACE")


def _add_shape_keys(mesh: bpy.types.Object, rig: Rig) -> list[str]:
    """Basis, the blendshape keys and the corrective key; returns the blendshape keys' names in order."""
    mesh.shape_key_add(name="Basis", from_mix=False)
    template = rig.v_template
    named_dirs = [(f"{SHAPE_KEY_PREFIX}{i:02d}", rig.shapedirs[:, :, i]) for i in range(rig.num_betas)]
    named_dirs += [
        (f"{EXPRESSION_KEY_PREFIX}{n}", rig.exprdirs[:, :, i]) for i, n in enumerate(rig.expression_names)
    ]
    for key_name, direction in named_dirs:
        key = mesh.shape_key_add(name=key_name, from_mix=False)
        key.slider_min, key.slider_max = -5.0, 5.0
        key.points.foreach_set("co", (template + direction).astype(np.float32).ravel())
        key.value = 0.0
    correctives = mesh.shape_key_add(name=CORRECTIVE_KEY, from_mix=False)
    correctives.value = 1.0
    return [key_name for key_name, _ in named_dirs]


def _add_region_materials(mesh: bpy.types.Object, rig: Rig) -> None:
    """One material slot per region label, so the beauty render shows the regions' base colours."""
    labels = sorted(set(int(r) for r in rig.face_regions))
    slot_of = {}
    for label in labels:
        region = REGION_NAMES[label]
        material = bpy.data.materials.get(f"RigStyle {region}") or _make_material(
            f"RigStyle {region}", REGION_COLORS.get(label, REGION_COLORS[OTHER])
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
