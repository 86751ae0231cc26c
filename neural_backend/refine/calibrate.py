"""Find how an unknown generator frames faces: the alignment that lets it fit rendered skin best.

A face generator reproduces a face's skin well only when the crop puts eyes, nose and mouth where its
training images had them. :func:`calibrate` renders the demo head (pyrender, no Blender) in a few
expressions and head turns, crops each frame with candidate alignments (the FFHQ square scaled and moved,
:class:`~neural_backend.refine.framing.Alignment`), inverts the generator into the skin of each crop from
``w_avg`` for a fixed number of steps, and keeps the candidate with the lowest mean skin loss: a coarse
search over scale and vertical offset, then a pattern search over scale and both offsets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from rigs import demo_head

from ..protocol.passes import FramePasses
from ..stylegan2 import Generator
from .framing import FFHQ, Alignment
from .inversion import LossWeights
from .refiner import RefineConfig, Refiner, ShotState

COARSE_SCALES = (0.6, 0.7, 0.8, 0.9, 1.0, 1.15, 1.3)
COARSE_OFFSETS_Y = (-0.08, -0.04, 0.0, 0.04, 0.08)
# Demo-head frames: (expression name -> weight, head yaw in radians, pitch)
DEMO_POSES: tuple[tuple[dict[str, float], float, float], ...] = (
    ({}, 0.0, 0.0),
    ({"smile": 0.8}, 0.25, 0.0),
    ({"jaw_open": 0.6, "brow_raise": 0.5}, -0.2, 0.1),
    ({"frown": 0.6, "blink": 0.3}, 0.1, -0.1),
)


@dataclass(frozen=True)
class Candidate:
    alignment: Alignment
    loss: float  # mean skin MSE after the inversion, over the frames


@dataclass(frozen=True)
class Calibration:
    """The best framing found, how it compares with ffhq, and every candidate tried."""

    alignment: Alignment
    loss: float
    ffhq_loss: float
    candidates: tuple[Candidate, ...]


def demo_frames(count: int = len(DEMO_POSES), size: int = 256) -> list[FramePasses]:
    """The demo head rendered (beauty, region, landmarks) in ``count`` expressions and head turns."""
    from .param_render import render_passes

    rig = demo_head()
    focal = 50.0 / 36.0 * size
    intrinsics = np.array([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])
    rest = rig.forward().landmarks
    centre = rest.mean(axis=0)
    extent = float(np.ptp(rest[:, 1]))  # chin to brow, metres
    distance = focal * extent / (0.3 * size)  # the face spans ~30% of the frame height
    extrinsics = np.diag([1.0, -1.0, -1.0, 1.0])  # looks down world -Z at the face, which faces +Z
    extrinsics[:3, 3] = -extrinsics[:3, :3] @ (centre + [0.0, 0.0, distance])
    frames = []
    for index, (weights, yaw, pitch) in enumerate(DEMO_POSES[:count]):
        expression = np.zeros(rig.num_expressions)
        for name, value in weights.items():
            expression[rig.expression_names.index(name)] = value
        pose = np.zeros((rig.num_joints, 3))
        pose[rig.joint_names.index("neck")] = [pitch, yaw, 0.0]
        params = {"expression": expression, "pose": pose}
        frames.append(
            render_passes(rig, params, intrinsics, extrinsics, (size, size), "calibrate", index + 1)
        )
    return frames


def fit_loss(refiner: Refiner, frames: Sequence[FramePasses], alignment: Alignment) -> float:
    """Mean skin MSE after inverting ``refiner``'s generator into each frame cropped with ``alignment``."""
    refiner.alignment = alignment
    losses = [refiner.refine(passes, ShotState()).metrics["skin_loss_final"] for passes in frames]
    return float(np.mean(losses))


def calibrate(
    generator: Generator,
    frames: Sequence[FramePasses],
    steps: int = 30,
    name: str = "calibrated",
    on_candidate: Callable[[Candidate], None] | None = None,
    tolerance: float = 0.01,
) -> Calibration:
    """Search the alignment (scale, offset) with the lowest mean skin loss for ``generator``.

    Args:
        generator: the generator to calibrate (any resolution).
        frames: rendered frames with skin regions and 68 landmarks (e.g. :func:`demo_frames`).
        steps: inversion steps per frame and candidate (cold start at ``w_avg``).
        name: the name of the alignment returned.
        on_candidate: called with every evaluated candidate (progress).
        tolerance: the pattern search stops when its step in scale and offset is below this.
    """
    config = RefineConfig(
        steps_first=steps,
        warm_start=False,
        perceptual="none",
        weights=LossWeights(perceptual=0.0),
        min_skin_pixels=1.0,
    )
    refiner = Refiner(generator, config)
    seen: dict[tuple[float, float, float], Candidate] = {}

    def evaluate(scale: float, dx: float, dy: float) -> Candidate:
        key = (round(scale, 4), round(dx, 4), round(dy, 4))
        if key not in seen:
            alignment = Alignment(name, key[0], (key[1], key[2]))
            with torch.random.fork_rng(devices=[]):
                candidate = Candidate(alignment, fit_loss(refiner, frames, alignment))
            seen[key] = candidate
            if on_candidate is not None:
                on_candidate(candidate)
        return seen[key]

    ffhq = evaluate(1.0, 0.0, 0.0)
    best = min((evaluate(s, 0.0, 0.0) for s in COARSE_SCALES), key=lambda c: c.loss)
    scale = best.alignment.scale
    best = min((evaluate(scale, 0.0, dy) for dy in COARSE_OFFSETS_Y), key=lambda c: c.loss)
    step = [0.05 * scale, 0.02, 0.02]  # scale, dx, dy
    while max(step[0] / max(best.alignment.scale, 1e-6), step[1], step[2]) >= tolerance:
        improved = False
        for axis in range(3):
            for sign in (-1.0, 1.0):
                values = [best.alignment.scale, *best.alignment.offset]
                values[axis] += sign * step[axis]
                if not (0.25 <= values[0] <= 4.0 and all(abs(v) <= 1.0 for v in values[1:])):
                    continue
                trial = evaluate(*values)
                if trial.loss < best.loss:
                    best, improved = trial, True
        if not improved:
            step = [s / 2 for s in step]
    chosen = replace(best.alignment, name=name)
    return Calibration(chosen, best.loss, ffhq.loss, tuple(seen.values()))


def alignment_error(found: Alignment, expected: Alignment) -> float:
    """How far two framings are apart: the larger of the relative scale error and the offset distance."""
    scale_error = abs(math.log(found.scale / expected.scale))
    offset_error = float(np.hypot(found.offset[0] - expected.offset[0], found.offset[1] - expected.offset[1]))
    return max(scale_error, offset_error)


__all__ = ["FFHQ", "Calibration", "Candidate", "alignment_error", "calibrate", "demo_frames", "fit_loss"]
