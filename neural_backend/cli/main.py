"""The ``rigstyle`` command line: the group and its commands, one module per command group. User errors
print one line and exit with code 2."""

from __future__ import annotations

import sys

import click

from .addon import addon
from .checkpoint import checkpoint
from .demo import demo
from .encoder import train_encoder_command
from .farm import FARM_COMMANDS
from .rig import rig
from .serve import serve
from .train import train_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rigstyle")
def cli() -> None:
    """RigStyle: keyframed FLAME/SMPL-X rigs rendered in Blender and refined by StyleGAN2.

    \b
    Quick start:
      rigstyle demo --out demo_out        # the whole round trip on the demo head
      rigstyle serve --port 7557          # run the backend for Blender or other DCCs
    """


for _command in (serve, demo, train_encoder_command, checkpoint, addon, rig, *FARM_COMMANDS, train_command):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: every click or user error becomes one line on stderr and exit code 2."""
    try:
        # without standalone mode, click returns the code of a click.exceptions.Exit instead of raising it
        code = cli.main(args=argv, prog_name="rigstyle", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rigstyle: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"rigstyle: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
