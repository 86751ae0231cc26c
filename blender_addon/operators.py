"""Render Refined Shot, Refined Preview, and the RigStyle render panel (3D view sidebar).

``bpy.ops.rigstyle.render_shot`` runs a :class:`blender_addon.shot.ShotJob`: modal in the GUI (a timer
steps it; the panel shows a progress bar with the stage, frame and ETA and a Cancel button, Esc cancels
too), blocking in background mode and when called from a script without an event (``execute``). Both paths
step the same job. While it runs, Render, Refined Preview and Restore Compositor are refused.

The scene's RigStyle render settings (:class:`RIGSTYLE_PG_render`: preview, shot name, output folder, the
last shot written) are saved with the .blend. Its Refined / Plain toggle reads and sets the compositor's
switch node itself, so it always shows what the compositor does.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import bpy

from neural_backend.client.results import BackendError

from . import preview
from .backend_errors import ShotError, explain
from .compositor import is_wired, refined_switch, set_refined_switch, unwire
from .connection import backend_settings
from .names import PREVIEW_IMAGE, RENDER_SETTINGS_PROP
from .preferences import draw_health, redraw_sidebars
from .shot import ShotJob, ShotResult, run_shot, running_job, set_running
from .ui import context_rig

PROGRESS_STEPS = 1000
TICK_SECONDS = 0.05  # how often the modal operator steps the job
RUNNING_MESSAGE = "A refined shot is already running: cancel it first"


def render_settings(scene: bpy.types.Scene) -> RIGSTYLE_PG_render:
    return getattr(scene, RENDER_SETTINGS_PROP)


def _can_render(cls: type[bpy.types.Operator], context: bpy.types.Context) -> bool:
    """No shot running, and a scene with a camera and a rig; else the poll message says what is missing."""
    if running_job() is not None:
        cls.poll_message_set(RUNNING_MESSAGE)
        return False
    if context.scene is None or context.scene.camera is None:
        cls.poll_message_set("The scene needs a camera")
        return False
    if context_rig(context) is None:
        cls.poll_message_set("Add a RigStyle rig first (Add > RigStyle Demo Head)")
        return False
    return True


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


def result_line(frames: int, folder: str) -> str:
    """The panel's line about the last shot written, e.g. ``24 frames → /shots/rigstyle_hero``."""
    return f"{frames} frame{'s' * (frames != 1)} → {folder}"


