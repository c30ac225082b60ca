"""stylegan train: parse the flags, check them, then run stylegan.training.train (see docs/training.md)."""
from __future__ import annotations

import sys

import click

from stylegan.cli.common import device_option
from stylegan.augment import AUG_MODES
from stylegan.training.config import CFG_CHOICES, FLAG_DEFAULTS, PRECISION_CHOICES


def _default(name: str, text: str | None = None) -> str:
    return f"  [default: {text if text is not None else FLAG_DEFAULTS[name]}]"


def _bool_option(name: str, help: str):
    # NVIDIA spells these --mirror=1; a bare --mirror works too.
    return click.option(name, type=bool, is_flag=False, flag_value=True, default=None, metavar="[BOOL]",
                        help=help + _default(name.lstrip("-").replace("-", "_")))


EXAMPLES = """
\b
Examples:
  # Train StyleGAN3-T on one GPU (or the CPU): batch 32, R1 weight 8.2, mirrored images.
  stylegan train --outdir runs --cfg stylegan3-t --data ~/datasets/afhq-512x512.zip --batch 32 --gamma 8.2 --mirror
\b
  # The same on 8 GPUs of this machine; or on several machines with torchrun.
  stylegan train --gpus 8 --outdir runs --cfg stylegan3-t --data afhq.zip --batch 32 --gamma 8.2
  torchrun --nnodes 2 --nproc_per_node 8 --rdzv-endpoint HOST:29500 -m stylegan train --outdir runs ...
\b
  # Continue the newest run in runs/ exactly where it stopped.
  stylegan train --outdir runs --resume latest
\b
  # Fine-tune from a network file, freezing D's first 4 layers.
  stylegan train --outdir runs --cfg stylegan2 --data faces.zip --batch 32 --gamma 10 \\
      --resume network-snapshot-001000.safetensors --freezed 4
"""


@click.command(epilog=EXAMPLES)
@click.option("--outdir", metavar="DIR", help="Where the numbered run directories go.  [required]")
@click.option("--cfg", type=click.Choice(CFG_CHOICES), help="Base configuration.  [required for a new run]")
@click.option("--data", metavar="ZIP|DIR", help="Training images ('demo', 'openmoji' = the bundled sets).  [required for a new run]")
@click.option("--batch", type=int, metavar="INT", help="Total batch size, over all GPUs.  [required for a new run]")
@click.option("--gamma", type=float, metavar="FLOAT", help="R1 regularisation weight.  [required for a new run]")
@click.option("--gpus", type=click.IntRange(min=1), metavar="INT",
              help="Processes to launch on this machine (under torchrun: the world size)." + _default("gpus"))
@click.option("--batch-gpu", type=click.IntRange(min=1), metavar="INT",
              help="Images per forward pass; less than batch/gpus accumulates gradients.  [default: batch/gpus]")
@_bool_option("--cond", "Condition on the dataset's labels.")
@_bool_option("--mirror", "Add x-flipped copies of the images.")
@click.option("--aug", type=click.Choice(AUG_MODES), help="Augmentation mode." + _default("aug"))
@click.option("--p", type=click.FloatRange(0, 1), metavar="FLOAT",
              help="Probability for --aug fixed (required there); starting p for --aug ada.  [default: 0, or the "
                   "p stored in a snapshot given to --resume]")
@click.option("--target", type=click.FloatRange(0, 1), metavar="FLOAT", help="ADA target." + _default("target"))
@click.option("--augpipe", metavar="NAME", help="Augmentation pipeline preset." + _default("augpipe"))
@click.option("--resume", metavar="latest|STATE|NETWORK",
              help="Continue a run ('latest' or a training-state file), or start from the weights of a network "
                   "file (.safetensors, NVIDIA .pkl, or a URL of one).")
@click.option("--resume-kimg", type=click.FloatRange(min=0), metavar="KIMG",
              help="With a network file: the kimg to start counting from." + _default("resume_kimg"))
@click.option("--freezed", type=click.IntRange(min=0), metavar="INT",
              help="Freeze the first N layers of D (Freeze-D)." + _default("freezed"))
@_bool_option("--freeze-mapping", "Keep G's mapping network fixed.")
@click.option("--cbase", type=click.IntRange(min=1), metavar="INT", help="Capacity multiplier." + _default("cbase"))
@click.option("--cmax", type=click.IntRange(min=1), metavar="INT", help="Max. feature maps." + _default("cmax"))
@click.option("--map-depth", type=click.IntRange(min=1), metavar="INT",
              help="Mapping network depth.  [default: 8 stylegan2, 2 stylegan3]")
@click.option("--mbstd-group", type=click.IntRange(min=1), metavar="INT",
              help="Minibatch stddev group size." + _default("mbstd_group"))
@click.option("--glr", type=click.FloatRange(min=0), metavar="FLOAT",
              help="G learning rate.  [default: 0.002 stylegan2, 0.0025 stylegan3]")
@click.option("--dlr", type=click.FloatRange(min=0), metavar="FLOAT", help="D learning rate." + _default("dlr"))
@click.option("--desc", metavar="STR", help="Text appended to the run directory's name.")
@click.option("--metrics", metavar="NAME,...|none", help="Metrics at each snapshot." + _default("metrics"))
@click.option("--kimg", type=float, metavar="KIMG", help="Training length, thousands of images." + _default("kimg"))
@click.option("--tick", type=float, metavar="KIMG", help="Progress line every this many kimg." + _default("tick"))
@click.option("--snap", type=int, metavar="TICKS", help="Snapshot every this many ticks." + _default("snap"))
@click.option("--seed", type=click.IntRange(min=0), metavar="INT", help="Random seed." + _default("seed"))
@_bool_option("--fp32", "Disable mixed precision (same as --precision fp32).")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES),
              help="auto = fp16 in the top 4 resolutions on CUDA, fp32 elsewhere; bf16 = autocast, no clamp "
                   "(CPU, or a GPU with bfloat16)." + _default("precision"))
@_bool_option("--compile", "torch.compile G and D (eager with one warning if that fails; R1 and path length "
              "stay eager). A resumed run may turn it on or off.")
@click.option("--workers", type=click.IntRange(min=0), metavar="INT",
              help="DataLoader worker processes." + _default("workers"))
@device_option
@click.option("-n", "--dry-run", is_flag=True, help="Print the resolved options and exit.")
def command(dry_run: bool, **flags):
    """Train a StyleGAN2 or StyleGAN3 generator on a dataset."""
    from stylegan.core import dist
    from stylegan.core.device import resolve_device
    from stylegan.training import describe_config, prepare_config, train
    from stylegan.training.distributed import launch_local

    if dist.launched_by_torchrun():     # join the group first, so that only rank 0 prints from here on
        dist.init(resolve_device(flags["device"]).type)
    config = prepare_config(flags)
    if dry_run:
        dist.print0(describe_config(config))
        dist.print0("Dry run; exiting.")
        return
    if config.run.gpus > 1 and not dist.launched_by_torchrun():
        dist.print0(f"Launching {config.run.gpus} processes with torch.distributed.run...")
        args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items() if v is not None and k != "gpus"]
        sys.exit(launch_local(config.run.gpus, args))
    dist.print0(describe_config(config).split("\n\n", 1)[1])
    try:
        train(config)
    finally:
        dist.shutdown()
