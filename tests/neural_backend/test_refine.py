"""Refiner: masked W+ inversion with the built-in untrained generator on a synthetic CGI face sequence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import synthetic_face

from neural_backend.protocol.passes import FramePasses, RefinedFrame
from neural_backend.refine.alignment import feather, warp_to_frame
from neural_backend.refine.composite import head_area
from neural_backend.refine.framing import crop_matrix, ffhq_quad
from neural_backend.refine.refiner import RefineConfig, RefineError, Refiner, ShotState, masked_mse
from neural_backend.stylegan2.builtin import builtin_generator

SEQUENCE = [((0.0, 0.0), 0.0), ((2.0, -1.0), 1.5), ((4.0, -1.5), 3.0)]


@pytest.fixture(scope="module")
def refined_sequence() -> tuple[list[FramePasses], list[RefinedFrame], list[torch.Tensor]]:
    torch.set_num_threads(2)
    refiner = Refiner(builtin_generator())
    state = ShotState()
    frames, results, latents = [], [], []
    for index, (shift, angle) in enumerate(SEQUENCE):
        passes = synthetic_face(index, shift, angle)
        frames.append(passes)
        results.append(refiner.refine(passes, state))
        latents.append(state.latent.clone())
    return frames, results, latents


def test_each_frame_fits_the_skin_to_a_tenth_of_the_untrained_loss(refined_sequence):
    _, results, _ = refined_sequence
    for result in results:
        m = result.metrics
        assert m["skin_loss_final"] <= 0.1 * m["skin_loss_init"], m
        assert 0.05 < m["skin_fraction"] < 0.9, m


def test_later_frames_start_warm_from_the_previous_latent(refined_sequence):
    _, results, latents = refined_sequence
    first = results[0].metrics
    assert first["skin_loss_warm"] == first["skin_loss_init"]
    for result in results[1:]:
        assert result.metrics["skin_loss_warm"] < result.metrics["skin_loss_init"]
        assert result.metrics["steps"] == RefineConfig().steps_warm
    assert not torch.equal(latents[0], latents[1])


def test_output_shapes_and_dtypes(refined_sequence):
    frames, results, _ = refined_sequence
    size = builtin_generator().img_resolution
    for passes, result in zip(frames, results, strict=True):
        assert result.image.shape == passes.beauty.shape and result.image.dtype == np.float32
        assert result.gan.shape == (size, size, 3) and result.gan.dtype == np.float32
        assert 0.0 <= result.gan.min() and result.gan.max() <= 1.0
        assert np.isfinite(result.image).all()
        assert (result.shot, result.frame) == (passes.shot, passes.frame)
        assert all(isinstance(v, float) for v in result.metrics.values())


def test_composite_keeps_cgi_skin_and_paints_the_rest_of_the_crop(refined_sequence):
    frames, results, _ = refined_sequence
    passes, result = frames[0], results[0]
    skin = torch.from_numpy(passes.region == 1).float()[None, None]
    solid = feather(skin, RefineConfig().blend.width_px)[0, 0].numpy() == 1.0
    assert solid.sum() > 1000
    np.testing.assert_array_equal(result.image[solid], passes.beauty[solid])

    # Non-skin pixels inside the crop and near the head (hair, eyes, mouth, the background just around the
    # silhouette) are painted by the generator ...
    size = result.gan.shape[0]
    matrix = crop_matrix(ffhq_quad(passes.landmarks2d), size)
    _, coverage = warp_to_frame(torch.ones(1, 1, size, size), matrix, passes.size)
    coverage = coverage[0, 0].numpy()
    crop_side_px = float(np.hypot(matrix[0, 0], matrix[1, 0])) * size
    region = torch.from_numpy(passes.region).float()[None, None]
    near_head = head_area(region, RefineConfig().blend.surroundings, crop_side_px)[0, 0].numpy()
    non_skin_inside = (passes.region != 1) & (coverage == 1.0) & (near_head == 1.0)
    changed = np.abs(result.image - passes.beauty).max(-1) > 1e-3
    assert non_skin_inside.sum() > 1000
    assert changed[non_skin_inside].mean() > 0.9
    # ... and the frame outside the crop, and the background away from the head, are left alone.
    outside = (coverage == 0.0) | (near_head == 0.0)
    assert ((coverage > 0) & (near_head == 0.0)).sum() > 100  # some of the crop is left to the CGI
    np.testing.assert_array_equal(result.image[outside], passes.beauty[outside])


def test_surroundings_one_paints_the_whole_crop() -> None:
    region = torch.zeros(1, 1, 64, 64)
    region[..., 20:40, 20:40] = 1
    assert torch.equal(head_area(region, 1.0, 50.0), torch.ones_like(region))
    grown = head_area(region, 0.2, 50.0)[0, 0, 30]  # a 10 px margin, its outer two thirds a ramp
    assert grown[30] == 1 and grown[18] == 1 and grown[9] == 0 and grown[5] == 0
    assert 0 < grown[11] < grown[14] < grown[17] < 1


def test_masked_loss_ignores_pixels_outside_the_mask():
    image = torch.zeros(1, 3, 4, 4)
    target = torch.zeros(1, 3, 4, 4)
    target[..., :2, :] = 100.0
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:, :] = 1
    assert float(masked_mse(image, target, mask)) == 0.0
    target[..., 3, 3] = 2.0
    assert float(masked_mse(image, target, mask)) == pytest.approx(4.0 * 3 / (3 * 8))


def test_frame_without_skin_raises_refine_error():
    passes = synthetic_face()
    no_skin = np.where(passes.region == 1, 5, passes.region).astype(np.uint8)
    bare = FramePasses(
        shot="s",
        frame=7,
        beauty=passes.beauty,
        region=no_skin,
        landmarks2d=passes.landmarks2d,
        intrinsics=passes.intrinsics,
        extrinsics=passes.extrinsics,
    )
    refiner = Refiner(builtin_generator(resolution=16), RefineConfig(steps_first=1, steps_warm=1))
    with pytest.raises(RefineError, match="skin"):
        refiner.refine(bare, ShotState())


def test_frame_without_68_landmarks_raises_refine_error():
    passes = synthetic_face()
    few = FramePasses(
        shot="s",
        frame=0,
        beauty=passes.beauty,
        region=passes.region,
        landmarks2d=passes.landmarks2d[:5],
        intrinsics=passes.intrinsics,
        extrinsics=passes.extrinsics,
    )
    with pytest.raises(RefineError, match="68"):
        Refiner(builtin_generator(resolution=16)).refine(few, ShotState())
