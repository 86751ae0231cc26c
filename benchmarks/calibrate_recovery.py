"""How well ``rigstyle checkpoint calibrate`` recovers a generator's framing.

Calibrates the face prior as shipped (its stored alignment is the reference), then the same prior
re-framed to other known framings (its images resampled so that faces sit where an FFHQ generator, or a
zoomed and shifted one, would put them), and prints the framing found next to the true one with the error
(the larger of |log scale ratio| and the offset distance in crop sides).

Usage: ``.venv/bin/python benchmarks/calibrate_recovery.py [--checkpoint builtin-face-prior] [--frames 4]
[--steps 30]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from neural_backend.checkpoints.io import read_checkpoint  # noqa: E402
from neural_backend.refine.calibrate import alignment_error, calibrate, demo_frames  # noqa: E402
from neural_backend.refine.framing import FFHQ, Alignment  # noqa: E402
from neural_backend.stylegan2 import Generator, SynthesisNetwork  # noqa: E402


class ReframedSynthesis(SynthesisNetwork):
    """The original synthesis, its images resampled from framing ``source`` to framing ``target``."""

    source: Alignment
    target: Alignment

    def forward(self, ws: torch.Tensor, **kwargs: object) -> torch.Tensor:  # type: ignore[override]
        images = super().forward(ws, **kwargs)  # type: ignore[arg-type]
        n, _, size, _ = images.shape
        # target crop coordinate u_t in [0, 1] -> FFHQ-normalised u -> source crop coordinate
        u_t = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        per_axis = []
        for axis in (0, 1):
            u = 0.5 + self.target.offset[axis] + self.target.scale * (u_t - 0.5)
            per_axis.append((u - 0.5 - self.source.offset[axis]) / self.source.scale + 0.5)
        gy, gx = torch.meshgrid(per_axis[1], per_axis[0], indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)[None].expand(n, -1, -1, -1) * 2 - 1
        return F.grid_sample(
            images, grid.to(images), mode="bilinear", padding_mode="border", align_corners=False
        )


def reframed(generator: Generator, source: Alignment, target: Alignment) -> Generator:
    copy = Generator(**generator.init_kwargs)
    copy.load_state_dict(generator.state_dict())
    copy.synthesis.__class__ = ReframedSynthesis
    copy.synthesis.source, copy.synthesis.target = source, target
    return copy.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="builtin-face-prior")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = read_checkpoint(args.checkpoint)
    own = checkpoint.alignment
    frames = demo_frames(args.frames)
    shifted = Alignment("shifted", 0.9, (0.03, 0.05))
    cases = [
        ("as shipped (stored alignment)", checkpoint.generator, own),
        ("re-framed to ffhq", reframed(checkpoint.generator, own, FFHQ), FFHQ),
        ("re-framed to x0.9, (+0.03, +0.05)", reframed(checkpoint.generator, own, shifted), shifted),
    ]
    print(f"{checkpoint.name}: {args.frames} demo frames, {args.steps} inversion steps per candidate")
    for label, generator, truth in cases:
        started = time.perf_counter()
        found = calibrate(generator, frames, steps=args.steps)
        error = alignment_error(found.alignment, truth)
        got = found.alignment
        print(
            f"{label:36s} true x{truth.scale:.3f} ({truth.offset[0]:+.3f}, {truth.offset[1]:+.3f})  "
            f"found x{got.scale:.3f} ({got.offset[0]:+.3f}, {got.offset[1]:+.3f})  error {error:.3f}  "
            f"loss {found.loss:.5f} (ffhq {found.ffhq_loss:.5f})  "
            f"{len(found.candidates)} candidates, {time.perf_counter() - started:.0f} s"
        )


if __name__ == "__main__":
    main()
