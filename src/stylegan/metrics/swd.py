"""Multi-scale sliced Wasserstein distance (Karras et al. 2018, "Progressive Growing of GANs", Sec. 5 and App. D).

No feature network: it compares the distributions of local image patches, scale by scale.

1. Laplacian pyramid of each image, from its resolution down to 16x16, with the binomial filter
   [1, 4, 6, 4, 1] / 16 (reflected at the borders): level k = G_k - up(G_{k+1}), the coarsest level is the
   16x16 Gaussian level G_K itself. An image of 16 px or less is one level.
2. From every level of every image, 128 random 7x7 neighbourhoods: descriptors of 7 * 7 * C values
   (147 for RGB). The positions are seeded per image index, so two runs pick the same patches.
3. Per level and per set, every colour channel of the descriptors is normalised to zero mean and unit
   standard deviation over all descriptors of that set (so SWD ignores a global colour shift or gain).
4. Per level, the sliced Wasserstein distance: project both descriptor sets on 512 random unit directions
   (drawn as 4 repeats of 128, as the paper's code does); for each direction the 1-D Wasserstein-1 distance
   between the projected sets, which for equal counts is mean |sort(a) - sort(b)|; the mean over directions.

Results are per level (finest first) and their average, multiplied by 1e3 as the paper's tables are.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.core import dist
from stylegan.core.misc import derive_seed
from stylegan.metrics.features import MetricOptions, dataset_stats, generator_stats, open_dataset, prepared_generator
from stylegan.ops.upfirdn2d import setup_filter, upfirdn2d

BINOMIAL = (1, 4, 6, 4, 1)   # the 5-tap binomial (Gaussian) pyramid filter, Burt & Adelson 1983
MIN_RESOLUTION = 16          # the coarsest pyramid level
PATCHES_PER_IMAGE = 128      # neighbourhoods per image per level (paper, App. D)
PATCH_SIZE = 7               # 7x7 neighbourhoods
NUM_PROJECTIONS = 512        # random directions per level
PROJECTIONS_PER_REPEAT = 128  # drawn in 4 repeats of 128, as in the paper's code
_BLOCK = 256                 # patch positions are drawn per block of this many images


# ----------------------------------------------------------------------------------------------------------
# Laplacian pyramid.

def pyramid_resolutions(height: int, width: int, min_resolution: int = MIN_RESOLUTION) -> list[tuple[int, int]]:
    """(H, W) of each level, finest first: halve while both sides stay even and the next level is >= 16."""
    sizes = [(height, width)]
    while min(sizes[-1]) // 2 >= min_resolution and sizes[-1][0] % 2 == 0 and sizes[-1][1] % 2 == 0:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2))
    return sizes


def _pyramid_filter(device: torch.device) -> torch.Tensor:
    return setup_filter(BINOMIAL, device=device)  # [5, 5], unit DC gain


def pyr_down(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Blur with the binomial filter and keep the even pixels: [N, C, H, W] -> [N, C, H/2, W/2]."""
    x = F.pad(x, [2, 2, 2, 2], mode="reflect")  # reflected borders: a constant image stays constant
    return upfirdn2d(x, f, down=2)


