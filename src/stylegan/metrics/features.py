"""What every metric shares: its options, the dataset, sampling the generator, and feature extraction.

Work splits across torchrun ranks: rank r takes dataset items r, r + W, r + 2W, ... and its share of the
generated samples (with its own seed), and the statistics are combined with all-reduce / all-gather.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from stylegan.core import dist
from stylegan.core.compile import compiled
from stylegan.core.errors import StyleGANError
from stylegan.core.misc import derive_seed
from stylegan.data import ImageDataset
from stylegan.io import fetch
from stylegan.metrics import stats as stats_mod

Detector = Callable[[torch.Tensor], torch.Tensor]  # uint8 images [N, 3, H, W] -> features [N, D]


@dataclass
class MetricOptions:
    """Everything a metric needs besides its own constants.

    G: the generator (attributes z_dim, c_dim, img_resolution, img_channels; mapping/synthesis). It is copied.
    data: the real images: a dataset path, a dict of `stylegan.data.ImageDataset` arguments, or a dataset
        object yielding (uint8 [C, H, W], label). With a path or dict, the metric sets resolution, labels and
        the mirror setting as NVIDIA's do (the `_full` metrics never mirror); an object is used as it is.
    mirror: whether the reals include x-flips (for the metrics that honour it).
    num_gen / max_real: development overrides of the metric's sample counts (None keeps NVIDIA's).
    compile: run the generator's mapping and synthesis and the feature network through torch.compile (CUDA
        graphs on a GPU; eager with one warning if compiling fails). The numbers are the same to float rounding.
    """
    G: torch.nn.Module | None = None
    data: Any = None
    mirror: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    feature_dir: str | os.PathLike | None = None
    cache_dir: str | os.PathLike | None = None
    cache: bool = True
    download: bool = True
    num_gen: int | None = None
    max_real: int | None = None
    batch_size: int = 64
    batch_gen: int = 4
    num_workers: int = 3
    seed: int = 0
    progress: bool = True
    G_kwargs: dict = field(default_factory=dict)
    compile: bool = False

    def stats_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else fetch.cache_dir() / "metrics"


def open_dataset(opts: MetricOptions, xflip: bool):
    """The real images at the generator's resolution, with labels when the generator is conditional."""
    if opts.data is None:
        raise StyleGANError("this metric compares with real images; pass --data DATASET (a folder or zip)")
    if not isinstance(opts.data, (str, os.PathLike, dict)):
        return opts.data
    kwargs = dict(path=opts.data) if not isinstance(opts.data, dict) else dict(opts.data)
    if opts.G is not None:
        kwargs.update(resolution=opts.G.img_resolution, use_labels=opts.G.c_dim > 0)
    kwargs.update(xflip=xflip)
    return ImageDataset(**kwargs)


