"""stylegan demo: the pre-training demo. Builds a small network of each preset, saves it, and writes an image grid
and the `stylegan info` text for each. The networks are UNTRAINED (random weights), so the images are noise-like
patterns; the demo shows that building, saving, loading and generating work end to end on this machine.
"""
from __future__ import annotations

import time
from pathlib import Path

import click

from stylegan.cli.common import device_option


def run_demo(outdir: str | Path = "out/demo", device: str = "auto", resolution: int = 64, cbase: int = 2048,
             cmax: int = 64, seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5), echo=print) -> list[Path]:
    """Build, save, reload and sample one untrained network per preset; returns the files written."""
    import numpy as np
    import torch
    from PIL import Image

    import stylegan
    from stylegan.core.device import resolve_device
    from stylegan.core.files import atomic_path, atomic_write
    from stylegan.io import describe_network_file, format_description
    from stylegan.networks import CFGS

    dev = resolve_device(device)
    outdir = Path(outdir)
    written: list[Path] = []
    for cfg in CFGS:
        start = time.time()
        torch.manual_seed(0)
        G = stylegan.build_generator(cfg, resolution, cbase=cbase, cmax=cmax)
        net_path = stylegan.save_network(G, outdir / f"{cfg}.safetensors")
        G = stylegan.load_network(net_path, device=dev)          # generate from the file, as users will
        z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(G.z_dim) for s in seeds])).float().to(dev)
        with torch.no_grad():
            img = G(z, None, truncation_psi=1, noise_mode="const")                  # [N, 3, H, W]
        # Untrained outputs have arbitrary scale; stretch each image to its own range so the pattern is visible.
        lo = img.amin(dim=(1, 2, 3), keepdim=True)
        hi = img.amax(dim=(1, 2, 3), keepdim=True)
        img = ((img - lo) / (hi - lo + 1e-8) * 255).round().clamp(0, 255).to(torch.uint8).cpu()
        grid = torch.cat(list(img), dim=2).permute(1, 2, 0).numpy()                  # [H, N*W, 3]
        grid_path = outdir / f"{cfg}-grid.png"
        with atomic_path(grid_path) as tmp:
            Image.fromarray(grid, "RGB").save(tmp, format="PNG")
        info_path = outdir / f"{cfg}-info.txt"
        with atomic_write(info_path, "w") as f:
            f.write(format_description(describe_network_file(net_path)) + "\n")
        written += [net_path, grid_path, info_path]
        params = sum(p.numel() for p in G.parameters())
        echo(f"{cfg:<12} {resolution}x{resolution}, {params:,} parameters, seeds {seeds[0]}-{seeds[-1]}: "
             f"{time.time() - start:.1f} s")
    return written


@click.command(name="demo")
@click.option("--outdir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where to write the networks, grids and info text.")
@device_option
@click.option("--resolution", default=64, show_default=True, type=click.IntRange(min=16), help="Image resolution.")
@click.option("--cbase", default=2048, show_default=True, type=click.IntRange(min=1), help="Capacity multiplier.")
@click.option("--cmax", default=64, show_default=True, type=click.IntRange(min=1), help="Max. feature maps.")
def command(outdir: str, device: str, resolution: int, cbase: int, cmax: int) -> None:
    """Build a small network of each preset (stylegan2, stylegan3-t, stylegan3-r), save it, and write an image
    grid and its `stylegan info` text. These networks are UNTRAINED: the images show random patterns.

    \b
    Example:
      stylegan demo --outdir out/demo --device cpu
    """
    if resolution & (resolution - 1):
        from stylegan.core.errors import UsageError
        raise UsageError(f"--resolution: {resolution} is not a power of two; use e.g. 32, 64 or 128")
    click.echo("Building UNTRAINED networks (random weights): the images show random patterns, not faces.")
    files = run_demo(outdir, device, resolution, cbase, cmax, echo=click.echo)
    click.echo(f"Wrote {len(files)} files to {Path(outdir).resolve()}:")
    for path in files:
        click.echo(f"  {path}")
    click.echo("These networks are UNTRAINED. Inspect one with: stylegan info "
               f"{Path(outdir) / 'stylegan3-t.safetensors'}")
