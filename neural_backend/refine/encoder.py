"""A feed-forward W+ encoder, trained self-supervised on the generator's own samples.

Preview mode needs a single-frame latent in one forward pass instead of hundreds of inversion steps. The
encoder never sees external data: :func:`train_encoder` draws random latents, renders them with the frozen
generator and teaches the encoder to map each image back to its latent (latent loss) and to a latent that
re-renders the same image (image loss).

Files are safetensors: the encoder's ``state_dict()`` and metadata ``{"rigstyle_encoder": <JSON of
EncoderConfig>}``. Inference is just the module call::

    with torch.inference_mode():
        ws = encoder(images)  # (N, 3, R, R) in [-1, 1] -> (N, num_ws, w_dim)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..checkpoints.base import CheckpointError, check_tensor_names
from ..stylegan2 import Generator, assert_shape

METADATA_KEY = "rigstyle_encoder"
LRELU_SLOPE = 0.2
# Fraction of training samples whose W+ is style-mixed: layers from a random crossover on come from a
# second latent, so the encoder learns per-layer latents (W+), not only the broadcast W of one z.
MIXING_PROB = 0.5
HELDOUT_SAMPLES = 16  # Size of the fixed held-out batch the returned metrics are measured on.
HELDOUT_SEED_OFFSET = 1_000_003  # Held-out latents come from seed + this, never from the training stream.


class EncoderError(ValueError):
    """An encoder that cannot be built, loaded, trained or used with a given generator; the message is one
    line and names the file or the mismatch."""


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of an :class:`Encoder`; stored in its file so that it can be rebuilt."""

    resolution: int  # Input image size R (the generator's img_resolution), a power of two >= 4.
    num_ws: int  # Number of per-layer latents to predict (the generator's num_ws).
    w_dim: int  # Latent (W) dimensionality (the generator's w_dim).
    channels: int = 32  # Feature channels after the first downsampling; doubled at each halving.
    max_channels: int = 256  # Cap on feature channels, and the width of the hidden feature vector.

    def __post_init__(self) -> None:
        for name in ("resolution", "num_ws", "w_dim", "channels", "max_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise EncoderError(f"{name}: expected a positive integer, got {value!r}")
        if self.resolution < 4 or self.resolution & (self.resolution - 1):
            raise EncoderError(f"resolution: expected a power of two >= 4, got {self.resolution}")

    @classmethod
    def for_generator(cls, generator: Generator, **overrides: int) -> EncoderConfig:
        """The config whose encoder fits ``generator``; ``overrides`` set ``channels``/``max_channels``."""
        return cls(
            resolution=generator.img_resolution,
            num_ws=generator.num_ws,
            w_dim=generator.w_dim,
            **overrides,
        )


class Encoder(torch.nn.Module):
    """Image (N, 3, R, R) in [-1, 1] -> W+ (N, num_ws, w_dim) = ``w_avg`` + a predicted offset.

    A 1x1 ``from_rgb`` convolution, then stride-2 3x3 convolutions (LeakyReLU) from R x R down to 4 x 4,
    a linear layer to a ``max_channels`` feature vector and a linear ``head`` to ``num_ws * w_dim``. The
    head starts at zero, so an untrained encoder returns ``w_avg`` exactly (the usual cold start for
    inversion). The hidden feature vector keeps the head small. Parameters with the defaults: 1.7 M at
    32 px (8 x 128 latents), 6.8 M at 1024 px with FFHQ's 18 x 512 latents (a direct 4x4xC -> W+ layer
    would make that 41 M).
    """

    w_avg: torch.Tensor  # buffer (w_dim,): centre of W, the output of an untrained encoder

    def __init__(self, config: EncoderConfig, w_avg: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        levels = int(math.log2(config.resolution)) - 2  # halvings from R down to 4
        widths = [min(config.channels * 2**i, config.max_channels) for i in range(levels + 1)]
        self.from_rgb = torch.nn.Conv2d(3, widths[0], kernel_size=1)
        self.down = torch.nn.ModuleList(
            torch.nn.Conv2d(widths[i], widths[i + 1], kernel_size=3, stride=2, padding=1)
            for i in range(levels)
        )
        self.features = torch.nn.Linear(widths[-1] * 16, config.max_channels)
        self.head = torch.nn.Linear(config.max_channels, config.num_ws * config.w_dim)
        for layer in (self.from_rgb, *self.down, self.features):
            # He init for LeakyReLU keeps activations at unit scale through the pyramid; learns faster
            # than PyTorch's default (measured on the built-in generator).
            torch.nn.init.kaiming_normal_(layer.weight, a=LRELU_SLOPE, nonlinearity="leaky_relu")
            torch.nn.init.zeros_(layer.bias)
        torch.nn.init.zeros_(self.head.weight)  # untrained encoder = w_avg exactly
        torch.nn.init.zeros_(self.head.bias)
        self.register_buffer("w_avg", torch.zeros([config.w_dim]))
        if w_avg is not None:
            assert_shape(w_avg, [config.w_dim], "w_avg")
            with torch.no_grad():
                self.w_avg.copy_(w_avg)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode aligned face crops.

        Args:
            images: (N, 3, R, R) float in [-1, 1], the generator's output space.

        Returns:
            (N, num_ws, w_dim) float32 W+ latents for ``generator.synthesis``.

        Raises:
            ValueError: ``images`` is not (N, 3, R, R).
        """
        r = self.config.resolution
        assert_shape(images, [None, 3, r, r], "images")
        x = F.leaky_relu(self.from_rgb(images.to(torch.float32)), LRELU_SLOPE)
        for conv in self.down:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
        x = F.leaky_relu(self.features(x.flatten(1)), LRELU_SLOPE)
        offset = self.head(x).view(-1, self.config.num_ws, self.config.w_dim)
        return self.w_avg + offset


def check_compatible(encoder: Encoder, generator: Generator) -> None:
    """Raise unless ``encoder`` reads ``generator``'s images and writes its latents.

    Raises:
        EncoderError: naming every mismatch (resolution, num_ws, w_dim, colour channels).
    """
    config = encoder.config
    pairs = {
        "resolution": (config.resolution, generator.img_resolution),
        "num_ws": (config.num_ws, generator.num_ws),
        "w_dim": (config.w_dim, generator.w_dim),
        "image channels": (3, generator.img_channels),
    }
    mismatches = [f"{name} {mine} vs {theirs}" for name, (mine, theirs) in pairs.items() if mine != theirs]
    if mismatches:
        raise EncoderError(
            f"encoder does not fit the generator (encoder vs generator): {', '.join(mismatches)}"
        )


def train_encoder(
    generator: Generator,
    steps: int = 2000,
    batch: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    truncation_psi: float = 0.8,
    image_weight: float = 1.0,
    device: str | torch.device = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[Encoder, dict[str, float]]:
    """Train an encoder for ``generator`` on its own samples (no external data).

    Each step draws ``batch`` z from a private RNG seeded with ``seed``, maps them with truncation
    ``truncation_psi`` and style-mixes a random :data:`MIXING_PROB` of them (see :func:`_sample_ws`), renders
    them with constant noise, and minimises ``MSE(enc(img), ws) + image_weight * MSE(synthesis(enc(img)),
    img)`` with Adam. The generator is frozen for the duration (its ``requires_grad`` flags are restored
    afterwards) and must already be on ``device``. Deterministic for a given ``seed`` on the CPU.

    Args:
        generator: unconditional generator (``c_dim == 0``) on ``device``, in eval mode.
        steps: optimisation steps, >= 1.
        batch: samples per step, >= 1.
        lr: Adam learning rate.
        seed: seeds the encoder's initialisation and every sampled latent.
        truncation_psi: truncation of the training latents (1 = none).
        image_weight: weight of the image reconstruction loss (0 = latent loss only).
        device: torch device of the generator and the encoder.
        on_step: called after every step with (step from 1, steps, total loss).

    Returns:
        The trained encoder in eval mode on ``device``, and metrics measured on a fixed held-out batch of
        :data:`HELDOUT_SAMPLES`: ``latent_mse_start`` / ``image_mse_start`` (the untrained encoder, i.e.
        ``w_avg`` and its image), ``latent_mse_end`` / ``image_mse_end`` (the trained encoder) and the
        training wall time ``seconds``.

    Raises:
        EncoderError: conditional generator, generator not on ``device``, or bad ``steps``/``batch``.
    """
    if generator.c_dim > 0:
        raise EncoderError(f"conditional generators (c_dim {generator.c_dim}) are not supported yet")
    if steps < 1 or batch < 1:
        raise EncoderError(f"steps and batch must be >= 1, got steps {steps}, batch {batch}")
    wanted = torch.device(device)
    device = generator.mapping.w_avg.device  # 'cuda' means the generator's CUDA device, whichever it is
    if device.type != wanted.type or (wanted.index is not None and device != wanted):
        raise EncoderError(f"the generator is on {device}, not on {wanted}; move it first")
    config = EncoderConfig.for_generator(generator)
    with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
        torch.manual_seed(seed)
        encoder = Encoder(config, generator.mapping.w_avg.detach().cpu())
    encoder.to(device).train()
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    rng = torch.Generator().manual_seed(seed)
    heldout_rng = torch.Generator().manual_seed(seed + HELDOUT_SEED_OFFSET)
    heldout_ws, heldout_images = _render(
        generator, _sample_ws(generator, heldout_rng, HELDOUT_SAMPLES, truncation_psi)
    )
    with _frozen(generator):
        latent_mse_start, image_mse_start = _evaluate(encoder, generator, heldout_ws, heldout_images)
        start = time.perf_counter()
        for step in range(1, steps + 1):
            ws, images = _render(generator, _sample_ws(generator, rng, batch, truncation_psi))
            predicted = encoder(images)
            loss = F.mse_loss(predicted, ws)
            if image_weight:
                loss = loss + image_weight * F.mse_loss(_synthesize(generator, predicted), images)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if on_step is not None:
                on_step(step, steps, loss.item())
        seconds = time.perf_counter() - start
        encoder.eval()
        latent_mse_end, image_mse_end = _evaluate(encoder, generator, heldout_ws, heldout_images)
    metrics = {
        "latent_mse_start": latent_mse_start,
        "latent_mse_end": latent_mse_end,
        "image_mse_start": image_mse_start,
        "image_mse_end": image_mse_end,
        "seconds": seconds,
    }
    return encoder, metrics


def _sample_ws(generator: Generator, rng: torch.Generator, n: int, truncation_psi: float) -> torch.Tensor:
    """(n, num_ws, w_dim) W+ latents: mapped z, with a random :data:`MIXING_PROB` of them style-mixed.

    A mixed sample takes layers ``[cutoff, num_ws)`` from a second z's W (cutoff uniform in
    ``[1, num_ws)``), as in StyleGAN2's mixing regularisation: every layer stays a plausible W, but the
    layers differ, so the encoder must predict each layer rather than one shared W.
    """
    device = generator.mapping.w_avg.device
    z = torch.randn([2, n, generator.z_dim], generator=rng).to(device)
    mix = torch.rand([n], generator=rng) < MIXING_PROB
    cutoff = torch.randint(1, max(generator.num_ws, 2), [n], generator=rng)
    with torch.no_grad():
        ws = generator.mapping(z[0], None, truncation_psi=truncation_psi)
        other = generator.mapping(z[1], None, truncation_psi=truncation_psi)
    layers = torch.arange(generator.num_ws)
    take_other = (mix[:, None] & (layers[None, :] >= cutoff[:, None])).to(device)
    return torch.where(take_other[:, :, None], other, ws)


def _synthesize(generator: Generator, ws: torch.Tensor) -> torch.Tensor:
    return generator.synthesis(ws, noise_mode="const").to(torch.float32)


def _render(generator: Generator, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(ws, images (N, 3, R, R)) without gradients."""
    with torch.no_grad():
        return ws, _synthesize(generator, ws)


def _evaluate(
    encoder: Encoder, generator: Generator, ws: torch.Tensor, images: torch.Tensor
) -> tuple[float, float]:
    """(latent MSE, image MSE of the re-rendered latents) of ``encoder`` on a fixed batch."""
    with torch.no_grad():
        predicted = encoder(images)
        return F.mse_loss(predicted, ws).item(), F.mse_loss(_synthesize(generator, predicted), images).item()


@contextmanager
def _frozen(module: torch.nn.Module) -> Iterator[None]:
    """No gradients into ``module``'s parameters inside the block; the caller's flags come back after."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags, strict=True):
            param.requires_grad_(flag)


def save_encoder(encoder: Encoder, path: str | Path) -> None:
    """Write ``encoder`` as safetensors with its config as metadata; never leaves a half-written file.

    The tensors go to a temporary file in the same folder, which then replaces ``path``.
    """
    path = Path(path)
    tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in encoder.state_dict().items()}
    metadata = {METADATA_KEY: json.dumps(dataclasses.asdict(encoder.config), sort_keys=True)}
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        save_file(tensors, temp, metadata=metadata)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def load_encoder(path: str | Path, device: str | torch.device = "cpu") -> Encoder:
    """Read an encoder written by :func:`save_encoder`, in eval mode on ``device``.

    Raises:
        EncoderError: missing or unreadable file, not safetensors, no or invalid ``rigstyle_encoder``
            metadata, missing, unexpected or wrongly shaped tensors. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"{path}: no such encoder file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            config = _config(path, handle.metadata() or {})
            with torch.device("meta"):  # shapes only: a hostile config allocates nothing
                expected = {name: list(t.shape) for name, t in Encoder(config).state_dict().items()}
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
            check_tensor_names(path, shapes, expected)
            state = {name: handle.get_tensor(name) for name in shapes}
    except CheckpointError as error:
        raise EncoderError(str(error)) from None
    except (SafetensorError, OSError) as error:
        raise EncoderError(f"{path}: not a readable safetensors file ({error})") from None
    not_float = sorted(name for name, t in state.items() if not t.is_floating_point())
    if not_float:
        raise EncoderError(f"{path}: tensors that are not floating point: {', '.join(not_float)}")
    encoder = Encoder(config)
    encoder.load_state_dict(state, strict=True)
    return encoder.to(device).eval()


def _config(path: Path, metadata: dict[str, str]) -> EncoderConfig:
    """The :class:`EncoderConfig` in a file's metadata, or an :class:`EncoderError` naming the problem."""
    if METADATA_KEY not in metadata:
        raise EncoderError(f"{path}: not a RigStyle encoder (no {METADATA_KEY!r} metadata)")
    try:
        fields: Any = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise EncoderError(f"{path}: invalid encoder config JSON: {error}") from None
    if not isinstance(fields, dict):
        raise EncoderError(f"{path}: encoder config must be a JSON object, got {type(fields).__name__}")
    known = {f.name for f in dataclasses.fields(EncoderConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise EncoderError(f"{path}: unknown encoder config keys {unknown}; known: {sorted(known)}")
    try:
        return EncoderConfig(**fields)
    except (TypeError, EncoderError) as error:
        raise EncoderError(f"{path}: invalid encoder config {fields}: {error}") from None
