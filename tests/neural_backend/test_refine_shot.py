"""Shot-level refinement: joint inversion, motion term and reprojection, PTI, blending, preview, metrics.

The acceptance check of the issue: on a small generator and a synthetic moving shot, the temporal warp
error with shot inversion and the motion pass is at most half that of independent per-frame inversion,
at equal or better masked skin PSNR (the same comparison ``benchmarks/refine_temporal.py`` prints).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_rigstyle
from synthetic import synthetic_face, synthetic_shot
from temporal_compare import compare

from neural_backend.checkpoints.io import load_generator
from neural_backend.protocol.passes import RefinedFrame
from neural_backend.refine.alignment import feather
from neural_backend.refine.composite import BlendConfig
from neural_backend.refine.encoder import EncoderError, load_encoder, save_encoder, train_encoder
from neural_backend.refine.refiner import RefineConfig, RefineError, Refiner, ShotState, check_face
from neural_backend.stylegan2.builtin import builtin_generator

SIZE = 96  # frame size of the synthetic shots here


@pytest.fixture(scope="module")
def generator():
    return builtin_generator(32)


@pytest.fixture(scope="module")
def outcomes(generator):
    return compare(generator, synthetic_shot(6, size=128), steps=60, pti_steps=30)


def test_shot_inversion_with_motion_halves_the_temporal_error_at_equal_or_better_skin_psnr(outcomes):
    independent = outcomes["independent"].metrics
    with_motion = outcomes["shot+motion"].metrics
    assert with_motion["temporal_error"] <= 0.5 * independent["temporal_error"], (with_motion, independent)
    assert with_motion["skin_psnr"] >= independent["skin_psnr"], (with_motion, independent)


def test_each_stage_helps_shot_beats_independent_and_pti_fits_the_skin_closer(outcomes):
    m = {name: outcome.metrics for name, outcome in outcomes.items()}
    assert m["shot"]["temporal_error"] < m["independent"]["temporal_error"]
    assert m["shot+motion"]["temporal_error"] < m["shot"]["temporal_error"]
    assert m["shot"]["latent_drift"] < 0.5 * m["independent"]["latent_drift"]  # offsets stay small
    assert m["shot+motion+PTI"]["skin_psnr"] > m["shot+motion"]["skin_psnr"] + 0.5
    assert m["shot+motion+PTI"]["temporal_error"] <= 0.5 * m["independent"]["temporal_error"]


def test_every_frame_reports_the_metrics(outcomes):
    for outcome in outcomes.values():
        frames = outcome.frames
        assert [f.frame for f in frames] == list(range(6))
        for index, frame in enumerate(frames):
            assert {"skin_psnr", "seconds", "skin_loss_final", "steps"} <= set(frame.metrics)
            assert 10 < frame.metrics["skin_psnr"] < 60
            if index > 0:  # against the previous frame, through its motion pass
                assert frame.metrics["temporal_error"] >= 0 and frame.metrics["latent_drift"] >= 0
            else:
                assert "temporal_error" not in frame.metrics


def test_the_composite_keeps_cgi_skin_bit_for_bit_with_reprojection(outcomes):
    frames = synthetic_shot(6, size=128)
    for passes, refined in zip(frames, outcomes["shot+motion"].frames, strict=True):
        skin = torch.from_numpy(passes.region == 1).float()[None, None]
        solid = feather(skin, RefineConfig().blend.width_px)[0, 0].numpy() == 1.0
        assert solid.sum() > 300
        np.testing.assert_array_equal(refined.image[solid], passes.beauty[solid])


def test_gan_skin_uses_the_generator_s_skin(generator):
    passes = synthetic_face(0, size=SIZE, scale=SIZE / 256)
    config = RefineConfig(steps_first=2, blend=BlendConfig(gan_skin=1.0))
    refined = Refiner(generator, config).refine(passes, ShotState())
    skin = passes.region == 1
    changed = np.abs(refined.image - passes.beauty).max(-1) > 1e-4
    assert changed[skin].mean() > 0.9


def test_blend_width_sets_the_feather_inside_the_skin(generator):
    passes = synthetic_face(0, size=SIZE, scale=SIZE / 256)
    kept = {}
    for width in (1.0, 8.0):
        config = RefineConfig(steps_first=2, blend=BlendConfig(width_px=width))
        refined = Refiner(generator, config).refine(passes, ShotState())
        kept[width] = (refined.image == passes.beauty).all(-1)[passes.region == 1].sum()
    assert kept[8.0] < kept[1.0]


def test_progress_reports_every_step_of_inversion_and_pti(generator, tmp_path: Path):
    frames = synthetic_shot(3, size=SIZE)
    config = RefineConfig(shot_steps=5, pti_steps=3, pti_dir=tmp_path)
    steps: list[tuple[str, int, int]] = []
    results: list[RefinedFrame] = []
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    outcome = Refiner(generator, config).refine_shot(
        frames,
        pti=True,
        on_step=lambda phase, step, total, loss: steps.append((phase, step, total)),
        on_frame=results.append,
    )
    assert steps == [("invert", i, 5) for i in range(1, 6)] + [("pti", i, 3) for i in range(1, 4)]
    assert [r.frame for r in results] == outcome.frames == [0, 1, 2]
    assert outcome.metrics["frames"] == 3 and outcome.metrics["steps"] == 8
    # The tuned copy is saved per shot and loads; the shared generator is untouched.
    tuned = load_generator(tmp_path / "moving.safetensors")
    assert not all(torch.equal(tuned.state_dict()[k], before[k]) for k in before)
    assert all(torch.equal(v, before[k]) for k, v in generator.state_dict().items())


def test_a_shot_continues_from_its_previous_call(generator):
    frames = synthetic_shot(4, size=SIZE)
    refiner = Refiner(generator, RefineConfig(shot_steps=5))
    state = ShotState()
    refiner.refine_shot(frames[:2], state)
    second: list[RefinedFrame] = []
    refiner.refine_shot(frames[2:], state, on_frame=second.append)
    assert "temporal_error" in second[0].metrics and "latent_drift" in second[0].metrics
    assert state.previous is not None and state.previous.frame == 3


def test_preview_mode_runs_the_preview_steps_from_the_warm_start(generator):
    frames = synthetic_shot(2, size=SIZE)
    refiner = Refiner(generator, RefineConfig(steps_first=20, preview_steps=3))
    state = ShotState()
    refiner.refine(frames[0], state)
    preview = refiner.refine(frames[1], state, mode="preview")
    assert preview.metrics["steps"] == 3
    assert preview.metrics["skin_loss_warm"] < preview.metrics["skin_loss_init"]
    with pytest.raises(RefineError, match="mode"):
        refiner.refine(frames[1], state, mode="draft")  # type: ignore[arg-type]


def test_streaming_frames_use_the_motion_pass_and_report_the_temporal_error(generator):
    frames = synthetic_shot(3, size=SIZE)
    refiner = Refiner(generator, RefineConfig(steps_first=10, steps_warm=5))
    state = ShotState()
    results = [refiner.refine(passes, state) for passes in frames]
    assert "temporal_error" not in results[0].metrics
    assert all("temporal_error" in r.metrics for r in results[1:])


def test_bad_shots_are_refused_naming_the_problem(generator):
    frames = synthetic_shot(3, size=SIZE)
    refiner = Refiner(generator, RefineConfig(shot_steps=1))
    with pytest.raises(RefineError, match="at least one frame"):
        refiner.refine_shot([])
    with pytest.raises(RefineError, match="repeated"):
        refiner.refine_shot([frames[0], frames[0]])
    with pytest.raises(RefineError, match="in order"):
        refiner.refine_shot([frames[1], frames[0]])
    other = replace(frames[1], shot="other")
    with pytest.raises(RefineError, match="one shot"):
        refiner.refine_shot([frames[0], other])
    no_skin = replace(frames[2], region=np.where(frames[2].region == 1, 5, frames[2].region).astype(np.uint8))
    with pytest.raises(RefineError, match="frame 2: only"):
        refiner.refine_shot([frames[0], frames[1], no_skin])


def test_frames_without_a_motion_pass_still_refine_as_a_shot(generator):
    frames = [replace(p, extra={}) for p in synthetic_shot(3, size=SIZE)]
    results: list[RefinedFrame] = []
    Refiner(generator, RefineConfig(shot_steps=5)).refine_shot(frames, on_frame=results.append)
    assert all("temporal_error" not in r.metrics for r in results)
    assert all("latent_drift" in r.metrics for r in results[1:])


def test_preview_of_a_shot_s_first_frame_starts_from_the_encoder(generator, tmp_path: Path):
    encoder, _ = train_encoder(generator, steps=10, batch=4)
    passes = synthetic_shot(1, size=SIZE)[0]
    refiner = Refiner(generator, RefineConfig(preview_steps=0), encoder=encoder)
    preview = refiner.refine(passes, ShotState(), mode="preview")
    frame = refiner._prepare(passes, check_face(passes), None)
    with torch.no_grad():
        expected = refiner._skin_loss(encoder(frame.crop.target), frame.crop)
    assert preview.metrics["steps"] == 0
    assert preview.metrics["skin_loss_warm"] == pytest.approx(expected)
    assert preview.metrics["skin_loss_warm"] != preview.metrics["skin_loss_init"]
    # An encoder trained for another generator is refused by name, by the refiner and by `rigstyle serve`.
    other, _ = train_encoder(builtin_generator(16), steps=1, batch=2)
    save_encoder(other, tmp_path / "other.safetensors")
    with pytest.raises(EncoderError, match="resolution"):
        Refiner(generator, encoder=load_encoder(tmp_path / "other.safetensors"))
    other_encoder = str(tmp_path / "other.safetensors")
    served = run_rigstyle(
        "serve", "--checkpoint", "builtin-untrained", "--gan-resolution", "32", "--encoder", other_encoder
    )
    assert served.returncode == 2 and "resolution" in served.stderr, served.stderr


def test_the_backend_picks_the_perceptual_loss_from_what_it_has(generator, tmp_path: Path):
    from neural_backend.checkpoints.io import save_checkpoint
    from neural_backend.serving.engines.local import ServerConfig, load_engine
    from neural_backend.stylegan2 import Discriminator

    with_d, without_d = tmp_path / "g_d.safetensors", tmp_path / "g.safetensors"
    save_checkpoint(
        generator, with_d, Discriminator(c_dim=0, img_resolution=32, channel_base=512, channel_max=32)
    )
    save_checkpoint(generator, without_d)
    assert load_engine(ServerConfig(checkpoint=with_d)).describe()["perceptual"] == "discriminator"
    assert load_engine(ServerConfig(checkpoint=without_d)).describe()["perceptual"] == "ms-ssim"
    none = ServerConfig(checkpoint=without_d, refine=RefineConfig(perceptual="none"))
    assert load_engine(none).describe()["perceptual"] == "none"