def progress_bar(total: int, desc: str, opts: MetricOptions, unit: str = "img"):
    """The progress bar (with its rate and ETA) of every long metric loop; rank 0 only, off with progress=False."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not opts.progress or dist.get_rank() != 0,
                leave=False, dynamic_ncols=True)


def _to_rgb(images: torch.Tensor) -> torch.Tensor:
    return images.repeat([1, 3, 1, 1]) if images.shape[1] == 1 else images


@torch.no_grad()
def dataset_stats(opts: MetricOptions, dataset, detector: Detector, detector_id: str, max_items: int | None,
                  capture_all: bool = False, capture_mean_cov: bool = False) -> stats_mod.FeatureStats:
    """Features of the first `max_items` dataset images (all if None), from the cache when possible."""
    num_items = len(dataset) if max_items is None else min(len(dataset), max_items)
    if num_items == 0:
        raise StyleGANError("the dataset has no images; check --data")
    path = None
    if opts.cache:
        key = stats_mod.cache_key(dataset=stats_mod.dataset_fingerprint(dataset), num_items=num_items,
                                  selection=stats_mod.selection_digest(dataset, num_items), detector=detector_id,
                                  resolution=getattr(dataset, "resolution", None),
                                  capture_all=capture_all, capture_mean_cov=capture_mean_cov)
        name = str(getattr(dataset, "name", "dataset")).replace(os.sep, "_")
        path = opts.stats_dir() / f"{name}-{detector_id.split(':')[0]}-{key[:16]}.npz"
        hit = path.is_file() if dist.get_rank() == 0 else False
        flag = dist.broadcast_(torch.tensor([float(hit)], device=opts.device))  # every rank takes the same road
        if flag.item():
            cached = stats_mod.load_stats(path, capture_all, capture_mean_cov)
            if cached is not None:
                return cached

    stats = stats_mod.FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov)
    detector = compiled(detector, enabled=opts.compile, cuda_graphs=True)
    rank, world = dist.get_rank(), dist.get_world_size()
    indices = list(range(rank, num_items, world))
    loader = torch.utils.data.DataLoader(dataset, batch_size=opts.batch_size, sampler=indices,
                                         num_workers=opts.num_workers if len(indices) > opts.batch_size else 0,
                                         pin_memory=opts.device.type == "cuda")
    with progress_bar(num_items, "dataset features", opts) as bar:
        for images, _labels in loader:
            images = _to_rgb(torch.as_tensor(images).to(opts.device))
            stats.append(detector(images))
            bar.update(images.shape[0] * world)
    stats.gather(opts.device)
    if path is not None and dist.get_rank() == 0:
        stats_mod.save_stats(path, stats)
    return stats


def label_sampler(opts: MetricOptions, batch: int, seed: int) -> Iterator[torch.Tensor]:
    """Labels [batch, c_dim] for the generator: zeros when unconditional, else labels of random real images."""
    G = opts.G
    if G.c_dim == 0:
        while True:
            yield torch.zeros([batch, 0], device=opts.device)
    if opts.data is None:
        raise StyleGANError("the generator is conditional: its labels are drawn from the real images; "
                            "pass --data DATASET")
    dataset = open_dataset(opts, xflip=False)
    rng = np.random.default_rng(seed)
    get_label = getattr(dataset, "get_label", None) or (lambda i: dataset[i][1])
    while True:
        picks = rng.integers(len(dataset), size=batch)
        c = np.stack([np.asarray(get_label(int(i)), dtype=np.float32) for i in picks])
        yield torch.from_numpy(c).to(opts.device)


def rank_share(total: int) -> int:
    """How many of `total` samples this rank produces."""
    rank, world = dist.get_rank(), dist.get_world_size()
    return total // world + (1 if rank < total % world else 0)


def prepared_generator(opts: MetricOptions) -> torch.nn.Module:
    if opts.G is None:
        raise StyleGANError("this metric needs a generator; pass --network PATH")
    G = copy.deepcopy(opts.G).eval().requires_grad_(False).to(opts.device)
    if opts.compile:    # a private copy: its forwards stay compiled for as long as the metric uses it
        for module in (G.mapping, G.synthesis):
            module.forward = compiled(module.forward, cuda_graphs=True)
    return G


@torch.no_grad()
def generator_stats(opts: MetricOptions, detector: Detector, num_gen: int, tag: str,
                    capture_all: bool = False, capture_mean_cov: bool = False) -> stats_mod.FeatureStats:
    """Features of `num_gen` generated images (split over ranks), made as NVIDIA's metrics make them:
    z ~ N(0, I), labels of random real images, random noise, then (x * 127.5 + 128) clamped to uint8."""
    G = prepared_generator(opts)
    detector = compiled(detector, enabled=opts.compile, cuda_graphs=True)
    seed = derive_seed(opts.seed, dist.get_rank(), tag)
    labels = label_sampler(opts, opts.batch_gen, seed)
    rng = torch.Generator(device=opts.device).manual_seed(seed)
    stats = stats_mod.FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov)
    todo = rank_share(num_gen)
    kwargs = dict(dict(noise_mode="random"), **opts.G_kwargs)
    with torch.random.fork_rng(devices=[opts.device] if opts.device.type == "cuda" else []), \
            progress_bar(num_gen, "generator features", opts) as bar:
        torch.manual_seed(seed)  # the generator's own noise; the caller's RNG state is restored afterwards
        while todo > 0:
            images = []
            count = min(opts.batch_size, todo)
            for start in range(0, count, opts.batch_gen):
                n = min(opts.batch_gen, count - start)
                z = torch.randn([n, G.z_dim], generator=rng, device=opts.device)
                img = G(z, next(labels)[:n], **kwargs)
                images.append((img * 127.5 + 128).clamp(0, 255).to(torch.uint8))
            stats.append(detector(_to_rgb(torch.cat(images))))
            todo -= count
            bar.update(count * dist.get_world_size())
    return stats.gather(opts.device)
