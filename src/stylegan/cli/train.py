"""stylegan train: parse the flags, check them, then run stylegan.training.train (see docs/training.md)."""
from __future__ import annotations

import sys

import click

from stylegan.cli.common import device_option
from stylegan.training.config import OPTIONS, Option, TrainingFlags


def _click_option(row: Option):
    """The click option for one row of the flag table. Its default stays None, so that prepare_config can tell a
    flag that was given from one left alone (a resumed run compares the given ones with the saved run)."""
    if row.name == "device":
        return device_option                # shared with every command that runs networks
    if row.type is bool:                    # NVIDIA spells these --mirror=1; a bare --mirror works too
        return click.option(row.flag, type=bool, is_flag=False, flag_value=True, default=None, metavar="[BOOL]",
                            help=row.help + row.help_note)
    if row.choices:
        kind = click.Choice(row.choices)
    elif row.min is not None or row.max is not None:
        kind = (click.IntRange if row.type is int else click.FloatRange)(min=row.min, max=row.max)
    else:
        kind = row.type
    return click.option(row.flag, type=kind, metavar=row.metavar, help=row.help + row.help_note)


def _table_options(fn):
    for row in reversed(OPTIONS):           # decorators apply bottom-up; --help lists the table's order
        fn = _click_option(row)(fn)
    return fn


EXAMPLES = """
\b
Examples:
  # Train StyleGAN3-T on one GPU (or the CPU): batch 32, R1 weight 8.2, mirrored images.
  stylegan train --outdir runs --cfg stylegan3-t --data ~/datasets/afhq-512x512.zip --batch 32 --gamma 8.2 --mirror
\b
  # The same on 8 GPUs of this machine; or on several machines with torchrun.
  stylegan train --gpus 8 --outdir runs --cfg stylegan3-t --data afhq.zip --batch 32 --gamma 8.2
  torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m stylegan train ...
\b
  # Continue the newest run in runs/ exactly where it stopped.
  stylegan train --outdir runs --resume latest
\b
  # Fine-tune from a network file, freezing D's first 4 layers.
  stylegan train --outdir runs --cfg stylegan2 --data faces.zip --batch 32 --gamma 10 \\
      --resume network-snapshot-001000.safetensors --freezed 4
"""


@click.command(epilog=EXAMPLES)
@_table_options
@click.option("-n", "--dry-run", is_flag=True, help="Print the resolved options and exit.")
def command(dry_run: bool, **flags):
    """Train a StyleGAN2 or StyleGAN3 generator on a dataset."""
    from stylegan.core import dist
    from stylegan.core.device import resolve_device
    from stylegan.training import describe_config, prepare_config, train

    if dist.launched_by_torchrun():     # join the group first, so that only rank 0 prints from here on
        dist.init(resolve_device(flags["device"]).type)
    flags = TrainingFlags(**flags)
    config = prepare_config(flags)
    if dry_run:
        dist.print0(describe_config(config))
        dist.print0("Dry run; exiting.")
        return
    if config.run.gpus > 1 and not dist.launched_by_torchrun():
        dist.print0(f"Launching {config.run.gpus} processes with torch.distributed.run...")
        sys.exit(dist.run_under_torchrun(config.run.gpus, ["train", *flags.as_args(leave_out=("gpus",))]))
    dist.print0(describe_config(config).split("\n\n", 1)[1])
    try:
        train(config)
    finally:
        dist.shutdown()
