"""The composite at frame resolution: CGI skin kept, the generator's output around it, stabilised over time.

Pure torch functions (CPU or GPU, batched over N). The refiner (``refine.refiner``) warps the generator's
aligned output back to the frame and hands it here with the passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .alignment import feather
from .motion import warp_previous

BACKGROUND_LABEL = 0  # region label of the background (docs/protocol.md, the region pass)


@dataclass(frozen=True)
class BlendConfig:
    """How the refined frame is composited."""

    width_px: float = 4.0  # skin-mask feather width at frame resolution (the ramp lies inside the skin)
    crop_feather: float = 0.08  # crop-border blend width, as a fraction of the crop's side in the frame
    gan_skin: float = 0.0  # 0: keep the CGI skin; 1: use the generator's skin; in between: a mix
    # Temporal reprojection: share of the previous refined frame, warped by the motion pass, kept where the
    # generator paints and the flow is not occluded (0 = off; needs the motion pass).
    history: float = 0.6
    # How far past the rig's silhouette (every region but background) the generator paints, as a fraction
    # of the crop's side: hair and ears may grow past the CGI's, the CGI background stays beyond (1 = the
    # whole crop, as Rendering with Style replaces the background).
    surroundings: float = 0.12

    def __post_init__(self) -> None:
        if self.width_px < 0:
            raise ValueError(f"width_px: expected a width >= 0, got {self.width_px}")
        for name in ("crop_feather", "gan_skin", "history", "surroundings"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a fraction in [0, 1], got {getattr(self, name)}")


def head_area(region: torch.Tensor, surroundings: float, crop_side_px: float) -> torch.Tensor:
    """Where the generator may paint: the rig's silhouette grown by ``surroundings`` crop sides, feathered.

    Args:
        region: (N, 1, H, W) float region labels (0 = background).
        surroundings: growth as a fraction of the crop side; >= 1 allows the whole frame.
        crop_side_px: the crop's side length in frame pixels.

    Returns:
        (N, 1, H, W) in [0, 1]; 1 on the silhouette and the inner third of the margin, ramping to 0
        over its outer two thirds.
    """
    if surroundings >= 1:
        return torch.ones_like(region)
    margin = surroundings * crop_side_px
    inside = (region != BACKGROUND_LABEL).to(torch.float32)
    r = int(math.ceil(margin))
    if r > 0:  # a square dilation, as two 1-D passes (a (2r+1)^2 window is slow on large frames)
        grown = F.max_pool2d(inside, kernel_size=(1, 2 * r + 1), stride=1, padding=(0, r))
        grown = F.max_pool2d(grown, kernel_size=(2 * r + 1, 1), stride=1, padding=(r, 0))
    else:
        grown = inside
    return feather(grown, 2 * margin / 3)


def blend(
    beauty: torch.Tensor,
    skin: torch.Tensor,
    gan_frame: torch.Tensor,
    coverage: torch.Tensor,
    config: BlendConfig,
    crop_side_px: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The refined frame: CGI skin kept inside the eroded, feathered skin mask; the generator elsewhere.

    Args:
        beauty: (N, 3, H, W) linear render.
        skin: (N, 1, H, W) {0, 1} skin mask.
        gan_frame: (N, 3, H, W) linear generator output warped to the frame.
        coverage: (N, 1, H, W) where the crop covers the frame (from ``warp_to_frame``), times where the
            generator may paint (:func:`head_area`).
        config: blend width, crop-border feather and the GAN-skin mix.
        crop_side_px: the crop's side length in frame pixels.

    Returns:
        image: (N, 3, H, W) linear. Pixels with a fully kept skin weight, or outside the crop, equal
            ``beauty`` bit for bit.
        painted: (N, 1, H, W) in [0, 1], the generator's share of each pixel.
    """
    coverage = feather(coverage, config.crop_feather * crop_side_px)  # no hard square edge
    keep = feather(skin, config.width_px) * (1 - config.gan_skin)
    painted = (1 - keep) * coverage
    # = keep * beauty + (1 - keep) * (coverage * gan + (1 - coverage) * beauty)
    return beauty + painted * (gan_frame - beauty), painted


def reproject(
    image: torch.Tensor, previous: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor, history: float
) -> torch.Tensor:
    """Temporal reprojection: blend in the previous refined frame, warped by the exact motion pass.

    Where the generator paints and the flow is valid (not occluded, inside the frame), a share ``history``
    of each pixel comes from where that surface point was in the previous refined frame; elsewhere
    (CGI skin, disocclusions, outside the crop) the pixel is left as it is.

    Args:
        image: (N, 3, H, W) this frame's composite.
        previous: (N, 3, H, W) the previous frame's final composite.
        flow: (N, 2, H, W) pixel flow to the previous frame.
        weight: (N, 1, H, W) in [0, 1]: the generator's share times the flow's validity.
        history: the previous frame's share where ``weight`` is 1.

    Returns:
        (N, 3, H, W) the stabilised composite.
    """
    warped, inside = warp_previous(previous, flow)
    return image + (history * weight * inside) * (warped - image)
