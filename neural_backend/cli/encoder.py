"""``rigstyle train-encoder``: the preview encoder for a generator."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    UserError,
    checkpoint_option,
    gan_resolution_option,
)


@click.command("train-encoder")
@checkpoint_option
@gan_resolution_option
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The encoder file to write (.safetensors).",
)
@click.option("--steps", default=2000, show_default=True, type=click.IntRange(min=1), help="Training steps.")
@click.option("--batch", default=8, show_default=True, type=click.IntRange(min=1), help="Samples per step.")
@click.option(
    "--lr",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Adam learning rate.",
)
@click.option(
    "--seed", default=0, show_default=True, type=int, help="Seed of the initialisation and samples."
)
@click.option(
    "--device", default="auto", show_default=True, help="Torch device: auto (CUDA when present), cpu, cuda:N."
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
def train_encoder_command(
    checkpoint: str,
    gan_resolution: int,
    out: Path,
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    device: str,
    force: bool,
) -> None:
    """Train a feed-forward W+ encoder (image -> latent in one pass) on the generator's own samples.

    Preview mode uses it instead of optimisation. No external data is used: the encoder learns to map the
    generator's images back to their (style-mixed) latents. Progress every 10% of the steps, then the
    held-out latent and image MSE before and after training.

    \b
    Examples:
      rigstyle train-encoder --checkpoint ffhq.safetensors --out ffhq-encoder.safetensors
      rigstyle train-encoder --gan-resolution 32 --steps 200 --out builtin-encoder.safetensors
    """
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"{out}: the encoder is written as safetensors; use a .safetensors name")
    if out.exists() and not force:
        raise UserError(f"{out}: already exists (use --force to overwrite)")
    if not out.parent.is_dir():
        raise UserError(f"{out}: folder {out.parent} does not exist")
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint
    from ..refine.encoder import EncoderError, save_encoder, train_encoder
    from ..serving.engines.local import DeviceError, resolve_device

    try:
        device = resolve_device(device)
        loaded = read_checkpoint(checkpoint, untrained_resolution=gan_resolution)
        if loaded.untrained:
            click.echo("WARNING: training on the built-in UNTRAINED generator.", err=True)
        generator = loaded.generator.to(device).eval()
    except (CheckpointError, DeviceError) as exc:
        raise UserError(str(exc)) from None
    every = max(1, steps // 10)

    def progress(step: int, total: int, loss: float) -> None:
        if step % every == 0 or step == total:
            click.echo(f"step {step}/{total}  loss {loss:.5f}")

    try:
        encoder, metrics = train_encoder(generator, steps, batch, lr, seed, device=device, on_step=progress)
        save_encoder(encoder, out)
    except (EncoderError, OSError) as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"wrote {out}: held-out latent MSE {metrics['latent_mse_start']:.4f} -> "
        f"{metrics['latent_mse_end']:.4f}, image MSE {metrics['image_mse_start']:.4f} -> "
        f"{metrics['image_mse_end']:.4f}; trained in {metrics['seconds']:.1f} s on {device}"
    )
