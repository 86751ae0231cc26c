"""Latent directions from the rig (StyleRig's idea, without training data): what an expression control does
to the generator's W+ latent, measured by inverting renders of the rig with and without it.

For each control (an emotion or action unit of ``rigs.expression``) the rig is rendered at a few base poses
(head yaws :data:`YAWS`) at rest and again with the control's expression offset at intensity 1. All renders
are inverted together with the shot machinery (one shared identity latent, an offset per render; only the
offsets' size is regularised, see :data:`OFFSET_WEIGHT`), so the identity cancels in each pair's
difference; the differences are averaged into the control's direction: the W+ change per unit of the
control. How well the pairs agree (their mean cosine) says how much the direction is the control's rather
than noise.

``latent_edit.LatentEdit`` applies them to a shot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rigs import Rig
from rigs.expression import ACTION_UNITS, EMOTIONS, action_unit_offset, emotion_offset

from ..protocol.passes import FramePasses
from .inversion import LossWeights
from .latent_edit import DirectionError
from .refiner import Refiner

YAWS = (-0.15, 0.0, 0.15)  # radians of the root joint about the vertical: the base poses averaged over
RENDER_SIZE = 256  # pixels of the square renders that are inverted
# The measuring inversion's only regulariser: the per-render offsets' size. No outside-skin or temporal
# terms (they pull the renders' latents together and shrink the differences to a few % of the rig's change).
# Measured on the face prior, held-out yaw (benchmarks/latent_directions.py's "gain" and "corr"): 0 gives
# the largest but noisiest directions (consistency 0.55-0.64, most change outside the skin); 0.5 the
# steadiest but a third smaller; 0.1 the best agreement with the rig's change (corr 0.59-0.66).
OFFSET_WEIGHT = 0.1


@dataclass(frozen=True)
class RigDirections:
    """W+ directions of a rig's expression controls for one generator."""

    controls: tuple[str, ...]
    vectors: torch.Tensor  # (C, num_ws, w_dim): the W+ change per unit of each control
    consistency: tuple[float, ...]  # per control: mean cosine between its base poses' differences

    def vector(self, control: str) -> torch.Tensor:
        if control not in self.controls:
            raise DirectionError(f"direction: unknown control {control!r}; measured: {list(self.controls)}")
        return self.vectors[self.controls.index(control)]


def control_offset(rig: Rig, control: str) -> dict[str, np.ndarray]:
    """The rest parameters with ``control`` (an emotion or action unit) at intensity 1."""
    rest = rest_params(rig)
    if control in EMOTIONS:
        return emotion_offset(rig, control, 1.0).apply(rest)
    if control in ACTION_UNITS:
        return action_unit_offset(rig, {control: 1.0}).apply(rest)
    raise DirectionError(
        f"direction: unknown control {control!r}; known: {', '.join([*EMOTIONS, *ACTION_UNITS])}"
    )


def rest_params(rig: Rig, yaw: float = 0.0) -> dict[str, np.ndarray]:
    pose = np.zeros((rig.num_joints, 3))
    pose[0, 1] = yaw
    return {"expression": np.zeros(rig.num_expressions), "pose": pose}


def direction_renders(rig: Rig, controls: Sequence[str], yaws: Sequence[float] = YAWS) -> list[FramePasses]:
    """The renders a measurement inverts: per yaw the rig at rest, then with each control (frame numbers
    two apart, so no temporal link joins them)."""
    from .param_render import front_camera, render_passes  # pyrender (EGL) only when measuring

    intrinsics, extrinsics = front_camera(rig, RENDER_SIZE)
    renders: list[FramePasses] = []
    for yaw in yaws:
        base = rest_params(rig, yaw)
        variants = [base] + [_with_yaw(control_offset(rig, c), yaw) for c in controls]
        for params in variants:
            frame = 2 * len(renders)
            size = (RENDER_SIZE, RENDER_SIZE)
            renders.append(render_passes(rig, params, intrinsics, extrinsics, size, "directions", frame))
    return renders


def _with_yaw(params: dict[str, np.ndarray], yaw: float) -> dict[str, np.ndarray]:
    pose = params["pose"].copy()
    pose[0, 1] = yaw
    return {**params, "pose": pose}


def directions_from_latents(latents: torch.Tensor, controls: Sequence[str], yaws: int) -> RigDirections:
    """Directions from the inverted renders' latents, ordered as :func:`direction_renders` makes them."""
    count = len(controls)
    grouped = latents.reshape(yaws, count + 1, *latents.shape[1:])
    differences = grouped[:, 1:] - grouped[:, :1]  # (yaws, C, num_ws, w_dim)
    vectors = differences.mean(dim=0)
    consistency = []
    for c in range(count):
        flat = differences[:, c].reshape(yaws, -1)
        unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
        cosines = unit @ unit.T
        pairs = yaws * (yaws - 1)
        consistency.append(float((cosines.sum() - cosines.diagonal().sum()) / pairs) if pairs else 1.0)
    return RigDirections(tuple(controls), vectors, tuple(consistency))


def measure_directions(
    refiner: Refiner, rig: Rig, controls: Sequence[str], yaws: Sequence[float] = YAWS
) -> RigDirections:
    """Render, invert and difference (see the module docstring) with ``refiner``'s generator.

    Raises:
        DirectionError: an unknown control, or no control.
    """
    controls = tuple(controls)
    if not controls:
        raise DirectionError("direction: no controls to measure")
    for control in controls:
        control_offset(rig, control)  # unknown ones fail before any rendering
    renders = direction_renders(rig, controls, yaws)
    weights = LossWeights(perceptual=refiner.config.weights.perceptual, offset=OFFSET_WEIGHT)
    latents = refiner.invert_frames(renders, weights)
    return directions_from_latents(latents.cpu(), controls, len(yaws))
