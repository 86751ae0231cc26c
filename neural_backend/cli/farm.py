"""``rigstyle render | passes | refine | composite``: a shot's stages from the command line (render farms).

``passes`` and ``composite`` (and ``render``, all three) run Blender headless: the ``bpy`` module by
default (``python -m blender_addon.blend_runner``), or the Blender binary given with ``--blender``, with
the same ``bpy.ops.rigstyle.farm(...)`` expression either way. ``refine`` needs no Blender. Every stage
skips the frames the shot folder's manifest lists as finished and exits non-zero when any frame fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import click

from ..farm.refine_stage import DEFAULT_SEGMENT
from ..farm.shot_folder import parse_frames

TOKEN_ENV = "RIGSTYLE_TOKEN"


class FarmUsageError(click.ClickException):
    """A mistake in the command line (exit code 2, like every ``rigstyle`` user error)."""

    exit_code = 2


def _frames(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            parse_frames(value)
        except ValueError as error:
            raise click.BadParameter(str(error), ctx, param) from None
    return value


scene_argument = click.argument("scene", type=click.Path(exists=True, dir_okay=False, path_type=Path))
frames_option = click.option(
    "--frames", required=True, callback=_frames, help="Frames: A-B (inclusive), A, or a comma-separated list."
)
out_option = click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The shot folder.",
)
shot_option = click.option("--shot", help="Shot name (default: the shot folder's name).")
blender_option = click.option(
    "--blender",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Blender executable to run (default: the bpy module of this Python).",
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Redo frames that are already finished.")
progress_option = click.option(
    "--progress",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Progress lines for people, or one JSON object per line for farm managers.",
)
backend_option = click.option(
    "--backend",
    "backends",
    multiple=True,
    required=True,
    help="Backend address, e.g. tcp://gpu1:7557; repeat for several (failover, in-flight limits).",
)
token_option = click.option(
    "--token-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"File holding the backends' token (default: ${TOKEN_ENV}).",
)
segment_option = click.option(
    "--segment",
    type=click.IntRange(min=1),
    default=DEFAULT_SEGMENT,
    show_default=True,
    help="Frames refined jointly per backend call; the shot's state carries over between segments.",
)


@click.command()
@scene_argument
@frames_option
@out_option
@backend_option
@shot_option
@blender_option
@overwrite_option
@segment_option
@token_option
@progress_option
def render(
    scene: Path,
    frames: str,
    out_dir: Path,
    backends: tuple[str, ...],
    shot: str | None,
    blender: Path | None,
    overwrite: bool,
    segment: int,
    token_file: Path | None,
    progress: str,
) -> None:
    """Render a shot headless: passes, refinement on the backends, composite (all three stages).

    \b
    Example:
      rigstyle render shot.blend --frames 1-48 --out /farm/sh010 --backend tcp://gpu1:7557 \\
          --backend tcp://gpu2:7557 --progress json
    """
    options = dict(backends=" ".join(backends), segment=segment, token_file=_text(token_file))
    _run_blender("all", scene, frames, out_dir, shot, blender, overwrite, progress, options)


@click.command()
@scene_argument
@frames_option
@out_option
@shot_option
@blender_option
@overwrite_option
@progress_option
def passes(
    scene: Path,
    frames: str,
    out_dir: Path,
    shot: str | None,
    blender: Path | None,
    overwrite: bool,
    progress: str,
) -> None:
    """Render the passes of FRAMES into the shot folder (farm stage 1; frame ranges run in parallel)."""
    _run_blender("passes", scene, frames, out_dir, shot, blender, overwrite, progress, {})


@click.command()
@scene_argument
@frames_option
@out_option
@blender_option
@overwrite_option
@progress_option
def composite(
    scene: Path, frames: str, out_dir: Path, blender: Path | None, overwrite: bool, progress: str
) -> None:
    """Composite refined FRAMES of the shot folder (farm stage 3; frame ranges run in parallel)."""
    _run_blender("composite", scene, frames, out_dir, None, blender, overwrite, progress, {})


@click.command()
@click.argument(
    "shot_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@backend_option
@click.option("--frames", callback=_frames, help="Frames to refine (default: every frame with passes).")
@overwrite_option
@segment_option
@token_option
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Shots refined at a time per backend.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for a backend while all are down or busy.",
)
@click.option(
    "--frame-timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds per frame.",
)
@progress_option
def refine(
    shot_dirs: tuple[Path, ...],
    backends: tuple[str, ...],
    frames: str | None,
    overwrite: bool,
    segment: int,
    token_file: Path | None,
    in_flight: int,
    wait: float,
    frame_timeout: float,
    progress: str,
) -> None:
    """Refine the shots in SHOT_DIRS on the backends (farm stage 2; no Blender needed).

    Several shots are refined at once, at most --in-flight per backend; each shot keeps to one backend and
    moves, with its saved state, when that backend fails.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..client.pool import BackendPool
    from ..farm.progress import Progress
    from ..farm.refine_stage import RefineSettings, RefineStageError, refine_folder
    from ..farm.shot_folder import ShotFolder, ShotFolderError

    if len(set(backends)) != len(backends):
        raise FarmUsageError(f"--backend: an address is given twice: {list(backends)}")
    pool = BackendPool(list(backends), _token(token_file), in_flight)
    settings = RefineSettings(segment=segment, frame_timeout=frame_timeout, wait=wait)
    wanted = parse_frames(frames) if frames else None
    several = len(shot_dirs) > 1

    def refine_one(shot_dir: Path) -> bool:
        report = Progress(progress, shot=shot_dir.name if several else None)  # type: ignore[arg-type]
        try:
            refine_folder(ShotFolder(shot_dir), pool, wanted, settings, overwrite, report)
        except (RefineStageError, ShotFolderError) as error:
            report.error(str(error), getattr(error, "frame", None))
            return False
        return True

    with ThreadPoolExecutor(max_workers=min(len(shot_dirs), len(backends) * in_flight)) as workers:
        succeeded = list(workers.map(refine_one, shot_dirs))
    if not all(succeeded):
        raise click.exceptions.Exit(1)


