"""Image grids written during training: reals.png, fakes_init.png and fakes<kimg>.png."""
from __future__ import annotations

import os

import numpy as np
import PIL.Image
import torch

from stylegan.core.files import atomic_path
from stylegan.core.misc import derive_seed
from stylegan.generate.render import image_grid


def grid_shape(resolution: int) -> tuple[int, int]:
    """(columns, rows): up to a 2048x1152 picture, at least 4x4 and at most 12x8 images (fewer than NVIDIA's
    4K grid, so that a CPU run does not spend its snapshots drawing 1,000 fakes)."""
    gw = int(np.clip(2048 // resolution, 4, 12))
    gh = int(np.clip(1152 // resolution, 4, 8))
    return gw, gh


def grid_indices(dataset, gw: int, gh: int, seed: int) -> list[int]:
    """Random training images; with labels, one label per row (NVIDIA's layout) so classes can be compared."""
    rnd = np.random.default_rng(derive_seed(seed, "grid"))
    n = len(dataset)
    if not dataset.has_labels:
        order = rnd.permutation(n)
        return [int(order[i % n]) for i in range(gw * gh)]
    groups: dict[tuple, list[int]] = {}
    for idx in range(n):
        groups.setdefault(tuple(dataset.get_label(idx).tolist()), []).append(idx)
    keys = sorted(groups)
    for key in keys:
        rnd.shuffle(groups[key])
    indices = []
    for y in range(gh):
        group = groups[keys[y % len(keys)]]
        indices += [group[x % len(group)] for x in range(gw)]
        groups[keys[y % len(keys)]] = group[gw % len(group):] + group[:gw % len(group)]
    return indices


def save_image_grid(images: np.ndarray | torch.Tensor, path: str | os.PathLike, drange: tuple[float, float],
                    grid: tuple[int, int]) -> None:
    """images [N, C, H, W] in drange -> one PNG, gw columns by gh rows, written atomically."""
    img = torch.as_tensor(images).to(torch.float32).cpu().numpy()
    lo, hi = drange
    img = np.rint(np.nan_to_num((img - lo) * (255 / (hi - lo)))).clip(0, 255).astype(np.uint8)
    gw, gh = grid
    c = img.shape[1]
    img = image_grid(img.transpose(0, 2, 3, 1), gw, gh)                  # [gh*H, gw*W, C]
    if c in (1, 2):                                             # grey (with alpha): show the grey channel
        picture = PIL.Image.fromarray(img[:, :, 0], "L")
    else:
        picture = PIL.Image.fromarray(img[:, :, :4] if c >= 4 else img, "RGBA" if c >= 4 else "RGB")
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
