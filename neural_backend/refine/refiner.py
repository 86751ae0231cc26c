"""Refinement in the manner of *Rendering with Style* (Chandran et al. 2021), using what a CGI bridge knows.

Two ways to refine, sharing every step:

- :meth:`Refiner.refine_shot` — **final quality**: all frames of a shot at once. FFHQ alignment from the
  rig's exact landmarks, smoothed over the shot; one joint inversion (a shared identity latent plus small,
  smooth per-frame W+ offsets; skin-only pixel + perceptual losses; outside-skin consistency with the
  shot's mean image; a temporal term from Blender's exact motion vectors); optional pivotal tuning.
- :meth:`Refiner.refine` — **streaming**, frame by frame (``mode="final"`` or the fast ``"preview"``):
  warm start from the previous frame's latent, causal alignment smoothing, the same temporal term against
  the previous output.

Then the composite at frame resolution (``refine.composite``): CGI skin kept inside an eroded, feathered
skin mask (or the generator's skin, ``gan_skin``), the generator paints around it near the head, warped
back by the exact inverse of the alignment. Every frame reports its metrics (see
``protocol.passes.RESULT_METRICS``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from ..images.color import linear_from_srgb, srgb_from_linear
from ..protocol.messages import MODES
from ..protocol.passes import FramePasses, RefinedFrame, shot_metrics
from ..protocol.saved_state import SavedShotState
from ..stylegan2 import Discriminator, Generator
from .alignment import warp_to_crop, warp_to_frame
from .composite import BlendConfig, blend, head_area, reproject
from .framing import FFHQ, Alignment, AlignmentError, crop_matrix, face_quad, smooth_quad_causal, smooth_quads
from .inversion import (
    CropFrame,
    LossWeights,
    Schedule,
    StepCallback,
    invert_shot,
    masked_mse,
    synthesize,
    tune_generator,
)
from .latent_edit import LatentEdit
from .losses import PerceptualLoss, make_perceptual
from .motion import crop_flow, flow_valid, latent_drift, masked_psnr, temporal_warp_error

if TYPE_CHECKING:
    from .encoder import Encoder

SKIN_LABEL = 1  # region label of skin, see passes / DESIGN.md
Mode = Literal["final", "preview"]


class RefineError(ValueError):
    """A frame or shot that cannot be refined (no usable face or skin in it)."""


@dataclass(frozen=True)
class RefineConfig:
    """How hard and how fast to fit. Defaults suit the built-in 64 px generator on a CPU."""

    steps_first: int = 100  # streaming: steps for a shot's first frame (cold start at w_avg)
    steps_warm: int = 40  # streaming: steps for later frames (warm start from the previous frame's latent)
    shot_steps: int = 100  # refine_shot: joint steps over the whole shot
    preview_steps: int = 8  # preview mode: steps after the warm start (or the encoder's guess)
    lr: float = 0.1  # Adam peak learning rate for cold starts and shots
    lr_warm: float = 0.02  # peak learning rate for warm starts: small steps keep latents (and frames) steady
    lr_rampup: float = 0.05  # fraction of the steps spent ramping the learning rate up from 0
    lr_rampdown: float = 0.25  # fraction of the steps spent ramping it back down to 0 (cosine)
    weights: LossWeights = field(
        default_factory=lambda: LossWeights(perceptual=0.1, outside=2.0, temporal=0.1, offset=0.5, smooth=2.0)
    )
    perceptual: str = "auto"  # 'auto', 'lpips', 'vgg', 'discriminator', 'ms-ssim' or 'none'
    vgg_weights: Path | None = None  # torchvision VGG16 state dict, for 'vgg' / 'lpips'
    lpips_weights: Path | None = None  # LPIPS linear-layer weights (vgg.pth), for 'lpips'
    chunk: int = 8  # frames per forward/backward pass of a shot (memory, not results)
    align_sigma: float = 1.5  # refine_shot: Gaussian smoothing of the alignment over time, in frames
    align_alpha: float = 0.6  # streaming: one-pole smoothing of the alignment (1 = none)
    warm_start: bool = True  # streaming: fit each frame from the previous one (False: every frame cold)
    pti: bool = False  # refine_shot: pivotal tuning after the inversion, unless a request says otherwise
    pti_steps: int = 50  # pivotal-tuning steps per shot
    pti_lr: float = 3e-4  # pivotal-tuning learning rate
    pti_locality: float = 1.0  # weight keeping the tuned generator's output outside the skin unchanged
    pti_dir: Path | None = None  # save each shot's tuned generator here as <shot>.safetensors (else dropped)
    blend: BlendConfig = field(default_factory=BlendConfig)
    min_skin_pixels: float = 16.0  # fewer skin pixels than this inside the crop -> RefineError
    antialias: bool = True  # box-filter the frame before cropping when the crop is >= 2x smaller

    def __post_init__(self) -> None:
        for name in ("steps_first", "steps_warm", "shot_steps", "preview_steps", "pti_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a step count >= 0, got {getattr(self, name)}")
        for name in ("lr", "lr_warm", "pti_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive learning rate, got {getattr(self, name)}")
        for name in ("lr_rampup", "lr_rampdown"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a fraction in [0, 1], got {getattr(self, name)}")
        if not 0 < self.align_alpha <= 1:
            raise ValueError(f"align_alpha: expected a value in (0, 1], got {self.align_alpha}")
        if self.align_sigma < 0 or self.chunk < 1 or self.pti_locality < 0:
            raise ValueError("align_sigma and pti_locality must be >= 0 and chunk >= 1")

    def schedule(self, steps: int, lr: float) -> Schedule:
        return Schedule(steps, lr, self.lr_rampup, self.lr_rampdown)


@dataclass
class Previous:
    """The last refined frame of a shot, as the next frame needs it."""

    frame: int
    quad: np.ndarray  # (4, 2) the (smoothed) alignment quad
    matrix: np.ndarray  # (3, 3) crop -> frame
    latent: torch.Tensor  # (1, num_ws, w_dim)
    gan: torch.Tensor  # (1, 3, s, s) the generator's output in [-1, 1]
    region: torch.Tensor  # (1, 1, H, W) float labels
    composite: torch.Tensor  # (1, 3, H, W) the refined frame, linear

    def to_saved(self, shot: str, generator: str) -> SavedShotState:
        """As plain arrays, to move the shot to another backend or keep it on disk."""
        return SavedShotState(
            shot=shot,
            frame=self.frame,
            generator=generator,
            latent=self.latent[0].detach().cpu().numpy(),
            gan=self.gan[0].detach().cpu().numpy(),
            region=self.region[0, 0].detach().cpu().numpy(),
            composite=self.composite[0].detach().cpu().numpy(),
            quad=self.quad,
            matrix=self.matrix,
        )

    @classmethod
    def from_saved(cls, saved: SavedShotState, device: str | torch.device) -> Previous:
        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(array)).unsqueeze(0).to(device)

        return cls(
            frame=saved.frame,
            quad=np.array(saved.quad),
            matrix=np.array(saved.matrix),
            latent=tensor(saved.latent),
            gan=tensor(saved.gan),
            region=tensor(saved.region).unsqueeze(0),
            composite=tensor(saved.composite),
        )


@dataclass
class ShotState:
    """What carries over between consecutive frames of one shot (streaming) and between its calls."""

    previous: Previous | None = None

    @property
    def latent(self) -> torch.Tensor | None:
        """W+ (1, num_ws, w_dim) of the last refined frame, or None."""
        return None if self.previous is None else self.previous.latent


@dataclass
class ShotResult:
    """Summary of a refined shot; the frames themselves go to ``on_frame`` as they are composited."""

    shot: str
    frames: list[int]
    metrics: dict[str, float]  # see shot_metrics()
    frame_metrics: dict[int, dict[str, float]]


FrameCallback = Callable[[RefinedFrame], None]


@dataclass
class _Frame:
    """One frame's tensors: frame space for the composite and metrics, crop space for the fit."""

    passes: FramePasses
    quad: np.ndarray
    matrix: np.ndarray
    beauty: torch.Tensor  # (1, 3, H, W) linear
    skin: torch.Tensor  # (1, 1, H, W) {0, 1}
    region: torch.Tensor  # (1, 1, H, W) float labels
    motion: torch.Tensor | None  # (1, 2, H, W) pixel flow to the previous frame
    crop: CropFrame


