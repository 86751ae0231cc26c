"""The rig panel (3D view sidebar, tab "RigStyle"): parameters in collapsed sub-panels with a filter,
rotations in degrees, expression and hand presets, and the reset / randomize operators.

The parameters themselves stay where Blender keys them: shape-key values (identity, expression), joint
pose-bone rotations (in each bone's own rotation mode) and the root bone's location (``transl``). The panel
groups them; the operators set them and key them when auto-keying (or the preset's *Key*) is on. Per-rig UI
settings live in one PropertyGroup on the armature.
"""

from __future__ import annotations

from collections.abc import Callable

import bpy
import mathutils
import numpy as np

import rigs
from rigs.expression import ACTION_UNITS, EMOTIONS, ExpressionError, action_unit_offset, emotion_offset
from rigs.pose import HAND_PRESETS, hand_preset

from .names import EXPRESSION_KEY_PREFIX, HAND_MEAN_PROP, RIG_NAME_PROP, SETTINGS_PROP, SHAPE_KEY_PREFIX
from .rig_builder import RigObjects
from .rig_params import (
    find_rig,
    joint_names,
    quaternion_from_rotvec,
    set_bone_rotation,
    shape_keys,
)

GROUPS = (  # (identifier, label, description)
    ("IDENTITY", "Identity", "Shape (betas) keys"),
    ("EXPRESSION", "Expression", "Expression keys"),
    ("HEAD", "Jaw / Neck / Eyes", "Jaw, neck, head and eye joints"),
    ("BODY", "Body", "Root, spine, arm and leg joints, and the root translation"),
    ("HANDS", "Hands", "Finger joints"),
)
_HEAD_WORDS = ("jaw", "neck", "head", "eye")
_HAND_WORDS = ("thumb", "index", "middle", "ring", "pinky", "finger")
EULER_MODES = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
NAMED_PRESETS = {  # the demo head's named shapes: preset -> (expression key, value at intensity 1)
    "smile": ("smile", 1.0),
    "jaw_open": ("jaw_open", 1.0),
    "blink": ("blink", 1.0),
}


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


def _auto_key_frame(context: bpy.types.Context) -> int | None:
    return context.scene.frame_current if context.scene.tool_settings.use_keyframe_insert_auto else None


def _key_frame(context: bpy.types.Context, key: bool) -> int | None:
    """The frame a preset keys on: the current one when asked (``key``) or auto-keying is on."""
    return context.scene.frame_current if key or _auto_key_frame(context) is not None else None


def object_mode_poll(cls: type[bpy.types.Operator], context: bpy.types.Context, what: str) -> bool:
    """True in Object Mode; else False, with the greyed-out button saying why (``what``: "to add a rig")."""
    if context.mode != "OBJECT":
        cls.poll_message_set(f"Switch to Object Mode {what}")
        return False
    return True


def place_new_rig(context: bpy.types.Context, objects: RigObjects) -> None:
    """A rig just built: at the 3D cursor, it alone selected, its armature active."""
    objects.armature.location = context.scene.cursor.location
    for obj in context.view_layer.objects:
        obj.select_set(False)
    objects.armature.select_set(True)
    objects.mesh.select_set(True)
    context.view_layer.objects.active = objects.armature


# ---- rotations in each bone's own mode -------------------------------------------------------------------


def _get_degrees(bone: bpy.types.PoseBone) -> tuple[float, float, float]:
    euler = bone.matrix_basis.to_quaternion().to_euler("XYZ")
    return (euler.x, euler.y, euler.z)


def _set_degrees(bone: bpy.types.PoseBone, value: tuple[float, float, float]) -> None:
    rotation = mathutils.Euler(value, "XYZ").to_quaternion()
    set_bone_rotation(bone, rotation, _auto_key_frame(bpy.context))


ROTATION_DEGREES = bpy.props.FloatVectorProperty(
    name="Rotation",
    description=(
        "The bone's rotation as XYZ Euler angles in degrees (written to its own rotation channel and keyed "
        "there when auto-keying is on)"
    ),
    size=3,
    subtype="EULER",
    get=_get_degrees,
    set=_set_degrees,
    options=set(),  # not animatable itself: the bone's own channel is what gets keyed
)


# ---- settings and operators ------------------------------------------------------------------------------


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
        name="Seed", description="Seed of the next randomization (0: a new one every time)", default=0, min=0
    )
    filter: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Filter",
        description="Show only the parameters whose names contain this text",
        options={"TEXTEDIT_UPDATE"},
    )
    preset_intensity: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Intensity", description="How strongly presets apply (0 to 1)", default=1.0, min=0.0, max=1.0
    )
    preset_key: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Key", description="Key the channels a preset sets on the current frame", default=False
    )


_GROUP_ITEMS = [("ALL", "All", "Every parameter"), *GROUPS]
_GROUP_LABELS = {group: label.lower() for group, label, _ in GROUPS} | {"ALL": "all"}


class _GroupOperator:
    group: bpy.props.EnumProperty(items=_GROUP_ITEMS, name="Group", default="ALL")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_rig(context) is not None

    def apply(self, context: bpy.types.Context, value: Callable[[str, int], np.ndarray]) -> set[str]:
        """Set every parameter of the group to ``value(kind, size)`` and key it when auto-keying is on;
        rotations keep each bone's rotation mode."""
        objects = active_rig(context)
        assert objects is not None
        frame = _auto_key_frame(context)
        for group in _groups(self.group):
            for key in _group_keys(objects, group):
                key.value = float(np.clip(value("key", 1)[0], key.slider_min, key.slider_max))
                if frame is not None:
                    key.keyframe_insert("value", frame=frame)
            for bone in _group_bones(objects, group):
                set_bone_rotation(bone, quaternion_from_rotvec(value("rotation", 3)), frame)
            if group == "BODY":
                root = objects.armature.pose.bones[joint_names(objects)[0]]
                root.location = (0.0, 0.0, 0.0)
                if frame is not None:
                    root.keyframe_insert("location", frame=frame)
        return {"FINISHED"}


class RIGSTYLE_OT_reset_params(_GroupOperator, bpy.types.Operator):
    """Reset the rig's parameters to the template at rest"""

    bl_idname = "rigstyle.reset_params"
    bl_label = "Reset"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def description(cls, context: bpy.types.Context, properties: bpy.types.OperatorProperties) -> str:
        return f"Reset the {_GROUP_LABELS[properties.group]} parameters to the template at rest"

    def execute(self, context: bpy.types.Context) -> set[str]:
        return self.apply(context, lambda kind, size: np.zeros(size))


class RIGSTYLE_OT_randomize_params(_GroupOperator, bpy.types.Operator):
    """Set the rig's parameters to random values (strength and seed in the panel)"""

    bl_idname = "rigstyle.randomize_params"
    bl_label = "Randomize"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def description(cls, context: bpy.types.Context, properties: bpy.types.OperatorProperties) -> str:
        return (
            f"Set the {_GROUP_LABELS[properties.group]} parameters to random values (strength and seed above)"
        )

    def execute(self, context: bpy.types.Context) -> set[str]:
        objects = active_rig(context)
        assert objects is not None
        settings = getattr(objects.armature, SETTINGS_PROP)
        rng = np.random.default_rng(settings.random_seed or None)
        strength = settings.random_strength

        def value(kind: str, size: int) -> np.ndarray:
            return rng.normal(0.0, strength if kind == "key" else strength / 3.0, size)

        return self.apply(context, value)


# ---- presets ---------------------------------------------------------------------------------------------

_preset_items: list[tuple[str, str, str]] = []  # Blender keeps no reference to dynamic enum items


def expression_presets(objects: RigObjects | None) -> list[tuple[str, str, str]]:
    """The presets ``objects`` supports: neutral, its named shapes (the demo head's smile, jaw open, blink),
    and the emotions and action units when it has 68 landmarks and expression keys."""
    items = [("neutral", "Neutral", "Every expression key and the jaw at rest")]
    if objects is None:
        return items
    names = {k.name.removeprefix(EXPRESSION_KEY_PREFIX) for k in shape_keys(objects, EXPRESSION_KEY_PREFIX)}
    for preset, (key, _) in NAMED_PRESETS.items():
        if key in names:
            label = preset.replace("_", " ").capitalize()
            items.append((preset, label, f"The rig's {key!r} shape key"))
    if names and len(objects.mesh.get("rigstyle_landmark_faces", ())) == 68:
        items += [(e, e.capitalize(), f"The emotion {e} (expression keys and jaw)") for e in EMOTIONS]
        items += [(u, f"{u} {a.label}", f"Action unit {u}: {a.label}") for u, a in ACTION_UNITS.items()]
    return items


def _preset_enum(self: bpy.types.Operator, context: bpy.types.Context | None) -> list[tuple[str, str, str]]:
    _preset_items[:] = expression_presets(active_rig(context) if context is not None else None)
    return _preset_items


def apply_expression_preset(
    objects: RigObjects, preset: str, intensity: float, key_at: int | None
) -> list[str]:
    """Set the rig's expression keys (and jaw) to ``preset`` at ``intensity``; returns the channels set.

    Neutral zeroes every expression key and the jaw. A named shape sets its key alone. An emotion or action
    unit replaces the whole expression (and the jaw's rotation) with the solved offset.

    Raises:
        ExpressionError: a preset the rig does not have, or an intensity outside [0, 1].
    """
    from .expression import rig_expression_space

    if not 0.0 <= intensity <= 1.0:
        raise ExpressionError(f"intensity: expected a number in [0, 1], got {intensity}")
    known = {name for name, _, _ in expression_presets(objects)}
    if preset not in known:
        raise ExpressionError(f"preset {preset!r}: not available on this rig; it has {sorted(known)}")
    blocks = shape_keys(objects, EXPRESSION_KEY_PREFIX)
    bones = objects.armature.pose.bones
    jaw = bones.get("jaw") if "jaw" in joint_names(objects) else None
    if preset in NAMED_PRESETS:
        name, value = NAMED_PRESETS[preset]
        block = objects.mesh.data.shape_keys.key_blocks[EXPRESSION_KEY_PREFIX + name]
        _set_key(block, value * intensity, key_at)
        return [block.name]
    if preset == "neutral":
        values, jaw_rotation = np.zeros(len(blocks)), np.zeros(3)
    else:
        space = rig_expression_space(objects)
        offset = (
            emotion_offset(space, preset, intensity)
            if preset in EMOTIONS
            else action_unit_offset(space, {preset: intensity})
        )
        values, jaw_rotation = offset.expression, offset.jaw
    for block, value in zip(blocks, values, strict=True):
        _set_key(block, float(value), key_at)
    changed = [block.name for block in blocks]
    if jaw is not None:
        set_bone_rotation(jaw, quaternion_from_rotvec(jaw_rotation), key_at)
        changed.append(jaw.name)
    return changed


def _set_key(block: bpy.types.ShapeKey, value: float, key_at: int | None) -> None:
    block.value = value
    if key_at is not None:
        block.keyframe_insert("value", frame=key_at)


def apply_hand_preset(objects: RigObjects, preset: str, key_at: int | None) -> list[str]:
    """Pose both hands' finger joints (SMPL-X) as ``preset`` (see ``rigs.pose.hand_preset``).

    Raises:
        rigs.RigError: an unknown preset or a rig without SMPL-X fingers.
    """
    names = tuple(joint_names(objects))
    bones = objects.armature.data.bones
    rest = np.array([bones[n].head_local for n in names])
    mean = objects.armature.get(HAND_MEAN_PROP)
    hand_mean = np.asarray(mean, dtype=np.float64).reshape(2, 45) if mean is not None else None
    pose = hand_preset(names, rest, preset, hand_mean)
    for name, rotvec in pose.items():
        set_bone_rotation(objects.armature.pose.bones[name], quaternion_from_rotvec(rotvec), key_at)
    return list(pose)


