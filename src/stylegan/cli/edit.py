"""`stylegan edit`: edit strips along a latent direction (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_int_list, parse_range
from stylegan.generate import (
    NOISE_MODES, RenderOptions, load_generator, parse_direction, parse_strengths, require_one_source, write_edits)


@click.command(name="edit", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--seeds", metavar="LIST", help="Seeds to edit, e.g. 1,2.")
@click.option("--ws", "ws_file", metavar="FILE", help="Or latents to edit, e.g. projected_w.npz.")
@click.option("--direction", required=True, metavar="FILE[:K]",
              help="Direction K of a file from `stylegan directions` (default K = 0), or a single-vector .npy/.npz.")
@click.option("--strength", default="-3,3", show_default=True, metavar="LOW,HIGH",
              help="Range of strengths, in standard deviations of W along the direction (or one value).")
@click.option("--steps", type=int, default=7, show_default=True, help="Images per strip.")
@click.option("--layers", metavar="RANGE", help="Layers to edit, e.g. 0-5  [default: those recorded in the file]")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, metavar="N", help="Truncate only the first N layers.")
@click.option("--class", "class_idx", type=int, metavar="N", help="Class of a conditional network (with --seeds).")
@click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True)
@click.option("--outdir", default="out", show_default=True, metavar="DIR",
              help="Writes edit-seedNNNN.png or edit-wNNNN.png strips.")
@click.option("--batch", type=int, default=8, show_default=True, help="Images per forward pass.")
@device_option
def command(network, seeds, ws_file, direction, strength, steps, layers, psi, cutoff, class_idx, noise_mode, outdir,
            batch, device):
    """Render edit strips: each row image moved along one direction, strengths from low to high.

    \b
    stylegan edit --network ffhq.pkl --seeds 1,2 --direction dirs.npz:3 --strength -3,3 --steps 7 --layers 0-5
    stylegan edit --network ffhq.pkl --ws proj/projected_w.npz --direction dirs.npz:10 --layers 4-7 --outdir proj
    """
    options = RenderOptions(psi=psi, cutoff=cutoff, class_idx=class_idx, noise_mode=noise_mode)
    require_one_source(seeds, ws_file)
    seed_list = parse_range(seeds) if seeds is not None else None
    path, index = parse_direction(direction)
    strengths = parse_strengths(strength, steps)
    layer_list = parse_int_list(layers, "--layers") if layers else None
    G = load_generator(network, device)
    paths = write_edits(G, outdir, path, index, strengths, seeds=seed_list, ws_file=ws_file, layers=layer_list,
                        options=options, batch=batch)
    click.echo(f"wrote {len(paths)} strip{'s' if len(paths) != 1 else ''} of {len(strengths)} images to "
               f"{paths[0].parent}")