FARM_COMMANDS = (render, passes, refine, composite)


def blender_command(blender: Path | None, scene: Path, expression: str) -> list[str]:
    """The command line that runs ``expression`` in ``scene`` headless, exiting 1 if it raises."""
    if blender is None:
        return [sys.executable, "-m", "blender_addon.blend_runner", str(scene), expression]
    return [str(blender), "-b", str(scene), "--python-exit-code", "1", "--python-expr", expression]


def farm_expression(stage: str, **options: object) -> str:
    """``import bpy; bpy.ops.rigstyle.farm(stage=..., ...)`` with ``options`` as Python literals."""
    arguments = ", ".join(f"{name}={value!r}" for name, value in {"stage": stage, **options}.items())
    return f"import bpy; bpy.ops.rigstyle.farm({arguments})"


def _run_blender(
    stage: str,
    scene: Path,
    frames: str,
    out_dir: Path,
    shot: str | None,
    blender: Path | None,
    overwrite: bool,
    progress: str,
    options: dict[str, object],
) -> None:
    given = {k: v for k, v in options.items() if v not in (None, "")}
    expression = farm_expression(
        stage,
        frames=frames,
        out_dir=str(out_dir.resolve()),
        **({"shot": shot} if shot else {}),
        overwrite=overwrite,
        progress=progress,
        **given,
    )
    if blender is None and importlib.util.find_spec("bpy") is None:
        raise FarmUsageError("this Python has no bpy module: pip install bpy==5.0.1, or give --blender PATH")
    command = blender_command(blender, scene.resolve(), expression)
    try:
        code = subprocess.call(command, stdin=subprocess.DEVNULL, env=os.environ.copy())
    except OSError as error:
        raise FarmUsageError(f"cannot run {command[0]}: {error.strerror}") from None
    if code != 0:
        raise click.exceptions.Exit(code)


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        return token_file.read_text().strip() or None
    return os.environ.get(TOKEN_ENV) or None


def _text(path: Path | None) -> str | None:
    return None if path is None else str(path.resolve())
