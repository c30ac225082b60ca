"""stylegan demo: the main job on the built-in default. Trains a small StyleGAN3-T on the bundled emoji at 32x32
(about ten minutes on two CPU cores), then says where the fakes grid and the network are. `--untrained` instead
builds one untrained network per preset and samples it: a quick check that this machine can run them.
"""
from __future__ import annotations

from pathlib import Path

import click

from stylegan.core.device import DEVICE_CHOICES


@click.command(name="demo")
@click.option("--outdir", default=None, type=click.Path(file_okay=False),
              help="Where to write. Default: demo-runs (training) or out/demo (--untrained).")
@click.option("--device", default="cpu", show_default=True, metavar="|".join(DEVICE_CHOICES),
              help="Where to run. The demo is sized for a CPU; auto picks CUDA, then MPS, then CPU.")
@click.option("--kimg", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Training length in thousands of images.  [default: 4, about 10 minutes on 2 CPU cores]")
@click.option("--untrained", is_flag=True,
              help="Do not train: build one UNTRAINED network per preset, save it, and write an image grid and "
                   "its `stylegan info` text.")
@click.option("--resolution", default=64, show_default=True, type=click.IntRange(min=16),
              help="With --untrained: image resolution.")
@click.option("--cbase", default=2048, show_default=True, type=click.IntRange(min=1),
              help="With --untrained: capacity multiplier.")
@click.option("--cmax", default=64, show_default=True, type=click.IntRange(min=1),
              help="With --untrained: max. feature maps.")
def command(outdir: str | None, device: str, kimg: float | None, untrained: bool, resolution: int, cbase: int,
            cmax: int) -> None:
    """Train a small StyleGAN3-T on the bundled emoji (32x32), the same as `stylegan train` with a network sized
    for a laptop CPU. Each call starts a new numbered run under --outdir; resume one with
    `stylegan train --outdir demo-runs --resume latest --kimg 24`.

    \b
    Examples:
      stylegan demo                          # train for 4 kimg, about 10 minutes on 2 CPU cores
      stylegan demo --kimg 20 --device cuda  # longer, on a GPU
      stylegan demo --untrained              # no training: build and sample each preset
    """
    from stylegan.core.errors import UsageError

    if untrained:
        if kimg is not None:
            raise UsageError("--kimg: --untrained does not train; leave one of them out")
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

    given = [f"--{n}" for n in ("resolution", "cbase", "cmax")
             if click.get_current_context().get_parameter_source(n) == click.core.ParameterSource.COMMANDLINE]
    if given:
        raise UsageError(f"{', '.join(given)}: only with --untrained; the training demo's network is fixed "
                         "(use `stylegan train` for other sizes)")
    from stylegan.training.demo import run_demo
    run_demo(outdir or "demo-runs", device=device, kimg=kimg)
