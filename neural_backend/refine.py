"""Per-frame refinement, walking-skeleton version of *Rendering with Style* (Chandran et al. 2021).

For each frame: align the face to the generator's FFHQ crop from the landmarks, invert the skin pixels of
the CGI render into W+ by masked optimisation (warm-started from the previous frame of the same shot), then
composite at frame resolution: CGI skin kept, the generator paints everything else inside the crop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .alignment import (
    crop_matrix,
    feather,
    ffhq_quad,
    warp_to_crop,
    warp_to_frame,
)
from .color import linear_from_srgb, srgb_from_linear
from .passes import FramePasses, RefinedFrame
from .stylegan2 import Generator, assert_shape

SKIN_LABEL = 1  # region label of skin, see passes / DESIGN.md


class RefineError(ValueError):
    """A frame that cannot be refined (no usable face or skin in it)."""


@dataclass(frozen=True)
class RefineConfig:
    """How hard and how fast to fit each frame. Defaults suit the built-in 64 px generator on a CPU."""

    steps_first: int = 100  # optimisation steps for a shot's first frame (cold start at w_avg)
    steps_warm: int = 40  # steps for later frames (warm start from the previous frame's latent)
    lr: float = 0.1  # Adam peak learning rate on the W+ latent for a shot's first frame
    lr_warm: float = 0.02  # peak learning rate for warm starts: small steps keep latents (and frames) steady
    lr_rampup: float = 0.05  # fraction of the steps spent ramping the learning rate up from 0
    lr_rampdown: float = 0.25  # fraction of the steps spent ramping it back down to 0 (cosine)
    feather_px: float = 4.0  # skin-mask feather width at frame resolution
    crop_feather: float = 0.08  # crop-border blend width, as a fraction of the crop's side in the frame
    min_skin_pixels: float = 16.0  # fewer skin pixels than this inside the crop -> RefineError
    antialias: bool = True  # box-filter the frame before cropping when the crop is >= 2x smaller

    def __post_init__(self) -> None:
        for name in ("steps_first", "steps_warm"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a step count >= 0, got {getattr(self, name)}")
        for name in ("lr", "lr_warm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive learning rate, got {getattr(self, name)}")
        for name in ("lr_rampup", "lr_rampdown", "crop_feather"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a fraction in [0, 1], got {getattr(self, name)}")
        if self.feather_px < 0:
            raise ValueError(f"feather_px: expected a width >= 0, got {self.feather_px}")


@dataclass
class ShotState:
    """What carries over between consecutive frames of one shot."""

    latent: torch.Tensor | None = None  # W+ (1, num_ws, w_dim) of the previous frame, per shot


def masked_mse(image: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked pixels and all channels.

    Args:
        image: (N, C, H, W) float.
        target: (N, C, H, W) float.
        mask: (N, 1, H, W) float weights in [0, 1].

    Returns:
        () float: ``sum(mask * (image - target)^2) / (C * sum(mask))``.
    """
    assert_shape(target, list(image.shape), "target")
    assert_shape(mask, [image.shape[0], 1, image.shape[2], image.shape[3]], "mask")
    return (mask * (image - target).square()).sum() / (image.shape[1] * mask.sum().clamp_min(1e-8))


def lr_schedule(t: float, rampup: float, rampdown: float) -> float:
    """Learning-rate factor at progress ``t`` in [0, 1): linear ramp-up, cosine ramp-down."""
    down = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    factor = 0.5 - 0.5 * math.cos(down * math.pi)
    return factor * (min(1.0, t / rampup) if rampup > 0 else 1.0)


