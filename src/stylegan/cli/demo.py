"""stylegan demo: the main job on the built-in default. Starts from the shipped emoji network and, in about ten
minutes on two CPU cores, fine-tunes it to a second style, blends the two, translates held-out emoji and writes a
video (stylegan.training.demo). `--from-scratch` trains a small StyleGAN3-T from nothing instead; `--untrained`
builds one untrained network per preset and samples it: a quick check that this machine can run them.
"""
from __future__ import annotations

from pathlib import Path

import click

from stylegan.core.device import DEVICE_CHOICES


@click.command(name="demo")
@click.option("--outdir", default=None, type=click.Path(file_okay=False),
              help="Where to write. Default: demo-runs, or out/demo with --untrained.")
@click.option("--device", default="cpu", show_default=True, metavar="|".join(DEVICE_CHOICES),
              help="Where to run. The demo is sized for a CPU; auto picks CUDA, then MPS, then CPU.")
@click.option("--finetune-kimg", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Fine-tuning length in thousands of images.  [default: 6, about 3 minutes on 2 CPU cores]")
@click.option("--from-scratch", is_flag=True,
              help="Train a small StyleGAN3-T from nothing instead (the same as `stylegan train`; 4 kimg, about "
                   "10 minutes on 2 CPU cores, soft coloured blobs).")
@click.option("--kimg", default=None, type=click.FloatRange(min=0, min_open=True),
              help="With --from-scratch: training length in thousands of images.  [default: 4]")
@click.option("--untrained", is_flag=True,
              help="Do not train: build one UNTRAINED network per preset, save it, and write an image grid and "
                   "its `stylegan info` text.")
@click.option("--resolution", default=64, show_default=True, type=click.IntRange(min=16),
              help="With --untrained: image resolution.")
@click.option("--cbase", default=2048, show_default=True, type=click.IntRange(min=1),
              help="With --untrained: capacity multiplier.")
@click.option("--cmax", default=64, show_default=True, type=click.IntRange(min=1),
              help="With --untrained: max. feature maps.")
def command(outdir: str | None, device: str, finetune_kimg: float | None, from_scratch: bool, kimg: float | None,
            untrained: bool, resolution: int, cbase: int, cmax: int) -> None:
    """Start from the shipped emoji network: a grid within seconds, then fine-tuning to OpenMoji's style with
    Freeze-D, a blend of the two networks, held-out emoji translated into the new style, and a video. About ten
    minutes on two CPU cores; each call writes a new numbered folder under --outdir.

    \b
    Examples:
      stylegan demo                          # the whole tour, on the CPU
      stylegan demo --finetune-kimg 20       # fine-tune longer for a stronger restyle
      stylegan demo --from-scratch           # train a StyleGAN3-T from nothing (4 kimg: blobs, not emoji yet)
      stylegan demo --untrained              # no training: build and sample each preset
    """
    from stylegan.core.errors import UsageError

    ctx = click.get_current_context()
    given = {n for n in ("finetune_kimg", "kimg", "resolution", "cbase", "cmax")
             if ctx.get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE}
    modes = [m for m, on in (("--from-scratch", from_scratch), ("--untrained", untrained)) if on]
    if len(modes) > 1:
        raise UsageError("--from-scratch, --untrained: choose one")
    allowed = {"--untrained": {"resolution", "cbase", "cmax"}, "--from-scratch": {"kimg"}}.get(
        modes[0] if modes else "", {"finetune_kimg"})
    stray = sorted(given - allowed)
    if stray:
        owner = {"finetune_kimg": "the default demo", "kimg": "--from-scratch", "resolution": "--untrained",
                 "cbase": "--untrained", "cmax": "--untrained"}
        flag = stray[0].replace("_", "-")
        raise UsageError(f"--{flag}: only with {owner[stray[0]]}")

    if untrained:
        if resolution & (resolution - 1):
            raise UsageError(f"--resolution: {resolution} is not a power of two; use e.g. 32, 64 or 128")
        from stylegan.generate.showcase import untrained_networks
        outdir = outdir or "out/demo"
        click.echo("Building UNTRAINED networks (random weights): the images show random patterns, not faces.")
        files = untrained_networks(outdir, device, resolution, cbase, cmax, echo=click.echo)
        click.echo(f"Wrote {len(files)} files to {Path(outdir).resolve()}:")
        for path in files:
            click.echo(f"  {path}")
        return
    if from_scratch:
        from stylegan.training.demo import run_demo_from_scratch
        run_demo_from_scratch(outdir or "demo-runs", device=device, kimg=kimg)
        return
    from stylegan.training.demo import DemoOptions, run_demo
    options = DemoOptions() if finetune_kimg is None else DemoOptions(finetune_kimg=finetune_kimg)
    run_demo(outdir or "demo-runs", device=device, options=options)
