"""StyleGAN2 mapping network: Z (+ optional label C) -> W, broadcast to ``num_ws`` layers, with truncation."""

from __future__ import annotations

import torch

from .layers import FullyConnectedLayer
from .ops import assert_shape, normalize_2nd_moment


class MappingNetwork(torch.nn.Module):
    """NVlabs-compatible mapping network (``fc{i}``, optional ``embed``, ``w_avg`` buffer).

    The generator's mapping broadcasts W to ``num_ws`` layers and keeps ``w_avg`` for truncation. The
    conditional discriminator's mapping is the same network with ``z_dim=0`` (it maps only the label),
    ``num_ws=None`` (returns (N, w_dim)) and ``w_avg_beta=None`` (no ``w_avg``).
    """

    w_avg: torch.Tensor  # buffer: centre of W (absent when num_ws or w_avg_beta is None)

    def __init__(
        self,
        z_dim: int,  # Input latent (Z) dimensionality, 0 = label only.
        c_dim: int,  # Conditioning label (C) dimensionality, 0 = unconditional.
        w_dim: int,  # Intermediate latent (W) dimensionality.
        num_ws: int | None,  # Number of per-layer latents to broadcast W to, None = do not broadcast.
        num_layers: int = 8,  # Number of fully connected layers.
        embed_features: int | None = None,  # Label embedding size, None = w_dim.
        layer_features: int | None = None,  # Hidden layer size, None = w_dim.
        lr_multiplier: float = 0.01,  # Learning-rate multiplier of the mapping layers (NVlabs default).
        w_avg_beta: float | None = 0.995,  # Tracking decay of w_avg in training; None = no w_avg buffer.
    ):
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("mapping network: z_dim and c_dim are both 0; it would have no input")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(
                features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier
            )
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            # Centre of W; truncation pulls latents toward it. Tracked in training, loaded from checkpoints.
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """Map z (N, z_dim) and c (N, c_dim) to ws (N, num_ws, w_dim), or (N, w_dim) when num_ws is None.

        ``truncation_psi`` < 1 moves each latent toward ``w_avg`` (0 = exactly ``w_avg``); with
        ``truncation_cutoff`` only the first that many layers are truncated. As in NVlabs, the broadcast ws
        are a real copy per layer, so callers may edit single layers in place (style mixing).
        """
        x = None
        if self.z_dim > 0:
            if z is None:
                raise ValueError(f"z: expected shape [*, {self.z_dim}], got None")
            assert_shape(z, [None, self.z_dim], "z")
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"c: the network is conditional; expected shape [*, {self.c_dim}], got None")
            assert_shape(c, [None if x is None else x.shape[0], self.c_dim], "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = y if x is None else torch.cat([x, y], dim=1)
        assert x is not None  # guaranteed by the z_dim/c_dim check in __init__
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if truncation_psi != 1 and not hasattr(self, "w_avg"):
            raise ValueError("truncation_psi: this mapping network has no w_avg to truncate toward")
        if self.num_ws is None:
            return self.w_avg.lerp(x, truncation_psi) if truncation_psi != 1 else x
        ws = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws
