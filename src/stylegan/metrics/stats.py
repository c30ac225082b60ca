"""Feature statistics: running mean/covariance or all features, gathered across ranks, cached on disk.

Real-image statistics depend only on the dataset, the feature network and a few settings, so they are cached:
the key hashes the dataset's content fingerprint, the network's weights, the number of images, the mirror
setting and the kind of statistics. Cache files are .npz (read with allow_pickle=False) written atomically.
"""
from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stylegan.core import dist
from stylegan.core.files import atomic_write


class FeatureStats:
    """Accumulates features [N, D] on one rank; `gather` combines all ranks (every rank gets the total)."""

    def __init__(self, capture_all: bool = False, capture_mean_cov: bool = False):
        self.capture_all = capture_all
        self.capture_mean_cov = capture_mean_cov
        self.num_items = 0
        self.num_features: int | None = None
        self._chunks: list[torch.Tensor] = []
        self._sum: torch.Tensor | None = None    # float64 [D]
        self._gram: torch.Tensor | None = None   # float64 [D, D]: sum of x^T x
        self.features: np.ndarray | None = None  # after gather, when capture_all
        self.mean: np.ndarray | None = None      # after gather, when capture_mean_cov
        self.cov: np.ndarray | None = None

    def append(self, x: torch.Tensor) -> None:
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got {tuple(x.shape)}")
        if self.num_features is None:
            self.num_features = int(x.shape[1])
        self.num_items += int(x.shape[0])
        if self.capture_all:
            self._chunks.append(x.detach().to(torch.float32).cpu())
        if self.capture_mean_cov:
            x64 = x.detach().to(torch.float64)
            if self._sum is None:
                self._sum = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
                self._gram = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
            self._sum += x64.sum(dim=0)
            self._gram += x64.T @ x64

    def gather(self, device: torch.device | str = "cpu") -> "FeatureStats":
        """Combine ranks: sums are all-reduced, features all-gathered in rank order. Returns self."""
        device = torch.device(device)
        world = dist.get_world_size()
        count = dist.all_reduce_sum_(torch.tensor([self.num_items], dtype=torch.float64, device=device))
        total = int(count.item())
        dim = self.num_features or 0
        if world > 1:  # a rank that saw no items still needs the width
            import torch.distributed as torch_dist
            width = torch.tensor([dim], device=device)
            torch_dist.all_reduce(width, op=torch_dist.ReduceOp.MAX)
            dim = int(width.item())
        if self.capture_mean_cov:
            s = self._sum.to(device) if self._sum is not None else torch.zeros(dim, dtype=torch.float64, device=device)
            g = (self._gram.to(device) if self._gram is not None
                 else torch.zeros(dim, dim, dtype=torch.float64, device=device))
            dist.all_reduce_sum_(s)
            dist.all_reduce_sum_(g)
            mean = s / max(total, 1)
            # Population covariance (divide by N), as NVIDIA's metrics compute it.
            self.mean = mean.cpu().numpy()
            self.cov = (g / max(total, 1) - torch.outer(mean, mean)).cpu().numpy()
        if self.capture_all:
            local = torch.cat(self._chunks) if self._chunks else torch.zeros(0, dim)
            self.features = _all_gather_rows(local, device).numpy()
        self.num_items = total
        self.num_features = dim
        return self


def _all_gather_rows(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    world = dist.get_world_size()
    if world == 1:
        return x
    import torch.distributed as torch_dist
    n = torch.tensor([x.shape[0]], device=device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    torch_dist.all_gather(sizes, n)
    longest = int(max(s.item() for s in sizes))
    padded = torch.zeros(longest, x.shape[1], dtype=x.dtype, device=device)
    padded[: x.shape[0]] = x.to(device)
    parts = [torch.zeros_like(padded) for _ in range(world)]
    torch_dist.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).cpu()


# --------------------------------------------------------------------------------------------------------------
# Dataset fingerprints and the cache.

_fingerprints: dict[Any, str] = {}


def dataset_fingerprint(dataset: Any) -> str:
    """A hash of what the dataset contains, cheap enough to compute at every evaluation.

    - a dataset that offers `fingerprint` (a string or a method) is trusted;
    - a zip: the names, sizes and CRC-32s of its members (its central directory: content, without decoding);
    - a folder: relative names, sizes and modification times of its files;
    - anything else: a hash of every image and label it yields.
    """
    own = getattr(dataset, "fingerprint", None)
    if own is not None:
        return own() if callable(own) else str(own)
    path = getattr(dataset, "path", None) or getattr(dataset, "_path", None)
    if path is not None and os.path.exists(path):
        path = Path(path).resolve()
        stat = path.stat()
        memo_key = (str(path), stat.st_size, stat.st_mtime_ns)
        if memo_key not in _fingerprints:
            h = hashlib.sha256()
            if path.is_file() and zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    for info in sorted(zf.infolist(), key=lambda i: i.filename):
                        h.update(f"{info.filename}\0{info.file_size}\0{info.CRC}\n".encode())
            elif path.is_dir():
                for root, dirs, files in os.walk(path):
                    dirs.sort()
                    for name in sorted(files):
                        full = Path(root, name)
                        st = full.stat()
                        h.update(f"{full.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            else:
                h.update(path.read_bytes())
            _fingerprints[memo_key] = h.hexdigest()
        return _fingerprints[memo_key]
    h = hashlib.sha256()
    for i in range(len(dataset)):
        img, label = dataset[i]
        h.update(np.ascontiguousarray(img).tobytes())
        h.update(np.asarray(label).tobytes())
    return h.hexdigest()


def selection_digest(dataset: Any, num_items: int) -> str:
    """Which files the first `num_items` items are, and which are mirrored: ImageDataset's max_size/seed
    subset and xflip change the items without changing the files, so the cache key must see them."""
    h = hashlib.sha256()
    raw_name = getattr(dataset, "raw_name", None)
    if callable(raw_name):
        for i in range(num_items):
            h.update(raw_name(i).encode() + b"\0")
    flips = getattr(dataset, "_xflip", None)
    if flips is not None:
        h.update(np.asarray(flips[:num_items], dtype=bool).tobytes())
    h.update(str(getattr(dataset, "xflip", "")).encode())
    return h.hexdigest()


def cache_key(**fields: Any) -> str:
    """A stable hash of JSON-able fields."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def save_stats(path: Path, stats: FeatureStats) -> None:
    arrays: dict[str, np.ndarray] = {"num_items": np.array(stats.num_items),
                                     "num_features": np.array(stats.num_features)}
    if stats.capture_mean_cov:
        arrays.update(mean=stats.mean, cov=stats.cov)
    if stats.capture_all:
        arrays.update(features=stats.features)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def load_stats(path: Path, capture_all: bool, capture_mean_cov: bool) -> FeatureStats | None:
    """The cached stats, or None when the file is missing, unreadable or lacks what is asked for."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            stats = FeatureStats(capture_all=capture_all, capture_mean_cov=capture_mean_cov)
            stats.num_items = int(npz["num_items"])
            stats.num_features = int(npz["num_features"])
            if capture_mean_cov:
                stats.mean, stats.cov = npz["mean"], npz["cov"]
            if capture_all:
                stats.features = npz["features"]
            return stats
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