class RIGSTYLE_OT_render_shot(bpy.types.Operator):
    """Render the scene's frame range through the RigStyle backend and composite the refined frames"""

    bl_idname = "rigstyle.render_shot"
    bl_label = "Render Refined Shot"

    shot: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Shot",
        description="Shot name on the backend and in the output folder (default: the panel's, else the "
        "scene's)",
        options={"SKIP_SAVE"},
    )
    out_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Folder for passes, refined frames and composites (default: the panel's, else next to "
        "the render output)",
        subtype="DIR_PATH",
        options={"SKIP_SAVE"},
    )

    _job: ShotJob | None = None
    _timer: bpy.types.Timer | None = None
    _shown = ""  # the progress text shown last

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _can_render(cls, context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        set_running(job)
        try:
            result = run_shot(job)
        except ShotError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        finally:
            set_running(None)
        self._done(context, result)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        set_running(self._job)
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(TICK_SECONDS, window=context.window)
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
        running = job.step()  # Cancel in the panel set the job's cancel flag: this step stops it
        context.window_manager.progress_update(int(job.progress * PROGRESS_STEPS))
        text = job.progress_text()
        if text != self._shown:  # the status bar and the panel's progress bar
            self._shown = text
            if context.workspace is not None:
                context.workspace.status_text_set(f"RigStyle: {text} — Esc to cancel")
            redraw_sidebars()
        if running:
            return {"RUNNING_MODAL"}
        self._end(context)
        if job.error is not None:
            self.report({"WARNING"} if job.error.code == "cancelled" else {"ERROR"}, str(job.error))
            return {"CANCELLED"}
        self._done(context, job.result)
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (a file is loaded, the window closes): stop the job, clean up."""
        job = self._job
        if job is not None and not job.finished:
            job.cancel()
            with contextlib.suppress(ReferenceError):  # the scene may be gone with the old file
                job.step()
        self._end(context)

    def _end(self, context: bpy.types.Context) -> None:
        """Remove the timer, end the progress indicator, clear the status text and the running job."""
        window_manager = context.window_manager
        if self._timer is not None:
            window_manager.event_timer_remove(self._timer)
            self._timer = None
        window_manager.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        set_running(None)
        redraw_sidebars()

    def _start(self, context: bpy.types.Context) -> ShotJob | None:
        scene = context.scene
        settings = render_settings(scene)
        rig = context_rig(context)
        if rig is None:
            self.report({"ERROR"}, "No RigStyle rig in the scene: add one (Add > RigStyle Demo Head)")
            return None
        shot = shot_name(self.shot or settings.shot or scene.name)
        try:
            out_dir = shot_folder(scene, shot, self.out_dir or settings.out_dir)
        except ShotError as error:
            self.report({"ERROR"}, str(error))
            return None
        frames = list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))
        return ShotJob(scene, rig, backend_settings(context), frames, out_dir, shot, report=_log)

    def _done(self, context: bpy.types.Context, result: ShotResult) -> None:
        settings = render_settings(context.scene)
        settings.last_frames, settings.last_folder = len(result.frames), str(result.out_dir)
        psnr = result.shot_metrics.get("skin_psnr")
        quality = f", skin PSNR {psnr:.1f} dB" if psnr is not None else ""
        self.report(
            {"INFO"},
            f"Refined {len(result.frames)} frames{quality}; composite in {result.out_dir / 'composite'}",
        )


class RIGSTYLE_OT_cancel_shot(bpy.types.Operator):
    """Stop the refined shot that is rendering: no further frame is rendered, the backend's refinement is
    cancelled and the compositor is left as it was"""

    bl_idname = "rigstyle.cancel_shot"
    bl_label = "Cancel Refined Shot"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        job = running_job()
        if job is None or job.finished:
            cls.poll_message_set("No refined shot is rendering")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = running_job()
        assert job is not None
        job.cancel()  # the Render operator stops it at its next step and cleans up
        self.report({"INFO"}, f"Cancelling the refined shot {job.shot!r}")
        return {"FINISHED"}


class RIGSTYLE_OT_restore_compositor(bpy.types.Operator):
    """Give the scene back the compositor it had before a refined shot was wired into it"""

    bl_idname = "rigstyle.restore_compositor"
    bl_label = "Restore Compositor"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        if running_job() is not None:
            cls.poll_message_set(RUNNING_MESSAGE)
            return False
        if context.scene is None or not is_wired(context.scene):
            cls.poll_message_set("The compositor shows no refined shot")
            return False
        return True

    def execute(self, context: bpy.types.Context) -> set[str]:
        unwire(context.scene)
        self.report({"INFO"}, "The scene's own compositor is back")
        return {"FINISHED"}


class RIGSTYLE_OT_preview(bpy.types.Operator):
    """Refine the current frame in the backend's fast preview mode and show it in the Image Editor"""

    bl_idname = "rigstyle.preview"
    bl_label = "Refined Preview"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return _can_render(cls, context)

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
        try:  # background mode: no timers ever fire, so wait here (seconds when no backend answers)
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
    return render_settings(context.scene).preview_scale / 100.0


def _auto_changed(settings: RIGSTYLE_PG_render, context: bpy.types.Context) -> None:
    if settings.preview_auto:
        preview.session(backend_settings(context), _preview_scale(context))
        preview.ensure_timer()


def _get_show_refined(settings: RIGSTYLE_PG_render) -> bool:
    return refined_switch(settings.id_data) is not False


def _set_show_refined(settings: RIGSTYLE_PG_render, value: bool) -> None:
    set_refined_switch(settings.id_data, value)


class RIGSTYLE_PG_render(bpy.types.PropertyGroup):
    """RigStyle render settings of a scene: live preview and the shot's output (saved with the .blend)"""

    preview_auto: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Auto Preview",
        description="Refine the current frame again whenever the frame or a rig parameter changes",
        default=False,
        update=_auto_changed,
    )
    preview_scale: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Preview Size",
        description="Preview render size, in percent of the scene's render size",
        default=50,
        min=10,
        max=100,
        subtype="PERCENTAGE",
    )
    shot: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Shot", description="Shot name on the backend and in the output folder (empty: the scene's name)"
    )
    out_dir: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Output Folder",
        description="Folder for passes, refined frames and composites (empty: rigstyle_<shot> next to the "
        "render output)",
        subtype="DIR_PATH",
    )
    show_refined: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Refined",
        description="Show the refined frames in the compositor (off: the plain render); the compositor's "
        "RigStyle switch node",
        get=_get_show_refined,
        set=_set_show_refined,
    )
    last_frames: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Frames Written", description="Frames of the last refined shot rendered", min=0
    )
    last_folder: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Last Shot Folder", description="Folder of the last refined shot rendered", subtype="DIR_PATH"
    )


