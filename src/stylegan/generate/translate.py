"""`stylegan translate`: a photo drawn in another domain. Project it into network A (stylegan.generate.project),
then render the latents it found, and the noise maps it optimised, with network B, or with a blend of A's coarse
and B's fine layers (stylegan.generate.blend). B must have A's architecture, as a network fine-tuned from A has:
its layers then read A's latents the way A's do, at least in the coarse layers that B has kept close to A.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from stylegan.core.errors import UsageError
from stylegan.generate.blend import BlendOptions, blend_networks, check_blendable, load_pair
from stylegan.generate.files import check_exists, load_target, prepare_outdir, save_png
from stylegan.generate.project import ProjectionResult, ProjectOptions, run_projection
from stylegan.generate.render import image_grid, synthesize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def find_images(targets: Sequence[str | os.PathLike], flag: str = "--target") -> list[Path]:
    """The image files named, and those directly inside named folders (sorted by name), each once."""
    found: list[Path] = []
    for target in targets:
        path = Path(target).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise UsageError(f"{flag} {path}: a folder with no images in it ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        else:
            found.append(path)
    if not found:
        raise UsageError(f"{flag}: no images given; name image files or folders of them")
    found = list(dict.fromkeys(p.resolve() for p in found))
    stems: dict[str, Path] = {}
    for path in found:
        if path.stem in stems:
            raise UsageError(f"{flag}: {stems[path.stem]} and {path} would write the same outputs ({path.stem}.png); "
                             "rename one or translate them separately")
        stems[path.stem] = path
    return found


def translate_images(G_a, G_b, targets: Sequence[str | os.PathLike], outdir: str | os.PathLike,
                     options: ProjectOptions = ProjectOptions(), blend: BlendOptions | None = None,
                     vgg: str | os.PathLike | None = None, progress: bool = True
                     ) -> list[tuple[ProjectionResult, dict[str, Path]]]:
    """Project each target into G_a and render the latents with G_b, or with blend_networks(G_a, G_b, blend).

    Per input NAME: outdir/NAME.png (input | reconstruction by A | translation, side by side), and in outdir/NAME/
    what `stylegan project` writes (target.png, proj.png, projected_w.npz) plus translated.png, which
    `stylegan generate --network B --ws NAME/projected_w.npz` draws again. All inputs are read and checked first."""
    check_blendable(G_a, G_b)
    paths = find_images(targets)
    for path in paths:
        load_target(path, G_a.img_resolution, G_a.img_channels)      # unreadable images stop here, before any work
    if vgg is not None:
        check_exists(vgg, "--vgg")
    out = prepare_outdir(outdir)
    G_render = G_b if blend is None else blend_networks(G_a, G_b, blend)
    done = []
    for path in paths:
        result, written = run_projection(G_a, path, out / path.stem, options, vgg=vgg, progress=progress)
        translated = synthesize(G_render, result.ws, noise=result.noise)[0].numpy()      # [H, W, C]
        written["translation"] = save_png(out / path.stem / "translated.png", translated)
        target = load_target(path, G_a.img_resolution, G_a.img_channels)
        panels = np.stack([target, result.image, translated])                            # [3, H, W, C]
        written["side_by_side"] = save_png(out / f"{path.stem}.png", image_grid(panels, cols=3))
        done.append((result, written))
    return done


def run_translation(network_a, network_b, targets: Sequence[str | os.PathLike], outdir: str | os.PathLike,
                    options: ProjectOptions = ProjectOptions(), blend: BlendOptions | None = None,
                    vgg: str | os.PathLike | None = None, device: str | torch.device = "auto", progress: bool = True
                    ) -> list[tuple[ProjectionResult, dict[str, Path]]]:
    """`stylegan translate`: load --network-a and --network-b (paths, URLs or modules), then translate_images."""
    find_images(targets)                                             # a bad --target stops before any download
    G_a, G_b = load_pair(network_a, network_b, device)
    return translate_images(G_a, G_b, targets, outdir, options, blend=blend, vgg=vgg, progress=progress)
