"""``rigstyle rig info | to-blend``: FLAME / SMPL-X model files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import (
    USER_ERROR_EXIT,
    UserError,
)

if TYPE_CHECKING:
    pass


@click.group()
def rig() -> None:
    """Inspect rig model files (FLAME, SMPL-X, RigStyle .npz) and turn them into Blender scenes."""


@rig.command("info")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
def rig_info(model: Path) -> None:
    """Print what a rig model file contains.

    \b
    Example:
      rigstyle rig info FLAME2020/generic_model.pkl
    """
    import numpy as np

    import rigs
    from rigs.regions import REGION_NAMES

    try:
        loaded = rigs.load(model)
    except rigs.RigError as exc:
        raise UserError(str(exc)) from None
    counts = np.bincount(loaded.face_regions, minlength=len(REGION_NAMES))
    regions = ", ".join(f"{REGION_NAMES[label]} {count}" for label, count in enumerate(counts) if count)
    lines = [
        f"file:        {model}",
        f"name:        {loaded.name}",
        f"kind:        {loaded.kind}" + (f" ({loaded.gender})" if loaded.gender else ""),
        f"vertices:    {loaded.num_vertices}",
        f"faces:       {len(loaded.faces)}",
        f"joints:      {loaded.num_joints} ({', '.join(loaded.joint_names[:8])}"
        f"{', ...' if loaded.num_joints > 8 else ''})",
        f"shape:       {loaded.num_betas} components",
        f"expression:  {loaded.num_expressions} components",
        f"landmarks:   {loaded.num_landmarks} static, {loaded.num_dynamic_landmarks} dynamic contour",
        f"hands:       {loaded.num_hand_components} PCA components" if loaded.num_hand_components else "",
        f"regions:     {regions} (faces)",
    ]
    click.echo("\n".join(line for line in lines if line))


@rig.command("to-blend")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The .blend to write."
)
@click.option(
    "--sequence",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Motion to key: AMASS / SMPL-X .npz or FLAME tracker .npz, resampled to the scene's frame rate.",
)
@click.option("--gender", type=click.Choice(["neutral", "male", "female"]), help="Which model of a folder.")
@click.option(
    "--fps", type=click.FloatRange(min=1), help="Scene frame rate (default: the sequence's, else 30)."
)
def rig_to_blend(
    model: Path, out: Path, sequence: Path | None, gender: str | None, fps: float | None
) -> None:
    """Build a rig model in Blender (mesh, armature, shape keys, live correctives) and save it as a .blend.

    \b
    Example:
      rigstyle rig to-blend models/SMPLX_NEUTRAL.npz --sequence walk.npz --out walk.blend
    """
    import subprocess

    command = [sys.executable, "-m", "blender_addon.rig_job", "--model", str(model), "--out", str(out)]
    for flag, value in (("--sequence", sequence), ("--gender", gender), ("--fps", fps)):
        if value is not None:
            command += [flag, str(value)]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if result.returncode == USER_ERROR_EXIT and errors:
        raise UserError(errors[-1].removeprefix("error: "))
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise click.ClickException(f"Blender failed (exit code {result.returncode}): {last}")
    for line in result.stdout.splitlines():
        if line.startswith("[rigstyle] "):
            click.echo(line.removeprefix("[rigstyle] "))