class RIGSTYLE_OT_apply_expression_preset(bpy.types.Operator):
    """Set the rig's expression to a preset (neutral, its named shapes, an emotion or an action unit)"""

    bl_idname = "rigstyle.apply_expression_preset"
    bl_label = "Expression Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(name="Preset", items=_preset_enum)  # type: ignore[valid-type]
    intensity: bpy.props.FloatProperty(name="Intensity", default=1.0, min=0.0, max=1.0)  # type: ignore[valid-type]
    key: bpy.props.BoolProperty(name="Key", description="Key what the preset sets on the current frame")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if active_rig(context) is None:
            cls.poll_message_set("Select a RigStyle rig (its armature or mesh)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        objects = active_rig(context)
        assert objects is not None
        key_at = _key_frame(context, self.key)
        try:
            changed = apply_expression_preset(objects, self.preset, self.intensity, key_at)
        except ExpressionError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        keyed = f", keyed on frame {key_at}" if key_at is not None else ""
        self.report({"INFO"}, f"{self.preset}: {len(changed)} channels set{keyed}")
        return {"FINISHED"}


class RIGSTYLE_OT_apply_hand_preset(bpy.types.Operator):
    """Pose both hands' fingers: relaxed (the model's mean hand), flat or a fist"""

    bl_idname = "rigstyle.apply_hand_preset"
    bl_label = "Hand Preset"
    bl_options = {"REGISTER", "UNDO"}

    preset: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Preset",
        items=[
            ("relaxed", "Relaxed", "The model's mean hand pose (a light curl)"),
            ("flat", "Flat", "Fingers straight"),
            ("fist", "Fist", "Every finger curled towards the palm"),
        ],
    )
    key: bpy.props.BoolProperty(name="Key", description="Key the finger rotations on the current frame")  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        objects = active_rig(context)
        if objects is None or not _group_bones(objects, "HANDS"):
            cls.poll_message_set("Select a RigStyle rig with hands (SMPL-X)")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        objects = active_rig(context)
        assert objects is not None
        key_at = _key_frame(context, self.key)
        try:
            changed = apply_hand_preset(objects, self.preset, key_at)
        except rigs.RigError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self.report({"INFO"}, f"hands {self.preset}: {len(changed)} finger joints set")
        return {"FINISHED"}


# ---- panels ----------------------------------------------------------------------------------------------


class RIGSTYLE_PT_rig(bpy.types.Panel):
    """RigStyle rig parameters, in groups, with presets, reset and randomize"""

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
        layout.prop(settings, "filter", text="", icon="VIEWZOOM")
        row = layout.row(align=True)
        row.prop(settings, "random_strength")
        row.prop(settings, "random_seed")
        row = layout.row(align=True)
        row.operator(RIGSTYLE_OT_reset_params.bl_idname, text="Reset All").group = "ALL"
        row.operator(RIGSTYLE_OT_randomize_params.bl_idname, text="Randomize All").group = "ALL"
        # onto the keyed take over the scene range, speech kept, as a new action (intensity: Adjust Last)
        layout.operator_menu_enum("rigstyle.transfer_emotion", "emotion", text="Add Emotion to Take")


class RIGSTYLE_PT_rig_presets(bpy.types.Panel):
    """Expression and hand presets"""

    bl_label = "Presets"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"
    bl_parent_id = "RIGSTYLE_PT_rig"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: bpy.types.Context) -> None:
        objects = active_rig(context)
        assert objects is not None
        settings = getattr(objects.armature, SETTINGS_PROP)
        layout = self.layout
        row = layout.row(align=True)
        row.prop(settings, "preset_intensity", slider=True)
        row.prop(settings, "preset_key", toggle=True, icon="KEY_HLT")
        column = layout.column(align=True)
        for preset, label, _ in expression_presets(objects):
            if preset in ACTION_UNITS:
                continue  # the action units are in the menu below
            op = column.operator(RIGSTYLE_OT_apply_expression_preset.bl_idname, text=label)
            op.preset, op.intensity, op.key = preset, settings.preset_intensity, settings.preset_key
        if any(p in ACTION_UNITS for p, _, _ in expression_presets(objects)):
            layout.operator_menu_enum(
                RIGSTYLE_OT_apply_expression_preset.bl_idname, "preset", text="All Presets and Action Units"
            )
        if _group_bones(objects, "HANDS"):
            layout.label(text="Hands")
            row = layout.row(align=True)
            for preset in HAND_PRESETS:
                op = row.operator(RIGSTYLE_OT_apply_hand_preset.bl_idname, text=preset.capitalize())
                op.preset, op.key = preset, settings.preset_key