class Refiner:
    """Refines frames with one generator; keep one :class:`ShotState` per shot and pass it to every call."""

    def __init__(
        self,
        generator: Generator,
        config: RefineConfig = RefineConfig(),
        device: str | torch.device = "cpu",
        discriminator: Discriminator | None = None,
        encoder: Encoder | None = None,
        alignment: Alignment = FFHQ,
    ):
        self.device = torch.device(device)
        self.alignment = alignment  # how the generator frames faces (the checkpoint's, or an override)
        # Frozen: only latents (or a PTI copy) are optimised.
        self.generator = generator.to(self.device).eval().requires_grad_(False)
        self.config = config
        self.encoder = encoder.to(self.device).eval() if encoder is not None else None
        if self.encoder is not None:
            from .encoder import check_compatible

            check_compatible(self.encoder, self.generator)
        self.perceptual: PerceptualLoss | None = None
        if config.weights.perceptual > 0 and config.perceptual != "none":
            self.perceptual = make_perceptual(
                config.perceptual,
                vgg_weights=config.vgg_weights,
                lpips_weights=config.lpips_weights,
                discriminator=discriminator.to(self.device) if discriminator is not None else None,
                device=self.device,
            )

    @property
    def perceptual_name(self) -> str:
        return "none" if self.perceptual is None else self.perceptual.name

    # ---- streaming -------------------------------------------------------------------------------

    def refine(
        self,
        passes: FramePasses,
        state: ShotState,
        mode: Mode = "final",
        on_step: StepCallback | None = None,
    ) -> RefinedFrame:
        """Refine one frame of a shot; updates ``state`` for the shot's next frame.

        Metrics: see ``passes.RESULT_METRICS``.

        Raises:
            RefineError: no 68-point landmarks, degenerate landmarks, or no skin inside the crop.
        """
        start_time = time.perf_counter()
        if mode not in MODES:
            raise RefineError(f"mode: expected one of {list(MODES)}, got {mode!r}")
        cfg = self.config
        previous = state.previous
        if previous is not None and tuple(previous.latent.shape) != self._latent_shape:
            raise RefineError(
                f"{_where(passes)}: the shot's previous latent has shape {list(previous.latent.shape)}, this "
                f"generator needs {list(self._latent_shape)}; start the shot with a fresh ShotState"
            )
        quad = check_face(passes, self.alignment)
        follows = previous is not None and previous.frame == passes.frame - 1
        if follows and previous is not None:
            quad = smooth_quad_causal(previous.quad, quad, cfg.align_alpha)
        link = (previous.matrix, previous.region) if follows and previous is not None else None
        frame = self._prepare(passes, quad, link)
        w_avg = self._w_avg()
        warm = previous is not None and cfg.warm_start
        start = previous.latent.to(self.device) if warm and previous is not None else w_avg
        if mode == "preview":
            if self.encoder is not None and not warm:
                with torch.no_grad():
                    start = self.encoder(frame.crop.target)
            schedule = cfg.schedule(cfg.preview_steps, cfg.lr_warm if warm else cfg.lr)
            weights = replace(cfg.weights, perceptual=0.0)  # speed over fidelity
        else:
            steps = cfg.steps_warm if warm else cfg.steps_first
            schedule = cfg.schedule(steps, cfg.lr_warm if warm else cfg.lr)
            weights = cfg.weights
        fit = invert_shot(
            self.generator,
            [frame.crop],
            start,
            schedule,
            weights if warm else LossWeights(perceptual=weights.perceptual),
            self.perceptual,
            train_identity=not warm,
            previous_image=previous.gan.to(self.device)
            if warm and follows and previous is not None
            else None,
            on_step=on_step,
        )
        loss_init = self._skin_loss(w_avg, frame.crop)
        metrics = {
            "skin_loss_init": loss_init,
            "skin_loss_warm": self._skin_loss(start, frame.crop),
            "skin_loss_final": float(masked_mse(fit.images, frame.crop.target, frame.crop.skin)[0]),
            "steps": float(schedule.steps),
        }
        result, state.previous = self._finish(frame, fit.latents, fit.images, previous if follows else None)
        if previous is not None and not follows:
            result.metrics["latent_drift"] = float(latent_drift(torch.cat([previous.latent, fit.latents]))[0])
        result.metrics.update(metrics)
        result.metrics["seconds"] = time.perf_counter() - start_time
        return result

    # ---- whole shots -----------------------------------------------------------------------------

    def refine_shot(
        self,
        frames: Sequence[FramePasses],
        state: ShotState | None = None,
        pti: bool | None = None,
        on_step: StepCallback | None = None,
        on_frame: FrameCallback | None = None,
        edit: LatentEdit | None = None,
    ) -> ShotResult:
        """Refine a whole shot jointly; each frame goes to ``on_frame`` as soon as it is composited.

        Args:
            frames: the shot's frames, consecutive frame numbers in order for the temporal terms (a gap
                only switches the motion term off across it).
            state: the shot's state: its last frame continues into this call (the first frame's temporal
                term and warm start); updated to the shot's last frame.
            pti: pivotal tuning after the inversion (None: ``config.pti``).
            on_step: progress per optimisation step: phase 'invert' or 'pti', step, steps, loss.
            on_frame: receives each refined frame.
            edit: latent directions added to the fitted latents with a weight per frame (one row of
                ``edit.weights`` per frame), after the fit and any tuning.

        Raises:
            RefineError: a frame without a usable face or skin (nothing is refined), or frames from
                different shots, or repeated frame numbers.
        """
        start_time = time.perf_counter()
        cfg = self.config
        self._check_shot(frames)
        if edit is not None and len(edit.weights) != len(frames):
            raise RefineError(
                f"direction weights: {len(edit.weights)} rows for a shot of {len(frames)} frames"
            )
        state = state if state is not None else ShotState()
        previous = state.previous
        quads = np.stack([check_face(passes, self.alignment) for passes in frames])
        if cfg.align_sigma > 0 and len(frames) > 1:
            quads = smooth_quads(quads, cfg.align_sigma)
        continues = previous is not None and previous.frame == frames[0].frame - 1
        last = previous if continues else None
        prepared: list[_Frame] = []
        for index, (passes, quad) in enumerate(zip(frames, quads, strict=True)):
            before = prepared[-1] if prepared else None
            if before is not None and before.passes.frame == passes.frame - 1:
                link: tuple[np.ndarray, torch.Tensor] | None = (before.matrix, before.region)
            elif index == 0 and last is not None:
                link = (last.matrix, last.region)
            else:
                link = None
            prepared.append(self._prepare(passes, quad, link))
        w_avg = self._w_avg()
        first = previous.latent.to(self.device) if previous is not None else w_avg
        crops = [frame.crop for frame in prepared]
        fit = invert_shot(
            self.generator,
            crops,
            first,
            cfg.schedule(cfg.shot_steps, cfg.lr),
            cfg.weights,
            self.perceptual,
            previous_image=last.gan.to(self.device) if last is not None else None,
            chunk=cfg.chunk,
            on_step=on_step,
        )
        images, steps, latents, generator = fit.images, cfg.shot_steps, fit.latents, self.generator
        if (cfg.pti if pti is None else pti) and cfg.pti_steps > 0:
            tuned = tune_generator(
                self.generator,
                crops,
                fit.latents,
                cfg.schedule(cfg.pti_steps, cfg.pti_lr),
                cfg.weights.perceptual,
                self.perceptual,
                cfg.pti_locality,
                cfg.chunk,
                on_step,
            )
            generator = tuned
            with torch.no_grad():
                images = synthesize(tuned, latents, cfg.chunk)
            steps += cfg.pti_steps
            if cfg.pti_dir is not None:
                _save_tuned(tuned, cfg.pti_dir, frames[0].shot)
        if edit is not None:
            latents = latents + edit.offsets(self.device)
            with torch.no_grad():
                images = synthesize(generator, latents, cfg.chunk)
        seconds = (time.perf_counter() - start_time) / len(frames)
        frame_metrics: dict[int, dict[str, float]] = {}
        drift_from = previous
        for index, frame in enumerate(prepared):
            composite_start = time.perf_counter()
            latent, image = latents[index : index + 1], images[index : index + 1]
            follows = last is not None and last.frame == frame.passes.frame - 1
            result, last = self._finish(frame, latent, image, last if follows else None)
            if index == 0 and drift_from is not None and "latent_drift" not in result.metrics:
                result.metrics["latent_drift"] = float(
                    latent_drift(torch.cat([drift_from.latent, latent]))[0]
                )
            result.metrics.update(
                skin_loss_init=self._skin_loss(w_avg, frame.crop),
                skin_loss_final=float(masked_mse(image, frame.crop.target, frame.crop.skin)[0]),
                steps=float(steps),
                seconds=seconds + time.perf_counter() - composite_start,
            )
            frame_metrics[frame.passes.frame] = dict(result.metrics)
            if on_frame is not None:
                on_frame(result)
        state.previous = last
        return ShotResult(
            shot=frames[0].shot,
            frames=[passes.frame for passes in frames],
            metrics=shot_metrics(frame_metrics, time.perf_counter() - start_time),
            frame_metrics=frame_metrics,
        )

    def crop(self, passes: FramePasses) -> CropFrame:
        """The frame's aligned crop as the generator is fitted to it: the render (sRGB in [-1, 1]) and skin.

        Raises:
            RefineError: no usable face or skin.
        """
        return self._prepare(passes, check_face(passes, self.alignment), None).crop

    def invert_frames(
        self, frames: Sequence[FramePasses], weights: LossWeights | None = None
    ) -> torch.Tensor:
        """(T, num_ws, w_dim) W+ latents of frames fitted jointly (one shared identity latent, an offset
        per frame) with the shot's steps and ``weights`` (default: the config's), nothing composited.

        Raises:
            RefineError: a frame without a usable face or skin.
        """
        quads = [check_face(passes, self.alignment) for passes in frames]
        crops = [self._prepare(passes, quad, None).crop for passes, quad in zip(frames, quads, strict=True)]
        cfg = self.config
        fit = invert_shot(
            self.generator, crops, self._w_avg(), cfg.schedule(cfg.shot_steps, cfg.lr),
            cfg.weights if weights is None else weights, self.perceptual, chunk=cfg.chunk,
        )  # fmt: skip
        return fit.latents

    # ---- shared steps ----------------------------------------------------------------------------

    @property
    def _latent_shape(self) -> tuple[int, int, int]:
        return (1, self.generator.num_ws, self.generator.w_dim)

    def _w_avg(self) -> torch.Tensor:
        G = self.generator
        return G.mapping.w_avg.reshape(1, 1, -1).repeat(1, G.num_ws, 1).to(self.device)

    def _check_shot(self, frames: Sequence[FramePasses]) -> None:
        if not frames:
            raise RefineError("a shot needs at least one frame")
        shots = sorted({passes.shot for passes in frames})
        if len(shots) > 1:
            raise RefineError(f"frames of one shot expected, got shots {shots}")
        numbers = [passes.frame for passes in frames]
        if len(set(numbers)) != len(numbers):
            raise RefineError(f"shot {shots[0]!r}: repeated frame numbers in {numbers}")
        if numbers != sorted(numbers):
            raise RefineError(f"shot {shots[0]!r}: frames must be in order, got {numbers}")

    def _prepare(
        self, passes: FramePasses, quad: np.ndarray, link: tuple[np.ndarray, torch.Tensor] | None
    ) -> _Frame:
        """Frame tensors, the aligned crop, and the temporal link to the frame before.

        ``link`` is the previous frame's (crop matrix, region labels) when it is frame ``passes.frame - 1``.
        """
        cfg = self.config
        size = self.generator.img_resolution
        try:
            matrix = crop_matrix(quad, size)
        except ValueError as error:
            raise RefineError(f"{_where(passes)}: cannot align the face: {error}") from None
        with torch.no_grad():
            beauty = torch.from_numpy(passes.beauty).to(self.device).permute(2, 0, 1)[None]
            region = torch.from_numpy(passes.region).to(self.device, torch.float32)[None, None]
            skin = (region == SKIN_LABEL).to(torch.float32)
            target = warp_to_crop(srgb_from_linear(beauty.clamp(0, 1)) * 2 - 1, matrix, size, cfg.antialias)
            skin_crop = warp_to_crop(skin, matrix, size, cfg.antialias)
            motion = passes.extra.get("motion")
            flow = (
                torch.from_numpy(motion).to(self.device).permute(2, 0, 1)[None]
                if motion is not None
                else None
            )
            crop = CropFrame(target=target, skin=skin_crop)
            if flow is not None and link is not None:
                grid, valid = crop_flow(matrix, link[0], flow, size, region=region, region_previous=link[1])
                crop.previous_grid = grid
                crop.previous_weight = valid * (1 - skin_crop)
        skin_pixels = float(skin_crop.sum())
        if skin_pixels < cfg.min_skin_pixels:
            raise RefineError(
                f"{_where(passes)}: only {skin_pixels:.1f} skin pixels (region == {SKIN_LABEL}) inside the "
                f"{size}x{size} face crop; need at least {cfg.min_skin_pixels:g}"
            )
        return _Frame(passes, quad, matrix, beauty, skin, region, flow, crop)

    def _skin_loss(self, latent: torch.Tensor, crop: CropFrame) -> float:
        with torch.no_grad():
            image = self.generator.synthesis(latent, noise_mode="const")
            return float(masked_mse(image, crop.target, crop.skin)[0])

    def _finish(
        self, frame: _Frame, latent: torch.Tensor, gan: torch.Tensor, previous: Previous | None
    ) -> tuple[RefinedFrame, Previous]:
        """Composite one fitted frame and measure it; ``previous`` is the frame before (or None)."""
        passes = frame.passes
        size = self.generator.img_resolution
        with torch.no_grad():
            gan_srgb = ((gan + 1) / 2).clamp(0, 1)
            gan_frame, coverage = warp_to_frame(linear_from_srgb(gan_srgb), frame.matrix, passes.size)
            crop_side_px = float(np.hypot(frame.matrix[0, 0], frame.matrix[1, 0])) * size
            blend_config = self.config.blend
            coverage = coverage * head_area(frame.region, blend_config.surroundings, crop_side_px)
            out, painted = blend(frame.beauty, frame.skin, gan_frame, coverage, blend_config, crop_side_px)
            target01 = (frame.crop.target + 1) / 2
            metrics = {
                "skin_psnr": float(masked_psnr(gan_srgb, target01, frame.crop.skin)[0]),
                "skin_fraction": float(frame.crop.skin.sum()) / (size * size),
            }
            if previous is not None:
                metrics["latent_drift"] = float(latent_drift(torch.cat([previous.latent, latent]))[0])
            if previous is not None and frame.motion is not None:
                valid = flow_valid(frame.region, previous.region, frame.motion)
                if blend_config.history > 0:
                    out = reproject(
                        out, previous.composite, frame.motion, painted * valid, blend_config.history
                    )
                weight = (1 - frame.skin) * painted * valid
                metrics["temporal_error"] = float(
                    temporal_warp_error(
                        srgb_from_linear(out.clamp(0, 1)),
                        srgb_from_linear(previous.composite.clamp(0, 1)),
                        frame.motion,
                        weight,
                    )
                )
        result = RefinedFrame(
            shot=passes.shot, frame=passes.frame, image=_to_hwc(out), gan=_to_hwc(gan_srgb), metrics=metrics
        )
        carried = Previous(
            frame=passes.frame,
            quad=frame.quad,
            matrix=frame.matrix,
            latent=latent.detach(),
            gan=gan.detach(),
            region=frame.region,
            composite=out,
        )
        return result, carried


def check_face(passes: FramePasses, alignment: Alignment = FFHQ) -> np.ndarray:
    """The frame's crop quad (4, 2) for a generator with ``alignment``, from its landmarks.

    Raises:
        RefineError: not 68 iBUG landmarks in iBUG order, or landmarks that give no usable alignment.
    """
    try:
        return face_quad(passes.landmarks2d, alignment)
    except AlignmentError as error:
        raise RefineError(f"{_where(passes)}: {error}") from None


def _save_tuned(generator: Generator, folder: Path, shot: str) -> Path:
    from ..checkpoints.io import save_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (re.sub(r"[^A-Za-z0-9._-]", "_", shot) + ".safetensors")
    save_checkpoint(generator, path)
    return path


def _where(passes: FramePasses) -> str:
    return f"shot {passes.shot!r} frame {passes.frame}"


def _to_hwc(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) tensor -> (H, W, 3) float32 numpy."""
    return image[0].permute(1, 2, 0).to("cpu", torch.float32).contiguous().numpy()
