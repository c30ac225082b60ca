"""`stylegan translate`: project a photo into network A, draw it with network B (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option, projection_options
from stylegan.core.errors import UsageError
from stylegan.generate import ProjectOptions
from stylegan.generate.blend import RAMPS, BlendOptions
from stylegan.generate.translate import run_translation


@click.command(name="translate", context_settings={"max_content_width": 110})
@click.option("--network-a", required=True, metavar="PATH|URL", help="Network A: the photos are projected into it.")
@click.option("--network-b", required=True, metavar="PATH|URL",
              help="Network B, of A's architecture (e.g. fine-tuned from A): draws the projected latents.")
@click.option("--target", "targets", required=True, multiple=True, metavar="IMAGE|DIR",
              help="A photo, or a folder of them; repeat for more. Each one's centre square is used.")
@projection_options
@click.option("--blend-swap-res", type=int, metavar="R",
              help="Draw with a blend instead of B: layers below resolution R from A, the rest from B.")
@click.option("--blend-swap-layer", metavar="NAME|INDEX", help="Draw with a blend: this layer and later ones from B.")
@click.option("--blend-smooth", type=float, default=0.0, show_default=True, metavar="WIDTH",
              help="The blend's ramp width in layers (as `stylegan blend --smooth`).")
@click.option("--blend-ramp", type=click.Choice(RAMPS), default="sigmoid", show_default=True)
@click.option("--outdir", required=True, metavar="DIR",
              help="Writes NAME.png (input | A | B) and NAME/ (target.png, proj.png, translated.png, projected_w.npz).")
@device_option
def command(network_a, network_b, targets, steps, space, seed, class_idx, vgg, blend_swap_res, blend_swap_layer,
            blend_smooth, blend_ramp, outdir, device):
    """Translate photos from A's domain into B's: project into A, render the latents with B (or a blend).

    \b
    stylegan translate --network-a ffhq.pkl --network-b toons.pkl --target me.jpg --outdir tr
    stylegan translate --network-a ffhq.pkl --network-b toons.pkl --target photos/ --blend-swap-res 32 --outdir tr
    """
    options = ProjectOptions(steps=steps, space=space, seed=seed, class_idx=class_idx)
    blend = None
    if blend_swap_res is not None or blend_swap_layer is not None:
        blend = BlendOptions(swap_res=blend_swap_res, swap_layer=blend_swap_layer, smooth=blend_smooth,
                             ramp=blend_ramp, flag_prefix="--blend-")
    elif blend_smooth:
        raise UsageError("--blend-smooth needs --blend-swap-res or --blend-swap-layer")
    for result, paths in run_translation(network_a, network_b, targets, outdir, options, blend=blend, vgg=vgg,
                                         device=device):
        click.echo(f"wrote {paths['side_by_side']} (reconstruction by A: {result.psnr:.2f} dB PSNR) "
                   f"and {paths['image'].parent}/")
