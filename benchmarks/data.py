"""Data loading throughput: images/s from a zip through DataLoader + InfiniteSampler, as training reads it.

    python benchmarks/data.py                      # 64 and 256 px, 0 and 2 workers; prints JSON
    python benchmarks/data.py --seconds 5 --workers 0 2 4

The zips are made from the bundled demo with uncompressed PNGs (--compress-level 0, the training default);
256 px is the demo enlarged, which decodes like any 256 px PNG of the same byte size. The same images are
also stored as Pillow writes them at level 0 (row filters on, as in zips from NVIDIA's dataset_tool), and read
with 0 workers, to show what the unfiltered fast path is worth side by side.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
import zipfile
from pathlib import Path

import PIL.Image
import torch

from stylegan.data import ConvertOptions, ImageDataset, InfiniteSampler, convert_dataset


def measure(path: Path, workers: int, batch: int, seconds: float) -> dict:
    t0 = time.perf_counter()
    dataset = ImageDataset(path, xflip=True)
    open_s = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, sampler=InfiniteSampler(len(dataset), seed=0),
                                         num_workers=workers, prefetch_factor=4 if workers else None)
    batches = iter(loader)
    for _ in range(3):                                  # start the workers and fill their queues
        next(batches)
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        images, _ = next(batches)
        count += images.shape[0]
    elapsed = time.perf_counter() - t0
    return {"resolution": dataset.resolution, "workers": workers, "batch": batch,
            "images_per_s": round(count / elapsed, 1),
            "images": count, "open_s_per_1k_images": round(open_s / len(dataset) * 2000, 3)}


def pillow_filtered_copy(src: Path, dest: Path) -> None:
    """The same images re-encoded by Pillow at zlib level 0, the way NVIDIA's tool writes them."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith(".png"):
                buf = io.BytesIO()
                PIL.Image.open(io.BytesIO(data)).save(buf, format="png", compress_level=0)
                data = buf.getvalue()
            zout.writestr(name, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    parser.add_argument("--images", type=int, default=1000, help="images per zip")
    args = parser.parse_args()

    torch.set_num_threads(1)                            # decoding is per-process work; keep runs comparable
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for res in args.resolutions:
            path = Path(tmp) / f"demo{res}.zip"
            options = ConvertOptions(resolution=(res, res), allow_upscale=True, max_images=args.images)
            convert_dataset("demo", path, options)
            for workers in args.workers:
                results.append({**measure(path, workers, args.batch, args.seconds), "png": "unfiltered",
                                "zip_mb": round(path.stat().st_size / 1e6, 1)})
            filtered = Path(tmp) / f"pillow{res}.zip"
            pillow_filtered_copy(path, filtered)
            results.append({**measure(filtered, 0, args.batch, args.seconds), "png": "pillow-filtered",
                            "zip_mb": round(filtered.stat().st_size / 1e6, 1)})
    print(json.dumps({"benchmark": "data", "cpu_count": os.cpu_count(), "machine": platform.machine(),
                      "torch": torch.__version__, "results": results}, indent=1))


if __name__ == "__main__":
    main()
