"""Masked inversion of aligned crops into W+, jointly over the frames of a shot, and pivotal tuning.

The optimisation behind :mod:`neural_backend.refine.refiner`, on tensors only (no passes, no frames): every
frame is a :class:`CropFrame` in the generator's aligned crop space. A shot is fitted as one shared identity
latent plus per-frame W+ offsets; losses count skin pixels only, plus terms that keep what the generator
paints outside the skin still over time:

- ``outside``: outside the skin, each frame is pulled toward the shot's mean image (hair and background
  hold still in crop space, which the temporally smoothed alignment keeps locked to the head);
- ``temporal``: outside the skin and outside occlusions, each frame is pulled toward the previous frame's
  output, warped into this crop by Blender's exact motion vectors;
- ``offset`` and ``smooth``: per-frame offsets stay small and change slowly from frame to frame.

Noise is locked per shot: every frame uses the generator's constant noise buffers, never re-drawn.
Frames are processed in chunks (gradients accumulate over chunks, one optimiser step per pass over the
shot), so memory grows with the chunk, not with the shot.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..stylegan2 import Generator, assert_shape
from .losses import PerceptualLoss

# on_step(phase, step, steps, loss): called after every optimiser step; it may raise to stop the work.
StepCallback = Callable[[str, int, int, float], None]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the inversion's loss terms (the masked skin pixel loss has weight 1)."""

    perceptual: float = 0.0  # masked perceptual loss on the skin (see neural_backend.refine.losses)
    outside: float = 0.0  # outside-skin consistency with the shot's mean image
    temporal: float = 0.0  # outside-skin agreement with the previous frame, warped by the motion pass
    offset: float = 0.0  # mean squared per-frame offset from the shared latent
    smooth: float = 0.0  # mean squared change of the offset between consecutive frames

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value >= 0:
                raise ValueError(f"{name}: expected a loss weight >= 0, got {value}")


@dataclass
class CropFrame:
    """One frame of a shot in crop space: what the generator's output is compared with.

    ``previous_grid`` / ``previous_weight`` pull the previous frame's crop into this one (see
    ``motion.crop_flow``); they are None for a shot's first frame or when there is no motion pass.
    """

    target: torch.Tensor  # (1, 3, s, s) float, sRGB in [-1, 1]: the render
    skin: torch.Tensor  # (1, 1, s, s) float in [0, 1]: where the render is trusted
    previous_grid: torch.Tensor | None = None  # (1, s, s, 2) grid_sample grid into the previous crop
    previous_weight: torch.Tensor | None = None  # (1, 1, s, s) valid flow outside the skin, in [0, 1]