def pyr_up(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Insert zeros and interpolate with the binomial filter (gain 4): [N, C, H, W] -> [N, C, 2H, 2W]."""
    x = F.pad(x, [1, 1, 1, 1], mode="reflect")
    return upfirdn2d(x, f, up=2, gain=4)  # (H + 2) * 2 - 5 + 1 = 2H outputs, pixel 2j on input pixel j


def laplacian_pyramid(images: torch.Tensor, min_resolution: int = MIN_RESOLUTION) -> list[torch.Tensor]:
    """Levels of images [N, C, H, W] (any float range; uint8 becomes float32), finest first.

    Every level but the last is a band-pass difference G_k - up(G_{k+1}); the last is the Gaussian level
    G_K (16x16 for square power-of-two images). `reconstruct(levels)` returns the images exactly."""
    x = images.to(torch.float32) if not images.is_floating_point() else images
    sizes = pyramid_resolutions(x.shape[2], x.shape[3], min_resolution)
    f = _pyramid_filter(x.device).to(x.dtype)
    levels = []
    for _ in sizes[1:]:
        coarse = pyr_down(x, f)
        levels.append(x - pyr_up(coarse, f))
        x = coarse
    levels.append(x)
    return levels


def reconstruct(levels: list[torch.Tensor]) -> torch.Tensor:
    """The inverse of `laplacian_pyramid`: upsample from the coarsest level, adding each band."""
    f = _pyramid_filter(levels[0].device).to(levels[0].dtype)
    x = levels[-1]
    for band in reversed(levels[:-1]):
        x = band + pyr_up(x, f)
    return x


# ----------------------------------------------------------------------------------------------------------
# Patch descriptors.

class PatchDescriptors:
    """A 'detector' for the metrics pipeline: images [N, C, H, W] -> descriptors [N, L * P * C * k * k].

    Call it on the images of one set in order; image i of the set (counted by this object, on this rank)
    gets the same patch positions in every run with the same seed, whatever the batch size. Use a fresh
    object per set. `split(features)` turns the gathered rows into one [N, P, C, k * k] view per level.
    """

    def __init__(self, patches_per_image: int = PATCHES_PER_IMAGE, patch_size: int = PATCH_SIZE,
                 min_resolution: int = MIN_RESOLUTION, seed: int = 0):
        self.patches_per_image = patches_per_image
        self.patch_size = patch_size
        self.min_resolution = min_resolution
        self.seed = seed
        self.seen = 0           # images described so far
        self.resolutions: list[tuple[int, int]] | None = None
        self.channels: int | None = None
        self._blocks: dict[tuple[int, int], torch.Tensor] = {}

    def _positions(self, level: int, h: int, w: int, first: int, count: int) -> torch.Tensor:
        """Top-left corners [count, P, 2] (row, column) of the patches of images first..first+count-1."""
        k, p = self.patch_size, self.patches_per_image
        rows = []
        for block in range(first // _BLOCK, (first + count - 1) // _BLOCK + 1):
            key = (level, block)
            if key not in self._blocks:
                self._blocks = {kk: v for kk, v in self._blocks.items() if kk[1] >= block - 1}
                seed = derive_seed(self.seed, dist.get_rank(), "swd-patches", level, block)
                gen = torch.Generator().manual_seed(seed)
                self._blocks[key] = torch.stack([torch.randint(0, h - k + 1, [_BLOCK, p], generator=gen),
                                                 torch.randint(0, w - k + 1, [_BLOCK, p], generator=gen)], dim=-1)
            rows.append(self._blocks[key])
        start = first - (first // _BLOCK) * _BLOCK
        return torch.cat(rows)[start:start + count]

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        n, c, h, w = images.shape
        if self.resolutions is None:
            self.resolutions, self.channels = pyramid_resolutions(h, w, self.min_resolution), c
        if (c, (h, w)) != (self.channels, self.resolutions[0]):
            raise ValueError(f"SWD: every image must be {self.channels}x{self.resolutions[0]}, got {c}x{(h, w)}")
        if min(h, w) < self.patch_size:
            raise ValueError(f"SWD: images of {h}x{w} are smaller than the {self.patch_size}x{self.patch_size} patches")
        k, p = self.patch_size, self.patches_per_image
        offsets = torch.arange(k, device=images.device)
        out = []
        for level, band in enumerate(laplacian_pyramid(images, self.min_resolution)):
            pos = self._positions(level, band.shape[2], band.shape[3], self.seen, n).to(images.device)
            ys = (pos[..., 0, None] + offsets)[:, :, :, None]     # [n, P, k, 1]
            xs = (pos[..., 1, None] + offsets)[:, :, None, :]     # [n, P, 1, k]
            idx = torch.arange(n, device=images.device)[:, None, None, None]
            patches = band.permute(0, 2, 3, 1)[idx, ys, xs]      # [n, P, k, k, C]
            out.append(patches.permute(0, 1, 4, 2, 3).reshape(n, p * c * k * k))
        self.seen += n
        return torch.cat(out, dim=1)

    def split(self, features) -> list[torch.Tensor]:
        """Rows [N, L * P * C * k * k] -> per level a view [N, P, C, k * k] (no copy), finest first."""
        x = torch.as_tensor(features)
        x = x.view(x.shape[0], len(self.resolutions), self.patches_per_image, self.channels, self.patch_size ** 2)
        return list(x.unbind(1))


def normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """Each colour channel to zero mean and unit (population) std over all descriptors and positions:
    [..., C, k*k] -> [M, C * k*k]. Normalises `desc` in place (it must not be needed afterwards)."""
    dims = [d for d in range(desc.ndim) if d != desc.ndim - 2]
    std, mean = torch.std_mean(desc, dim=dims, correction=0, keepdim=True)
    desc.sub_(mean).div_(std.clamp_min(1e-8))
    return desc.reshape(-1, desc.shape[-2] * desc.shape[-1])


# ----------------------------------------------------------------------------------------------------------
# Sliced Wasserstein distance.

def _quantile_pairing(n: int, m: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices into sort(a) (n values) and sort(b) (m values), and weights, such that W1 between the two
    empirical distributions is sum(w * |a[ia] - b[ib]|): the pieces where both quantile functions are
    constant, found exactly on the common grid of multiples of 1 / (n * m)."""
    edges = torch.unique(torch.cat([torch.arange(n + 1, dtype=torch.int64) * m,
                                    torch.arange(m + 1, dtype=torch.int64) * n]))  # sorted
    left = edges[:-1]
    weights = (edges[1:] - left).to(torch.float64) / (n * m)  # exact in float64, then rounded once
    return (left // m).to(device), (left // n).to(device), weights.to(device)


def random_directions(dim: int, num: int = NUM_PROJECTIONS, seed: int = 0,
                      per_repeat: int = PROJECTIONS_PER_REPEAT) -> torch.Tensor:
    """Unit vectors [dim, num], uniform on the sphere (normalised Gaussians), each repeat seeded on its own."""
    dirs = []
    for repeat in range((num + per_repeat - 1) // per_repeat):
        gen = torch.Generator().manual_seed(derive_seed(seed, "swd-directions", repeat))
        d = torch.randn([dim, min(per_repeat, num - repeat * per_repeat)], generator=gen, dtype=torch.float64)
        dirs.append(d / d.norm(dim=0, keepdim=True))
    return torch.cat(dirs, dim=1).to(torch.float32)


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row ascending. On the CPU numpy's sort is used: it is about 10x faster than torch.sort,
    which also computes the permutation we do not need."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.sort(x.numpy(), axis=1))
    return torch.sort(x, dim=1).values


@torch.no_grad()
def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor, chunk: int = 32) -> float:
    """Mean over the columns of `directions` [D, K] of the 1-D Wasserstein-1 distance between the
    projections of a [N, D] and b [M, D] (Rabin et al. 2011). For N == M: mean |sort(a·d) - sort(b·d)|."""
    n, m = a.shape[0], b.shape[0]
    directions = directions.to(a.device, a.dtype)
    pairing = None if n == m else _quantile_pairing(n, m, a.device)
    total = 0.0
    for start in range(0, directions.shape[1], chunk):
        d = directions[:, start:start + chunk]
        pa = _sorted_rows(torch.matmul(d.T, a.T))   # [k, N]: each direction's projections, sorted
        pb = _sorted_rows(torch.matmul(d.T, b.T))   # [k, M]
        if pairing is None:
            total += float((pa - pb).abs().mean(dim=1).sum())
        else:
            ia, ib, w = pairing
            total += float(((pa[:, ia] - pb[:, ib]).abs() @ w.to(pa.dtype)).sum())
    return total / directions.shape[1]


def swd_from_descriptors(levels_a: list[torch.Tensor], levels_b: list[torch.Tensor], seed: int = 0,
                         num_projections: int = NUM_PROJECTIONS, device=None) -> list[float]:
    """SWD x 1e3 per level from raw descriptors [..., C, k*k] per level (normalised here, in place)."""
    out = []
    for level, (a, b) in enumerate(zip(levels_a, levels_b)):
        a = normalize_descriptors(a.to(device) if device is not None else a)
        b = normalize_descriptors(b.to(device) if device is not None else b)
        dirs = random_directions(a.shape[1], num_projections, derive_seed(seed, "level", level))
        out.append(sliced_wasserstein(a, b, dirs) * 1e3)
    return out


def _level_keys(prefix: str, resolutions: list[tuple[int, int]], values: list[float]) -> dict[str, float]:
    """{prefix: mean, prefix_<res>: value per level, finest first}; non-square levels are named HxW."""
    names = [str(h) if h == w else f"{h}x{w}" for h, w in resolutions]
    return {prefix: float(np.mean(values)), **{f"{prefix}_{r}": float(v) for r, v in zip(names, values)}}


# ----------------------------------------------------------------------------------------------------------
# Entry points.

def _describe(images, describer: PatchDescriptors, batch_size: int, device) -> torch.Tensor:
    """Descriptors of images given as one array/tensor [N, C, H, W] or an iterable of such batches."""
    if isinstance(images, (np.ndarray, torch.Tensor)):
        images = torch.as_tensor(images)
        batches: Iterable = (images[i:i + batch_size] for i in range(0, images.shape[0], batch_size))
    else:
        batches = (torch.as_tensor(x) for x in images)
    rows = [describer(x.to(device)).cpu() for x in batches]
    if not rows:
        raise ValueError("SWD: an image set is empty")
    return torch.cat(rows)


def swd_between(images_a, images_b, seed: int = 0, device="cpu", batch_size: int = 64,
                patches_per_image: int = PATCHES_PER_IMAGE, num_projections: int = NUM_PROJECTIONS,
                prefix: str = "swd") -> dict[str, float]:
    """SWD x 1e3 between two image sets, e.g. two disjoint halves of a dataset (the real-vs-real floor).

    images_a, images_b: uint8 or float arrays/tensors [N, C, H, W] (the same C, H, W; counts may differ), or
    iterables of such batches. Returns {prefix: average over levels, prefix_<res>: per level, finest first}.
    Identical sets give exactly 0: both sets use the same patch positions for the same image index.
    """
    device = torch.device(device)
    da, db = PatchDescriptors(patches_per_image, seed=seed), PatchDescriptors(patches_per_image, seed=seed)
    fa, fb = _describe(images_a, da, batch_size, device), _describe(images_b, db, batch_size, device)
    if (da.channels, da.resolutions) != (db.channels, db.resolutions):
        raise ValueError(f"SWD: the sets differ in shape: {da.channels}x{da.resolutions[0]} "
                         f"vs {db.channels}x{db.resolutions[0]}")
    values = swd_from_descriptors(da.split(fa), db.split(fb), seed, num_projections, device)
    return _level_keys(prefix, da.resolutions, values)


def compute_swd(opts: MetricOptions, name: str, num_real: int | None, num_gen: int) -> dict[str, float]:
    """The registry's metric: `num_gen` generated images against the first `num_real` dataset images
    (x-flipped too with opts.mirror). Every rank gathers all descriptors and computes the same numbers."""
    opts = dataclasses.replace(opts, cache=False)  # descriptors are ~1.2 GB per level: not worth a cache file
    if opts.G is None:
        prepared_generator(opts)  # raises the usual "pass --network" error before reading the dataset
    res = opts.G.img_resolution
    sets = []
    for _ in range(2):  # the pipeline hands the describer RGB uint8 images (grayscale is replicated)
        d = PatchDescriptors(seed=opts.seed)
        # Known up front, so that a rank that happens to see no images can still split the gathered rows.
        d.resolutions, d.channels = pyramid_resolutions(res, res), 3
        sets.append(d)
    real, gen = sets
    real_rows = dataset_stats(opts, open_dataset(opts, opts.mirror), real, "swd", num_real, capture_all=True).features
    gen_rows = generator_stats(opts, gen, num_gen, "swd", capture_all=True).features
    values = swd_from_descriptors(real.split(real_rows), gen.split(gen_rows), opts.seed, NUM_PROJECTIONS, opts.device)
    return _level_keys(name, real.resolutions, values)
