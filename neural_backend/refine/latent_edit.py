"""A latent edit of a shot: W+ directions (``directions.py``) added to every frame's fitted latent with a
weight per frame and direction, smoothed over time so it cannot flicker (the identity latent is untouched)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..protocol.messages import MAX_DIRECTION_WEIGHT as MAX_WEIGHT

SMOOTHING_FRAMES = 2.0  # Gaussian sigma (frames) of a shot's direction weights


class DirectionError(ValueError):
    """An unknown control, or direction weights that do not fit the shot."""


@dataclass(frozen=True)
class LatentEdit:
    """Directions added to a shot's fitted latents with a weight per frame and direction."""

    vectors: torch.Tensor  # (C, num_ws, w_dim)
    weights: np.ndarray  # (T, C) per frame, smoothed over time

    @classmethod
    def smoothed(cls, vectors: torch.Tensor, weights: np.ndarray) -> LatentEdit:
        """An edit whose weights are smoothed with a Gaussian of :data:`SMOOTHING_FRAMES` (edges held).

        Raises:
            DirectionError: weights not (T, C) for C vectors, not finite or beyond ±:data:`MAX_WEIGHT`.
        """
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != len(vectors):
            raise DirectionError(
                f"direction weights: expected (frames, {len(vectors)}), got {list(weights.shape)}"
            )
        if not np.isfinite(weights).all() or np.abs(weights).max(initial=0.0) > MAX_WEIGHT:
            raise DirectionError(f"direction weights: expected finite values within ±{MAX_WEIGHT:g}")
        radius = int(np.ceil(3 * SMOOTHING_FRAMES))
        kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / SMOOTHING_FRAMES) ** 2)
        kernel /= kernel.sum()
        padded = np.pad(weights, ((radius, radius), (0, 0)), mode="edge")
        smooth = np.stack(
            [np.convolve(padded[:, c], kernel, mode="valid") for c in range(weights.shape[1])], 1
        )
        return cls(vectors, smooth)

    def offsets(self, device: torch.device | str) -> torch.Tensor:
        """(T, num_ws, w_dim) the latent change of every frame."""
        weights = torch.from_numpy(self.weights).to(device, self.vectors.dtype)
        return torch.einsum("tc,cwd->twd", weights, self.vectors.to(device))
