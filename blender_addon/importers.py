"""File › Import / Export: FLAME / SMPL-X model files as rigs, and motion takes (``.npz``) on a rig.

The operators are thin shells: ``rigs.load`` and ``rigs.sequences`` read and write the files,
``rig_builder`` and ``sequences`` turn them into Blender data. A bad file is one error report naming it,
and leaves the scene as it was.
"""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

import rigs
from rigs.sequences import DEFAULT_TRACKER_FPS, load_sequence, save_sequence

from .rig_builder import build_rig
from .sequences import export_sequence, import_sequence, scene_fps
from .ui import context_rig, object_mode_poll, place_new_rig

GENDER_ITEMS = [  # (identifier, label, description); the identifier lower-cased is rigs.load's gender
    ("FILE", "From File", "The gender the file states; in a folder, the neutral model"),
    ("NEUTRAL", "Neutral", "The neutral model of a folder; a file must be neutral or state no gender"),
    ("MALE", "Male", "The male model of a folder; a file must be male or state no gender"),
    ("FEMALE", "Female", "The female model of a folder; a file must be female or state no gender"),
]
NO_RIG = (
    "No RigStyle rig in the scene: import one (File > Import > FLAME / SMPL-X Model) or add the demo head"
)


def file_message(path: Path, error: Exception) -> str:
    """One report line for ``error`` while reading or writing ``path``, naming the file."""
    message = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return message if str(path) in message else f"{path}: {message}"


def _rig_poll(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    if context_rig(context) is None:
        cls.poll_message_set(NO_RIG)
        return False
    return True


class RIGSTYLE_OT_import_rig(bpy.types.Operator, ImportHelper):
    """Build a FLAME or SMPL-X model file (or a RigStyle rig file) as a rig at the 3D cursor: an armature
    and a mesh with identity and expression shape keys"""

    bl_idname = "rigstyle.import_rig"
    bl_label = "Import FLAME / SMPL-X Model"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default="*.pkl;*.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    gender: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Gender",
        description="Which model of a folder, or the gender the file must have",
        items=GENDER_ITEMS,
    )
    num_betas: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Shape Components",
        description="Keep only the first identity (shape) components of an official file (0: all it has)",
        default=0,
        min=0,
    )
    num_expressions: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Expression Components",
        description="Keep only the first expression components of an official file (0: all it has)",
        default=0,
        min=0,
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return object_mode_poll(cls, context, "to import a rig")

    def execute(self, context: bpy.types.Context) -> set[str]:
        path = Path(bpy.path.abspath(self.filepath))  # a folder when no file is picked: gender chooses
        try:
            rig = rigs.load(
                path,
                gender=None if self.gender == "FILE" else self.gender.lower(),
                num_betas=self.num_betas or None,
                num_expressions=self.num_expressions or None,
            )
            objects = build_rig(rig, rig.name, context.collection)  # all or nothing
        except (rigs.RigError, OSError) as error:
            self.report({"ERROR"}, file_message(path, error))
            return {"CANCELLED"}
        place_new_rig(context, objects)
        self.report(
            {"INFO"},
            f"Imported {rig.name}: {rig.num_vertices} vertices, {rig.num_joints} joints, "
            f"{rig.num_betas} shape and {rig.num_expressions} expression keys",
        )
        return {"FINISHED"}


class RIGSTYLE_OT_import_take(bpy.types.Operator, ImportHelper):
    """Key an AMASS / SMPL-X or FLAME-tracker take (.npz) on the active rig, resampled to the scene's frame
    rate; replaces the keys of the channels it writes"""

    bl_idname = "rigstyle.import_take"
    bl_label = "Import Motion Take"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})  # type: ignore[valid-type]
    frame_start: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Start Frame", description="Frame of the take's first sample (default: the scene's start)"
    )
    use_frame_range: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Set Frame Range", description="Set the scene's frame range to the imported take", default=True
    )
    take_fps: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Take Frame Rate",
        description="Frame rate of takes that store none (FLAME trackers usually do not)",
        default=DEFAULT_TRACKER_FPS,
        min=1.0,
    )

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if context.mode not in {"OBJECT", "POSE"}:
            cls.poll_message_set("Switch to Object or Pose Mode to import a take")
            return False
        return _rig_poll(cls, context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        self._default_start(context)  # shown in the file browser's options
        return ImportHelper.invoke(self, context, event)

    def _default_start(self, context: bpy.types.Context) -> None:
        if not self.properties.is_property_set("frame_start"):
            self.frame_start = context.scene.frame_start

    def execute(self, context: bpy.types.Context) -> set[str]:
        self._default_start(context)
        scene = context.scene
        objects = context_rig(context)
        assert objects is not None  # poll
        path = Path(bpy.path.abspath(self.filepath))
        try:
            sequence = load_sequence(path, fps=self.take_fps)
            count = import_sequence(objects, sequence, self.frame_start, scene)  # checks before keying
        except (rigs.RigError, OSError) as error:
            self.report({"ERROR"}, file_message(path, error))
            return {"CANCELLED"}
        end = self.frame_start + count - 1
        if self.use_frame_range:
            scene.frame_start, scene.frame_end = self.frame_start, end
        self.report(
            {"INFO"},
            f"Keyed frames {self.frame_start}..{end} on {objects.armature.name} from {path.name} "
            f"({sequence.num_frames} samples at {sequence.fps:g} fps, scene at {scene_fps(scene):g} fps)",
        )
        return {"FINISHED"}


class RIGSTYLE_OT_export_take(bpy.types.Operator, ExportHelper):
    """Write the active rig's keyed take over the scene's frame range as an AMASS-style .npz (poses,
    trans, betas, expression, frame rate), which Import Motion Take and the rigstyle commands read"""

    bl_idname = "rigstyle.export_take"
    bl_label = "Export Motion Take"
    bl_options = {"REGISTER"}

    filename_ext = ".npz"
    filter_glob: bpy.props.StringProperty(default="*.npz", options={"HIDDEN"})  # type: ignore[valid-type]

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _rig_poll(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        scene = context.scene
        objects = context_rig(context)
        assert objects is not None  # poll
        path = Path(bpy.path.ensure_ext(bpy.path.abspath(self.filepath), self.filename_ext))
        try:
            sequence = export_sequence(objects, scene.frame_start, scene.frame_end, scene)
            save_sequence(path, sequence)
        except (rigs.RigError, OSError) as error:
            self.report({"ERROR"}, file_message(path, error))
            return {"CANCELLED"}
        self.report(
            {"INFO"},
            f"Wrote {path}: frames {scene.frame_start}..{scene.frame_end} of {objects.armature.name} "
            f"at {sequence.fps:g} fps",
        )
        return {"FINISHED"}


def _menu_import(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(RIGSTYLE_OT_import_rig.bl_idname, text="FLAME / SMPL-X Model (.pkl, .npz)")
    self.layout.operator(RIGSTYLE_OT_import_take.bl_idname, text="Motion Take (.npz)")


def _menu_export(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(RIGSTYLE_OT_export_take.bl_idname, text="Motion Take (.npz)")


classes = (RIGSTYLE_OT_import_rig, RIGSTYLE_OT_import_take, RIGSTYLE_OT_export_take)


def install() -> None:
    """The File › Import and File › Export menu entries (after the classes are registered)."""
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def uninstall() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
