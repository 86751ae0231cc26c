"""Render a rig shot through the backend: passes per frame → joint refinement → compositor → composite.

One implementation for the GUI operator and headless jobs. A :class:`ShotJob` advances in small steps on
Blender's main thread (render one frame's passes, write refined frames that arrived, composite one frame);
everything that waits on the backend runs on the job's worker thread, which owns the job's connection.

- The GUI's modal operator calls :meth:`ShotJob.step` from a timer, so Blender stays responsive between
  frames and Esc cancels (:meth:`ShotJob.cancel`).
- Background mode has no timers: :func:`run_shot` steps the job to the end, blocking on the worker.

Passes of each frame are uploaded while the next one renders; after the last frame the backend refines the
shot jointly and streams refined frames back, which are written as they come. The compositor is wired only
once every frame is refined, so a failed or cancelled shot leaves it as it was (a failure while compositing
puts it back).
"""

from __future__ import annotations

import contextlib
import enum
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from neural_backend.client import BackendError, ProgressEvent
from neural_backend.color import srgb_from_linear
from neural_backend.passes import EXTRA_PASSES, FramePasses, RefinedFrame

from .backend_errors import CANCELLED_MESSAGE, ShotError, explain
from .compositor import SequenceSource, unwire, wire_refined_sequence
from .connection import HEALTH_TIMEOUT, BackendSettings
from .images import save_png, set_render_output
from .render_passes import render_frame_passes
from .rig_builder import RigObjects

Report = Callable[[str], None]
DROP_TIMEOUT = 10.0  # seconds the worker waits for the backend to drop a failed shot's frames


class Stage(enum.Enum):
    PASSES = "rendering passes"
    REFINE = "refining"
    COMPOSITE = "compositing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = (Stage.DONE, Stage.FAILED, Stage.CANCELLED)


@dataclass
class ShotResult:
    """What a shot render produced, for reports."""

    frames: list[int]
    out_dir: Path
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # per frame, from the backend
    shot_metrics: dict[str, float] = field(default_factory=dict)  # the shot's means, from the backend
    seconds: dict[str, float] = field(default_factory=dict)


