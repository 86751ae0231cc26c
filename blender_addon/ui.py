"""The rig panel (3D view sidebar, tab "RigStyle") and its reset / randomise operators.

The parameters themselves stay where Blender keys them: shape-key values (identity, expression), joint
pose-bone rotations and the root bone's location (``transl``). The panel groups them; the operators set
them (and key them when auto-keying is on). Per-rig UI settings live in one PropertyGroup on the armature.
"""

from __future__ import annotations

import bpy
import numpy as np

import rigs

from .names import EXPRESSION_KEY_PREFIX, RIG_NAME_PROP, SETTINGS_PROP, SHAPE_KEY_PREFIX
from .rig_builder import RigObjects
from .rig_params import find_rig, joint_names, shape_keys

GROUPS = (  # (identifier, label, description)
    ("IDENTITY", "Identity", "Shape (betas) keys"),
    ("EXPRESSION", "Expression", "Expression keys"),
    ("HEAD", "Jaw / Neck / Eyes", "Jaw, neck, head and eye joints"),
    ("BODY", "Body", "Root, spine, arm and leg joints, and the root translation"),
    ("HANDS", "Hands", "Finger joints"),
)
_HEAD_WORDS = ("jaw", "neck", "head", "eye")
_HAND_WORDS = ("thumb", "index", "middle", "ring", "pinky", "finger")


def joint_group(name: str) -> str:
    """The panel group of a joint, from its name (FLAME / SMPL-X / demo-head naming)."""
    lower = name.lower()
    if any(word in lower for word in _HEAD_WORDS):
        return "HEAD"
    if any(word in lower for word in _HAND_WORDS):
        return "HANDS"
    return "BODY"


def active_rig(context: bpy.types.Context) -> RigObjects | None:
    """The rig of the active object (its armature, or a mesh it deforms)."""
    obj = context.object
    armature = obj.parent if obj is not None and obj.type == "MESH" else obj
    if armature is None or armature.type != "ARMATURE" or RIG_NAME_PROP not in armature:
        return None
    meshes = [c for c in armature.children if c.type == "MESH" and c.data.shape_keys is not None]
    return RigObjects(armature=armature, mesh=meshes[0]) if meshes else None


def context_rig(context: bpy.types.Context) -> RigObjects | None:
    """The active object's rig, else the scene's first rig, else None."""
    rig = active_rig(context)
    if rig is not None or context.scene is None:
        return rig
    try:
        return find_rig(context.scene)
    except LookupError:
        return None


def _group_keys(objects: RigObjects, group: str) -> list[bpy.types.ShapeKey]:
    prefix = {"IDENTITY": SHAPE_KEY_PREFIX, "EXPRESSION": EXPRESSION_KEY_PREFIX}.get(group)
    return shape_keys(objects, prefix) if prefix else []


def _group_bones(objects: RigObjects, group: str) -> list[bpy.types.PoseBone]:
    bones = objects.armature.pose.bones
    return [bones[n] for n in joint_names(objects) if joint_group(n) == group]


def _groups(selected: str) -> list[str]:
    return [g for g, _, _ in GROUPS] if selected == "ALL" else [selected]


class RIGSTYLE_PG_rig_settings(bpy.types.PropertyGroup):
    """RigStyle settings of one rig"""

    random_strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Strength",
        description="Standard deviation of random key values (of rotations: a third of it, in radians)",
        default=1.0,
        min=0.0,
        soft_max=3.0,
    )
    random_seed: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Seed", description="Seed of the next randomisation (0: a new one every time)", default=0, min=0
    )


_GROUP_ITEMS = [("ALL", "All", "Every parameter"), *GROUPS]


class _GroupOperator:
    group: bpy.props.EnumProperty(items=_GROUP_ITEMS, name="Group", default="ALL")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_rig(context) is not None

    def apply(self, context: bpy.types.Context, value: object) -> set[str]:
        """Set every parameter of the group to ``value(kind, size)`` and key it when auto-keying is on."""
        objects = active_rig(context)
        assert objects is not None
        frame = context.scene.frame_current if context.scene.tool_settings.use_keyframe_insert_auto else None
        for group in _groups(self.group):
            for key in _group_keys(objects, group):
                key.value = float(np.clip(value("key", 1)[0], key.slider_min, key.slider_max))  # type: ignore[operator]
                if frame is not None:
                    key.keyframe_insert("value", frame=frame)
            for bone in _group_bones(objects, group):
                bone.rotation_mode = "QUATERNION"
                bone.rotation_quaternion = _quaternion(value("rotation", 3))  # type: ignore[operator]
                if frame is not None:
                    bone.keyframe_insert("rotation_quaternion", frame=frame)
            if group == "BODY":
                root = objects.armature.pose.bones[joint_names(objects)[0]]
                root.location = (0.0, 0.0, 0.0)
                if frame is not None:
                    root.keyframe_insert("location", frame=frame)
        return {"FINISHED"}


