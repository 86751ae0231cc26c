"""Render a rig shot through the backend: passes per frame → refined frames → compositor → composite.

Final quality: each frame's passes (with the motion pass) are uploaded as soon as they are rendered, then
the backend refines the whole shot jointly and streams the refined frames back.

The one implementation behind headless jobs (and, later, the GUI operator). It blocks: in background mode
Blender's timers never fire, so nothing here waits on them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bpy
import numpy as np

from neural_backend.client import Client, ProgressEvent
from neural_backend.color import srgb_from_linear
from neural_backend.passes import RefinedFrame

from .compositor import wire_refined_sequence
from .images import save_png, set_render_output
from .render_passes import render_frame_passes
from .rig_builder import RigObjects

Progress = Callable[[str], None]


@dataclass
class ShotResult:
    """What a shot render produced, for reports."""

    frames: list[int]
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)  # per frame, from the backend
    shot_metrics: dict[str, float] = field(default_factory=dict)  # the shot's means, from the backend
    seconds: dict[str, float] = field(default_factory=dict)


def render_refined_shot(
    scene: bpy.types.Scene,
    objects: RigObjects,
    client: Client,
    frames: Sequence[int],
    out_dir: Path,
    shot: str,
    progress: Progress = print,
    frame_timeout: float = 120.0,
) -> ShotResult:
    """Render, refine and composite ``frames`` into ``out_dir`` (passes/, refined/, gan/, composite/).

    Raises:
        neural_backend.client.BackendError: the backend refused or failed a frame or the shot; no refined
            frame is written for a failed shot and the compositor is not wired.
    """
    result = ShotResult(frames=list(frames))
    client.end_shot(shot)  # a fresh shot: no state or held frames from an earlier attempt
    for index, frame in enumerate(frames, start=1):
        with _timed(result.seconds, "passes"):
            passes = render_frame_passes(scene, objects, frame, shot, out_dir / "passes")
        with _timed(result.seconds, "upload"):
            client.add_frame(passes)
        progress(f"passes of frame {frame} ({index}/{len(frames)}) rendered and sent")

    def write(refined: RefinedFrame) -> None:
        save_png(out_dir / "refined" / f"frame_{refined.frame:04d}.png", srgb_from_linear(refined.image))
        save_png(out_dir / "gan" / f"frame_{refined.frame:04d}.png", np.clip(refined.gan, 0.0, 1.0))
        result.metrics[refined.frame] = refined.metrics
        m = refined.metrics
        temporal = f", temporal error {m['temporal_error']:.5f}" if "temporal_error" in m else ""
        progress(
            f"frame {refined.frame} refined: skin PSNR {m.get('skin_psnr', float('nan')):.1f} dB{temporal}"
        )

    with _timed(result.seconds, "refine"):
        refined_shot = client.refine_held_shot(
            shot, frame_timeout * len(frames), on_result=write, on_progress=_step_reporter(progress)
        )
    result.shot_metrics = refined_shot.metrics
    with _timed(result.seconds, "composite"):
        composite_shot(scene, out_dir, frames)
    progress(f"composite written to {out_dir / 'composite'}")
    return result


def composite_shot(scene: bpy.types.Scene, out_dir: Path, frames: Sequence[int]) -> None:
    """Wire ``out_dir/refined`` into the compositor and render ``out_dir/composite/frame_NNNN.png``.

    The compositor has no Render Layers node, so Blender composites without re-rendering the scene.
    """
    first, last = min(frames), max(frames)
    wire_refined_sequence(scene, out_dir / "refined" / f"frame_{first:04d}.png", first, last - first + 1)
    set_render_output(scene, str(out_dir / "composite" / "frame_####"), "PNG", "8")
    saved_range = scene.frame_start, scene.frame_end
    try:
        for frame in frames:
            scene.frame_start = scene.frame_end = frame
            bpy.ops.render.render(animation=True)
    finally:
        scene.frame_start, scene.frame_end = saved_range


def _step_reporter(progress: Progress) -> Callable[[ProgressEvent], None]:
    """Report optimisation progress about every tenth of each phase."""

    def report(event: ProgressEvent) -> None:
        if event.stage != "step":
            return
        step, steps = int(event.fields.get("step", 0)), max(1, int(event.fields.get("steps", 1)))
        if step == steps or step % max(1, steps // 10) == 0:
            progress(f"refining the shot: {event.fields.get('phase')} step {step}/{steps}")

    return report


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