class ShotJob:
    """One shot render, stepped on the main thread; see the module docstring.

    Args:
        scene, objects: the scene and the rig whose frames are rendered.
        settings: how to reach the backend.
        frames: the frames, in order.
        out_dir: the shot folder (passes/, refined/, gan/, composite/ are written inside).
        shot: the shot's name on the backend.
        report: receives one line per event (frame rendered, frame refined, failure ...).
        passes: the optional passes to render (all by default).
    """

    def __init__(
        self,
        scene: bpy.types.Scene,
        objects: RigObjects,
        settings: BackendSettings,
        frames: Sequence[int],
        out_dir: Path,
        shot: str,
        report: Report = print,
        passes: Collection[str] = tuple(EXTRA_PASSES),
    ):
        if not frames:
            raise ValueError("a shot needs at least one frame")
        self.scene, self.objects, self.settings = scene, objects, settings
        self.frames, self.out_dir, self.shot = list(frames), out_dir, shot
        self.report, self.passes = report, passes
        self.stage = Stage.PASSES
        self.result = ShotResult(frames=list(frames), out_dir=out_dir)
        self.error: ShotError | None = None
        self.status = "starting"
        self._rendered = self._refined = self._composited = 0
        self._step_fraction = 0.0  # progress of the optimisation, 0..1
        self._refine_started = 0.0  # perf_counter when the last frame's passes were sent
        self._uploads: queue.Queue[FramePasses | None] = queue.Queue()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cancel = threading.Event()
        self._saved = _RenderOutput.save(scene)
        self._worker = threading.Thread(target=self._talk, name=f"rigstyle-shot-{shot}", daemon=True)
        self._worker.start()

    # ---- driving ---------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.stage in FINISHED

    @property
    def progress(self) -> float:
        """Share of the job done, 0..1 (passes, refinement and composite weigh a third each)."""
        count = len(self.frames)
        refine = max(self._refined / count, self._step_fraction)
        return min(1.0, (self._rendered / count + refine + self._composited / count) / 3)

    def cancel(self) -> None:
        """Stop at the next step: no further frame is rendered, the backend's refinement is cancelled."""
        self._cancel.set()

    def step(self, wait: float = 0.0) -> bool:
        """Do one unit of main-thread work; True while the job is not finished.

        ``wait``: seconds to block for the worker when there is nothing else to do (0 in the GUI).
        """
        if self.finished:
            return False
        try:
            self._drain_events(wait if self.stage is Stage.REFINE else 0.0)
            if self._cancel.is_set():
                self._stop(Stage.CANCELLED, ShotError("cancelled", CANCELLED_MESSAGE))
            elif self.stage is Stage.PASSES:
                self._render_next_frame()
            elif self.stage is Stage.COMPOSITE:
                self._composite_next_frame()
        except ShotError as error:
            self._stop(Stage.FAILED, error)
        except Exception as error:  # a Blender-side failure (render, disk): stop cleanly, name it
            self._stop(Stage.FAILED, ShotError("blender", f"{type(error).__name__}: {error}"))
        return not self.finished

    # ---- main-thread stages ----------------------------------------------------------------------

    def _render_next_frame(self) -> None:
        frame = self.frames[self._rendered]
        with _timed(self.result.seconds, "passes"):
            passes = render_frame_passes(
                self.scene, self.objects, frame, self.shot, self.out_dir / "passes", self.passes
            )
        self._uploads.put(passes)
        self._rendered += 1
        self._say(f"passes of frame {frame} rendered ({self._rendered}/{len(self.frames)})")
        if self._rendered == len(self.frames):
            self._uploads.put(None)  # all sent: the worker asks for the shot
            self.stage = Stage.REFINE
            self._refine_started = time.perf_counter()

    def _write_refined(self, refined: RefinedFrame) -> None:
        name = f"frame_{refined.frame:04d}.png"
        save_png(self.out_dir / "refined" / name, srgb_from_linear(refined.image))
        save_png(self.out_dir / "gan" / name, np.clip(refined.gan, 0.0, 1.0))
        self.result.metrics[refined.frame] = refined.metrics
        self._refined += 1
        m = refined.metrics
        temporal = f", temporal error {m['temporal_error']:.5f}" if "temporal_error" in m else ""
        psnr = m.get("skin_psnr", float("nan"))
        count = f"{self._refined}/{len(self.frames)}"
        self._say(f"frame {refined.frame} refined ({count}): skin PSNR {psnr:.1f} dB{temporal}")

    def _composite_next_frame(self) -> None:
        first, last = min(self.frames), max(self.frames)
        if self._composited == 0:
            self.result.seconds["refine"] = time.perf_counter() - self._refine_started
            wire_refined_sequence(
                self.scene,
                SequenceSource(self.out_dir / "refined" / f"frame_{first:04d}.png", first, last - first + 1),
                SequenceSource(self.out_dir / "passes" / f"beauty_{first:04d}.exr", first, last - first + 1),
            )
            set_render_output(self.scene, str(self.out_dir / "composite" / "frame_####"), "PNG", "8")
        frame = self.frames[self._composited]
        with _timed(self.result.seconds, "composite"):
            render_composite_frame(self.scene, frame)
        self._composited += 1
        if self._composited == len(self.frames):
            self._say(f"composite written to {self.out_dir / 'composite'}")
            self._finish(Stage.DONE)

    def _drain_events(self, wait: float) -> None:
        """Handle what the worker sent: refined frames, progress, the shot's end or an error."""
        try:
            events = [self._events.get(timeout=wait) if wait > 0 else self._events.get_nowait()]
        except queue.Empty:
            return
        with contextlib.suppress(queue.Empty):
            while True:
                events.append(self._events.get_nowait())
        for kind, payload in events:
            if kind == "refined":
                self._write_refined(payload)
            elif kind == "step":
                self._step_fraction = payload
            elif kind == "status":
                self._say(payload)
            elif kind == "shot":
                self.result.shot_metrics = payload
                self.stage = Stage.COMPOSITE
            elif kind == "error":
                raise payload

    def _stop(self, stage: Stage, error: ShotError) -> None:
        self._cancel.set()
        self._uploads.put(None)
        if self.stage is Stage.COMPOSITE:
            unwire(self.scene)  # never leave a half-composited shot wired
        self.error = error
        self._say(str(error))
        self._finish(stage)

    def _finish(self, stage: Stage) -> None:
        self._saved.restore(self.scene)
        self.stage = stage

    def _say(self, line: str) -> None:
        self.status = line
        self.report(line)

    # ---- worker thread ---------------------------------------------------------------------------

    def _talk(self) -> None:
        """Worker: health check, upload each rendered frame, refine the shot; events go to the main thread.

        A failed or cancelled shot's held frames are dropped on the backend (best effort)."""
        address, frame, refined = self.settings.address, None, False
        client = self.settings.client()
        try:
            client.health(HEALTH_TIMEOUT)
            client.end_shot(self.shot)  # a fresh shot: no state or held frames from an earlier attempt
            while (passes := self._uploads.get()) is not None and not self._cancel.is_set():
                frame = passes.frame
                with _timed(self.result.seconds, "upload"):
                    client.add_frame(passes)
            if self._cancel.is_set():
                return
            frame = None
            self._events.put(("status", f"refining the shot on {address}"))
            shot = client.refine_held_shot(
                self.shot,
                self.settings.frame_timeout * len(self.frames),
                on_result=lambda refined: self._events.put(("refined", refined)),
                on_progress=self._on_progress,
                cancelled=self._cancel.is_set,
            )
            refined = True
            self._events.put(("shot", shot.metrics))
        except BackendError as error:
            self._events.put(("error", explain(error, address, frame)))
        finally:
            if not refined:
                with contextlib.suppress(BackendError):
                    client.end_shot(self.shot, timeout=DROP_TIMEOUT)
            client.close()

    def _on_progress(self, event: ProgressEvent) -> None:
        if event.stage != "step":
            return
        step, steps = int(event.fields.get("step", 0)), max(1, int(event.fields.get("steps", 1)))
        phase = str(event.fields.get("phase", ""))
        self._events.put(("step", step / steps if phase != "pti" else 1.0))
        if step == steps or step % max(1, steps // 10) == 0:
            self._events.put(("status", f"refining the shot: {phase} step {step}/{steps}"))


def run_shot(job: ShotJob) -> ShotResult:
    """Step ``job`` to the end, blocking (background mode, where timers never fire).

    Raises:
        ShotError: the shot failed or was cancelled; the message says what to do.
    """
    while job.step(wait=0.1):
        pass
    if job.error is not None:
        raise job.error
    return job.result


def render_refined_shot(
    scene: bpy.types.Scene,
    objects: RigObjects,
    settings: BackendSettings,
    frames: Sequence[int],
    out_dir: Path,
    shot: str,
    report: Report = print,
) -> ShotResult:
    """Render, refine and composite ``frames`` into ``out_dir``, blocking (see :class:`ShotJob`)."""
    return run_shot(ShotJob(scene, objects, settings, frames, out_dir, shot, report))


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
class _RenderOutput:
    """The scene's output settings and current frame, which rendering passes and composites change."""

    filepath: str
    use_file_extension: bool
    image_settings: dict[str, str]
    frame: int

    @classmethod
    def save(cls, scene: bpy.types.Scene) -> _RenderOutput:
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


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
