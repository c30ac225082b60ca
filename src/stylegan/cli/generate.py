"""`stylegan generate`: images from seeds or saved latents (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_range
from stylegan.generate import (
    NOISE_MODES, RenderOptions, generate_images, load_generator, parse_grid, parse_vec2, require_one_source)


@click.command(name="generate", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--seeds", metavar="LIST", help="Seeds to render, e.g. 0-7,42. Each writes seedNNNN.png.")
@click.option("--ws", "ws_file", metavar="FILE", help="Render saved W or W+ latents instead (.npz with 'w', e.g. "
              "projected_w.npz from `stylegan project`). Each writes wNNNN.png.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True,
              help="Truncation psi: 1 = none, 0.7 = typical, 0 = the average image.")
@click.option("--trunc-cutoff", "cutoff", type=int, metavar="N",
              help="Truncate only the first N layers  [default: all]")
@click.option("--class", "class_idx", type=int, metavar="N", help="Class of a conditional network.")
@click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True,
              help="StyleGAN2 noise inputs: the network's fixed maps, fresh noise per seed, or none.")
@click.option("--translate", default="0,0", show_default=True, metavar="X,Y",
              help="StyleGAN3 only: shift the picture, in image widths (0.1,-0.2).")
@click.option("--rotate", type=float, default=0.0, show_default=True, metavar="DEG",
              help="StyleGAN3 only: rotate the picture, degrees.")
@click.option("--grid", metavar="COLSxROWS", help="Write one grid.png (e.g. 4x2) instead of one file per image.")
@click.option("--outdir", default="out", show_default=True, metavar="DIR", help="Where the PNGs go.")
@click.option("--batch", type=int, default=8, show_default=True, help="Images per forward pass.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the generator (worth it for many images; eager with a warning if it fails).")
@device_option
def command(network, seeds, ws_file, psi, cutoff, class_idx, noise_mode, translate, rotate, grid, outdir, batch,
            compile_, device):
    """Render images from seeds or from saved latents. The same network, seeds and flags give identical files.

    \b
    stylegan generate --network ffhq.pkl --seeds 0-7,42 --trunc 0.7 --outdir out
    stylegan generate --network afhq-t.safetensors --seeds 0-7 --grid 4x2 --translate 0.1,-0.2 --rotate 15
    stylegan generate --network ffhq.pkl --ws proj/projected_w.npz --outdir out
    """
    options = RenderOptions(psi=psi, cutoff=cutoff, class_idx=class_idx, noise_mode=noise_mode,
                            translate=parse_vec2(translate, "--translate"), rotate=rotate)
    require_one_source(seeds, ws_file)
    seed_list = parse_range(seeds) if seeds is not None else None
    grid_dims = parse_grid(grid) if grid else None
    G = load_generator(network, device)
    paths = generate_images(G, outdir, seeds=seed_list, ws_file=ws_file, options=options, grid=grid_dims, batch=batch,
                            compile=compile_)
    click.echo(f"wrote {paths[0]}" if len(paths) == 1 else f"wrote {len(paths)} images to {paths[0].parent}")
