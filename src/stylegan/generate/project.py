"""`stylegan project`: find the latents that make a network draw a given photo (StyleGAN2, Sec. 5).

The optimisation follows the StyleGAN2 projector (Karras et al. 2020, Sec. 5 and NVIDIA's projector.py):
  * start from the average w of `w_avg_samples` mapped seeds; w_std is the RMS distance of those w from it;
  * Adam on w (one w for every layer, --space w; or one per layer, --space w+) and on StyleGAN2's noise maps;
  * the learning rate ramps up over the first 5% of steps and down along a half cosine over the last 25%;
  * w is jittered with Gaussian noise of w_std * 0.05, fading quadratically to zero at 75% of the steps, so the
    search looks around before it settles;
  * the noise maps are kept from carrying the image: their autocorrelation at one-pixel shifts, at every scale of
    a pyramid down to 8x8, is penalised (weight 1e5), and each map is renormalised to zero mean and unit variance
    after every step. StyleGAN3 has no noise maps, so only w is optimised there.

The image distance is a `ProjectionLoss`:
  * `LaplacianPyramidL1` (the default; needs no download): mean absolute difference of the two images'
    Laplacian pyramids, every level weighted equally, so the coarse layout and colours count as much as the fine
    detail although they have far fewer pixels (the Lap1 loss of Bojanowski et al. 2018, "Optimizing the Latent
    Space of Generative Networks"). It is deterministic, cheap on a CPU, and it reconstructs what the network
    can draw well; it is not perceptual, so on real photos it favours a blurrier match than LPIPS does.
  * `VGGPerceptual` (--vgg FILE, torchvision's VGG16 weights): LPIPS (Zhang et al. 2018) on VGG16 features, as
    NVIDIA's projector uses. With LPIPS's learned heads in the file (our vgg16.safetensors) it is LPIPS itself;
    with torchvision's plain vgg16-397923af.pth every channel weighs the same (LPIPS's unlearned baseline).
Either way the loss's name is reported and stored in projected_w.npz.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.generate.files import check_exists, load_target, prepare_outdir, save_png, save_ws
from stylegan.generate.render import check_class, class_labels, network_device, noise_buffers, synthesize

SPACES = ("w", "w+")


@dataclass(frozen=True)
class ProjectOptions:
    """The projector's settings; defaults are those of the StyleGAN2 paper / NVIDIA's projector.py."""
    steps: int = 1000                           # --steps: optimisation steps
    space: str = "w"                            # --space: w (one w for all layers) or w+ (one per layer)
    seed: int = 303                             # --seed: initial noise maps and w jitter
    class_idx: int | None = None                # --class: for conditional networks
    w_avg_samples: int = 10000                  # seeds mapped to find the starting w and the w spread
    lr: float = 0.1                             # peak Adam learning rate
    lr_rampup: float = 0.05                     # fraction of steps over which the learning rate ramps up
    lr_rampdown: float = 0.25                   # fraction of steps over which it ramps down (half cosine)
    w_noise: float = 0.05                       # jitter of w at the start, in units of w_std
    w_noise_ramp: float = 0.75                  # fraction of steps after which the jitter is gone
    noise_reg: float = 1e5                      # weight of the noise maps' autocorrelation penalty
    optimize_noise: bool = True                 # optimise StyleGAN2's noise maps too

    def __post_init__(self):
        if self.steps < 1:
            raise UsageError(f"--steps: {self.steps} is not allowed; use 1 or more (1000 is the paper's)")
        if self.space not in SPACES:
            raise UsageError(f"--space: {self.space!r} is not allowed; choose one of {', '.join(SPACES)}")
        if self.w_avg_samples < 2:
            raise UsageError(f"w_avg_samples: {self.w_avg_samples} is too few; use 2 or more (10000 is the paper's)")


@dataclass
class ProjectionResult:
    ws: torch.Tensor                            # [1, num_ws, w_dim] the projected latents
    noise: dict[str, torch.Tensor]              # optimised StyleGAN2 noise maps by buffer name ({} for StyleGAN3)
    image: np.ndarray                           # uint8 [H, W, C] the network's rendering of ws with those maps
    loss_name: str                              # which image distance was used
    psnr: float                                 # PSNR of `image` against the target, dB
    history: list[float] = field(default_factory=list)     # image distance per step


# --- image distances -----------------------------------------------------------------------------------------------

class ProjectionLoss:
    """Distance to a fixed target; images are [N, C, H, W] floats in [-1, 1], as the synthesis network draws them."""
    name = "?"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)           # 5-tap binomial, the classic Burt & Adelson pyramid kernel


def _blur(x: torch.Tensor) -> torch.Tensor:
    k = torch.tensor(_BINOMIAL, device=x.device, dtype=x.dtype)
    k = (k[:, None] * k[None, :]) / k.sum() ** 2
    c = x.shape[1]
    return F.conv2d(F.pad(x, [2, 2, 2, 2], mode="reflect"), k.expand(c, 1, 5, 5), groups=c)


def laplacian_pyramid(x: torch.Tensor, min_size: int = 8) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual of [N, C, H, W] images, halving to `min_size`."""
    levels = []
    while min(x.shape[2:]) > min_size and min(x.shape[2:]) >= 6:
        low = _blur(x)[:, :, ::2, ::2]                                          # [N, C, H/2, W/2]
        up = F.interpolate(low, size=x.shape[2:], mode="bilinear", align_corners=False)
        levels.append(x - up)
        x = low
    return levels + [x]


