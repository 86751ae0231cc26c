"""Render a rig shot through the backend: passes per frame → refined frames → compositor → composite.

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

from neural_backend.client import Client
from neural_backend.color import srgb_from_linear

from .compositor import wire_refined_sequence
from .images import save_png, set_render_output
from .render_passes import render_frame_passes
from .rig_builder import RigObjects

Progress = Callable[[str], None]


@dataclass
class ShotResult:
    """What a shot render produced, for reports."""

    frames: list[int]
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def render_refined_shot(
    scene: bpy.types.Scene,
    objects: RigObjects,
    client: Client,
    frames: Sequence[int],
    out_dir: Path,
    shot: str,
    progress: Progress = print,
) -> ShotResult:
    """Render, refine and composite ``frames`` into ``out_dir`` (passes/, refined/, gan/, composite/).

    Raises:
        neural_backend.client.BackendError: the backend refused or failed a frame; no refined frame is
            written for it and the compositor is not wired.
    """
    result = ShotResult(frames=list(frames))
    for index, frame in enumerate(frames, start=1):
        with _timed(result.seconds, "passes"):
            passes = render_frame_passes(scene, objects, frame, shot, out_dir / "passes")
        with _timed(result.seconds, "refine"):
            refined = client.refine_frame(passes)
        save_png(out_dir / "refined" / f"frame_{frame:04d}.png", srgb_from_linear(refined.image))
        save_png(out_dir / "gan" / f"frame_{frame:04d}.png", np.clip(refined.gan, 0.0, 1.0))
        result.metrics[frame] = refined.metrics
        loss = refined.metrics
        progress(
            f"frame {frame} ({index}/{len(frames)}): skin loss {loss.get('skin_loss_init', float('nan')):.4f}"
            f" -> {loss.get('skin_loss_final', float('nan')):.4f}"
        )
    client.end_shot(shot)
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


@contextlib.contextmanager
def _timed(seconds: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``seconds[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - start
