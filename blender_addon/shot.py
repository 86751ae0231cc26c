"""Render a rig shot through the backend: passes per frame → refinement → compositor → composite.

One implementation for the GUI operator, headless jobs and farm runs. A :class:`ShotJob` runs the three stages
of :mod:`blender_addon.stages` and :mod:`neural_backend.farm.refine_stage` over the shot folder, in small
steps on Blender's main thread (render one frame's passes, composite one frame); the refine stage, which waits
on backends, runs on the job's worker thread.

- The GUI's modal operator calls :meth:`ShotJob.step` from a timer, so Blender stays responsive between
  frames and Esc cancels (:meth:`ShotJob.cancel`).
- Background mode has no timers: :func:`run_shot` steps the job to the end, blocking on the worker.

The worker first checks that a backend answers (waiting at most ``QUICK_CHECK_TIMEOUT`` seconds per backend),
and no pass is rendered before it has, so a shot with no backend fails within seconds and renders nothing.
Frames the shot folder's manifest lists as finished are skipped unless ``overwrite``. The compositor is
wired only once every frame is refined, so a failed or cancelled shot leaves it as it was (a failure while
compositing puts it back).
"""

from __future__ import annotations

import contextlib
import enum
import io
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpy

from neural_backend.client.pool import BackendPool, NoBackend
from neural_backend.client.results import BackendError
from neural_backend.farm.progress import Progress
from neural_backend.farm.refine_stage import DEFAULT_SEGMENT, RefineSettings, RefineStageError, refine_folder
from neural_backend.farm.shot_folder import ShotFolder, ShotFolderError
from neural_backend.protocol.passes import EXTRA_PASSES, shot_metrics

from .backend_errors import CANCELLED_MESSAGE, ShotError, explain
from .compositor import unwire
from .connection import QUICK_CHECK_TIMEOUT, BackendSettings
from .rig_builder import RigObjects
from .stages import CompositeStage, PassesStage, RenderOutput

Report = Callable[[str], None]


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
    shot_metrics: dict[str, float] = field(default_factory=dict)  # passes.shot_metrics of the frames
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, list[int]] = field(default_factory=dict)  # per stage: frames already finished
    backends: dict[int, str] = field(default_factory=dict)  # frame -> the backend that refined it now