class LaplacianPyramidL1(ProjectionLoss):
    """Lap1 (Bojanowski et al. 2018): L1 between Laplacian pyramids, each level's mean weighted equally."""
    name = "Laplacian-pyramid L1 (offline default; pass --vgg FILE for LPIPS on VGG16)"

    def __init__(self, target: torch.Tensor):
        self.target = laplacian_pyramid(target.to(torch.float32))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return sum((a - b).abs().mean() for a, b in zip(laplacian_pyramid(images), self.target))


class VGGPerceptual(ProjectionLoss):
    """LPIPS on VGG16 (Zhang et al. 2018); images above 256 px are first area-downsampled to 256, as NVIDIA's
    projector does (VGG16 was trained on 224 px)."""

    def __init__(self, target: torch.Tensor, vgg: torch.nn.Module, learned_heads: bool, source: str):
        self.vgg = vgg
        self.name = (f"LPIPS on VGG16 ({source})" if learned_heads else
                     f"LPIPS-style VGG16 features with equal channel weights ({source} has no LPIPS heads)")
        self.target = self._embed(target).detach()

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.to(torch.float32) + 1) * 127.5                                # [N, C, H, W] in [0, 255]
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if x.shape[2] > 256:
            x = F.interpolate(x, size=(256, 256), mode="area")
        return self.vgg.lpips_embedding(x)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (self._embed(images) - self.target).square().sum()


def load_vgg_loss(path: str | os.PathLike, target: torch.Tensor, device: torch.device) -> VGGPerceptual:
    """A VGGPerceptual loss from a VGG16 weights file in torchvision's layout (.pth, or our .safetensors)."""
    from stylegan.metrics.vgg import VGG16, load_state
    from stylegan.metrics.weights import empty_model, read_tensors
    path = check_exists(path, "--vgg")
    model = empty_model(VGG16)
    model.reset_constants()
    model = load_state(model, read_tensors(path), f"--vgg {path}", need_lpips=False, need_fc=False)
    learned = model.has_lpips
    if not learned:
        # No learned heads: weigh every channel 1, LPIPS's unlearned ("baseline") variant.
        for head in model.lpips.weights():
            head.fill_(1.0)
        model.has_lpips = True
    return VGGPerceptual(target, model.to(device).requires_grad_(False), learned, path.name)


# --- the optimisation ----------------------------------------------------------------------------------------------

