"""Temporal stability: independent per-frame inversion vs shot inversion, with and without the motion pass.

A synthetic moving, talking face (translation, rotation, mouth opening, per-frame render noise, exact
motion pass) is refined four ways with the same optimisation budget (frame-steps), on the CPU, by the
generator given with ``--checkpoint`` (default: the built-in untrained one; ``builtin-face-prior`` for the
shipped face prior, at its own alignment unless ``--alignment`` says otherwise):

- independent:      every frame inverted on its own from w_avg (the baseline, as image-only methods do);
- shot:             one joint inversion: shared identity latent + small, smooth per-frame offsets,
                    outside-skin consistency with the shot's mean image, alignment smoothed over the shot;
- shot+motion:      plus the motion pass: the temporal term in the inversion and temporal reprojection in
                    the composite;
- shot+motion+PTI:  plus pivotal tuning of a copy of the generator for the shot.

Prints a table (masked skin PSNR of the generator vs the render, temporal warp error of the composite
outside the skin, latent drift, seconds per frame); the last line is
``temporal_ratio=<shot+motion error / independent error>`` (target: <= 0.5 at equal or better skin PSNR).

Usage: ``.venv/bin/python benchmarks/refine_temporal.py [--checkpoint builtin-face-prior] [--frames 8]
[--resolution 32] [--steps 60]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

# tests/ holds shared fixtures; the repository root goes first so that tests/neural_backend/ (a plain
# directory) cannot shadow the neural_backend package.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from synthetic import synthetic_shot  # noqa: E402
from temporal_compare import compare  # noqa: E402

from neural_backend.checkpoints.io import read_checkpoint  # noqa: E402
from neural_backend.checkpoints.names import UNTRAINED_NAME  # noqa: E402
from neural_backend.refine.framing import Alignment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frames in the shot")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels")
    parser.add_argument("--checkpoint", default=UNTRAINED_NAME, help="checkpoint file or built-in name")
    parser.add_argument("--alignment", help='"ffhq" or alignment JSON (default: the checkpoint\'s own)')
    parser.add_argument("--resolution", type=int, default=32, help="builtin-untrained resolution")
    parser.add_argument("--steps", type=int, default=60, help="steps per frame (independent) / per shot")
    parser.add_argument("--pti-steps", type=int, default=30, help="pivotal-tuning steps")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    frames = synthetic_shot(args.frames, size=args.size)
    checkpoint = read_checkpoint(args.checkpoint, untrained_resolution=args.resolution)
    alignment = Alignment.from_json(args.alignment) if args.alignment else checkpoint.alignment
    generator = checkpoint.generator
    outcomes = compare(generator, frames, args.steps, args.pti_steps, alignment=alignment)
    print(
        f"synthetic moving shot: {args.frames} frames {args.size}px, {checkpoint.name} "
        f"{generator.img_resolution}px, alignment {alignment.name}, "
        f"{args.steps} steps per frame (independent) or per shot (joint), PTI {args.pti_steps} steps"
    )
    header = ("variant", "skin PSNR dB", "temporal err", "vs indep", "drift", "s/frame")
    print("{:18s} {:>12s} {:>13s} {:>9s} {:>7s} {:>8s}".format(*header))
    baseline = outcomes["independent"].metrics["temporal_error"]
    for name, outcome in outcomes.items():
        m = outcome.metrics
        ratio = m["temporal_error"] / baseline
        print(
            f"{name:18s} {m['skin_psnr']:12.2f} {m['temporal_error']:13.6f} {ratio:9.3f} "
            f"{m['latent_drift']:7.3f} {m['seconds_per_frame']:8.2f}"
        )
    print(f"temporal_ratio={outcomes['shot+motion'].metrics['temporal_error'] / baseline:.3f}")


if __name__ == "__main__":
    main()