def masked_mse(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked pixels and all channels, per image.

    Args:
        image: (N, C, H, W) float.
        target: (N, C, H, W) float.
        mask: (N, 1, H, W) float weights in [0, 1].

    Returns:
        (N,) float: ``sum(mask * (image - target)^2) / (C * sum(mask))`` per image; 0 for an empty mask.
    """
    assert_shape(target, list(image.shape), "target")
    assert_shape(mask, [image.shape[0], 1, image.shape[2], image.shape[3]], "mask")
    total = (mask * (image - target).square()).sum(dim=(1, 2, 3))
    return total / (image.shape[1] * mask.sum(dim=(1, 2, 3)).clamp_min(1e-8))


def lr_schedule(t: float, rampup: float, rampdown: float) -> float:
    """Learning-rate factor at progress ``t`` in [0, 1): linear ramp-up, cosine ramp-down."""
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    factor = 0.5 - 0.5 * math.cos(down * math.pi)
    return factor * (min(1.0, t / rampup) if rampup > 0 else 1.0)


@dataclass(frozen=True)
class Schedule:
    """An Adam run: steps, peak learning rate and its ramps (fractions of the steps)."""

    steps: int
    lr: float
    rampup: float = 0.05
    rampdown: float = 0.25

    def factor(self, step: int) -> float:
        return lr_schedule(step / max(self.steps, 1), self.rampup, self.rampdown)


@dataclass
class ShotFit:
    """Latents of a shot's frames and the generator's outputs for them."""

    latents: torch.Tensor  # (T, num_ws, w_dim) fitted W+ per frame
    images: torch.Tensor  # (T, 3, s, s) float in [-1, 1]: the generator's output at ``latents``
    identity: torch.Tensor  # (1, num_ws, w_dim) the shared latent


def invert_shot(
    generator: Generator,
    frames: Sequence[CropFrame],
    start: torch.Tensor,
    schedule: Schedule,
    weights: LossWeights = LossWeights(),
    perceptual: PerceptualLoss | None = None,
    train_identity: bool = True,
    previous_image: torch.Tensor | None = None,
    chunk: int = 8,
    on_step: StepCallback | None = None,
) -> ShotFit:
    """Fit W+ latents ``identity + offset[t]`` to the skin of every frame of a shot.

    Args:
        generator: frozen generator (no weight gradients are taken).
        frames: the shot's frames in order.
        start: (1, num_ws, w_dim) the identity latent to start from (``w_avg``, or the previous frame's).
        schedule: steps and learning rate of the Adam run.
        weights: loss-term weights.
        perceptual: masked perceptual loss (used when ``weights.perceptual > 0``).
        train_identity: optimise the shared latent too (False: it stays at ``start``, and offsets are
            measured from it: the warm-started streaming case).
        previous_image: (1, 3, s, s) the previous frame's output before this shot (streaming): the target
            of the first frame's temporal term, and of the outside term for a one-frame shot.
        chunk: frames per forward/backward pass.
        on_step: progress callback, phase ``"invert"``.

    Returns:
        The fitted :class:`ShotFit`.
    """
    count = len(frames)
    if count == 0:
        raise ValueError("frames: a shot needs at least one frame")
    assert_shape(start, [1, generator.num_ws, generator.w_dim], "start")
    if chunk < 1:
        raise ValueError(f"chunk: expected at least 1 frame per pass, got {chunk}")
    identity = start.detach().clone().requires_grad_(train_identity)
    offsets = torch.zeros(count, *start.shape[1:], device=start.device, requires_grad=True)
    optimizer = torch.optim.Adam([identity, offsets] if train_identity else [offsets], lr=schedule.lr)
    with torch.no_grad():
        cache = synthesize(generator, identity.expand(count, -1, -1), chunk)  # latest output per frame
    for step in range(schedule.steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr * schedule.factor(step)
        optimizer.zero_grad(set_to_none=True)
        mean_image = _mean_image(cache, previous_image)
        total = 0.0
        for first in range(0, count, chunk):
            indices = range(first, min(first + chunk, count))
            latents = identity + offsets[first : indices.stop]
            images = generator.synthesis(latents, noise_mode="const", fused_modconv=False)
            loss = _frame_losses(
                images, frames, indices, cache, previous_image, mean_image, weights, perceptual
            )
            if first == 0:
                loss = loss + _offset_penalty(offsets, weights)
            loss.backward()
            total += float(loss.detach())
            cache[first : indices.stop] = images.detach()
        optimizer.step()
        if on_step is not None:
            on_step("invert", step + 1, schedule.steps, total)
    latents = (identity + offsets).detach()
    with torch.no_grad():
        images = synthesize(generator, latents, chunk)
    return ShotFit(latents=latents, images=images, identity=identity.detach())


def synthesize(generator: Generator, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """The generator's outputs (T, 3, s, s) for W+ ``latents``, ``chunk`` frames per pass (const noise)."""
    parts = [
        generator.synthesis(latents[i : i + chunk], noise_mode="const") for i in range(0, len(latents), chunk)
    ]
    return torch.cat(parts)


def _mean_image(cache: torch.Tensor, previous_image: torch.Tensor | None) -> torch.Tensor:
    """The image the outside term pulls toward: the shot's mean, or the previous output for one frame."""
    if len(cache) == 1 and previous_image is not None:
        return previous_image
    return cache.mean(dim=0, keepdim=True)


def _frame_losses(
    images: torch.Tensor,
    frames: Sequence[CropFrame],
    indices: range,
    cache: torch.Tensor,
    previous_image: torch.Tensor | None,
    mean_image: torch.Tensor,
    weights: LossWeights,
    perceptual: PerceptualLoss | None,
) -> torch.Tensor:
    """Sum over ``indices`` of each frame's loss, divided by the shot's frame count."""
    targets = torch.cat([frames[i].target for i in indices])
    skin = torch.cat([frames[i].skin for i in indices])
    loss = masked_mse(images, targets, skin)
    if weights.perceptual > 0 and perceptual is not None:
        loss = loss + weights.perceptual * perceptual(images, targets, skin)
    single = len(cache) == 1
    if weights.outside > 0 and (not single or previous_image is not None):
        loss = loss + weights.outside * masked_mse(images, mean_image.expand_as(images), 1 - skin)
    if weights.temporal > 0:
        loss = loss + weights.temporal * _temporal_losses(images, frames, indices, cache, previous_image)
    return loss.sum() / len(cache)


def _temporal_losses(
    images: torch.Tensor,
    frames: Sequence[CropFrame],
    indices: range,
    cache: torch.Tensor,
    previous_image: torch.Tensor | None,
) -> torch.Tensor:
    """(n,) per frame: masked MSE against the previous frame's output warped into this crop."""
    losses = []
    for row, i in enumerate(indices):
        frame = frames[i]
        if frame.previous_grid is None or frame.previous_weight is None:
            losses.append(images.new_zeros(()))
            continue
        if i > indices.start:
            previous = images[row - 1 : row].detach()
        elif i > 0:
            previous = cache[i - 1 : i]
        elif previous_image is not None:
            previous = previous_image
        else:
            losses.append(images.new_zeros(()))
            continue
        warped = F.grid_sample(previous, frame.previous_grid, mode="bilinear", align_corners=False)
        losses.append(masked_mse(images[row : row + 1], warped, frame.previous_weight)[0])
    return torch.stack(losses)


def _offset_penalty(offsets: torch.Tensor, weights: LossWeights) -> torch.Tensor:
    penalty = weights.offset * offsets.square().mean()
    if weights.smooth > 0 and len(offsets) > 1:
        penalty = penalty + weights.smooth * (offsets[1:] - offsets[:-1]).square().mean()
    return penalty


def tune_generator(
    generator: Generator,
    frames: Sequence[CropFrame],
    latents: torch.Tensor,
    schedule: Schedule,
    perceptual_weight: float = 0.0,
    perceptual: PerceptualLoss | None = None,
    locality: float = 1.0,
    chunk: int = 8,
    on_step: StepCallback | None = None,
) -> Generator:
    """Pivotal tuning (Roich et al. 2022): fine-tune a copy of the synthesis network around fixed pivots.

    The latents stay fixed; the copy's synthesis weights learn to match each frame's skin more closely,
    while a locality term keeps its output outside the skin where the original generator had it (so hair
    and background stay as the inversion found them, and stay as steady).

    Args:
        generator: the shot's generator; left unchanged.
        frames: the shot's frames.
        latents: (T, num_ws, w_dim) the pivots, one per frame.
        schedule: steps and learning rate (PTI uses about 3e-4).
        perceptual_weight: weight of the masked perceptual loss.
        perceptual: the perceptual loss.
        locality: weight of the outside-skin term against the original generator's output.
        chunk: frames per forward/backward pass.
        on_step: progress callback, phase ``"pti"``.

    Returns:
        The tuned copy, frozen, in eval mode.
    """
    assert_shape(latents, [len(frames), generator.num_ws, generator.w_dim], "latents")
    tuned = copy.deepcopy(generator).eval()
    tuned.requires_grad_(False)
    tuned.synthesis.requires_grad_(True)
    with torch.no_grad():
        before = synthesize(generator, latents, chunk)
    optimizer = torch.optim.Adam(list(tuned.synthesis.parameters()), lr=schedule.lr)
    count = len(frames)
    for step in range(schedule.steps):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr * schedule.factor(step)
        optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for first in range(0, count, chunk):
            indices = range(first, min(first + chunk, count))
            images = tuned.synthesis(latents[first : indices.stop], noise_mode="const", fused_modconv=False)
            targets = torch.cat([frames[i].target for i in indices])
            skin = torch.cat([frames[i].skin for i in indices])
            loss = masked_mse(images, targets, skin)
            if perceptual_weight > 0 and perceptual is not None:
                loss = loss + perceptual_weight * perceptual(images, targets, skin)
            if locality > 0:
                loss = loss + locality * masked_mse(images, before[first : indices.stop], 1 - skin)
            loss = loss.sum() / count
            loss.backward()
            total += float(loss.detach())
        optimizer.step()
        if on_step is not None:
            on_step("pti", step + 1, schedule.steps, total)
    return tuned.requires_grad_(False).eval()
