"""Render Refined Shot, Refined Preview, and the RigStyle render panel (3D view sidebar).

``bpy.ops.rigstyle.render_shot`` runs a :class:`blender_addon.shot.ShotJob`: modal in the GUI (a timer
steps it, Esc cancels, progress in the status bar and the progress indicator), blocking in background mode
and when called from a script without an event (``execute``). Both paths step the same job.
"""

from __future__ import annotations

import re
from pathlib import Path

import bpy

from neural_backend.client.results import BackendError

from . import preview
from .backend_errors import ShotError, explain
from .connection import backend_settings
from .names import PREVIEW_IMAGE
from .preferences import draw_health
from .shot import ShotJob, ShotResult, run_shot
from .ui import context_rig

PROGRESS_STEPS = 1000


def _can_render(context: bpy.types.Context) -> bool:
    """A scene with a camera and a rig."""
    return context.scene is not None and context.scene.camera is not None and context_rig(context) is not None


def shot_folder(scene: bpy.types.Scene, shot: str, out_dir: str = "") -> Path:
    """Where a shot's files go: ``out_dir`` when given, else ``rigstyle_<shot>`` next to the render output.

    Raises:
        ShotError: the path is relative to an unsaved .blend file.
    """
    base = out_dir or scene.render.filepath
    if base.startswith("//") and not bpy.data.filepath:
        raise ShotError(
            "blender", f"the output path {base!r} is relative to the .blend file: save the file first"
        )
    path = Path(bpy.path.abspath(base)).resolve()
    if out_dir:
        return path
    folder = path if base.endswith(("/", "\\")) or path.is_dir() else path.parent
    return folder / f"rigstyle_{shot}"


def shot_name(text: str) -> str:
    """A file- and backend-safe shot name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "shot"


class RIGSTYLE_OT_render_shot(bpy.types.Operator):
    """Render the scene's frame range through the RigStyle backend and composite the refined frames"""

    bl_idname = "rigstyle.render_shot"
    bl_label = "Render Refined Shot"

    shot: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Shot", description="Shot name on the backend and in the output folder (default: the scene's)"
    )
    out_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Folder for passes, refined frames and composites (default: next to the render output)",
        subtype="DIR_PATH",
    )

    _job: ShotJob | None = None
    _timer: bpy.types.Timer | None = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _can_render(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        try:
            result = run_shot(job)
        except ShotError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        self._report_done(result)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(0.05, window=context.window)
        window_manager.modal_handler_add(self)
        window_manager.progress_begin(0, PROGRESS_STEPS)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        assert job is not None
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        elif event.type != "TIMER":
            return {"PASS_THROUGH"}
        running = job.step()
        context.window_manager.progress_update(int(job.progress * PROGRESS_STEPS))
        if context.workspace is not None:
            context.workspace.status_text_set(f"RigStyle: {job.status} — Esc to cancel")
        if running:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        if job.error is not None:
            self.report({"WARNING"} if job.error.code == "cancelled" else {"ERROR"}, str(job.error))
            return {"CANCELLED"}
        self._report_done(job.result)
        return {"FINISHED"}

    def _start(self, context: bpy.types.Context) -> ShotJob | None:
        scene = context.scene
        rig = context_rig(context)
        if rig is None:
            self.report({"ERROR"}, "No RigStyle rig in the scene: add one (Add > RigStyle Demo Head)")
            return None
        shot = shot_name(self.shot or scene.name)
        try:
            out_dir = shot_folder(scene, shot, self.out_dir)
        except ShotError as error:
            self.report({"ERROR"}, str(error))
            return None
        frames = list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))
        return ShotJob(scene, rig, backend_settings(context), frames, out_dir, shot, report=_log)

    def _report_done(self, result: ShotResult) -> None:
        psnr = result.shot_metrics.get("skin_psnr")
        quality = f", skin PSNR {psnr:.1f} dB" if psnr is not None else ""
        self.report(
            {"INFO"},
            f"Refined {len(result.frames)} frames{quality}; composite in {result.out_dir / 'composite'}",
        )


class RIGSTYLE_OT_preview(bpy.types.Operator):
    """Refine the current frame in the backend's fast preview mode and show it in the Image Editor"""

    bl_idname = "rigstyle.preview"
    bl_label = "Refined Preview"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _can_render(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        rig = context_rig(context)
        assert rig is not None
        settings = backend_settings(context)
        session = preview.session(settings, _preview_scale(context))
        try:
            request = session.request(context.scene, rig)
        except ValueError as error:  # the camera or the render settings do not fit the passes
            self.report({"ERROR"}, f"Cannot render the preview's passes: {error}")
            return {"CANCELLED"}
        if not bpy.app.background:
            preview.ensure_timer()  # results are taken on the main thread by the timer
            self.report({"INFO"}, f"Preview of frame {request.frame} requested")
            return {"FINISHED"}
        try:  # background mode: no timers ever fire, so wait here
            result = session.wait()
        except BackendError as error:
            self.report({"ERROR"}, str(explain(error, settings.address, request.frame)))
            return {"CANCELLED"}
        if result.error is not None:
            self.report({"ERROR"}, str(explain(result.error, settings.address, request.frame)))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Preview of frame {request.frame} shown in the image {PREVIEW_IMAGE!r}")
        return {"FINISHED"}


def _preview_scale(context: bpy.types.Context) -> float:
    return float(getattr(context.window_manager, "rigstyle_preview_scale", 100)) / 100.0


def _auto_changed(window_manager: bpy.types.WindowManager, context: bpy.types.Context) -> None:
    if window_manager.rigstyle_preview_auto:
        preview.session(backend_settings(context), _preview_scale(context))
        preview.ensure_timer()


class RIGSTYLE_PT_render(bpy.types.Panel):
    """RigStyle backend, live preview and shot render"""

    bl_label = "RigStyle Render"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        draw_health(layout)
        window_manager = context.window_manager
        row = layout.row(align=True)
        row.operator(RIGSTYLE_OT_preview.bl_idname, icon="IMAGE")
        row.prop(window_manager, "rigstyle_preview_auto", text="Auto", toggle=True)
        layout.prop(window_manager, "rigstyle_preview_scale", slider=True)
        if window_manager.rigstyle_preview_status:
            layout.label(text=window_manager.rigstyle_preview_status)
        layout.operator(RIGSTYLE_OT_render_shot.bl_idname, icon="RENDER_ANIMATION")


WINDOW_MANAGER_PROPERTIES = {
    "rigstyle_preview_auto": bpy.props.BoolProperty(
        name="Auto Preview",
        description="Refine the current frame again whenever the frame or a rig parameter changes",
        default=False,
        update=_auto_changed,
    ),
    "rigstyle_preview_scale": bpy.props.IntProperty(
        name="Preview Size",
        description="Preview render size, in percent of the scene's render size",
        default=50,
        min=10,
        max=100,
        subtype="PERCENTAGE",
    ),
    "rigstyle_preview_status": bpy.props.StringProperty(name="Preview Status"),
}

classes = (RIGSTYLE_OT_render_shot, RIGSTYLE_OT_preview, RIGSTYLE_PT_render)


def install() -> None:
    for name, prop in WINDOW_MANAGER_PROPERTIES.items():
        setattr(bpy.types.WindowManager, name, prop)


def uninstall() -> None:
    preview.close_session()
    for name in WINDOW_MANAGER_PROPERTIES:
        delattr(bpy.types.WindowManager, name)


def _log(line: str) -> None:
    print(f"[rigstyle] {line}", flush=True)
