"""``rigstyle rig info | to-blend | emotion | prefer``: FLAME / SMPL-X model files and their expressions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .options import (
    USER_ERROR_EXIT,
    UserError,
)


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


@rig.command("emotion")
@click.argument("model")
@click.argument("take", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--emotion", help="happiness, sadness, surprise, fear, anger, disgust or contempt.")
@click.option(
    "--reference",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A take of the same rig whose expression style to transfer (instead of --emotion).",
)
@click.option("--intensity", default=1.0, show_default=True, type=float, help="0..1.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Edited take (.npz)."
)
def rig_emotion(
    model: str, take: Path, emotion: str | None, reference: Path | None, intensity: float, out: Path
) -> None:
    """Add an emotion to a take (AMASS / FLAME tracker .npz), keeping its speech: the jaw untouched, the lip
    gaps and mouth width held; written as an AMASS-style .npz. MODEL is a rig file or "demo".

    \b
    Example:
      rigstyle rig emotion FLAME2020/generic_model.pkl tracked.npz --emotion happiness --intensity 0.7 \\
          --out happy.npz
    """
    import rigs
    from rigs.expression import transfer_emotion
    from rigs.sequences import load_sequence, save_sequence

    try:
        loaded = rigs.demo_head() if model == "demo" else rigs.load(model)
        edited = transfer_emotion(
            loaded,
            load_sequence(take),
            emotion,
            intensity,
            load_sequence(reference) if reference is not None else None,
        )
    except rigs.RigError as error:
        raise UserError(str(error)) from None
    save_sequence(out, edited)
    mode = f"{emotion} {intensity:g}" if emotion else f"the style of {reference}"
    click.echo(f"wrote {out}: {edited.num_frames} frames with {mode}, speech kept")


@rig.command("prefer")
@click.argument("model")
@click.option(
    "--controls",
    required=True,
    help="2 to 6 action units or emotions, comma-separated (happiness,surprise or AU12,AU4).",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Makes the session repeatable.")
@click.option(
    "--noise", default=10.0, show_default=True, type=float, help="How reliably you answer (larger: more)."
)
@click.option(
    "--queries", default=30, show_default=True, type=click.IntRange(min=1), help="Most pairs asked."
)
@click.option(
    "--answers",
    help='The answers, instead of asking on stdin: "abn-b" or "a,b,n" (n or -: can\'t tell; q: finish).',
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the pictures and the estimate.",
)
def rig_prefer(
    model: str, controls: str, seed: int, noise: float, queries: int, answers: str | None, out: Path
) -> None:
    """Find an expression by answering "A or B?" (PrefGen's search on a rig), without Blender. MODEL is a
    rig file or "demo".

    Each pair is rendered to OUT/query_NN.png (A left, B right); answer a, b, n (can't tell) or q (finish)
    on stdin. At the end the estimate is printed (mean ± sd per control) and written to OUT/estimate.json,
    OUT/estimate.png and OUT/expression.npz (the rig's expression and jaw offsets, to apply in any DCC).

    \b
    Example:
      rigstyle rig prefer demo --controls happiness,surprise --out prefer_out
    """
    from .prefer import run_preference

    names = [name.strip() for name in controls.split(",") if name.strip()]
    run_preference(model, names, seed, noise, queries, answers, out, sys.stdin)
