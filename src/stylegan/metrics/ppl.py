"""Perceptual path length (Karras et al. 2019, "A Style-Based Generator Architecture", eq. 3/4), in W.

For random latent pairs (w0, w1) = mapping(z0, z1) and t (0 for endpoint sampling, U(0, 1) for full):

    PPL = E[ LPIPS(G(lerp(w0, w1, t)), G(lerp(w0, w1, t + eps))) / eps^2 ],   eps = 1e-4

with LPIPS-VGG16 on images scaled to [0, 255], optionally center-cropped (faces: rows 3/8..7/8, columns
2/8..6/8) and box-downsampled by img_resolution // 256. As in the original implementation the expectation
drops samples below the 1st and above the 99th percentile.
"""
from __future__ import annotations

import numpy as np
import torch

from stylegan.core import dist
from stylegan.core.misc import derive_seed
from stylegan.metrics.features import MetricOptions, label_sampler, prepared_generator, progress_bar, rank_share
from stylegan.metrics.stats import _all_gather_rows
from stylegan.metrics.weights import load_vgg16


def prepare_for_lpips(img: torch.Tensor, img_resolution: int, crop: bool) -> torch.Tensor:
    """Generator output [N, C, H, W] in [-1, 1] -> [N, 3, h, w] in [0, 255], cropped and downsampled."""
    if crop:
        c = img.shape[2] // 8
        img = img[:, :, c * 3:c * 7, c * 2:c * 6]
    factor = img_resolution // 256  # from the full resolution, even after a crop (as the original code does)
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape(n, ch, h // factor, factor, w // factor, factor).mean(dim=[3, 5])
    img = (img + 1) * (255 / 2)
    return img.repeat([1, 3, 1, 1]) if img.shape[1] == 1 else img


@torch.no_grad()
def compute_ppl(opts: MetricOptions, num_samples: int, epsilon: float = 1e-4, crop: bool = False,
                sampling: str = "end", batch_size: int = 2) -> float:
    if sampling not in ("end", "full"):
        raise ValueError(f"sampling must be 'end' or 'full', got {sampling!r}")
    vgg, _ident = load_vgg16(opts.feature_dir, opts.device, need_lpips=True, need_fc=False, download=opts.download)
    G = prepared_generator(opts)
    seed = derive_seed(opts.seed, dist.get_rank(), "ppl")
    rng = torch.Generator(device=opts.device).manual_seed(seed)
    labels = label_sampler(opts, batch_size, seed)
    dists = []
    todo = rank_share(num_samples)
    bar = progress_bar(todo, "path length", opts, unit="sample")
    while todo > 0:
        n = min(batch_size, todo)
        todo -= n
        t = torch.rand([n], generator=rng, device=opts.device) * (1 if sampling == "full" else 0)
        z = torch.randn([n * 2, G.z_dim], generator=rng, device=opts.device)
        c = next(labels)[:n]
        w0, w1 = G.mapping(z, torch.cat([c, c])).chunk(2)  # [n, num_ws, w_dim] each
        t = t.view(-1, 1, 1)
        wt = torch.cat([w0.lerp(w1, t), w0.lerp(w1, t + epsilon)])
        for name, buf in G.named_buffers():  # one random noise image per batch, shared by both ends
            if name.endswith("noise_const"):
                buf.copy_(torch.randn(buf.shape, generator=rng, device=opts.device))
        img = G.synthesis(wt, noise_mode="const", **opts.G_kwargs)
        e0, e1 = vgg.lpips_embedding(prepare_for_lpips(img, G.img_resolution, crop)).chunk(2)
        dists.append((e0 - e1).square().sum(dim=1) / epsilon ** 2)
        bar.update(n)
    bar.close()
    local = torch.cat(dists).view(-1, 1) if dists else torch.zeros(0, 1, device=opts.device)
    d = _all_gather_rows(local.cpu(), opts.device).view(-1).to(torch.float64).numpy()
    return ppl_from_distances(d)


def ppl_from_distances(d: np.ndarray) -> float:
    """Mean of the distances between the 1st (rounded down) and 99th (rounded up) percentiles."""
    lo = np.percentile(d, 1, method="lower")
    hi = np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())
