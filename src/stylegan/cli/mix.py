"""`stylegan mix`: the style-mixing figure (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_int_list, parse_range
from stylegan.generate import NOISE_MODES, RenderOptions, load_generator, write_mix


@click.command(name="mix", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--rows", required=True, metavar="LIST", help="Row seeds (left edge), e.g. 85,100,75,458,1500.")
@click.option("--cols", required=True, metavar="LIST", help="Column seeds (top edge), e.g. 55,821,1789,293.")
@click.option("--styles", metavar="LIST", help="Layers taken from the column seed  [default: 0-6, coarse and middle]")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, metavar="N", help="Truncate only the first N layers.")
@click.option("--class", "class_idx", type=int, metavar="N", help="Class of a conditional network.")
@click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True)
@click.option("--output", default="mix.png", show_default=True, metavar="FILE.png", help="The figure.")
@click.option("--batch", type=int, default=8, show_default=True, help="Images per forward pass.")
@device_option
def command(network, rows, cols, styles, psi, cutoff, class_idx, noise_mode, output, batch, device):
    """One grid PNG: column seeds along the top, row seeds down the left, and in each cell the row seed with the
    --styles layers taken from the column seed (the figure of the StyleGAN papers).

    \b
    stylegan mix --network ffhq.pkl --rows 85,100,75,458,1500 --cols 55,821,1789,293 --styles 0-6
    """
    options = RenderOptions(psi=psi, cutoff=cutoff, class_idx=class_idx, noise_mode=noise_mode)
    row_seeds, col_seeds = parse_range(rows, "--rows"), parse_range(cols, "--cols")
    style_list = parse_int_list(styles, "--styles") if styles else None
    G = load_generator(network, device)
    path = write_mix(G, output, row_seeds, col_seeds, style_list, options, batch)
    click.echo(f"wrote {path} ({len(row_seeds)} rows x {len(col_seeds)} columns)")
