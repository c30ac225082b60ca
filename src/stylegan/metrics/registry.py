"""Metrics by name, with NVIDIA's names, sample counts and result keys; `calc_metric` and `report_metric`.

A result is NVIDIA's dict: {"results": {...}, "metric": name, "total_time": s, "total_time_str": "1m 02s",
"num_gpus": W}; `report_metric` appends it, with "snapshot_pkl" and "timestamp", as one JSON line to
`<run_dir>/metric-<name>.jsonl`. When a development override changed the sample counts, "settings" says so.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from stylegan.core import dist
from stylegan.core.device import resolve_device
from stylegan.core.errors import UsageError
from stylegan.metrics import formulas
from stylegan.metrics.features import MetricOptions, dataset_stats, generator_stats, open_dataset
from stylegan.metrics.weights import load_inception, load_vgg16


@dataclass(frozen=True)
class MetricSpec:
    name: str
    fn: Callable[[MetricOptions], dict]
    description: str
    needs_data: bool


METRICS: dict[str, MetricSpec] = {}


def register(description: str, needs_data: bool = True):
    def wrap(fn):
        METRICS[fn.__name__] = MetricSpec(fn.__name__, fn, description, needs_data)
        return fn
    return wrap


def _count(default: int | None, override: int | None) -> int | None:
    return default if override is None else override


def _cap(default: int | None, override: int | None) -> int | None:
    if override is None:
        return default
    return override if default is None else min(default, override)


# ----------------------------------------------------------------------------------------------------------
# Inception metrics.

def _inception(opts: MetricOptions, probs: bool = False):
    model, ident = load_inception(opts.feature_dir, opts.device, opts.download)   # a download: once per machine
    if probs:  # IS: softmax of the logits without their bias (as the original TF implementation did)
        return (lambda img: torch.softmax(model.logits(model(img), bias=False), dim=1)), ident + ":probs"
    return model, ident + ":pool"


def compute_fid(opts: MetricOptions, max_real: int | None, num_gen: int, xflip: bool) -> float:
    detector, ident = _inception(opts)
    real = dataset_stats(opts, open_dataset(opts, xflip), detector, ident, _cap(max_real, opts.max_real),
                         capture_mean_cov=True)
    gen = generator_stats(opts, detector, _count(num_gen, opts.num_gen), "fid", capture_mean_cov=True)
    return formulas.frechet_distance(gen.mean, gen.cov, real.mean, real.cov)


def compute_kid(opts: MetricOptions, max_real: int | None, num_gen: int, xflip: bool) -> float:
    detector, ident = _inception(opts)
    real = dataset_stats(opts, open_dataset(opts, xflip), detector, ident, _cap(max_real, opts.max_real),
                         capture_all=True)
    gen = generator_stats(opts, detector, _count(num_gen, opts.num_gen), "kid", capture_all=True)
    return formulas.kernel_inception_distance(real.features, gen.features, num_subsets=100, max_subset_size=1000,
                                              seed=opts.seed)


def compute_pr(opts: MetricOptions, max_real: int | None, num_gen: int, xflip: bool) -> tuple[float, float]:
    model, ident = load_vgg16(opts.feature_dir, opts.device, download=opts.download)
    real = dataset_stats(opts, open_dataset(opts, xflip), model, ident + ":fc7", _cap(max_real, opts.max_real),
                         capture_all=True)
    gen = generator_stats(opts, model, _count(num_gen, opts.num_gen), "pr", capture_all=True)
    return formulas.precision_recall(real.features, gen.features, k=3, batch=10000, device=opts.device)


@register("Frechet inception distance against the full dataset.")
def fid50k_full(opts):
    return dict(fid50k_full=compute_fid(opts, max_real=None, num_gen=50000, xflip=False))


@register("Kernel inception distance against the full dataset.")
def kid50k_full(opts):
    return dict(kid50k_full=compute_kid(opts, max_real=1000000, num_gen=50000, xflip=False))


@register("Precision and recall (k=3, VGG16) against the full dataset.")
def pr50k3_full(opts):
    precision, recall = compute_pr(opts, max_real=200000, num_gen=50000, xflip=False)
    return dict(pr50k3_full_precision=precision, pr50k3_full_recall=recall)


@register("Perceptual path length in W, endpoints, full image.", needs_data=False)
def ppl2_wend(opts):
    from stylegan.metrics.ppl import compute_ppl
    return dict(ppl2_wend=compute_ppl(opts, num_samples=_count(50000, opts.num_gen), epsilon=1e-4, crop=False))


@register("Perceptual path length in W, endpoints, center crop (faces).", needs_data=False)
def ppl_wend(opts):
    from stylegan.metrics.ppl import compute_ppl
    return dict(ppl_wend=compute_ppl(opts, num_samples=_count(50000, opts.num_gen), epsilon=1e-4, crop=True))


def _equivariance(opts, **which):
    from stylegan.metrics.equivariance import compute_equivariance
    return compute_equivariance(opts, num_samples=_count(50000, opts.num_gen), batch_size=4, **which)


@register("Equivariance to integer translation (EQ-T), PSNR in dB.", needs_data=False)
def eqt50k_int(opts):
    return dict(eqt50k_int=_equivariance(opts, eqt_int=True)["eqt_int"])


@register("Equivariance to fractional translation (EQ-T_frac), PSNR in dB.", needs_data=False)
def eqt50k_frac(opts):
    return dict(eqt50k_frac=_equivariance(opts, eqt_frac=True)["eqt_frac"])


@register("Equivariance to rotation (EQ-R), PSNR in dB.", needs_data=False)
def eqr50k(opts):
    return dict(eqr50k=_equivariance(opts, eqr=True)["eqr"])


@register("Frechet inception distance against 50k real images (mirrored when --mirror).")
def fid50k(opts):
    return dict(fid50k=compute_fid(opts, max_real=50000, num_gen=50000, xflip=opts.mirror))


@register("Frechet inception distance, 10k generated against 10k real images (quick).")
def fid10k(opts):
    return dict(fid10k=compute_fid(opts, max_real=10000, num_gen=10000, xflip=opts.mirror))


@register("Kernel inception distance against 50k real images.")
def kid50k(opts):
    return dict(kid50k=compute_kid(opts, max_real=50000, num_gen=50000, xflip=opts.mirror))


@register("Precision and recall against 50k real images.")
def pr50k3(opts):
    precision, recall = compute_pr(opts, max_real=50000, num_gen=50000, xflip=opts.mirror)
    return dict(pr50k3_precision=precision, pr50k3_recall=recall)


@register("Inception score over 10 splits (CIFAR-10).", needs_data=False)
def is50k(opts):
    detector, _ident = _inception(opts, probs=True)
    probs = generator_stats(opts, detector, _count(50000, opts.num_gen), "is", capture_all=True).features
    mean, std = formulas.inception_score(probs, num_splits=10)
    return dict(is50k_mean=mean, is50k_std=std)


@register("Sliced Wasserstein distance x1e3 of Laplacian-pyramid patches, 16k vs 16k (no feature network).")
def swd16k(opts):
    from stylegan.metrics.swd import compute_swd
    return compute_swd(opts, "swd16k", num_real=_cap(16384, opts.max_real), num_gen=_count(16384, opts.num_gen))


# ----------------------------------------------------------------------------------------------------------

def list_metrics() -> list[str]:
    return list(METRICS)


def parse_metric_list(text: str | list[str] | None, flag: str = "--metrics") -> list[str]:
    """'fid50k_full,kid50k_full' -> names; 'none' or '' -> []. Unknown names are a UsageError."""
    if text is None:
        return []
    names = text if isinstance(text, list) else [t.strip() for t in str(text).split(",") if t.strip()]
    if names in (["none"], []):
        return []
    bad = [n for n in names if n not in METRICS]
    if bad:
        raise UsageError(f"{flag}: unknown metric {', '.join(bad)}; choose from {', '.join(METRICS)} (or none)")
    return names


def _format_time(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s // 60) % 60:02d}m {s % 60:02d}s"


@contextlib.contextmanager
def _full_precision():
    """TF32 off while measuring (as NVIDIA's calc_metrics sets it); the caller's settings come back after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def calc_metric(name: str, G: torch.nn.Module | None = None, data=None, *, device="auto", mirror: bool = False,
                feature_dir=None, cache_dir=None, cache: bool = True, download: bool = True,
                num_gen: int | None = None, max_real: int | None = None, batch_size: int = 64,
                num_workers: int = 3, seed: int = 0, progress: bool = True, G_kwargs: dict | None = None,
                compile: bool = False) -> dict:
    """Evaluate one metric of generator `G` (use G_ema) against `data`; call it on every rank under torchrun.

    data: dataset path, ImageDataset kwargs (dict) or dataset object (see MetricOptions). The generator is
    copied and put in eval mode; the caller's RNG state is left as it was. Every rank gets the same result.
    compile: torch.compile the generator and the feature network (--compile; see MetricOptions).
    """
    if name not in METRICS:
        raise UsageError(f"unknown metric '{name}'; choose from {', '.join(METRICS)}")
    spec = METRICS[name]
    opts = MetricOptions(G=G, data=data, mirror=mirror, device=resolve_device(device), feature_dir=feature_dir,
                         cache_dir=cache_dir, cache=cache, download=download, num_gen=num_gen, max_real=max_real,
                         batch_size=batch_size, num_workers=num_workers, seed=seed, progress=progress,
                         G_kwargs=dict(G_kwargs or {}), compile=compile)
    start = time.time()
    with _full_precision():
        results = {k: float(v) for k, v in spec.fn(opts).items()}
    for key, value in results.items():  # every rank reports rank 0's numbers
        results[key] = float(dist.broadcast_(torch.tensor([value], dtype=torch.float64, device=opts.device)).item())
    total = time.time() - start
    out = dict(results=results, metric=name, total_time=total, total_time_str=_format_time(total),
               num_gpus=dist.get_world_size())
    if num_gen is not None or max_real is not None:
        out["settings"] = {k: v for k, v in dict(num_gen=num_gen, max_real=max_real).items() if v is not None}
    return out


def report_metric(result: dict, run_dir: str | os.PathLike | None = None,
                  snapshot_pkl: str | os.PathLike | None = None) -> str:
    """Append `result` as one JSON line to <run_dir>/metric-<name>.jsonl (rank 0 only); return the line.

    snapshot_pkl is stored relative to run_dir, as NVIDIA's calc_metrics does.
    """
    if run_dir is not None and snapshot_pkl is not None:
        snapshot_pkl = os.path.relpath(snapshot_pkl, run_dir)
    snapshot = None if snapshot_pkl is None else str(snapshot_pkl)
    line = json.dumps(dict(result, snapshot_pkl=snapshot, timestamp=time.time()))
    if run_dir is not None and dist.get_rank() == 0:
        path = Path(run_dir) / f"metric-{result['metric']}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
    return line


def read_reports(run_dir: str | os.PathLike, name: str) -> list[dict]:
    """The JSON lines of <run_dir>/metric-<name>.jsonl, oldest first, each with "kimg" added when its snapshot
    name ends in a number (network-snapshot-000400.* -> 400): what a curve of the metric against kimg needs.
    Lines that do not parse (a run killed mid-write) are skipped."""
    path = Path(run_dir) / f"metric-{name}.jsonl"
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        digits = re.search(r"(\d+)\D*$", str(entry.get("snapshot_pkl") or ""))
        entry["kimg"] = int(digits.group(1)) if digits else None
        entries.append(entry)
    return entries
