"""StyleGAN2 mapping network: Z (+ optional label C) -> W, broadcast to ``num_ws`` layers, with truncation."""

from __future__ import annotations

import torch

from .layers import FullyConnectedLayer
from .ops import assert_shape, normalize_2nd_moment


class MappingNetwork(torch.nn.Module):
    """NVlabs-compatible mapping network (``fc{i}``, optional ``embed``, ``w_avg`` buffer)."""

    w_avg: torch.Tensor  # buffer: centre of W (see __init__)

    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality.
        c_dim: int,  # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        num_ws: int,  # Number of per-layer latents to broadcast W to.
        num_layers: int = 8,  # Number of fully connected layers.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the mapping layers (NVlabs default).
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        # Centre of W; truncation pulls latents toward it. Tracked during training, loaded from checkpoints.
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Map z (N, z_dim) and c (N, c_dim) to ws (N, num_ws, w_dim).

        ``truncation_psi`` < 1 moves each latent toward ``w_avg`` (0 = exactly ``w_avg``); with
        ``truncation_cutoff`` only the first that many layers are truncated.
        """
        assert_shape(z, [None, self.z_dim], "z")
        x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(
                    f"c: the generator is conditional; expected shape [*, {self.c_dim}], got None"
                )
            assert_shape(c, [z.shape[0], self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws
