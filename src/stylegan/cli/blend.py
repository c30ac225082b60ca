"""`stylegan blend`: coarse layers from one network, fine layers from another (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_range
from stylegan.generate.blend import RAMPS, SIDES, BlendOptions, write_blend


@click.command(name="blend", context_settings={"max_content_width": 110})
@click.option("--network-a", required=True, metavar="PATH|URL",
              help="Network A: the coarse layers and, by default, the mapping network and w_avg.")
@click.option("--network-b", required=True, metavar="PATH|URL",
              help="Network B, of the same architecture (e.g. fine-tuned from A): the fine layers.")
@click.option("--swap-res", type=int, metavar="R",
              help="Layers at resolution R and above from B, below it from A (StyleGAN3: a layer's sampling rate).")
@click.option("--swap-layer", metavar="NAME|INDEX",
              help="This layer and every later one from B: an index, or a name such as b16, b16.conv1, L5.")
@click.option("--smooth", type=float, default=0.0, show_default=True, metavar="WIDTH",
              help="Interpolate the parameters along a ramp WIDTH layers wide around the swap point; 0 = hard swap.")
@click.option("--ramp", type=click.Choice(RAMPS), default="sigmoid", show_default=True, help="Shape of --smooth.")
@click.option("--mapping-from", type=click.Choice(SIDES), default="a", show_default=True,
              help="Whose mapping network and w_avg (whose latent space) the blend keeps.")
@click.option("--out", required=True, metavar="FILE.safetensors", help="The blended network.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
@click.option("--preview-seeds", metavar="LIST",
              help="Also write FILE-preview.png: for these seeds, rows A, blend, B (e.g. 0-5).")
@click.option("--class", "class_idx", type=int, metavar="N", help="Class of the preview of a conditional network.")
@device_option
def command(network_a, network_b, swap_res, swap_layer, smooth, ramp, mapping_from, out, overwrite, preview_seeds,
            class_idx, device):
    """Blend two networks by layer swapping (Pinkney & Adler 2020): A's structure, B's style.

    \b
    stylegan blend --network-a ffhq.pkl --network-b toons.pkl --swap-res 32 --out blend.safetensors
    stylegan blend --network-a ffhq.pkl --network-b toons.pkl --swap-res 32 --smooth 3 --preview-seeds 0-5 \\
        --out blend.safetensors
    stylegan generate --network blend.safetensors --seeds 0-7 --outdir out
    """
    options = BlendOptions(swap_res=swap_res, swap_layer=swap_layer, smooth=smooth, ramp=ramp,
                           mapping_from=mapping_from)
    seeds = parse_range(preview_seeds, "--preview-seeds") if preview_seeds is not None else None
    paths, note = write_blend(network_a, network_b, out, options, preview_seeds=seeds, preview_class=class_idx,
                              overwrite=overwrite, device=device)
    click.echo(f"blended: {note}")
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