class Refiner:
    """Refines frames with one generator; keep one :class:`ShotState` per shot and pass it to every call."""

    def __init__(
        self, generator: Generator, config: RefineConfig = RefineConfig(), device: str | torch.device = "cpu"
    ):
        self.device = torch.device(device)
        # Frozen: only the latent is optimised, and no weight gradients are ever needed.
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.config = config

    def refine(self, passes: FramePasses, state: ShotState) -> RefinedFrame:
        """Refine one frame; updates ``state.latent`` to this frame's fitted latent.

        Metrics (all floats): ``skin_loss_init`` (masked skin loss of the generator at ``w_avg``, the
        un-fitted reference), ``skin_loss_warm`` (at the starting latent; equals init on a shot's first
        frame), ``skin_loss_final`` (at the returned latent), ``steps``, ``seconds`` (wall clock for this
        call) and ``skin_fraction`` (share of crop pixels that are skin). Losses are mean squared errors in
        the generator's [-1, 1] sRGB space.

        Raises:
            RefineError: no 68-point landmarks, degenerate landmarks, or no skin inside the crop.
        """
        start_time = time.perf_counter()
        cfg = self.config
        G = self.generator
        size = G.img_resolution
        where = f"shot {passes.shot!r} frame {passes.frame}"
        if passes.landmarks2d.shape != (68, 2):
            shape = list(passes.landmarks2d.shape)
            raise RefineError(f"{where}: landmarks2d must be 68 iBUG points, got shape {shape}")
        try:
            matrix = crop_matrix(ffhq_quad(passes.landmarks2d), size)
        except ValueError as error:
            raise RefineError(f"{where}: cannot align the face: {error}") from None

        with torch.inference_mode():
            beauty = torch.from_numpy(passes.beauty).to(self.device).permute(2, 0, 1)[None]  # (1, 3, H, W)
            skin = torch.from_numpy(passes.region == SKIN_LABEL).to(self.device, torch.float32)[None, None]
            target = warp_to_crop(srgb_from_linear(beauty.clamp(0, 1)) * 2 - 1, matrix, size, cfg.antialias)
            mask = warp_to_crop(skin, matrix, size, cfg.antialias)
            w_avg = G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1)
        skin_pixels = float(mask.sum())
        if skin_pixels < cfg.min_skin_pixels:
            raise RefineError(
                f"{where}: only {skin_pixels:.1f} skin pixels (region == {SKIN_LABEL}) inside the "
                f"{size}x{size} face crop; need at least {cfg.min_skin_pixels:g}"
            )
        target, mask = target.clone(), mask.clone()  # inference tensors cannot take part in autograd

        start = self._start_latent(state, w_avg, where)
        loss_init = self._loss(w_avg, target, mask)
        loss_warm = loss_init if state.latent is None else self._loss(start, target, mask)
        cold = state.latent is None
        steps = cfg.steps_first if cold else cfg.steps_warm
        latent = self._invert(start, target, mask, steps, cfg.lr if cold else cfg.lr_warm)

        with torch.inference_mode():
            gan = G.synthesis(latent, noise_mode="const")
            loss_final = float(masked_mse(gan, target, mask))
            gan_srgb = ((gan + 1) / 2).clamp(0, 1)
            gan_frame, coverage = warp_to_frame(linear_from_srgb(gan_srgb), matrix, passes.size)
            crop_side_px = float(np.hypot(matrix[0, 0], matrix[1, 0])) * size
            coverage = feather(coverage, cfg.crop_feather * crop_side_px)  # no hard square edge
            skin_soft = feather(skin, cfg.feather_px)
            # = skin * beauty + (1 - skin) * (coverage * gan + (1 - coverage) * beauty), written so that
            # pixels with skin == 1 or coverage == 0 keep the beauty pass bit for bit.
            out = beauty + (1 - skin_soft) * coverage * (gan_frame - beauty)
        state.latent = latent.detach().clone()
        metrics = {
            "skin_loss_init": loss_init,
            "skin_loss_warm": loss_warm,
            "skin_loss_final": loss_final,
            "steps": float(steps),
            "seconds": time.perf_counter() - start_time,
            "skin_fraction": skin_pixels / (size * size),
        }
        return RefinedFrame(
            shot=passes.shot,
            frame=passes.frame,
            image=_to_hwc(out),
            gan=_to_hwc(gan_srgb),
            metrics=metrics,
        )

    def _start_latent(self, state: ShotState, w_avg: torch.Tensor, where: str) -> torch.Tensor:
        if state.latent is None:
            return w_avg
        if tuple(state.latent.shape) != tuple(w_avg.shape):
            raise RefineError(
                f"{where}: the shot's previous latent has shape {list(state.latent.shape)}, this generator "
                f"needs {list(w_avg.shape)}; start the shot with a fresh ShotState"
            )
        return state.latent.to(self.device)

    def _loss(self, latent: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
        with torch.inference_mode():
            return float(masked_mse(self.generator.synthesis(latent, noise_mode="const"), target, mask))

    def _invert(
        self, start: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, steps: int, lr: float
    ) -> torch.Tensor:
        """Adam on all W+ layers, minimising the masked skin loss; returns the final latent (detached)."""
        cfg = self.config
        latent = start.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([latent], lr=lr)
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_schedule(step / steps, cfg.lr_rampup, cfg.lr_rampdown)
            # Unfused modulation: same image, and the style gradients skip a weight-gradient convolution.
            image = self.generator.synthesis(latent, noise_mode="const", fused_modconv=False)
            loss = masked_mse(image, target, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return latent.detach()


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 numpy."""
    return image[0].permute(1, 2, 0).to("cpu", torch.float32).contiguous().numpy()
