"""Quality metrics during training: the loop measures G_ema at every snapshot, as NVIDIA's does.

Each metric appends one JSON line to metric-<name>.jsonl in the run dir (stylegan.metrics.report_metric), with
the snapshot's file name and kimg; curves.png plots them.
"""
from __future__ import annotations

from pathlib import Path

import torch

from stylegan.core import dist
from stylegan.metrics import calc_metric, parse_metric_list, report_metric
from stylegan.training.config import TrainingConfig


def check_metrics(names: list[str]) -> None:
    """Reject unknown metric names before training starts (the message lists the known ones)."""
    parse_metric_list(list(names))


def evaluate_metrics(config: TrainingConfig, G_ema: torch.nn.Module, run_dir: Path, snapshot: Path, nimg: int,
                     device: torch.device) -> dict[str, float]:
    """Measure every --metrics name for G_ema; every rank calls this, rank 0 writes the results."""
    data = dict(path=config.data.path)
    results: dict[str, float] = {}
    for name in config.run.metrics:
        dist.print0(f"Evaluating {name}...")
        result = calc_metric(name, G_ema, data, device=device, mirror=config.data.mirror,
                             num_workers=config.data.workers, progress=False)
        result["kimg"] = nimg / 1000
        report_metric(result, run_dir=run_dir, snapshot_pkl=snapshot)
        results.update(result["results"])
        dist.print0("  " + "  ".join(f"{k} {v:.4g}" for k, v in result["results"].items()))
    return results