class ShotJob:
    """One shot render, stepped on the main thread; see the module docstring.

    Args:
        scene, objects: the scene and the rig whose frames are rendered.
        settings: how to reach the backend (its timeout, token; its address unless ``backends``).
        frames: the frames, in order.
        out_dir: the shot folder (see :mod:`neural_backend.farm.shot_folder`).
        shot: the shot's name on the backend.
        report: receives one line per event (frame rendered, frame refined, failure ...).
        passes: the optional passes to render (all by default).
        overwrite: redo frames the shot folder lists as finished (the GUI's default: the scene in memory
            may have changed since).
        backends: backend addresses to spread over (failover); default ``settings.address``.
        segment: frames per joint refinement (see :mod:`neural_backend.farm.refine_stage`).
        source_sha256: checksum of the scene file (farm runs: passes of another version count as stale).
        progress: where progress lines go (default: text lines to ``report``).

    Raises:
        ShotFolderError: ``out_dir`` holds another shot or a damaged manifest.
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
        overwrite: bool = True,
        backends: Sequence[str] = (),
        segment: int = DEFAULT_SEGMENT,
        source_sha256: str | None = None,
        progress: Progress | None = None,
    ):
        if not frames:
            raise ValueError("a shot needs at least one frame")
        self.scene, self.objects, self.settings = scene, objects, settings
        self.frames, self.out_dir, self.shot = sorted(set(frames)), out_dir, shot
        self.report, self.overwrite = report, overwrite
        self.folder = ShotFolder(out_dir)
        self.pool = BackendPool(list(backends) or [settings.address], settings.token)
        self.refine_settings = RefineSettings(segment=segment, frame_timeout=settings.frame_timeout)
        self.reporter = progress if progress is not None else Progress("text", _Lines(self._say))
        self.stage = Stage.PASSES
        self.result = ShotResult(frames=list(self.frames), out_dir=out_dir)
        self.error: ShotError | None = None
        self.status = "starting"
        self._saved = RenderOutput.save(scene)
        self._passes = PassesStage(
            scene, objects, self.folder, self.frames, shot, overwrite, source_sha256, passes
        )
        self._composite: CompositeStage | None = None
        self._rendered = self._composited = 0
        self._refined = 0.0  # frames refined, plus the share of the current segment's optimisation
        self._checked = False  # a backend answered: passes may render
        self.started = time.monotonic()
        self._refine_started = 0.0  # perf_counter when the passes were done
        self._passes_done = threading.Event()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._cancel = threading.Event()
        self.result.skipped["passes"] = self._passes.skipped
        self.reporter.start("passes", len(self._passes.todo), len(self._passes.skipped))
        self._worker = threading.Thread(target=self._refine, name=f"rigstyle-shot-{shot}", daemon=True)
        self._worker.start()

    # ---- driving ---------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.stage in FINISHED

    @property
    def progress(self) -> float:
        """Share of the job done, 0..1 (passes, refinement and composite weigh a third each)."""
        count = len(self.frames)
        passes = (len(self._passes.skipped) + self._rendered) / count
        composite = (
            self._composited / count
            if self._composite is None
            else ((len(self._composite.skipped) + self._composited) / count)
        )
        refine = 1.0 if self.stage in (Stage.COMPOSITE, Stage.DONE) else min(1.0, self._refined / count)
        return min(1.0, (passes + refine + composite) / 3)

    def eta(self) -> float | None:
        """Seconds left, estimated from the time so far and :attr:`progress`; None until there is a basis."""
        elapsed, share = time.monotonic() - self.started, self.progress
        if self.finished or share < 0.01 or elapsed < 1.0:
            return None
        return elapsed * (1.0 - share) / share

    def progress_text(self) -> str:
        """Stage, frame and ETA for the UI, e.g. ``rendering passes: frame 3 of 10, about 0:42 left``."""
        if self.finished:
            return self.stage.value
        if self.stage is Stage.PASSES and not self._checked:
            return f"checking the backend at {', '.join(self.pool.backends)}"
        count = len(self.frames)
        if self.stage is Stage.PASSES:
            done = len(self._passes.skipped) + self._rendered
        elif self.stage is Stage.REFINE:
            done = int(self._refined)
        else:
            done = self._composited + (len(self._composite.skipped) if self._composite is not None else 0)
        text = f"{self.stage.value}: frame {min(count, done + 1)} of {count}"
        eta = self.eta()
        if eta is not None:
            minutes, seconds = divmod(round(eta), 60)
            text += f", about {minutes}:{seconds:02d} left"
        return text

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
            waiting = self.stage is Stage.REFINE or (self.stage is Stage.PASSES and not self._checked)
            self._drain_events(wait if waiting else 0.0)
            if self._cancel.is_set():
                self._stop(Stage.CANCELLED, ShotError("cancelled", CANCELLED_MESSAGE))
            elif self.stage is Stage.PASSES and self._checked:
                self._render_next_frame()
            elif self.stage is Stage.COMPOSITE:
                self._composite_next_frame()
        except ShotError as error:
            self._stop(Stage.FAILED, error)
        except ShotFolderError as error:
            self._stop(Stage.FAILED, ShotError("shot_folder", str(error)))
        except Exception as error:  # a Blender-side failure (render, disk): stop cleanly, name it
            self._stop(Stage.FAILED, ShotError("blender", f"{type(error).__name__}: {error}"))
        return not self.finished

    # ---- main-thread stages ----------------------------------------------------------------------

    def _render_next_frame(self) -> None:
        if self._rendered < len(self._passes.todo):
            frame = self._passes.todo[self._rendered]
            with _timed(self.result.seconds, "passes"):
                self._passes.render(frame)
            self._rendered += 1
            self.reporter.frame(frame)
        if self._rendered == len(self._passes.todo):
            self.reporter.finish()
            self.stage = Stage.REFINE
            self._refine_started = time.perf_counter()
            self._passes_done.set()  # the worker refines the shot

    def _composite_next_frame(self) -> None:
        if self._composite is None:
            self.result.seconds["refine"] = time.perf_counter() - self._refine_started
            self._composite = CompositeStage(self.scene, self.folder, self.frames, self.overwrite)
            self.result.skipped["composite"] = self._composite.skipped
            self.reporter.start("composite", len(self._composite.todo), len(self._composite.skipped))
        todo = self._composite.todo
        if self._composited < len(todo):
            frame = todo[self._composited]
            with _timed(self.result.seconds, "composite"):
                self._composite.render(frame)
            self._composited += 1
            self.reporter.frame(frame)
        if self._composited == len(todo):
            self.reporter.finish()
            self._say(f"composite written to {self.out_dir / 'composite'}")
            self._finish(Stage.DONE)

    def _drain_events(self, wait: float) -> None:
        """Handle what the worker sent: the refined shot or an error."""
        try:
            events = [self._events.get(timeout=wait) if wait > 0 else self._events.get_nowait()]
        except queue.Empty:
            return
        with contextlib.suppress(queue.Empty):
            while True:
                events.append(self._events.get_nowait())
        for kind, payload in events:
            if kind == "checked":
                self._checked = True
                self.status = Stage.PASSES.value
            elif kind == "refined":
                self._take_refined()
            elif kind == "error":
                raise payload

    def _take_refined(self) -> None:
        info = self.folder.info("refined")
        self.result.metrics = {f: dict(info[f].get("metrics", {})) for f in self.frames if f in info}
        seconds = sum(m.get("seconds", 0.0) for m in self.result.metrics.values())
        self.result.shot_metrics = shot_metrics(self.result.metrics, seconds)
        self.stage = Stage.COMPOSITE

    def _stop(self, stage: Stage, error: ShotError) -> None:
        self._cancel.set()
        self._passes_done.set()  # let a waiting worker end
        if self.stage is Stage.COMPOSITE:
            unwire(self.scene)  # never leave a half-composited shot wired
        self.error = error
        self.reporter.error(str(error))
        self._finish(stage)

    def _finish(self, stage: Stage) -> None:
        self._saved.restore(self.scene)
        self.stage = stage

    def _say(self, line: str) -> None:
        self.status = line
        self.report(line)

    # ---- worker thread ---------------------------------------------------------------------------

    def _refine(self) -> None:
        """Worker: check a backend answers, wait for the passes, refine the shot; events go to the main
        thread."""
        try:
            # fail fast, before rendering anything, when none answers (the pool's own checks wait longer)
            probe = BackendPool(list(self.pool.backends), self.pool.token, health_timeout=QUICK_CHECK_TIMEOUT)
            probe.release(probe.acquire())
            self._events.put(("checked", None))
            self._passes_done.wait()
            if self._cancel.is_set():
                return
            summary = refine_folder(
                self.folder,
                self.pool,
                self.frames,
                self.refine_settings,
                overwrite=self.overwrite,
                progress=self.reporter,
                cancelled=self._cancel.is_set,
                on_step=self._on_step,
            )
            self.result.skipped["refined"] = summary.skipped
            self.result.backends = summary.backends
            self._events.put(("refined", None))
        except NoBackend as error:
            self._events.put(("error", explain(error, ", ".join(self.pool.backends))))
        except RefineStageError as error:
            address = error.address or ", ".join(self.pool.backends)
            cause = BackendError(error.code, error.message)
            self._events.put(("error", explain(cause, address, error.frame)))

    def _on_step(self, step: int, steps: int, phase: str) -> None:
        done = self.reporter.done + len(self.result.skipped.get("refined", []))
        share = step / max(1, steps) if phase != "pti" else 1.0
        self._refined = done + share * self.refine_settings.segment
        if step == steps or step % max(1, steps // 10) == 0:
            self.status = f"refining the shot: {phase} step {step}/{steps}"


_running: list[ShotJob] = []  # the shot the add-on's Render operator is running (at most one)


def running_job() -> ShotJob | None:
    """The shot the Render operator is running; Render, Refined Preview and Restore Compositor wait for it."""
    return _running[0] if _running else None


def set_running(job: ShotJob | None) -> None:
    """Record ``job`` as the shot the Render operator runs (None: it ended)."""
    _running[:] = [job] if job is not None else []


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


class _Lines(io.StringIO):
    """A text stream that hands each line to a callback (progress lines → the job's report)."""

    def __init__(self, say: Report):
        self.say = say

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.say(line)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
