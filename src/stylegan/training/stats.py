"""Statistics gathered during training: per-sample values summed on the device, reduced across ranks on demand.

Nothing here synchronises the GPU until `collect()`, which is called once per tick (and by ADA every few steps).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import torch

from stylegan.core import dist


class TrainingStats:
    """Running mean of named values; `collect()` averages them over every sample on every rank, then resets."""

    def __init__(self, device: torch.device, forward: dict[str, "TrainingStats"] | None = None):
        self.device = device
        self._acc: dict[str, torch.Tensor] = {}         # name -> [count, sum, sum of squares]
        self._forward = forward or {}                   # also send these names to another collector (ADA)

    def add(self, name: str, values: torch.Tensor) -> None:
        values = values.detach().flatten().to(torch.float32)
        acc = self._acc.get(name)
        if acc is None:
            acc = self._acc[name] = torch.zeros([3], dtype=torch.float64, device=self.device)
        moments = torch.stack([torch.ones_like(values).sum(), values.sum(), values.square().sum()])
        acc.add_(moments.to(torch.float64))
        if name in self._forward:
            self._forward[name].add(name, values)

    def add_scalar(self, name: str, value: float | torch.Tensor) -> None:
        self.add(name, torch.as_tensor(value, dtype=torch.float32, device=self.device).reshape(1))

    def collect(self) -> dict[str, float]:
        """Means over everything added since the last call, on all ranks together. Every rank must call it."""
        names = sorted(self._acc)
        if not names:
            return {}
        moments = torch.stack([self._acc[n] for n in names])                                 # [K, 3]
        dist.all_reduce_sum_(moments)
        self._acc.clear()
        out = {}
        for name, (count, total, _) in zip(names, moments.tolist()):
            out[name] = total / count if count > 0 else float("nan")
        return out


def peak_memory_gb(device: torch.device) -> float:
    """Peak memory of this process: allocated CUDA memory on a GPU, resident set size on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / (2**30 if sys.platform == "darwin" else 2**20)


def format_duration(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


class TickLog:
    """stats.jsonl (one JSON line per tick) and, when tensorboard is installed, event files in the run dir."""

    def __init__(self, run_dir: str | os.PathLike, resume_nimg: int | None = None):
        self.path = Path(run_dir) / "stats.jsonl"
        if resume_nimg is not None:
            self._drop_lines_after(resume_nimg)
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter   # needs the optional `tensorboard` package
            self._tb = SummaryWriter(str(run_dir))
        except ImportError:
            pass
        self._start = time.time()

    def _drop_lines_after(self, nimg: int) -> None:
        # A run killed after its last snapshot logged ticks that the resumed run will log again.
        if not self.path.exists():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("kimg", 0) * 1000 <= nimg + 0.5:
                    keep.append(line)
            except json.JSONDecodeError:
                break                                    # a line cut short by the kill
        self.path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def write(self, fields: dict) -> None:
        self._file.write(json.dumps(fields) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(round(fields["kimg"]))
            for key, value in fields.items():
                if isinstance(value, (int, float)) and key not in ("kimg", "timestamp"):
                    self._tb.add_scalar(key, value, global_step=step)
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
