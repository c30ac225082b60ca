"""`stylegan convert`: an NVIDIA pickle (or URL) to our .safetensors network format (docs/pretrained.md)."""
from __future__ import annotations

import click


@click.command("convert")
@click.argument("src", metavar="SRC")
@click.argument("dest", metavar="DEST.safetensors", type=click.Path(dir_okay=False))
@click.option("--what", type=click.Choice(["g_ema", "all"]), default="g_ema", show_default=True,
              help="g_ema: the generator to use for images; all: G, D and G_ema plus the snapshot's training extras.")
@click.option("--overwrite", is_flag=True, help="Replace DEST if it exists.")
def command(src, dest, what, overwrite):
    """Convert SRC (an NVIDIA .pkl, one of our files, or an http(s) URL) into DEST.safetensors.

    The pickle's code is never run: only tensors and constructor arguments are read.

    \b
    Examples:
      stylegan convert stylegan3-t-ffhq-1024x1024.pkl ffhq-t.safetensors
      stylegan convert network-snapshot-000400.pkl snapshot.safetensors --what all
      url=https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan3/versions/1/files/stylegan3-r-afhqv2-512x512.pkl
      stylegan convert $url afhq-r.safetensors
    """
    from stylegan.io.convert import convert_network

    result = convert_network(src, dest, what=what, overwrite=overwrite, progress=True)
    parts = ", ".join(f"{key} ({count / 1e6:.1f}M parameters)" for key, count in result.modules.items())
    click.echo(f"wrote {result.dest} with {parts}, from {result.source}")
