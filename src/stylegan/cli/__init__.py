"""The `stylegan` command. Each subcommand lives in its own module and is imported only when used."""
from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from stylegan.core.errors import StyleGANError

# name -> module under stylegan.cli that defines a click command called `command`.
COMMANDS = {
    "info": "info",
    "demo": "demo",
    "dataset": "dataset",
    "train": "train",
    "convert": "convert",
    "generate": "generate",
    "mix": "mix",
    "video": "video",
    "project": "project",
    "directions": "directions",
    "edit": "edit",
    "blend": "blend",
    "translate": "translate",
    "metrics": "metrics",
    "serve": "serve",
}


def _available(name: str) -> bool:
    return importlib.util.find_spec(f"stylegan.cli.{COMMANDS[name]}") is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return [n for n in COMMANDS if _available(n)]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not _available(name):
            return None
        return importlib.import_module(f"stylegan.cli.{COMMANDS[name]}").command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="stylegan")
def cli():
    """StyleGAN2, StyleGAN2-ADA, StyleGAN3-T and StyleGAN3-R in pure PyTorch: train, generate, project, measure."""


def main(argv=None):
    """Entry point: user errors print one line to stderr and exit 2, without a traceback."""
    try:
        cli.main(args=argv, prog_name="stylegan", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StyleGANError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