class _GroupPanel:
    """A collapsed sub-panel of one parameter group, filtered by the rig's filter text."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"
    bl_parent_id = "RIGSTYLE_PT_rig"
    bl_options = {"DEFAULT_CLOSED"}
    group = ""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        objects = active_rig(context)
        return objects is not None and bool(
            _group_keys(objects, cls.group) or _group_bones(objects, cls.group)
        )

    def draw_header(self, context: bpy.types.Context) -> None:
        row = self.layout.row(align=True)  # type: ignore[attr-defined]
        row.operator(RIGSTYLE_OT_reset_params.bl_idname, text="", icon="LOOP_BACK").group = self.group
        row.operator(RIGSTYLE_OT_randomize_params.bl_idname, text="", icon="RNDCURVE").group = self.group

    def draw(self, context: bpy.types.Context) -> None:
        objects = active_rig(context)
        assert objects is not None
        text = getattr(objects.armature, SETTINGS_PROP).filter.strip().lower()
        column = self.layout.column(align=True)  # type: ignore[attr-defined]
        shown = 0
        for key in _group_keys(objects, self.group):
            label = key.name.split(".", 1)[1]
            if text in label.lower():
                column.prop(key, "value", text=label)
                shown += 1
        for bone in _group_bones(objects, self.group):
            if text not in bone.name.lower():
                continue
            if bone.rotation_mode in EULER_MODES:
                column.prop(bone, "rotation_euler", text=bone.name)  # degrees, keyable with I
            else:
                column.prop(bone, "rigstyle_rotation_degrees", text=bone.name)
            shown += 1
        if self.group == "BODY" and text in "translation":
            root = objects.armature.pose.bones[joint_names(objects)[0]]
            column.prop(root, "location", text="Translation")
            shown += 1
        if not shown:
            column.label(text="Nothing matches the filter")


def _group_panel(group: str, label: str) -> type[bpy.types.Panel]:
    return type(
        f"RIGSTYLE_PT_rig_{group.lower()}",
        (_GroupPanel, bpy.types.Panel),
        {"bl_label": label, "group": group, "__doc__": f"{label} parameters of the rig"},
    )


GROUP_PANELS = tuple(_group_panel(group, label) for group, label, _ in GROUPS)


class RIGSTYLE_OT_add_demo_head(bpy.types.Operator):
    """Add the license-free procedural demo head (mesh, armature, shape keys) at the 3D cursor"""

    bl_idname = "rigstyle.add_demo_head"
    bl_label = "RigStyle Demo Head"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return object_mode_poll(cls, context, "to add a rig")

    def execute(self, context: bpy.types.Context) -> set[str]:
        from .rig_builder import build_rig

        place_new_rig(context, build_rig(rigs.demo_head(), "RigStyle Demo Head", context.collection))
        return {"FINISHED"}


def _menu_add(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(RIGSTYLE_OT_add_demo_head.bl_idname, icon="USER")


classes = (
    RIGSTYLE_PG_rig_settings,
    RIGSTYLE_OT_add_demo_head,
    RIGSTYLE_OT_reset_params,
    RIGSTYLE_OT_randomize_params,
    RIGSTYLE_OT_apply_expression_preset,
    RIGSTYLE_OT_apply_hand_preset,
    RIGSTYLE_PT_rig,
    RIGSTYLE_PT_rig_presets,
    *GROUP_PANELS,
)


def install() -> None:
    """The per-rig settings, the bones' rotation in degrees and the Add menu entry."""
    setattr(bpy.types.Object, SETTINGS_PROP, bpy.props.PointerProperty(type=RIGSTYLE_PG_rig_settings))
    bpy.types.PoseBone.rigstyle_rotation_degrees = ROTATION_DEGREES
    bpy.types.VIEW3D_MT_add.append(_menu_add)


def uninstall() -> None:
    bpy.types.VIEW3D_MT_add.remove(_menu_add)
    del bpy.types.PoseBone.rigstyle_rotation_degrees
    delattr(bpy.types.Object, SETTINGS_PROP)
