"""The refine stage: a shot folder's passes → refined frames, over a pool of backends, resumable.

One implementation for ``rigstyle refine``, ``rigstyle render``, farm tasks and the Blender operator, so
they all give the same frames.

The shot is split into **segments** of consecutive frames (``segment`` frames each, counted over the whole
shot so every run splits it the same way). Each segment is one joint ``refine_shot`` on one backend,
continuing from the shot's saved state after the frame before it (``state/after_NNNN.npz``), so segment by
segment the shot refines exactly as it would in one piece on one backend with the same segments. A segment's
frames are written and recorded in the manifest only once the whole segment succeeded, together with the
state after its last frame: a shot stopped anywhere resumes at the first unfinished segment and gives
the same frames as a run that never stopped.

A shot keeps to one backend while that backend works. When it fails (connection lost, timeout, internal
error) the segment moves, with the saved state, to the next healthy backend of the pool; when the backend
is busy it waits or moves. A frame the backend rejects (no face, bad passes) fails the stage at once,
naming the frame. Torch-free: the add-on runs it inside Blender.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..client.pool import BackendPool, NoBackend
from ..client.results import BackendError, ProgressEvent
from ..images.color import srgb_from_linear
from ..images.png import write_png
from ..protocol.passes import RefinedFrame
from ..protocol.saved_state import SavedShotState
from ..protocol.wire import ERR_BUSY, ERR_CANCELLED, ERR_INTERNAL
from .progress import Progress
from .shot_folder import ShotFolder, ShotFolderError, segments

DEFAULT_SEGMENT = 16  # frames per joint refinement
STAGE = "refine"
DROP_TIMEOUT = 10.0  # seconds to wait for a backend to drop a failed segment's frames
BACKEND_FAILURES = ("unavailable", "timeout", ERR_INTERNAL)  # the backend's fault: move the shot


class RefineStageError(Exception):
    """The refine stage stopped; ``code`` is the backend's error code (or ``no_backend``, ``shot_folder``,
    ``cancelled``), ``frame`` the frame it is about when known. The message says what to do."""

    def __init__(self, code: str, message: str, frame: int | None = None, address: str | None = None):
        super().__init__(message)
        self.code, self.message, self.frame, self.address = code, message, frame, address


@dataclass(frozen=True)
class RefineSettings:
    segment: int = DEFAULT_SEGMENT  # frames per joint refinement (one backend call)
    frame_timeout: float = 120.0  # seconds per frame a backend may take for a segment
    pti: bool | None = None  # pivotal tuning (None: the backend's default)
    wait: float = 0.0  # seconds to wait for a backend when all are down or busy


@dataclass
class RefineSummary:
    """What a refine run did."""

    refined: list[int] = field(default_factory=list)  # frames refined now
    skipped: list[int] = field(default_factory=list)  # frames already finished
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # per frame refined now
    backends: dict[int, str] = field(default_factory=dict)  # frame -> the backend that refined it
    moves: int = 0  # times a segment moved to another backend after a failure


OnStep = Callable[[int, int, str], None]  # step, steps, phase


def refine_folder(
    folder: ShotFolder,
    pool: BackendPool,
    frames: Sequence[int] | None = None,
    settings: RefineSettings = RefineSettings(),
    overwrite: bool = False,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    on_step: OnStep | None = None,
) -> RefineSummary:
    """Refine ``frames`` of the shot in ``folder`` (all frames with passes when None); see the module doc.

    Raises:
        RefineStageError: a frame has no passes, a frame was rejected, no backend could take the work, or
            ``cancelled`` returned True. Frames of segments finished before that stay recorded.
    """
    report = progress if progress is not None else Progress(stream=io.StringIO())
    shot = folder.shot
    manifest = folder.read()
    passes_records = manifest["stages"]["passes"]
    wanted = sorted(set(frames)) if frames is not None else sorted(int(f) for f in passes_records)
    if shot is None or not wanted:
        raise RefineStageError("shot_folder", f"{folder.root}: no passes rendered yet; run the passes stage")
    missing = sorted(set(wanted) - set(folder.finished("passes", wanted)))
    if missing:
        raise RefineStageError(
            "shot_folder",
            f"frames {_frames_text(missing)} have no finished passes in {folder.root}; run the passes stage "
            "for them first",
            missing[0],
        )
    if overwrite:
        folder.forget("refined", wanted)
    passes_sha = {f: folder.output_sha256("passes", f, folder.passes_file(f)) or "" for f in wanted}

    def inputs(frame: int) -> dict[str, str]:
        return {"passes": passes_sha[frame]}

    done = set(folder.finished("refined", wanted, inputs))
    todo = [run for run in segments(wanted, settings.segment) if not set(run) <= done]
    summary = RefineSummary(skipped=sorted(done - {f for run in todo for f in run}))
    report.start(STAGE, sum(len(run) for run in todo), len(summary.skipped))
    address: str | None = None
    for run in todo:
        state = _state_before(folder, run[0])
        address = _refine_segment(
            folder, pool, shot, run, state, inputs, settings, address, summary, report, cancelled, on_step
        )
    report.finish()
    return summary


def _refine_segment(
    folder: ShotFolder,
    pool: BackendPool,
    shot: str,
    run: list[int],
    state: SavedShotState | None,
    inputs: Callable[[int], dict[str, str]],
    settings: RefineSettings,
    prefer: str | None,
    summary: RefineSummary,
    report: Progress,
    cancelled: Callable[[], bool] | None,
    on_step: OnStep | None,
) -> str:
    """Refine one segment, moving it between backends until one succeeds; returns that backend."""
    passes = [folder.load_passes(frame) for frame in run]
    last: tuple[str, BackendError] | None = None  # the last backend that failed or was busy, and why
    while True:
        _check_cancelled(cancelled)
        try:
            address = pool.acquire(prefer, settings.wait, cancelled)
        except NoBackend as error:
            _check_cancelled(cancelled)
            if last is not None:  # the cause people need: the failure that left no backend to move to
                raise RefineStageError(last[1].code, last[1].message, None, last[0]) from None
            raise RefineStageError(error.code, error.message, None, None) from None
        frame: int | None = None
        report.note(f"refining frames {_frames_text(run)} on {address}")
        client = pool.client(address, settings.frame_timeout)
        try:
            client.end_shot(shot)  # nothing left over from an earlier, failed attempt
            if state is not None:
                client.set_shot_state(state)
            for item in passes:
                frame = item.frame
                client.add_frame(item)
            frame = None
            result = client.refine_held_shot(
                shot,
                settings.frame_timeout * len(run),
                on_progress=_step_reporter(on_step),
                pti=settings.pti,
                cancelled=cancelled,
                return_state=True,
            )
        except BackendError as error:
            if error.code not in BACKEND_FAILURES:  # the backend is there: drop what it holds of the shot
                with contextlib.suppress(BackendError):
                    client.end_shot(shot, timeout=DROP_TIMEOUT)
            if error.code == ERR_CANCELLED or (cancelled is not None and cancelled()):
                raise RefineStageError(ERR_CANCELLED, "cancelled; finished segments stay recorded") from None
            last = (address, error)
            if error.code in BACKEND_FAILURES:
                pool.fail(address, error.message)
                report.note(f"backend {address} failed on frames {_frames_text(run)} ({error.message}); "
                            "moving the shot with its saved state")  # fmt: skip
                summary.moves += 1
                prefer = None
                continue
            if error.code == ERR_BUSY:
                pool.backoff(address, error.message)
                report.note(f"backend {address} is busy ({error.message}); trying again")
                prefer = None
                continue
            where = f"frame {frame}" if frame is not None else f"frames {_frames_text(run)}"
            raise RefineStageError(
                error.code, f"the backend at {address} rejected {where}: {error.message}", frame, address
            ) from None
        finally:
            client.close()
            pool.release(address)
        _write_segment(folder, run, result.frames, result.state, inputs, address, summary, report)
        return address


def _write_segment(
    folder: ShotFolder,
    run: list[int],
    refined: list[RefinedFrame],
    state: SavedShotState | None,
    inputs: Callable[[int], dict[str, str]],
    address: str,
    summary: RefineSummary,
    report: Progress,
) -> None:
    by_frame = {frame.frame: frame for frame in refined}
    if sorted(by_frame) != run or state is None or state.frame != run[-1]:
        got = f"frames {sorted(by_frame)}, state after {None if state is None else state.frame}"
        raise RefineStageError("bad_reply", f"the backend at {address} answered {got} for frames {run}")
    state.save(folder.state_file(run[-1]))
    for frame in run:
        result = by_frame[frame]
        write_png(folder.refined_file(frame), srgb_from_linear(result.image))
        write_png(folder.gan_file(frame), np.clip(result.gan, 0.0, 1.0))
    for frame in run:  # recorded only once the whole segment and its state are on disk
        outputs = [folder.refined_file(frame), folder.gan_file(frame)]
        if frame == run[-1]:
            outputs.append(folder.state_file(frame))
        info = {"backend": address, "segment": [run[0], run[-1]], "metrics": by_frame[frame].metrics}
        folder.record("refined", frame, outputs, inputs(frame), info)
        summary.refined.append(frame)
        summary.metrics[frame] = by_frame[frame].metrics
        summary.backends[frame] = address
        report.frame(frame)


def _state_before(folder: ShotFolder, frame: int) -> SavedShotState | None:
    """The shot's saved state after ``frame - 1`` when that frame is refined, else None (a fresh start)."""
    if not folder.finished("refined", [frame - 1]):
        return None
    path = folder.state_file(frame - 1)
    if not path.exists():
        return None  # frame - 1 ended a run of frames that was refined in a different split
    try:
        return SavedShotState.load(path)
    except ValueError as exc:
        raise RefineStageError("shot_folder", f"{exc}; use --overwrite to refine the shot again") from None


def _step_reporter(on_step: OnStep | None) -> Callable[[ProgressEvent], None] | None:
    if on_step is None:
        return None

    def report(event: ProgressEvent) -> None:
        if event.stage == "step":
            fields = event.fields
            on_step(int(fields.get("step", 0)), int(fields.get("steps", 1)), str(fields.get("phase", "")))

    return report


def _check_cancelled(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise RefineStageError(ERR_CANCELLED, "cancelled; finished segments stay recorded")


def _frames_text(frames: Sequence[int]) -> str:
    runs = segments(frames, len(frames) or 1)
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


__all__ = ["RefineSettings", "RefineStageError", "RefineSummary", "ShotFolderError", "refine_folder"]