@torch.no_grad()
def w_stats(G, num_samples: int, class_idx: int | None = None, batch: int = 1000) -> tuple[torch.Tensor, float]:
    """The mean w [w_dim] of `num_samples` fixed seeds and their RMS distance from it (a scalar)."""
    device = network_device(G)
    z = torch.from_numpy(np.random.RandomState(123).randn(num_samples, G.z_dim)).to(torch.float32)
    w = torch.cat([G.mapping(zb.to(device), class_labels(G, class_idx, len(zb), device))[:, 0]
                   for zb in z.split(batch)]).to(torch.float64)                   # [N, w_dim]
    w_avg = w.mean(dim=0)
    w_std = float(((w - w_avg).square().sum() / num_samples).sqrt())
    return w_avg.to(torch.float32), w_std


def noise_regularization(maps: list[torch.Tensor]) -> torch.Tensor:
    """Squared autocorrelation of each noise map at one-pixel shifts in x and y, summed over a pyramid of the map
    down to 8x8 (StyleGAN2, Sec. 5): white noise scores about 0, a map that hides image content does not."""
    total = torch.zeros([], device=maps[0].device) if maps else torch.zeros([])
    for m in maps:
        x = m[None, None]                                                          # [1, 1, H, W]
        while True:
            total = total + (x * x.roll(1, dims=3)).mean().square() + (x * x.roll(1, dims=2)).mean().square()
            if x.shape[2] <= 8:
                break
            x = F.avg_pool2d(x, 2)
    return total


@contextlib.contextmanager
def _optimised_noise(G, generator: torch.Generator, enabled: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Swap each noise buffer for a fresh N(0, 1) leaf tensor that requires grad; restore the originals after."""
    bufs = noise_buffers(G)
    if not enabled:
        yield {}
        return
    owners = {}
    for name in bufs:
        module = G.get_submodule(name.rsplit(".", 1)[0])
        owners[name] = (module, name.rsplit(".", 1)[1], module._buffers[name.rsplit(".", 1)[1]])
    maps = {name: torch.randn(buf.shape, generator=generator, device=buf.device).requires_grad_(True)
            for name, buf in bufs.items()}
    try:
        for name, (module, attr, _) in owners.items():
            module._buffers[attr] = maps[name]
        yield maps
    finally:
        for module, attr, original in owners.values():
            module._buffers[attr] = original


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, in dB."""
    mse = np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def project(G, target: np.ndarray, options: ProjectOptions = ProjectOptions(),
            loss: Callable[[torch.Tensor], ProjectionLoss] | None = None, progress: bool = True,
            on_step: Callable[[int, np.ndarray], None] | None = None) -> ProjectionResult:
    """Project `target`, uint8 [H, W, C] at the network's resolution, into the latent space of G.

    `loss` builds the image distance from the target tensor (default LaplacianPyramidL1). `on_step(step, image)`,
    if given, receives the network's clean rendering (uint8 [H, W, C]) after every step, e.g. for a video.
    G is left as it was: noise maps are optimised in copies."""
    from tqdm import tqdm
    target = np.asarray(target)
    expected = (G.img_resolution, G.img_resolution, G.img_channels)
    if target.shape != expected:
        raise UsageError(f"the target is {list(target.shape)}, but this network draws {list(expected)} (HWC); "
                         "load it with stylegan.generate.load_target")
    check_class(G, options.class_idx)
    device = network_device(G)
    gen = torch.Generator(device=device).manual_seed(options.seed)
    target_t = torch.from_numpy(np.array(target)).to(device).permute(2, 0, 1)[None].to(torch.float32) / 127.5 - 1
    distance = (loss or LaplacianPyramidL1)(target_t)

    w_avg, w_std = w_stats(G, options.w_avg_samples, options.class_idx)
    num_opt = 1 if options.space == "w" else G.num_ws
    w_opt = w_avg.to(device).reshape(1, 1, -1).repeat(1, num_opt, 1).requires_grad_(True)   # [1, 1|num_ws, w_dim]
    history: list[float] = []
    requires = [p.requires_grad for p in G.parameters()]
    G.requires_grad_(False)
    try:
        with _optimised_noise(G, gen, options.optimize_noise) as maps:
            optimizer = torch.optim.Adam([w_opt] + list(maps.values()), betas=(0.9, 0.999), lr=options.lr)
            for step in tqdm(range(options.steps), desc="projecting", unit="step", disable=not progress, leave=False):
                t = step / options.steps
                jitter = w_std * options.w_noise * max(0.0, 1.0 - t / options.w_noise_ramp) ** 2
                ramp = min(1.0, (1.0 - t) / options.lr_rampdown)
                ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / options.lr_rampup)
                for group in optimizer.param_groups:
                    group["lr"] = options.lr * ramp

                w = w_opt + torch.randn(w_opt.shape, generator=gen, device=device) * jitter
                images = G.synthesis(w.expand(1, G.num_ws, -1), noise_mode="const")       # [1, C, H, W]
                dist = distance(images)
                total = dist + options.noise_reg * noise_regularization(list(maps.values())) if maps else dist
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                history.append(float(dist.detach()))
                with torch.no_grad():
                    for m in maps.values():                                       # back to zero mean, unit variance
                        m -= m.mean()
                        m *= m.square().mean().rsqrt()
                if on_step is not None:
                    on_step(step, synthesize(G, w_opt.detach().expand(1, G.num_ws, -1))[0].numpy())
            ws = w_opt.detach().expand(1, G.num_ws, -1).clone()
            image = synthesize(G, ws)[0].numpy()
            noise = {name: m.detach().clone() for name, m in maps.items()}
    finally:
        for p, r in zip(G.parameters(), requires):
            p.requires_grad_(r)
    if not all(math.isfinite(v) for v in history[-1:]):
        raise StyleGANError("projection diverged (the loss became NaN or infinite); try fewer --steps or the "
                            "default loss, and report it if it persists")
    return ProjectionResult(ws=ws, noise=noise, image=image, loss_name=distance.name, psnr=psnr(image, target),
                            history=history)


