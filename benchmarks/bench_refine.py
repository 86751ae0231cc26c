"""Cost of refining one frame vs one generator forward pass (the baseline), built-in generator on CPU.

Prints seconds for a forward pass, for a cold (first) frame, a warm frame and a preview-mode frame, and the
ratios refine/forward, so a change to the inversion loop shows up independent of the machine's speed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

# tests/ holds shared fixtures; the repository root goes first so that tests/neural_backend/ (a plain
# directory) cannot shadow the neural_backend package.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from synthetic import synthetic_face  # noqa: E402

from neural_backend.refine.refiner import Refiner, ShotState  # noqa: E402
from neural_backend.stylegan2.builtin import builtin_generator  # noqa: E402


def main() -> None:
    torch.set_num_threads(2)
    generator = builtin_generator()
    refiner = Refiner(generator)
    ws = generator.mapping.w_avg.reshape(1, 1, -1).repeat(1, generator.num_ws, 1)
    with torch.inference_mode():
        for _ in range(3):
            generator.synthesis(ws)  # warm-up
        start = time.perf_counter()
        for _ in range(20):
            generator.synthesis(ws)
        forward = (time.perf_counter() - start) / 20
    state = ShotState()
    cold = refiner.refine(synthetic_face(0), state).metrics
    warm = refiner.refine(synthetic_face(1, shift=(2.0, -1.0), angle_deg=1.5), state).metrics
    third = synthetic_face(2, shift=(3.0, -1.5), angle_deg=2.5)
    preview = refiner.refine(third, state, mode="preview").metrics
    print(f"generator {generator.img_resolution}px forward  {forward * 1e3:8.1f} ms")
    print(f"cold frame ({cold['steps']:.0f} steps)      {cold['seconds']:8.2f} s")
    print(f"warm frame ({warm['steps']:.0f} steps)      {warm['seconds']:8.2f} s")
    print(f"preview frame ({preview['steps']:.0f} steps)    {preview['seconds']:8.2f} s")
    print(f"ratio cold/forward = {cold['seconds'] / forward:.0f}")
    print(f"ratio warm/forward = {warm['seconds'] / forward:.0f}")
    print(f"ratio preview/warm = {preview['seconds'] / warm['seconds']:.2f}")


if __name__ == "__main__":
    main()
