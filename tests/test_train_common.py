"""Shared tiny training setups for tests/test_train_*.py (no tests here): small datasets and quick flags."""
from __future__ import annotations

import json
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from stylegan.training.config import TrainingFlags

# StyleGAN2 at 16x16 with 32 channels: a few hundred ms per step on two cores.
TINY = dict(cfg="stylegan2", batch=8, gamma=1.0, cbase=1024, cmax=32, map_depth=2, workers=0, device="cpu",
            metrics="none")


def write_dataset(path: Path, count: int = 32, resolution: int = 16, labels: bool = False, seed: int = 0) -> Path:
    """A zip in NVIDIA's layout: smooth random colour blobs (so D has something to learn), optional labels."""
    rnd = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:resolution, 0:resolution] / resolution
    with zipfile.ZipFile(path, "w") as zf:
        names = []
        for i in range(count):
            cx, cy, r = rnd.uniform(0.2, 0.8), rnd.uniform(0.2, 0.8), rnd.uniform(0.1, 0.4)
            mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            img = np.where(mask, rnd.integers(0, 256, 3), 255).astype(np.uint8)
            buf = BytesIO()
            PIL.Image.fromarray(img, "RGB").save(buf, format="PNG")
            name = f"00000/img{i:08d}.png"
            zf.writestr(name, buf.getvalue())
            names.append(name)
        if labels:
            zf.writestr("dataset.json", json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}))
    return path


def flag_values(outdir: Path, data: Path, **overrides) -> dict:
    """The TINY run's flags by name, as `stylegan train` would receive them."""
    return dict(TINY, outdir=str(outdir), data=str(data), **overrides)


def flags(outdir: Path, data: Path, **overrides) -> TrainingFlags:
    return TrainingFlags(**flag_values(outdir, data, **overrides))


def cli_flags(values: dict) -> list[str]:
    """These flags as command-line arguments of `stylegan train`."""
    args = []
    for k, v in values.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    return args


def state_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    """The newest training state's tensors, without the RNG states (which differ by design after a resume)."""
    from safetensors.torch import load_file
    path = sorted(Path(run_dir).glob("training-state-*.safetensors"))[-1]
    return {k: v for k, v in load_file(str(path)).items() if not k.startswith("rng.")}


def only_run(outdir: Path) -> Path:
    runs = [p for p in Path(outdir).iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]
