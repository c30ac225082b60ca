"""`stylegan video`: interpolation loops through W, one per grid cell (see docs/generate.md)."""
from __future__ import annotations

import click

from stylegan.cli.common import device_option
from stylegan.core.misc import parse_range
from stylegan.generate import (
    NOISE_MODES, VideoOptions, load_generator, make_video, parse_grid, parse_rotate_path, parse_translate_path)
from stylegan.generate.video import KINDS


@click.command(name="video", context_settings={"max_content_width": 110})
@click.option("--network", required=True, metavar="PATH|URL", help="Network: .safetensors, NVIDIA .pkl, or a URL.")
@click.option("--seeds", required=True, metavar="LIST",
              help="Keyframe seeds, dealt to the grid cells in order (cell 1 takes the first K, ...).")
@click.option("--grid", default="1x1", show_default=True, metavar="COLSxROWS", help="Independent loops side by side.")
@click.option("--w-frames", type=int, default=120, show_default=True, help="Frames from one keyframe to the next.")
@click.option("--kind", type=click.Choice(KINDS), default="cubic", show_default=True, help="Interpolation.")
@click.option("--loop", is_flag=True, help="Return to the first keyframe: the last frame equals the first.")
@click.option("--trunc", "psi", type=float, default=1.0, show_default=True, help="Truncation psi.")
@click.option("--trunc-cutoff", "cutoff", type=int, metavar="N", help="Truncate only the first N layers.")
@click.option("--class", "class_idx", type=int, metavar="N", help="Class of a conditional network.")
@click.option("--noise-mode", type=click.Choice(NOISE_MODES), default="const", show_default=True)
@click.option("--translate-path", metavar="X,Y:X,Y:...",
              help="StyleGAN3 only: input shift keyframes over the whole video, e.g. 0,0:0.25,0:0,0.")
@click.option("--rotate-path", metavar="DEG,DEG,...", help="StyleGAN3 only: rotation keyframes, e.g. 0,360.")
@click.option("--fps", type=float, default=60.0, show_default=True)
@click.option("--quality", type=float, default=8.0, show_default=True, help="H.264 quality, 0-10.")
@click.option("--output", required=True, metavar="FILE.mp4", help="The video (H.264 MP4).")
@click.option("--batch", type=int, default=8, show_default=True, help="Images per forward pass.")
@device_option
def command(network, seeds, grid, w_frames, kind, loop, psi, cutoff, class_idx, noise_mode, translate_path,
            rotate_path, fps, quality, output, batch, device):
    """Render a smooth interpolation video through W between keyframe seeds.

    \b
    stylegan video --network afhq.pkl --seeds 0-31 --grid 4x2 --loop --trunc 0.7 --output lerp.mp4
    stylegan video --network sg3-t.pkl --seeds 0-2 --loop --rotate-path 0,360 --translate-path 0,0:0.2,0 --output eq.mp4
    """
    options = VideoOptions(grid=parse_grid(grid), w_frames=w_frames, kind=kind, loop=loop, psi=psi, cutoff=cutoff,
                           class_idx=class_idx, noise_mode=noise_mode, fps=fps, quality=quality,
                           translate_path=parse_translate_path(translate_path),
                           rotate_path=parse_rotate_path(rotate_path))
    seed_list = parse_range(seeds)
    G = load_generator(network, device)
    path, num_frames = make_video(G, output, seed_list, options, batch=batch)
    click.echo(f"wrote {path} ({num_frames} frames, {num_frames / fps:.1f} s at {fps:g} fps)")
