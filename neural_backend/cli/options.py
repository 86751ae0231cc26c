"""What several ``rigstyle`` commands share: the one-line user error, parameter types and options."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..checkpoints.names import BUILTIN_NAMES, FACE_PRIOR_NAME

if TYPE_CHECKING:
    from ..refine.refiner import RefineConfig


USER_ERROR_EXIT = 2


class UserError(click.ClickException):
    """A mistake the user can fix (bad option, missing file, busy port). Exit code 2."""

    exit_code = USER_ERROR_EXIT


def _power_of_two(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and (value < 4 or value & (value - 1)):
        raise click.BadParameter(f"{value} is not a power of two ≥ 4", ctx, param)
    return value


class CheckpointSpec(click.ParamType):
    """A checkpoint file that exists, or a built-in generator's name."""

    name = "FILE|NAME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text in BUILTIN_NAMES:
            return text
        path = Path(text)
        if not path.exists():
            self.fail(f"{text}: no such file (or built-in name: {', '.join(BUILTIN_NAMES)})", param, ctx)
        if path.is_dir():
            self.fail(f"{text} is a folder, not a checkpoint file", param, ctx)
        return text


def _alignment(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from ..refine.framing import Alignment, AlignmentError

    try:
        return Alignment.from_json(value)
    except AlignmentError as error:
        raise click.BadParameter(str(error), ctx, param) from None


checkpoint_option = click.option(
    "--checkpoint",
    type=CheckpointSpec(),
    default=FACE_PRIOR_NAME,
    show_default=True,
    help="StyleGAN2 checkpoint (.safetensors, NVlabs .pkl, rosinality .pt) or a built-in: builtin-face-prior "
    "(the shipped 64 px face prior) or builtin-untrained (nothing learned; for tests).",
)
gan_resolution_option = click.option(
    "--gan-resolution",
    default=64,
    show_default=True,
    callback=_power_of_two,
    help="Resolution of builtin-untrained (other generators have their own).",
)
alignment_option = click.option(
    "--alignment",
    callback=_alignment,
    help='Override the checkpoint\'s face framing: "ffhq" or JSON '
    '{"name": ..., "scale": ..., "offset": [x, y]}.',
)
steps_first_option = click.option(
    "--steps-first", type=click.IntRange(min=1), help="Inversion steps for a shot's first frame."
)
steps_warm_option = click.option(
    "--steps-warm", type=click.IntRange(min=1), help="Inversion steps for warm-started frames."
)


def refine_config(**given: Any) -> RefineConfig:
    """The default refinement settings with those given on the command line (None = default)."""
    from ..refine.refiner import RefineConfig

    given = {name: value for name, value in given.items() if value is not None}
    blend = {name: given.pop(key) for key, name in _BLEND_OPTIONS.items() if key in given}
    defaults = RefineConfig()
    return dataclasses.replace(defaults, blend=dataclasses.replace(defaults.blend, **blend), **given)


_BLEND_OPTIONS = {  # option -> BlendConfig field
    "history": "history",
    "blend_width": "width_px",
    "gan_skin": "gan_skin",
    "surroundings": "surroundings",
}
