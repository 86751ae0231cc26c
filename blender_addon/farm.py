"""Headless farm entry: ``bpy.ops.rigstyle.farm(...)`` runs one stage of a shot, or all three.

A farm worker runs it from the Blender binary::

    blender -b shot.blend --python-exit-code 1 --python-expr \\
        "import bpy; bpy.ops.rigstyle.farm(stage='all', frames='1-48', out_dir='/farm/sh010', \\
         backends='tcp://gpu1:7557 tcp://gpu2:7557')"

``rigstyle render|passes|composite`` builds exactly that line (``--blender``), or runs the same expression
through the ``bpy`` module (``python -m blender_addon.blend_runner SCENE.blend EXPRESSION``). Any
failed frame makes the operator report an error, which ``bpy.ops`` raises, so Blender
exits 1. Frames the shot folder's manifest lists as finished (and made from this version of the .blend
file) are skipped, so a rerun does only the rest; ``overwrite=True`` redoes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import bpy

from neural_backend.client.pool import BackendPool, NoBackend
from neural_backend.farm.progress import FORMATS, Progress
from neural_backend.farm.refine_stage import DEFAULT_SEGMENT, RefineSettings, RefineStageError, refine_folder
from neural_backend.farm.shot_folder import ShotFolder, ShotFolderError, file_sha256, parse_frames

from .backend_errors import ShotError
from .connection import BackendSettings, backend_settings
from .operators import shot_name
from .shot import ShotJob, run_shot
from .stages import CompositeStage, PassesStage, RenderOutput
from .ui import context_rig

STAGES = ("passes", "refine", "composite", "all")
TOKEN_ENV = "RIGSTYLE_TOKEN"


class FarmError(Exception):
    """A farm stage failed; the message names the frame or file and what to do."""


def run_farm(
    stage: str,
    frames: Sequence[int],
    out_dir: Path,
    shot: str,
    backends: Sequence[str],
    settings: BackendSettings,
    overwrite: bool = False,
    segment: int = DEFAULT_SEGMENT,
    progress: Progress | None = None,
) -> None:
    """Run ``stage`` ('passes', 'refine', 'composite' or 'all') of the shot in ``out_dir`` for ``frames`` of
    the current scene, whose rig is found as in the UI.

    Raises:
        FarmError: any frame failed, or the scene has no camera or rig.
    """
    if stage not in STAGES:
        raise FarmError(f"stage: expected one of {list(STAGES)}, got {stage!r}")
    report = progress if progress is not None else Progress("text")
    scene = bpy.context.scene
    rig = context_rig(bpy.context)
    needs_scene = stage != "refine"
    if needs_scene and (scene.camera is None or rig is None):
        raise FarmError(f"scene {scene.name!r} needs a camera and a RigStyle rig to render a shot")
    source = file_sha256(Path(bpy.data.filepath)) if bpy.data.filepath else None
    folder = ShotFolder(out_dir)
    try:
        if stage == "all":
            assert rig is not None
            job = ShotJob(
                scene, rig, settings, frames, out_dir, shot, report=lambda _: None, overwrite=overwrite,
                backends=backends, segment=segment, source_sha256=source, progress=report,
            )  # fmt: skip
            run_shot(job)
        elif stage == "passes":
            assert rig is not None
            passes = PassesStage(scene, rig, folder, frames, shot, overwrite, source)
            _run_frames(scene, "passes", passes, report)
        elif stage == "refine":
            pool = BackendPool(list(backends), settings.token)
            refine_settings = RefineSettings(segment=segment, frame_timeout=settings.frame_timeout)
            refine_folder(folder, pool, frames, refine_settings, overwrite, report)
        else:
            _run_frames(scene, "composite", CompositeStage(scene, folder, frames, overwrite), report)
    except (ShotError, ShotFolderError, RefineStageError, NoBackend) as error:
        if stage != "all":  # a shot job has reported its error already
            report.error(str(error))
        raise FarmError(str(error)) from None


def _run_frames(
    scene: bpy.types.Scene, name: str, stage: PassesStage | CompositeStage, report: Progress
) -> None:
    """Render each frame ``stage`` has to do, reporting progress; the scene's output settings are kept."""
    saved = RenderOutput.save(scene)
    try:
        report.start(name, len(stage.todo), len(stage.skipped))
        for frame in stage.todo:
            stage.render(frame)
            report.frame(frame)
        report.finish()
    finally:
        saved.restore(scene)


class RIGSTYLE_OT_farm(bpy.types.Operator):
    """Run a stage of a RigStyle shot headless (render farms): passes, refine, composite, or all three"""

    bl_idname = "rigstyle.farm"
    bl_label = "RigStyle Farm Stage"
    bl_options = {"INTERNAL"}  # for farm scripts (`rigstyle render`, Flamenco), not the F3 search

    stage: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Stage",
        items=[
            (s, s.capitalize(), f"run the {s} stage" if s != "all" else "all three stages") for s in STAGES
        ],
        default="all",
    )
    frames: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Frames",
        description="Frames to do: A-B, A, or a comma-separated list (default: the scene's range)",
    )
    out_dir: bpy.props.StringProperty(name="Shot Folder", subtype="DIR_PATH")  # type: ignore[valid-type]
    shot: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Shot", description="Shot name (default: the shot folder's name)"
    )
    backends: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Backends", description="Backend addresses, separated by spaces (default: the preferences')"
    )
    token_file: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Token File", description=f"File holding the backends' token (default: ${TOKEN_ENV})"
    )
    overwrite: bpy.props.BoolProperty(name="Overwrite", default=False)  # type: ignore[valid-type]
    segment: bpy.props.IntProperty(name="Segment", default=DEFAULT_SEGMENT, min=1)  # type: ignore[valid-type]
    progress: bpy.props.EnumProperty(  # type: ignore[valid-type]
        name="Progress", items=[(f, f, f"progress lines as {f}") for f in FORMATS], default="text"
    )

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            self._run(context)
        except FarmError as error:
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}
        return {"FINISHED"}

    def _run(self, context: bpy.types.Context) -> None:
        scene = context.scene
        if not self.out_dir:
            raise FarmError("out_dir: give the shot folder")
        try:
            frames = (
                parse_frames(self.frames)
                if self.frames
                else list(range(scene.frame_start, scene.frame_end + 1))
            )
        except ValueError as error:
            raise FarmError(str(error)) from None
        out_dir = Path(bpy.path.abspath(self.out_dir)).resolve()
        settings = backend_settings(context)
        token = settings.token
        if self.token_file:
            try:
                token = Path(self.token_file).read_text().strip() or None
            except OSError as error:
                raise FarmError(f"token_file: cannot read {self.token_file} ({error.strerror})") from None
        elif os.environ.get(TOKEN_ENV):
            token = os.environ[TOKEN_ENV]
        settings = BackendSettings(settings.address, token, settings.frame_timeout, settings.command)
        backends = self.backends.replace(",", " ").split() or [settings.address]
        shot = shot_name(self.shot or out_dir.name)
        run_farm(self.stage, frames, out_dir, shot, backends, settings, self.overwrite, self.segment,
                 Progress(self.progress))  # fmt: skip


classes = (RIGSTYLE_OT_farm,)
