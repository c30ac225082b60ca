"""Speed of the metrics' feature networks, and the time of one fid50k_full-style evaluation, scaled.

    python benchmarks/metrics.py                   # CPU, and CUDA when present; prints JSON
    python benchmarks/metrics.py --batch 8 --repeats 3 --fid-items 32

Feature extraction (random weights, no files needed), in images per second:
  inception   Inception-v3 pool features of 256x256 uint8 images (the resize to 299 included): FID, KID, IS.
  vgg16_pr    VGG16 fc7 features of 256x256 images (resized to 224): precision/recall.
  vgg16_lpips LPIPS embedding of 256x256 images: PPL (two per sample).

fid50k_full: the parts are timed apart: the generator per image (the 'stylegan2' preset at 256 with random
weights if the networks are available, else a stand-in returning noise), Inception per image (above), and the
Frechet distance (one 2048x2048 matrix square root, the same cost at any sample count). The estimate is
50,000 x (generator + Inception) + Frechet, plus 70,000 x Inception for the reals (FFHQ) on a first run;
afterwards the real statistics come from the cache. A small end-to-end `calc_metric` run (`--fid-items`
images each side) is reported next to what the parts predict for it. Timings take the
median of --repeats; shared machines are noisy, so read ratios within one run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL.Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stylegan.metrics import calc_metric, formulas, weights  # noqa: E402
from stylegan.metrics.inception import InceptionV3  # noqa: E402
from stylegan.metrics.vgg import VGG16  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, batch: int, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def realistic_inception() -> InceptionV3:
    """Random weights with activations of realistic scale: He-scaled convolutions and batch norm statistics
    measured on a random batch. (PyTorch's default init shrinks 94 layers' activations towards denormal
    floats, which CPUs process far more slowly than trained weights' values.)"""
    model = InceptionV3()
    for name, p in model.named_parameters():
        if name.endswith("conv.weight"):
            p.data.normal_(0, (2 / p[0].numel()) ** 0.5)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
            m.train()
    with torch.no_grad():
        model(torch.randint(0, 256, (4, 3, 299, 299), dtype=torch.uint8))
    return model.eval()


def feature_rates(device: torch.device, batch: int, repeats: int) -> dict:
    img = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, device=device)
    inception = realistic_inception().to(device)
    vgg = VGG16().to(device)
    vgg.has_fc = vgg.has_lpips = True
    with torch.no_grad():
        return {
            "inception": round(_rate(lambda: inception(img), batch, repeats, device), 2),
            "vgg16_pr": round(_rate(lambda: vgg(img), batch, repeats, device), 2),
            "vgg16_lpips": round(_rate(lambda: vgg.lpips_embedding(img.float()), batch, repeats, device), 2),
        }


class _NoiseG(torch.nn.Module):
    z_dim, c_dim, w_dim, img_channels, img_resolution = 512, 0, 512, 3, 256

    def forward(self, z, c, **kwargs):
        return torch.rand(z.shape[0], 3, 256, 256, device=z.device) * 2 - 1


def _generator(device: torch.device):
    try:
        from stylegan import build_generator
        return build_generator("stylegan2", 256).to(device).eval(), "stylegan2 at 256 (random weights)"
    except Exception as exc:  # networks not available: time the metric alone
        return _NoiseG().to(device), f"stand-in returning noise (no stylegan.build_generator: {type(exc).__name__})"


def fid_estimate(device: torch.device, items: int, batch: int, inception_rate: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    weights.export_safetensors(realistic_inception(), work / "features" / "inception-2015-12-05.safetensors")
    data = work / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(items):
        PIL.Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(data / f"{i:05d}.png")
    G, g_name = _generator(device)
    # Generator: seconds per image at the metrics' generation batch (4).
    z = torch.randn(4, G.z_dim, device=device)
    c = torch.zeros(4, G.c_dim, device=device)
    with torch.no_grad():
        t_gen = 1 / _rate(lambda: G(z, c, noise_mode="random"), 4, 2, device)
    # The Frechet distance: one 2048x2048 matrix square root, the same cost at any sample count.
    a, b = (m @ m.T / 4096 for m in np.random.default_rng(1).normal(size=(2, 2048, 4096)))
    t0 = time.perf_counter()
    formulas.frechet_distance(np.zeros(2048), a, np.zeros(2048), b)
    t_fd = time.perf_counter() - t0
    # The whole pipeline on a small run, to show the parts add up (reals computed, then cached).
    common = dict(device=device, feature_dir=work / "features", cache_dir=work / "stats", num_gen=items, max_real=items,
                  batch_size=batch, num_workers=0, progress=False)
    weights.load_inception(work / "features", device)
    t0 = time.perf_counter()
    calc_metric("fid50k_full", G, str(data), **common)
    small_first = time.perf_counter() - t0
    t_inc = 1 / inception_rate
    return {
        "generator": g_name,
        "seconds": {"generator_per_image": round(t_gen, 4), "inception_per_image": round(t_inc, 4),
                    "frechet_distance": round(t_fd, 2)},
        "small_run": {"items": items, "seconds": round(small_first, 1),
                      "predicted_from_parts": round(items * (t_gen + 2 * t_inc) + t_fd, 1)},
        "fid50k_full_estimate_hours": {
            "first_run_70k_reals": round((50000 * (t_gen + t_inc) + 70000 * t_inc + t_fd) / 3600, 2),
            "cached_reals": round((50000 * (t_gen + t_inc) + t_fd) / 3600, 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fid-items", type=int, default=32)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    out = {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "load_average_at_start": [round(v, 1) for v in os.getloadavg()], "devices": {}}
    for device in devices:
        batch = args.batch if device.type == "cpu" else max(args.batch, 64)
        rates = feature_rates(device, batch, args.repeats)
        out["devices"][str(device)] = {
            "images_per_second": rates,
            "batch": batch,
            "fid50k_full": fid_estimate(device, args.fid_items if device.type == "cpu" else 512, batch,
                                        rates["inception"]),
        }
        if device.type == "cuda":
            out["devices"][str(device)]["name"] = torch.cuda.get_device_name(device)
    out["load_average_at_end"] = [round(v, 1) for v in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