class RIGSTYLE_PT_render(bpy.types.Panel):
    """RigStyle backend, live preview and shot render"""

    bl_label = "RigStyle Render"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "RigStyle"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        scene = context.scene
        settings = render_settings(scene)
        draw_health(layout.box())

        box = layout.box()
        row = box.row(align=True)
        row.operator(RIGSTYLE_OT_preview.bl_idname, icon="IMAGE")
        row.prop(settings, "preview_auto", text="Auto", toggle=True)
        box.prop(settings, "preview_scale", slider=True)
        if context.window_manager.rigstyle_preview_status:
            box.label(text=context.window_manager.rigstyle_preview_status)

        box = layout.box()
        box.prop(settings, "shot")
        box.prop(settings, "out_dir")
        row = box.row(align=True)
        row.prop(scene, "frame_start", text="Start")
        row.prop(scene, "frame_end", text="End")
        job = running_job()
        if job is not None:
            draw_progress(box, context.window_manager, job)
            box.operator(RIGSTYLE_OT_cancel_shot.bl_idname, text="Cancel", icon="CANCEL")
        else:
            box.operator(RIGSTYLE_OT_render_shot.bl_idname, icon="RENDER_ANIMATION")
        if settings.last_folder:
            row = box.row(align=True)
            row.label(text=result_line(settings.last_frames, settings.last_folder))
            button = row.operator("wm.path_open", text="Open Folder", icon="FILE_FOLDER")
            button.filepath = settings.last_folder
        if is_wired(scene):
            row = box.row(align=True)
            if refined_switch(scene) is not None:
                row.prop(settings, "show_refined", text="Refined", toggle=True)
                row.prop(settings, "show_refined", text="Plain", toggle=True, invert_checkbox=True)
            row.operator(RIGSTYLE_OT_restore_compositor.bl_idname, icon="LOOP_BACK")


def draw_progress(layout: bpy.types.UILayout, window_manager: bpy.types.WindowManager, job: ShotJob) -> None:
    """A progress bar with the job's stage, frame and ETA (a read-only slider where Blender has no bar)."""
    text = job.progress_text()
    if hasattr(layout, "progress"):  # UILayout.progress: Blender 4.0 and later
        layout.progress(factor=job.progress, type="BAR", text=text)
    else:
        layout.label(text=text)
        layout.prop(window_manager, "rigstyle_shot_progress", text="", slider=True)


def _shot_progress(window_manager: bpy.types.WindowManager) -> float:
    job = running_job()
    return job.progress if job is not None else 0.0


WINDOW_MANAGER_PROPERTIES = {  # state of this Blender session, not of the file
    "rigstyle_preview_status": bpy.props.StringProperty(name="Preview Status"),
    "rigstyle_shot_progress": bpy.props.FloatProperty(
        name="Shot Progress",
        description="Share of the running refined shot done",
        subtype="FACTOR",
        min=0.0,
        max=1.0,
        get=_shot_progress,
    ),
}

classes = (
    RIGSTYLE_PG_render,
    RIGSTYLE_OT_render_shot,
    RIGSTYLE_OT_cancel_shot,
    RIGSTYLE_OT_restore_compositor,
    RIGSTYLE_OT_preview,
    RIGSTYLE_PT_render,
)


def install() -> None:
    setattr(bpy.types.Scene, RENDER_SETTINGS_PROP, bpy.props.PointerProperty(type=RIGSTYLE_PG_render))
    for name, prop in WINDOW_MANAGER_PROPERTIES.items():
        setattr(bpy.types.WindowManager, name, prop)


def uninstall() -> None:
    preview.close_session()
    job = running_job()
    if job is not None:  # the modal operator ends at its next step
        job.cancel()
    for name in WINDOW_MANAGER_PROPERTIES:
        delattr(bpy.types.WindowManager, name)
    delattr(bpy.types.Scene, RENDER_SETTINGS_PROP)


def _log(line: str) -> None:
    print(f"[rigstyle] {line}", flush=True)
