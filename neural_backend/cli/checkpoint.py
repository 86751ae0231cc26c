"""``rigstyle checkpoint inspect | calibrate | convert``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..checkpoints.names import BUILTIN_NAMES
from .options import (
    CheckpointSpec,
    UserError,
    alignment_option,
)


@click.group()
def checkpoint() -> None:
    """Inspect and convert StyleGAN2 checkpoints (RigStyle .safetensors, NVlabs .pkl, rosinality .pt).

    Nothing in a checkpoint file is ever executed: pickles are read through an allow-list.
    """


CONVERT_TARGETS = {".safetensors": "rigstyle", ".pt": "rosinality", ".pth": "rosinality"}


@checkpoint.command("inspect")
@click.argument("file", type=CheckpointSpec())
def checkpoint_inspect(file: str) -> None:
    """Print what a checkpoint (or a built-in generator) holds.

    \b
    Examples:
      rigstyle checkpoint inspect stylegan2-ffhq-1024x1024.pkl
      rigstyle checkpoint inspect builtin-face-prior
    """
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint

    try:
        loaded = read_checkpoint(file)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    generator = loaded.generator
    config = generator.init_kwargs
    params = sum(p.numel() for p in generator.parameters())
    if loaded.discriminator is not None:
        d_params = sum(p.numel() for p in loaded.discriminator.parameters())
        discriminator = f"yes ({loaded.discriminator.init_kwargs['architecture']}, {d_params:,} parameters)"
    else:
        discriminator = f"no ({loaded.discriminator_problem})" if loaded.discriminator_problem else "no"
    lines = [
        f"file:           {loaded.path}" + (f" ({loaded.name})" if loaded.name != str(loaded.path) else ""),
        f"kind:           {loaded.kind}"
        + (" (UNTRAINED: its images are not faces)" if loaded.untrained else ""),
        f"alignment:      {loaded.alignment.describe()}",
        f"resolution:     {generator.img_resolution}",
        f"mapping depth:  {generator.mapping.num_layers}",
        f"num_ws:         {generator.num_ws}",
        f"z_dim / w_dim:  {generator.z_dim} / {generator.w_dim}"
        + (f", c_dim {generator.c_dim}" if generator.c_dim else ""),
        f"channels:       base {config['channel_base']}, max {config['channel_max']}",
        f"conv_clamp:     {config['conv_clamp']}, fp16 resolutions: {config['num_fp16_res']}",
        f"parameters:     {params:,}",
        f"discriminator:  {discriminator}",
    ]
    lines += [f"note:           {note}" for note in loaded.notes]
    lines += [f"{key[len('rigstyle_') :] + ':':<16}{value}" for key, value in loaded.metadata]
    click.echo("\n".join(lines))


@checkpoint.command("calibrate")
@click.argument("file", type=CheckpointSpec())
@click.option(
    "--frames", default=4, show_default=True, type=click.IntRange(1, 4), help="Demo-head frames to fit."
)
@click.option(
    "--steps",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Inversion steps per frame and candidate.",
)
@click.option("--name", default="calibrated", show_default=True, help="Name of the alignment written.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a RigStyle .safetensors copy with the alignment here (needed for .pkl/.pt and built-ins; "
    "default: update FILE's metadata in place).",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@click.option("--dry-run", is_flag=True, help="Only print what was found.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (default: torch's).")
def checkpoint_calibrate(
    file: str,
    frames: int,
    steps: int,
    name: str,
    out: Path | None,
    force: bool,
    dry_run: bool,
    threads: int | None,
) -> None:
    """Estimate how FILE's generator frames faces and store it as the checkpoint's alignment.

    Renders the demo head (pyrender, no Blender) in a few expressions and head turns, and searches the
    crop (the FFHQ square, scaled and moved) in which the generator fits the rendered skin best. Takes a
    few minutes on a CPU for a 64 px generator.

    \b
    Examples:
      rigstyle checkpoint calibrate my-generator.safetensors
      rigstyle checkpoint calibrate ffhq.pkl --out ffhq-calibrated.safetensors
    """
    from ..checkpoints.base import KIND_RIGSTYLE, CheckpointError
    from ..checkpoints.io import read_checkpoint, save_checkpoint, write_alignment
    from ..protocol.passes import PassError
    from ..refine.calibrate import calibrate, demo_frames

    if out is not None and out.exists() and not force:
        raise UserError(f"{out}: already exists (use --force to overwrite)")
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        loaded = read_checkpoint(file)
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    if out is None and not dry_run and (loaded.kind != KIND_RIGSTYLE or file in BUILTIN_NAMES):
        raise UserError(f"{file}: a {loaded.kind} file cannot hold metadata; give --out FILE.safetensors")
    click.echo(f"calibrating {loaded.name} ({loaded.generator.img_resolution} px) on {frames} demo frames...")
    try:
        found = calibrate(
            loaded.generator,
            demo_frames(frames),
            steps=steps,
            name=name,
            on_candidate=lambda c: click.echo(f"  {c.alignment.describe()}: skin loss {c.loss:.5f}"),
        )
    except (PassError, ValueError, RuntimeError) as exc:  # no offscreen GL, or frames it cannot fit
        raise UserError(f"calibration failed: {str(exc).strip().splitlines()[0]}") from None
    click.echo(
        f"best: {found.alignment.describe()}, skin loss {found.loss:.5f} (ffhq: {found.ffhq_loss:.5f}; "
        f"{len(found.candidates)} candidates)"
    )
    if dry_run:
        return
    try:
        if out is None:
            write_alignment(Path(file), found.alignment)
            click.echo(f"wrote the alignment into {file}")
        else:
            partial = out.with_name(f".{out.name}.partial")
            try:
                save_checkpoint(
                    loaded.generator,
                    partial,
                    loaded.discriminator,
                    dict(loaded.metadata),
                    alignment=found.alignment,
                )
                partial.replace(out)
            finally:
                partial.unlink(missing_ok=True)
            click.echo(f"wrote {out} with the alignment")
    except (CheckpointError, OSError) as exc:
        raise UserError(str(exc)) from None


@checkpoint.command("convert")
@click.argument("source", type=CheckpointSpec())
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "target_format",
    type=click.Choice(["rigstyle", "rosinality"]),
    help="Output format. Default: from TARGET's suffix (.safetensors = rigstyle, .pt/.pth = rosinality).",
)
@click.option("--force", is_flag=True, help="Overwrite TARGET if it exists.")
@click.option(
    "--half", is_flag=True, help="rigstyle: store float16 tensors (half the size; loads as float32)."
)
@click.option("--no-discriminator", is_flag=True, help="Leave the discriminator out.")
@alignment_option
def checkpoint_convert(
    source: str,
    target: Path,
    target_format: str | None,
    force: bool,
    half: bool,
    no_discriminator: bool,
    alignment: Any,
) -> None:
    """Convert SOURCE (any supported format) to TARGET, generator and discriminator alike.

    The result draws bit-identical images for the same latents and noise (with --half: images within
    float16 rounding). A rigstyle TARGET keeps SOURCE's alignment and training metadata; --alignment sets
    another framing.

    \b
    Examples:
      rigstyle checkpoint convert stylegan2-ffhq-1024x1024.pkl ffhq.safetensors
      rigstyle checkpoint convert ffhq.safetensors ffhq-rosinality.pt
      rigstyle checkpoint convert runs/prior/network-020000.safetensors prior.safetensors --half \\
          --alignment '{"name": "face-prior", "scale": 0.75, "offset": [0, 0.017]}'
    """
    from ..checkpoints.base import CheckpointError
    from ..checkpoints.io import read_checkpoint, save_checkpoint
    from ..checkpoints.rosinality import discriminator_problems, save_rosinality

    target_format = target_format or CONVERT_TARGETS.get(target.suffix.lower())
    if target_format is None:
        raise UserError(
            f"{target}: cannot tell the output format from the suffix; use --to rigstyle|rosinality"
        )
    if target.exists() and not force:
        raise UserError(f"{target}: already exists (use --force to overwrite)")
    if target.resolve() == Path(source).resolve():
        raise UserError(f"{target}: is the source file; choose another output path")
    if target_format != "rigstyle" and (half or alignment is not None):
        raise UserError("--half and --alignment need a rigstyle (.safetensors) target")
    partial = target.with_name(f".{target.name}.partial")
    notes: list[str] = []
    try:
        loaded = read_checkpoint(source)
        notes += [*loaded.notes, *([loaded.discriminator_problem] if loaded.discriminator_problem else [])]
        discriminator = None if no_discriminator else loaded.discriminator
        if target_format == "rigstyle":
            save_checkpoint(
                loaded.generator,
                partial,
                discriminator,
                metadata=dict(loaded.metadata),
                alignment=alignment or loaded.alignment,
                half=half,
            )
        else:
            if discriminator is not None and discriminator_problems(discriminator.init_kwargs):
                reasons = "; ".join(discriminator_problems(discriminator.init_kwargs))
                notes.append(f"discriminator not written (rosinality cannot represent it: {reasons})")
                discriminator = None
            save_rosinality(loaded.generator, partial, discriminator)
        partial.replace(target)  # never leaves a half-written TARGET behind
    except (CheckpointError, ValueError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise UserError(str(exc).replace(str(partial), str(target))) from None
    networks = "generator + discriminator" if discriminator is not None else "generator only"
    click.echo(f"wrote {target} ({target_format}, {networks}) from {source} ({loaded.kind})")
    for note in notes:
        click.echo(f"note: {note}")
