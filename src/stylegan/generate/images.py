"""`stylegan generate` and `stylegan mix`: images per seed or latent, one grid, and the style-mixing figure."""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from stylegan.core.compile import compiled_forward
from stylegan.core.errors import UsageError
from stylegan.generate.files import load_ws, prepare_outdir, prepare_output_file, save_png
from stylegan.generate.render import (
    RenderOptions, check_layers, image_grid, render, require_one_source, seeds_to_ws, style_mix, synthesize)

DEFAULT_MIX_STYLES = tuple(range(7))           # style_mixing.py's default 0-6: coarse and middle styles


def generate_images(G, outdir: str | os.PathLike, seeds: Sequence[int] | None = None,
                    ws_file: str | os.PathLike | None = None, options: RenderOptions = RenderOptions(),
                    grid: tuple[int, int] | None = None, batch: int = 8, progress: bool = True,
                    compile: bool = False) -> list[Path]:
    """Render seeds (seed0042.png each) or the latents of a .npz (w0000.png each), or one grid.png of them all.

    Everything is checked before the first image is made; images are written batch by batch, so a long list
    never has to fit in memory. compile: run G's mapping and synthesis through torch.compile (CUDA graphs on a
    GPU; eager with one warning if compiling fails). Returns the files written."""
    from tqdm import tqdm
    require_one_source(seeds, ws_file)
    if batch < 1:
        raise UsageError(f"--batch: {batch} is not allowed; use 1 or more")
    options.check(G, seeds=seeds is not None)
    ws, noise = (None, None) if ws_file is None else load_ws(ws_file, G.num_ws, G.w_dim)
    count = len(seeds) if seeds is not None else len(ws)
    if grid is not None and count > grid[0] * grid[1]:
        raise UsageError(f"--grid {grid[0]}x{grid[1]} has {grid[0] * grid[1]} cells but there are {count} images; "
                         "use a larger grid or fewer seeds")
    out = prepare_outdir(outdir)
    names = [f"seed{s:04d}.png" for s in seeds] if seeds is not None else [f"w{i:04d}.png" for i in range(count)]
    written, cells = [], []
    quiet = not progress or count <= batch
    with tqdm(total=count, desc="generating", unit="image", disable=quiet, leave=False) as bar, \
            compiled_forward(G.mapping, G.synthesis, enabled=compile, cuda_graphs=True):
        for start in range(0, count, batch):
            part = slice(start, start + batch)
            if seeds is not None:
                images = render(G, seeds=seeds[part], options=options, batch=batch)
            else:
                images = render(G, ws=ws[part], options=options, batch=batch, noise=noise,
                                noise_seeds=range(start, min(start + batch, count)))
            if grid is not None:
                cells.append(images.numpy())
            else:
                written += [save_png(out / name, image) for name, image in zip(names[part], images.numpy())]
            bar.update(len(images))
    if grid is not None:
        written.append(save_png(out / "grid.png", image_grid(np.concatenate(cells), *grid)))
    return written


def generate_command(network: str, seeds: Sequence[int] | str, options: RenderOptions = RenderOptions(),
                     outdir: str = "out", grid: tuple[int, int] | None = None) -> str:
    """The `stylegan generate ...` line that renders these seeds with these options (the visualizer's "copy")."""
    seed_text = seeds if isinstance(seeds, str) else ",".join(str(s) for s in seeds)
    args = ["stylegan", "generate", "--network", str(network), "--seeds", seed_text]
    if options.psi != 1:
        args += ["--trunc", f"{options.psi:g}"]
    if options.cutoff is not None:
        args += ["--trunc-cutoff", str(options.cutoff)]
    if options.class_idx is not None:
        args += ["--class", str(options.class_idx)]
    if options.noise_mode != "const":
        args += ["--noise-mode", options.noise_mode]
    if options.translate != (0.0, 0.0):
        args += ["--translate", f"{options.translate[0]:g},{options.translate[1]:g}"]
    if options.rotate != 0:
        args += ["--rotate", f"{options.rotate:g}"]
    if grid is not None:
        args += ["--grid", f"{grid[0]}x{grid[1]}"]
    args += ["--outdir", str(outdir)]
    return " ".join(shlex.quote(a) for a in args)


def mix_figure(G, row_seeds: Sequence[int], col_seeds: Sequence[int], styles: Sequence[int] | None = None,
               options: RenderOptions = RenderOptions(), batch: int = 8) -> np.ndarray:
    """The style-mixing figure of the StyleGAN papers (StyleGAN Fig. 3), uint8 [(R+1)*H, (C+1)*W, C].

    Top row: the column seeds' images; left column: the row seeds' images; top-left corner: black. Cell (r, c):
    row seed r's latents with the layers in `styles` taken from column seed c (style mixing, StyleGAN Sec. 3.1).
    `styles` defaults to 0-6 (coarse and middle styles), limited to the network's layers."""
    if not row_seeds or not col_seeds:
        raise UsageError("--rows and --cols each need at least one seed")
    styles = [i for i in DEFAULT_MIX_STYLES if i < G.num_ws] if styles is None else list(styles)
    check_layers(styles, G.num_ws, "--styles")
    options.check(G)
    row_ws = seeds_to_ws(G, row_seeds, options.psi, options.cutoff, options.class_idx)     # [R, num_ws, w_dim]
    col_ws = seeds_to_ws(G, col_seeds, options.psi, options.cutoff, options.class_idx)     # [C, num_ws, w_dim]
    mixed = torch.cat([style_mix(row_ws, col_ws[j:j + 1], styles).unsqueeze(1) for j in range(len(col_seeds))], dim=1)
    cells = torch.cat([col_ws, torch.cat([row_ws.unsqueeze(1), mixed], dim=1).flatten(0, 1)])
    # Noise seeds follow the row seed, so a 'random' noise pattern belongs to the image whose structure it shares.
    noise_seeds = list(col_seeds) + [s for s in row_seeds for _ in range(len(col_seeds) + 1)]
    images = synthesize(G, cells, options.noise_mode, options.translate, options.rotate, batch=batch,
                        noise_seeds=noise_seeds).numpy()
    h, w, c = images.shape[1:]
    corner = np.zeros([1, h, w, c], dtype=np.uint8)
    return image_grid(np.concatenate([corner, images]), cols=len(col_seeds) + 1, rows=len(row_seeds) + 1)


def write_mix(G, output: str | os.PathLike, row_seeds: Sequence[int], col_seeds: Sequence[int],
              styles: Sequence[int] | None = None, options: RenderOptions = RenderOptions(), batch: int = 8) -> Path:
    """Render mix_figure and write it as one PNG."""
    path = prepare_output_file(output, "--output", (".png",))
    return save_png(path, mix_figure(G, row_seeds, col_seeds, styles, options, batch))
