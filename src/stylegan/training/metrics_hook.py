"""Quality metrics during training: the loop measures G_ema at every snapshot, as NVIDIA's does.

Each metric appends one JSON line to metric-<name>.jsonl in the run dir (stylegan.metrics.report_metric), with
the snapshot's file name and kimg; curves.png plots them.
"""
from __future__ import annotations

from pathlib import Path

import torch

from stylegan.core import dist
from stylegan.metrics import calc_metric, parse_metric_list, report_metric
from stylegan.metrics.weights import WeightsUnavailable
from stylegan.training.config import TrainingConfig


def check_metrics(names: list[str]) -> None:
    """Reject unknown metric names before training starts (the message lists the known ones)."""
    parse_metric_list(list(names))


def evaluate_metrics(config: TrainingConfig, G_ema: torch.nn.Module, run_dir: Path, snapshot: Path, nimg: int,
                     device: torch.device, skipped: set[str] | None = None) -> dict[str, float]:
    """Measure every --metrics name for G_ema; every rank calls this, rank 0 writes the results.

    A metric whose feature network cannot be found or downloaded (an offline machine) is skipped, with one line
    that says why and what to do, and is added to `skipped` so that later snapshots do not try again: training
    goes on either way."""
    data = dict(path=config.data.path)
    results: dict[str, float] = {}
    skipped = set() if skipped is None else skipped
    for name in config.run.metrics:
        if name in skipped:
            continue
        dist.print0(f"Evaluating {name}...")
        try:
            result = calc_metric(name, G_ema, data, device=device, mirror=config.data.mirror,
                                 num_workers=config.data.workers, progress=False, compile=config.run.compile)
        except WeightsUnavailable as exc:
            skipped.add(name)
            dist.print0(f"  skipped {name} for the rest of this run: {exc}. Training goes on; metrics that need no "
                        f"download: --metrics swd16k (or --metrics none)")
            continue
        result["kimg"] = nimg / 1000
        report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot)
        results.update(result["results"])
        dist.print0("  " + "  ".join(f"{k} {v:.4g}" for k, v in result["results"].items()))
    return results
