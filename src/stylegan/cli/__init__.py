"""The `stylegan` command. Each subcommand lives in its own module and is imported only when used."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

import click


def busy_machine_note(load: float, cpus: int, env: dict) -> str | None:
    """What to tell the user, and whether to set OpenMP's passive wait policy, when the machine is already busy.

    On a machine with more runnable threads than cores, OpenMP threads that spin at the end of each parallel region
    take the cores from the threads still computing; PASSIVE made training several times faster there, and
    1.4-2.3x slower on an idle machine (docs/benchmarks.md). So it is set only when the 1-minute load average
    already exceeds the core count, and never over the user's own setting."""
    if load <= cpus or "OMP_WAIT_POLICY" in env:
        return None
    return (f"note: this machine is busy (load {load:.1f} on {cpus} cores), so this will run slower than usual; "
            "using OMP_WAIT_POLICY=PASSIVE, which measured fastest on busy machines (set OMP_WAIT_POLICY to override)")


def _adapt_to_busy_machine() -> str | None:
    # OpenMP reads the variable when torch loads, so this runs before anything imports torch.
    try:
        load = os.getloadavg()[0]
    except OSError:
        return None
    note = busy_machine_note(load, os.cpu_count() or 1, os.environ)
    if note:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return note


def _is_the_program() -> bool:
    """Whether this process is the `stylegan` command (or `python -m stylegan`), not a library user or a test."""
    prog = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    return prog.name == "stylegan" or prog.parts[-2:] == ("stylegan", "__main__.py")


_BUSY_NOTE = _adapt_to_busy_machine() if _is_the_program() else None
LONG_COMMANDS = ("train", "demo", "metrics")      # the commands that say so when the machine is busy

from stylegan.core.errors import StyleGANError  # noqa: E402 - after the OpenMP setting above

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
    args = sys.argv[1:] if argv is None else list(argv)
    if _BUSY_NOTE and args and args[0] in LONG_COMMANDS:
        click.echo(_BUSY_NOTE, err=True)
    try:
        cli.main(args=argv, prog_name="stylegan", standalone_mode=False)
    except click.exceptions.Abort as exc:
        # click turns Ctrl-C into Abort; it is an interruption like any other, with the shell's status for SIGINT.
        if isinstance(exc.__cause__, KeyboardInterrupt):
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StyleGANError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except MemoryError:
        # The readers check what a file claims before allocating it (io/limits.py); this is the last line of
        # defence, for an allocation nothing foresaw, or a machine too small for what was asked.
        click.echo("error: out of memory; if a file was given, it may claim more than it holds (a damaged or "
                   "forged file), else ask for less (a smaller --batch or resolution)", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
