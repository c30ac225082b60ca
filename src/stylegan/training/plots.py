"""curves.png: the losses, regularisers, D's outputs, ADA's p and any metrics, against kimg, from the run dir."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from stylegan.core.files import atomic_path

PANELS = [
    ("Losses", ["loss/G", "loss/D"]),
    ("Regularisers", ["r1_penalty", "pl_penalty"]),
    ("D outputs", ["scores/real", "scores/fake"]),
    ("Augmentation", ["augment_p", "signs/real"]),
]


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    rows = []
    path = Path(path)
    if not path.exists():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_metrics(run_dir: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """metric-<name>.jsonl -> {result name: [(kimg, value), ...]}; kimg from a 'kimg' field or the snapshot name."""
    series: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(Path(run_dir).glob("metric-*.jsonl")):
        for row in read_jsonl(path):
            kimg = row.get("kimg")
            if kimg is None:
                m = re.search(r"(\d+)\.\w+$", str(row.get("snapshot", row.get("snapshot_pkl", ""))))
                kimg = int(m.group(1)) if m else None
            if kimg is None:
                continue
            for name, value in (row.get("results") or {}).items():
                if isinstance(value, (int, float)):
                    series.setdefault(name, []).append((float(kimg), float(value)))
    return series


def plot_curves(run_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> Path | None:
    """Draw curves.png in run_dir (atomically); returns its path, or None when there is nothing to plot yet."""
    from matplotlib.figure import Figure     # no pyplot: no global state, no GUI backend, faster to import

    run_dir = Path(run_dir)
    rows = read_jsonl(run_dir / "stats.jsonl")
    metrics = read_metrics(run_dir)
    if not rows:
        return None
    panels = [(title, [k for k in keys if any(k in r for r in rows)]) for title, keys in PANELS]
    panels = [(title, keys) for title, keys in panels if keys]
    if metrics:
        panels.append(("Metrics", list(metrics)))
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(11, 3.4 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        for key in keys:
            if title == "Metrics":
                xs, ys = zip(*metrics[key])
                ax.plot(xs, ys, marker="o", label=key)
            else:
                pts = [(r["kimg"], r[key]) for r in rows if isinstance(r.get(key), (int, float))
                       and math.isfinite(r[key])]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, label=key, marker="." if len(pts) < 30 else None)
        ax.set_title(title)
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(run_dir.name, fontsize=10)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.08, top=0.9, wspace=0.2, hspace=0.45)
    out = Path(path) if path is not None else run_dir / "curves.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    return out
