"""`stylegan project`: put a photo into the latent space (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option, projection_options
from stylegan.generate import ProjectOptions, load_generator, run_projection


@click.command(name="project", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--target", required=True, metavar="IMAGE",
              help="The photo; its centre square is resized to the network's size.")
@projection_options
@click.option("--outdir", required=True, metavar="DIR",
              help="Writes target.png, proj.png, projected_w.npz (and proj.mp4).")
@click.option("--save-video", is_flag=True, help="Also write proj.mp4: target | projection at every step.")
@device_option
def command(network, target, steps, space, seed, class_idx, vgg, outdir, save_video, device):
    """Find the latents whose image matches a photo; edit it afterwards with `stylegan edit --ws`.

    \b
    stylegan project --network ffhq.pkl --target me.jpg --outdir proj
    stylegan project --network ffhq.pkl --target me.jpg --outdir proj --vgg ~/weights/vgg16-397923af.pth --save-video
    stylegan generate --network ffhq.pkl --ws proj/projected_w.npz --outdir proj
    """
    options = ProjectOptions(steps=steps, space=space, seed=seed, class_idx=class_idx)
    G = load_generator(network, device)
    result, paths = run_projection(G, target, outdir, options, vgg=vgg, save_video=save_video)
    click.echo(f"loss: {result.loss_name}")
    click.echo(f"PSNR of the projection against the target: {result.psnr:.2f} dB")
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
