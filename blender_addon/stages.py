"""The Blender stages of a shot over its shot folder: passes per frame, composite per frame.

The refine stage between them needs no Blender (``neural_backend.farm.refine_stage``). Each stage skips the
frames the shot folder's manifest says it finished (intact and made from the same inputs) unless told to
overwrite, renders one frame per :meth:`render` call and records it once its files are written. The GUI's
:class:`blender_addon.shot.ShotJob`, the ``rigstyle.farm`` operator and the ``rigstyle`` CLI's Blender
stages all use these classes, so every path writes the same files.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import bpy

from neural_backend.farm.shot_folder import ShotFolder, ShotFolderError
from neural_backend.protocol.passes import EXTRA_PASSES

from .compositor import SequenceSource, wire_refined_sequence
from .images import set_render_output
from .render_passes import render_frame_passes
from .rig_builder import RigObjects


class PassesStage:
    """Render the passes of ``frames`` into ``folder`` (frames already finished are skipped).

    ``source_sha256``: the checksum of the scene file the passes come from (farm runs); the passes of
    another version of the scene count as stale. None (an unsaved GUI scene): not compared.
    """

    def __init__(
        self,
        scene: bpy.types.Scene,
        objects: RigObjects,
        folder: ShotFolder,
        frames: Sequence[int],
        shot: str,
        overwrite: bool = False,
        source_sha256: str | None = None,
        passes: Collection[str] = tuple(EXTRA_PASSES),
    ):
        self.scene, self.objects, self.folder, self.shot, self.passes = scene, objects, folder, shot, passes
        self.inputs = {"scene": source_sha256} if source_sha256 else {}
        folder.begin(shot)
        if overwrite:
            folder.forget("passes", frames)
        done = set(folder.finished("passes", frames, lambda _: self.inputs))
        self.skipped = sorted(done)
        self.todo = [frame for frame in sorted(set(frames)) if frame not in done]

    def render(self, frame: int) -> None:
        start = time.perf_counter()
        render_frame_passes(self.scene, self.objects, frame, self.shot, self.folder.passes_dir, self.passes)
        names = (f"frame_{frame:04d}.npz", f"beauty_{frame:04d}.exr", f"beauty_{frame:04d}.png")
        outputs = [self.folder.passes_dir / name for name in (*names, f"region_{frame:04d}.png")]
        info = {"seconds": round(time.perf_counter() - start, 3)}
        self.folder.record("passes", frame, outputs, self.inputs, info)


class CompositeStage:
    """Composite the refined ``frames`` of ``folder`` (refined vs plain render on a switch, see
    :mod:`blender_addon.compositor`) into ``composite/frame_NNNN.png``.

    Raises:
        ShotFolderError: a frame is not refined yet.
    """

    def __init__(
        self, scene: bpy.types.Scene, folder: ShotFolder, frames: Sequence[int], overwrite: bool = False
    ):
        self.scene, self.folder = scene, folder
        frames = sorted(set(frames))
        missing = sorted(set(frames) - set(folder.finished("refined", frames)))
        if missing:
            raise ShotFolderError(
                f"frames {missing} of {folder.root} are not refined yet; run the refine stage first"
            )
        refined = {f: folder.output_sha256("refined", f, folder.refined_file(f)) for f in frames}
        self.refined_sha = {f: sha or "" for f, sha in refined.items()}
        if overwrite:
            folder.forget("composite", frames)
        done = set(folder.finished("composite", frames, self._inputs))
        self.skipped = sorted(done)
        self.todo = [frame for frame in frames if frame not in done]
        self.first, self.last = frames[0], frames[-1]
        self._wired = False

    def render(self, frame: int) -> None:
        if not self._wired:
            count = self.last - self.first + 1
            wire_refined_sequence(
                self.scene,
                SequenceSource(self.folder.refined_file(self.first), self.first, count),
                SequenceSource(self.folder.beauty_exr(self.first), self.first, count),
            )
            set_render_output(self.scene, str(self.folder.root / "composite" / "frame_####"), "PNG", "8")
            self._wired = True
        start = time.perf_counter()
        render_composite_frame(self.scene, frame)
        info = {"seconds": round(time.perf_counter() - start, 3)}
        self.folder.record("composite", frame, [self.folder.composite_file(frame)], self._inputs(frame), info)

    def _inputs(self, frame: int) -> dict[str, str]:
        return {"refined": self.refined_sha[frame]}


def render_composite_frame(scene: bpy.types.Scene, frame: int) -> None:
    """Render the compositor's output for ``frame`` to the scene's output path (an animation of one frame,
    so ``#`` in the path becomes the frame number)."""
    saved_range = scene.frame_start, scene.frame_end
    try:
        scene.frame_start = scene.frame_end = frame
        bpy.ops.render.render(animation=True)
    finally:
        scene.frame_start, scene.frame_end = saved_range


@dataclass(frozen=True)
class RenderOutput:
    """The scene's output settings and current frame, which rendering passes and composites change."""

    filepath: str
    use_file_extension: bool
    image_settings: dict[str, str]
    frame: int

    @classmethod
    def save(cls, scene: bpy.types.Scene) -> RenderOutput:
        settings = scene.render.image_settings
        known = ("media_type", "file_format", "color_depth", "color_mode")  # media_type: Blender 5.0+
        names = [n for n in known if hasattr(settings, n)]
        return cls(
            scene.render.filepath,
            scene.render.use_file_extension,
            {n: getattr(settings, n) for n in names},
            scene.frame_current,
        )

    def restore(self, scene: bpy.types.Scene) -> None:
        scene.render.filepath = self.filepath
        scene.render.use_file_extension = self.use_file_extension
        for name, value in self.image_settings.items():  # media_type first: it limits file_format
            with contextlib.suppress(TypeError, ValueError):
                setattr(scene.render.image_settings, name, value)
        scene.frame_set(self.frame)