def run_projection(G, target_path: str | os.PathLike, outdir: str | os.PathLike,
                   options: ProjectOptions = ProjectOptions(), vgg: str | os.PathLike | None = None,
                   save_video: bool = False, progress: bool = True) -> tuple[ProjectionResult, dict[str, Path]]:
    """`stylegan project`: read and crop the target, project it, and write target.png, proj.png, projected_w.npz
    (loadable by `stylegan generate --ws`) and, with save_video, proj.mp4 (target | projection, one frame a step)."""
    from stylegan.generate.video import mp4_writer
    target = load_target(target_path, G.img_resolution, G.img_channels)
    if vgg is not None:
        check_exists(vgg, "--vgg")
    out = prepare_outdir(outdir)
    device = network_device(G)
    loss = (lambda t: load_vgg_loss(vgg, t, device)) if vgg is not None else None
    paths = {"target": save_png(out / "target.png", target)}
    with contextlib.ExitStack() as stack:
        on_step = None
        if save_video:
            append = stack.enter_context(mp4_writer(out / "proj.mp4", fps=10, quality=8))
            on_step = lambda step, image: append(_video_frame(target, image))    # noqa: E731
            paths["video"] = out / "proj.mp4"
        result = project(G, target, options, loss=loss, progress=progress, on_step=on_step)
    paths["image"] = save_png(out / "proj.png", result.image)
    paths["ws"] = save_ws(out / "projected_w.npz", result.ws, result.noise, loss=result.loss_name,
                          space=options.space, steps=options.steps, psnr=result.psnr)
    return result, paths


def _video_frame(target: np.ndarray, image: np.ndarray) -> np.ndarray:
    frame = np.concatenate([target, image], axis=1)                               # [H, 2W, C]: target | current
    return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame[:, :, :3]
