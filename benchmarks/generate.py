"""Generation throughput: images/s of `stylegan generate` (mapping + synthesis + uint8, and optionally PNG files).

    python benchmarks/generate.py                       # CPU: 64 px StyleGAN2 and StyleGAN3-T, batch 1 and 16
    python benchmarks/generate.py --resolutions 256     # CPU at 256 px (StyleGAN3-T takes minutes a batch of 16)
    python benchmarks/generate.py --device cuda         # GPU: 256 and 1024 px, fp32 and fp16, batch 1 and 16
    python benchmarks/generate.py --configs stylegan2 --resolutions 64 --batches 1 16 --seconds 5

The networks have random weights (speed does not depend on their values) at the widths NVIDIA's train.py uses
by default (--cbase 32768 --cmax 512); `--cbase/--cmax` change that. 'fp16' builds them with mixed precision
(the 4 highest resolutions in float16, conv_clamp 256, as train.py does without --fp32); our networks run
float16 only on CUDA, so on a CPU only fp32 is measured. Each configuration is warmed up with one batch, then
timed for at least `--seconds` (and at least one batch); on CUDA the clock stops after a synchronize.
`--png` also encodes every image to PNG bytes as the command writes them (the encoding is single-threaded
CPU work, so on a fast GPU it can dominate). Prints JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

import stylegan
from stylegan.core.device import resolve_device
from stylegan.generate import RenderOptions, png_bytes, render


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(G, batch: int, seconds: float, png: bool, device: torch.device) -> dict:
    """Images/s rendering `batch` seeds at a time (psi 0.7, const noise, as a typical `generate` call)."""
    options = RenderOptions(psi=0.7)
    render(G, seeds=list(range(batch)), options=options, batch=batch)            # warm-up (cuDNN autotune, caches)
    _sync(device)
    count, seed, t0 = 0, 10_000, time.perf_counter()
    while count == 0 or time.perf_counter() - t0 < seconds:
        images = render(G, seeds=list(range(seed, seed + batch)), options=options, batch=batch)
        if png:
            for image in images.numpy():
                png_bytes(image)
        count += batch
        seed += batch
    _sync(device)
    elapsed = time.perf_counter() - t0
    return {"images_per_s": round(count / elapsed, 3), "images": count, "seconds": round(elapsed, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--configs", nargs="+", default=["stylegan2", "stylegan3-t"])
    parser.add_argument("--resolutions", type=int, nargs="+", help="default: 64 on CPU, 256 1024 on GPU")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--precisions", nargs="+", help="fp32 fp16 (default: fp32 on CPU, both on GPU)")
    parser.add_argument("--cbase", type=int, default=32768)
    parser.add_argument("--cmax", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per configuration")
    parser.add_argument("--png", action="store_true", help="include PNG encoding, as the command does")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = device.type == "cuda"
    resolutions = args.resolutions or ([256, 1024] if gpu else [64])
    precisions = args.precisions or (["fp32", "fp16"] if gpu else ["fp32"])
    if gpu:
        torch.backends.cudnn.benchmark = True
    results = []
    for cfg in args.configs:
        for res in resolutions:
            for precision in precisions:
                torch.manual_seed(0)
                G = stylegan.build_generator(cfg, res, cbase=args.cbase, cmax=args.cmax, fp16=precision == "fp16")
                G = G.to(device).eval().requires_grad_(False)
                for batch in args.batches:
                    row = {"cfg": cfg, "resolution": res, "precision": precision, "batch": batch}
                    try:
                        row.update(measure(G, batch, args.seconds, args.png, device))
                    except torch.cuda.OutOfMemoryError:
                        row["error"] = "out of memory"
                        torch.cuda.empty_cache()
                    print(json.dumps(row), flush=True)
                    results.append(row)
                del G
                if gpu:
                    torch.cuda.empty_cache()
    info = {"benchmark": "generate", "device": str(device), "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(), "machine": platform.machine(), "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(device) if gpu else None, "png": args.png,
            "cbase": args.cbase, "cmax": args.cmax, "results": results}
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
