"""Cost of ADA's augmentation pipeline per image, next to a discriminator forward pass on the same batch.

    python benchmarks/augment.py                          # 64 and 256 px, CPU (and CUDA when present); prints JSON
    python benchmarks/augment.py --resolutions 64 --batch 8 --repeats 5 --cbase 16384

Augmentation runs on every image D sees, reals and fakes, so its cost is best read against D's own forward
pass on the same batch ("ratio_to_D"). Measured: the default 'bgc' pipeline and the full 'bgcfnc', at a
typical ADA p (0.2) and at p = 1 (every transform fires as often as it can), forward and forward + backward
(training backpropagates through the pipeline to G, and through it twice for R1). D is the 'stylegan2'
preset in float32. The timings of one configuration are interleaved with the others' and the median is
kept, because shared machines are noisy; compare ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from stylegan import build_discriminator
from stylegan.augment import augment_pipe_from_preset


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench(resolution: int, batch: int, repeats: int, cbase: int, cmax: int, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand([batch, 3, resolution, resolution], generator=gen) * 2 - 1).to(device)
    labels = torch.zeros([batch, 0], device=device)
    disc = build_discriminator("stylegan2", resolution=resolution, c_dim=0, cbase=cbase, cmax=cmax, fp16=False)
    disc = disc.to(device).requires_grad_(False)

    cases = {"D_forward": lambda: disc(images, labels)}
    for preset in ("bgc", "bgcfnc"):
        for p in (0.2, 1.0):
            pipe = augment_pipe_from_preset(preset, p=p).to(device)

            def backward(pipe=pipe):
                x = images.detach().requires_grad_(True)
                pipe(x).square().sum().backward()

            cases[f"{preset}_p{p:g}_forward"] = lambda pipe=pipe: pipe(images)
            cases[f"{preset}_p{p:g}_forward_backward"] = backward

    times: dict[str, list[float]] = {name: [] for name in cases}
    torch.manual_seed(0)
    with torch.no_grad():
        disc(images, labels)                                          # warm-up
    for fn in cases.values():
        fn()
    for _ in range(repeats):                                         # interleaved: each round times every case
        for name, fn in cases.items():
            if name == "D_forward":
                with torch.no_grad():
                    times[name].append(timed(fn, device))
            else:
                times[name].append(timed(fn, device))

    d_s = statistics.median(times["D_forward"]) / batch
    result = {"resolution": resolution, "batch": batch, "device": str(device), "discriminator": "stylegan2",
              "cbase": cbase, "cmax": cmax, "D_forward_ms_per_image": round(d_s * 1e3, 3), "augment": []}
    for name, ts in times.items():
        if name == "D_forward":
            continue
        s = statistics.median(ts) / batch
        result["augment"].append({"case": name, "ms_per_image": round(s * 1e3, 3), "ratio_to_D": round(s / d_s, 4)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cbase", type=int, default=32768, help="D channel base (train.py --cbase)")
    parser.add_argument("--cmax", type=int, default=512, help="D channel max (train.py --cmax)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))

    results = [bench(res, args.batch, args.repeats, args.cbase, args.cmax, torch.device(dev))
               for dev in devices for res in args.resolutions]
    print(json.dumps({"benchmark": "augment", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                      "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
                      "results": results}, indent=1))


if __name__ == "__main__":
    main()