def _quaternion(rotvec: np.ndarray) -> tuple[float, float, float, float]:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return (1.0, 0.0, 0.0, 0.0)
    axis = rotvec / angle * np.sin(angle / 2)
    return (float(np.cos(angle / 2)), float(axis[0]), float(axis[1]), float(axis[2]))


class RIGSTYLE_OT_reset_params(_GroupOperator, bpy.types.Operator):
    """Reset the rig's parameters (identity, expression, pose, translation) to the template at rest"""

    bl_idname = "rigstyle.reset_params"
    bl_label = "Reset"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        return self.apply(context, lambda kind, size: np.zeros(size))


class RIGSTYLE_OT_randomise_params(_GroupOperator, bpy.types.Operator):
    """Set the rig's parameters to random values (strength and seed in the panel)"""

    bl_idname = "rigstyle.randomise_params"
    bl_label = "Randomise"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        objects = active_rig(context)
        assert objects is not None
        settings = getattr(objects.armature, SETTINGS_PROP)
        rng = np.random.default_rng(settings.random_seed or None)
        strength = settings.random_strength

        def value(kind: str, size: int) -> np.ndarray:
            return rng.normal(0.0, strength if kind == "key" else strength / 3.0, size)

        return self.apply(context, value)


class RIGSTYLE_PT_rig(bpy.types.Panel):
    """RigStyle rig parameters, grouped, with reset and randomise"""

    bl_label = "RigStyle Rig"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_rig(context) is not None

    def draw(self, context: bpy.types.Context) -> None:
        objects = active_rig(context)
        assert objects is not None
        layout = self.layout
        settings = getattr(objects.armature, SETTINGS_PROP)
        row = layout.row(align=True)
        row.prop(settings, "random_strength")
        row.prop(settings, "random_seed")
        row = layout.row(align=True)
        row.operator(RIGSTYLE_OT_reset_params.bl_idname, text="Reset All").group = "ALL"
        row.operator(RIGSTYLE_OT_randomise_params.bl_idname, text="Randomise All").group = "ALL"
        # onto the keyed take over the scene range, speech kept, as a new action (intensity: Adjust Last)
        layout.operator_menu_enum("rigstyle.transfer_emotion", "emotion", text="Add Emotion to Take")
        for group, label, _ in GROUPS:
            keys, bones = _group_keys(objects, group), _group_bones(objects, group)
            if not keys and not bones:
                continue
            box = layout.box()
            header = box.row(align=True)
            header.label(text=label)
            header.operator(RIGSTYLE_OT_reset_params.bl_idname, text="", icon="LOOP_BACK").group = group
            header.operator(RIGSTYLE_OT_randomise_params.bl_idname, text="", icon="RNDCURVE").group = group
            column = box.column(align=True)
            for key in keys:
                column.prop(key, "value", text=key.name.split(".", 1)[1])
            for bone in bones:
                column.prop(bone, "rotation_quaternion", text=bone.name)
            if group == "BODY":
                root = objects.armature.pose.bones[joint_names(objects)[0]]
                column.prop(root, "location", text="Translation")


class RIGSTYLE_OT_add_demo_head(bpy.types.Operator):
    """Add the licence-free procedural demo head (mesh, armature, shape keys) to the scene"""

    bl_idname = "rigstyle.add_demo_head"
    bl_label = "Add RigStyle Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .rig_builder import build_rig

        objects = build_rig(rigs.demo_head(), "RigStyle Demo Head", context.collection)
        context.view_layer.objects.active = objects.armature
        return {"FINISHED"}


def _menu_add(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(RIGSTYLE_OT_add_demo_head.bl_idname, icon="USER")


classes = (
    RIGSTYLE_PG_rig_settings,
    RIGSTYLE_OT_add_demo_head,
    RIGSTYLE_OT_reset_params,
    RIGSTYLE_OT_randomise_params,
    RIGSTYLE_PT_rig,
)


def install() -> None:
    """The per-rig settings pointer and the Add menu entry (after the classes are registered)."""
    setattr(bpy.types.Object, SETTINGS_PROP, bpy.props.PointerProperty(type=RIGSTYLE_PG_rig_settings))
    bpy.types.VIEW3D_MT_add.append(_menu_add)


def uninstall() -> None:
    bpy.types.VIEW3D_MT_add.remove(_menu_add)
    delattr(bpy.types.Object, SETTINGS_PROP)
