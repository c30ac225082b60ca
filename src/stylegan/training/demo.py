"""The demo: train a small StyleGAN3-T on the bundled emoji at 32x32, on a laptop CPU, in about ten minutes.

    from stylegan.training.demo import run_demo
    run_dir = run_demo('demo-runs')

It is a real run of `stylegan train` (same loop, same files), with a network small enough for two CPU cores:
the equivalent command line is printed first. Each call starts a new numbered run in outdir; to train the last
one further:  stylegan train --outdir demo-runs --resume latest --kimg 24
"""
from __future__ import annotations

import os
from pathlib import Path

from stylegan.core import dist
from stylegan.data import ConvertOptions, convert_dataset
from stylegan.training.loop import train
from stylegan.training.prepare import prepare_config

DEMO_RESOLUTION = 32
# Chosen so that 2 CPU cores finish in about 10 minutes (see docs/benchmarks.md, "Training").
DEMO_FLAGS = dict(cfg="stylegan3-t", batch=16, gamma=0.05, cbase=4096, cmax=32, kimg=4, tick=0.5, snap=2,
                  mirror=True, aug="noaug", workers=0, seed=0, metrics="none")


def demo_dataset(outdir: str | os.PathLike) -> Path:
    """The bundled emoji resized to 32x32, converted once into outdir."""
    path = Path(outdir) / f"demo-{DEMO_RESOLUTION}x{DEMO_RESOLUTION}.zip"
    if not path.exists():
        dist.print0(f"Converting the bundled demo dataset to {DEMO_RESOLUTION}x{DEMO_RESOLUTION}: {path}")
        convert_dataset("demo", path, ConvertOptions(resolution=(DEMO_RESOLUTION, DEMO_RESOLUTION)))
    return path


def run_demo(outdir: str | os.PathLike = "demo-runs", device: str = "cpu", kimg: float | None = None,
             **overrides) -> Path:
    """Train the demo network in a new run directory under outdir; returns the run directory.

    kimg: training length (default 4, about 10 minutes on two cores); overrides: any other train flag."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    data = demo_dataset(outdir)
    flags = dict(DEMO_FLAGS, outdir=str(outdir), data=str(data), device=device, **overrides)
    if kimg is not None:
        flags["kimg"] = kimg
    command = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items())
    dist.print0(f"Demo: stylegan train {command}\n")
    run_dir = train(prepare_config(flags))
    networks = sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))    # the loop said where they are
    if networks:
        dist.print0(f"More images:       stylegan generate --network {networks[-1]} --seeds 0-15 --grid 4x4 "
                    f"--outdir {Path(run_dir) / 'generated'}")
    dist.print0(f"Train it further:  stylegan train --outdir {outdir} --resume latest --kimg 24")
    return run_dir
