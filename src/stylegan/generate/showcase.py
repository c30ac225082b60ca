"""Untrained networks, one per preset, built, saved, reloaded and sampled: a check that building, saving, loading
and generating work end to end on a machine, without training (`stylegan demo --untrained`). The weights are
random, so the images are noise-like patterns.
"""
from __future__ import annotations

import time
from pathlib import Path


def untrained_networks(outdir: str | Path = "out/demo",         # folder for the networks, grids and info text
                       device: str = "auto",                    # auto | cpu | cuda | mps
                       resolution: int = 64,                    # image size, a power of two
                       cbase: int = 2048, cmax: int = 64,        # capacity (small: this is a smoke check)
                       seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5),
                       echo=print) -> list[Path]:
    """Build, save, reload and sample one untrained network per preset; returns the files written."""
    import torch
    from PIL import Image

    from stylegan.core.device import resolve_device
    from stylegan.core.files import atomic_path, atomic_write
    from stylegan.generate.render import seeds_to_z
    from stylegan.io import describe_network_file, format_description, load_network, save_network
    from stylegan.networks import CFGS, build_generator

    dev = resolve_device(device)
    outdir = Path(outdir)
    written: list[Path] = []
    for cfg in CFGS:
        start = time.time()
        torch.manual_seed(0)
        G = build_generator(cfg, resolution, cbase=cbase, cmax=cmax)
        net_path = save_network(G, outdir / f"{cfg}.safetensors")
        G = load_network(net_path, device=dev)          # generate from the file, as users will
        z = seeds_to_z(seeds, G.z_dim).to(dev)
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


REFERENCE_SEEDS = (0, 1, 2, 3)


def reference_images(G, seeds: tuple[int, ...] = REFERENCE_SEEDS):
    """What a shipped network's .json records and tests/test_pretrained.py checks: G's images for `seeds` (z as
    `stylegan generate` draws it, psi 1, constant noise), average-pooled to 8x8. Returns the seeds and a float64
    array [len(seeds), C, 8, 8]."""
    import torch
    import torch.nn.functional as F

    from stylegan.generate.render import seeds_to_z

    with torch.no_grad():
        img = G(seeds_to_z(seeds, G.z_dim), torch.zeros([len(seeds), G.c_dim]), truncation_psi=1,
                noise_mode="const")                                                 # [N, C, H, W]
    return list(seeds), F.adaptive_avg_pool2d(img.double(), 8).numpy()
