"""The refiner on CUDA fits a frame as well as on the CPU (skipped without a CUDA device)."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_face

from neural_backend.refine.refiner import Refiner, ShotState
from neural_backend.stylegan2.builtin import builtin_generator

pytestmark = pytest.mark.gpu


def test_cuda_refinement_matches_cpu_quality() -> None:
    passes = synthetic_face()
    on_cpu = Refiner(builtin_generator(), device="cpu").refine(passes, ShotState())
    on_gpu = Refiner(builtin_generator(), device="cuda").refine(passes, ShotState())
    assert on_gpu.metrics["skin_loss_final"] <= 0.1 * on_gpu.metrics["skin_loss_init"]
    assert abs(on_gpu.metrics["skin_loss_init"] - on_cpu.metrics["skin_loss_init"]) < 1e-3
    assert np.abs(on_gpu.image - on_cpu.image).mean() < 0.02
