"""Independent per-frame inversion vs shot inversion (± motion, ± PTI) on one synthetic moving shot.

Shared by ``tests/neural_backend/test_refine_shot.py`` (which asserts the acceptance bounds) and
``benchmarks/refine_temporal.py`` (which prints the table). Every variant gets the same optimisation budget
in frame-steps: independent inversion runs ``steps`` per frame; a shot runs ``steps`` joint steps over
all its frames.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from neural_backend.protocol.passes import FramePasses, RefinedFrame
from neural_backend.refine.framing import FFHQ, Alignment
from neural_backend.refine.inversion import LossWeights
from neural_backend.refine.refiner import RefineConfig, Refiner, ShotState, shot_metrics
from neural_backend.stylegan2 import Generator

VARIANTS = ("independent", "shot", "shot+motion", "shot+motion+PTI")


@dataclass(frozen=True)
class Outcome:
    name: str
    metrics: dict[str, float]  # shot_metrics(): skin_psnr, temporal_error, latent_drift, seconds_per_frame
    frames: list[RefinedFrame]


def variant_config(name: str, base: RefineConfig) -> RefineConfig:
    """The refiner settings of one variant; ``base`` holds the product defaults being tested."""
    no_motion = replace(base.weights, temporal=0.0)
    if name == "independent":  # every frame cold from w_avg, no smoothing, no temporal terms
        weights = LossWeights(perceptual=base.weights.perceptual)
        return replace(
            base, warm_start=False, align_alpha=1.0, weights=weights, blend=replace(base.blend, history=0.0)
        )
    if name == "shot":
        return replace(base, weights=no_motion, blend=replace(base.blend, history=0.0))
    if name == "shot+motion":
        return replace(base, pti=False)
    if name == "shot+motion+PTI":
        return replace(base, pti=True)
    raise ValueError(f"unknown variant {name!r}; expected one of {VARIANTS}")


def run_variant(
    name: str,
    generator: Generator,
    frames: list[FramePasses],
    base: RefineConfig,
    alignment: Alignment = FFHQ,
) -> Outcome:
    refiner = Refiner(generator, variant_config(name, base), alignment=alignment)
    started = time.perf_counter()
    if name == "independent":
        state = ShotState()  # carries only the previous frame, for measuring; nothing is fitted from it
        refined = [refiner.refine(passes, state) for passes in frames]
    else:
        refined = []
        refiner.refine_shot(frames, ShotState(), on_frame=refined.append)
    seconds = time.perf_counter() - started
    metrics = shot_metrics({f.frame: f.metrics for f in refined}, seconds)
    return Outcome(name, metrics, refined)


def compare(
    generator: Generator,
    frames: list[FramePasses],
    steps: int,
    pti_steps: int,
    base: RefineConfig | None = None,
    alignment: Alignment = FFHQ,
) -> dict[str, Outcome]:
    """Run every variant with ``steps`` per frame (independent) or per shot (joint)."""
    base = base if base is not None else RefineConfig()
    base = replace(base, steps_first=steps, shot_steps=steps, pti_steps=pti_steps)
    return {name: run_variant(name, generator, frames, base, alignment) for name in VARIANTS}
