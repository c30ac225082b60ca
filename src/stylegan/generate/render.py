"""Rendering: seeds or latents in, uint8 images out. Pure functions, no files; the CLI and the visualizer call these.

    z  = seeds_to_z([0, 42], G.z_dim)                           # [2, z_dim], NVIDIA's numbers for these seeds
    ws = seeds_to_ws(G, [0, 42], psi=0.7, class_idx=None)       # [2, num_ws, w_dim]
    ws = style_mix(ws, other_ws, layers=[0, 1, 2, 3])           # coarse styles from `other_ws`
    img = synthesize(G, ws, noise_mode='const', translate=(0.1, 0), rotate=15)    # uint8 [2, H, W, C]
    img = render(G, seeds=[0, 42], options=RenderOptions(psi=0.7))                # the two steps in one

A seed always gives the z that NVIDIA's gen_images.py / gen_video.py / style_mixing.py give it, so the same seed
on the same network makes the same picture here and there. Rendering never leaves the generator changed: the
StyleGAN3 input transform and any noise maps swapped in are restored afterwards.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from stylegan.core.errors import UsageError

NOISE_MODES = ("const", "random", "none")
MAX_SEED = 2 ** 32 - 1          # np.random.RandomState accepts seeds in [0, 2**32)
NO_INPUT_TRANSFORM = ("--translate and --rotate drive StyleGAN3's input transform; this is a StyleGAN2 network, "
                      "which has none: leave them out")


# --- what a rendering needs besides the latents --------------------------------------------------------------------

@dataclass(frozen=True)
class RenderOptions:
    """How seeds become images. Field names follow the `stylegan generate` flags."""
    psi: float = 1.0                            # --trunc: truncation psi; 1 = none, 0 = the average image
    cutoff: int | None = None                   # --trunc-cutoff: truncate only the first N ws (None = all)
    class_idx: int | None = None                # --class: class of a conditional network
    noise_mode: str = "const"                   # --noise-mode: const | random | none (StyleGAN2 noise inputs)
    translate: tuple[float, float] = (0.0, 0.0)  # --translate: StyleGAN3 input shift, in image widths
    rotate: float = 0.0                         # --rotate: StyleGAN3 input rotation, degrees counter-clockwise

    def __post_init__(self):
        if not math.isfinite(self.psi):
            raise UsageError(f"--trunc: {self.psi} is not a number; use e.g. 0.7 (1 = no truncation)")
        if self.cutoff is not None and self.cutoff < 0:
            raise UsageError(f"--trunc-cutoff: {self.cutoff} is negative; give the number of layers to truncate")
        if self.class_idx is not None and self.class_idx < 0:
            raise UsageError(f"--class: {self.class_idx} is negative; classes count from 0")
        if self.noise_mode not in NOISE_MODES:
            raise UsageError(f"--noise-mode: {self.noise_mode!r} is not allowed; "
                             f"choose one of {', '.join(NOISE_MODES)}")
        if len(self.translate) != 2 or not all(math.isfinite(v) for v in self.translate):
            raise UsageError(f"--translate: {self.translate} is not two numbers; write it as X,Y such as 0.1,-0.2")
        if not math.isfinite(self.rotate):
            raise UsageError(f"--rotate: {self.rotate} is not a number of degrees")
        object.__setattr__(self, "translate", (float(self.translate[0]), float(self.translate[1])))

    @property
    def moves_input(self) -> bool:
        return self.translate != (0.0, 0.0) or self.rotate != 0.0

    def check(self, G, seeds: bool = True) -> None:
        """Refuse options this network cannot honour, before any work starts. `seeds`: the latents come from
        seeds (a conditional network then needs a class); otherwise from a file, which already holds the class."""
        if seeds:
            check_class(G, self.class_idx)
        elif self.class_idx is not None:
            raise UsageError("--class has no effect with --ws: the class went into the latents when they were made")
        if self.cutoff is not None and self.cutoff > G.num_ws:
            raise UsageError(f"--trunc-cutoff: {self.cutoff} is more than this network's {G.num_ws} layers (num_ws)")
        if self.moves_input and not is_stylegan3(G):
            raise UsageError(NO_INPUT_TRANSFORM)


# --- seeds, classes and the network's kind -------------------------------------------------------------------------

def seeds_to_z(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """z [N, z_dim] float32: row i is np.random.RandomState(seeds[i]).randn(z_dim), as in NVIDIA's scripts."""
    for seed in seeds:
        if not 0 <= int(seed) <= MAX_SEED:
            raise UsageError(f"--seeds: seed {seed} is out of range; seeds are whole numbers from 0 to {MAX_SEED}")
    z = np.zeros([len(seeds), z_dim])
    for i, seed in enumerate(seeds):
        z[i] = np.random.RandomState(int(seed)).randn(z_dim)
    return torch.from_numpy(z).to(torch.float32)


def check_class(G, class_idx: int | None) -> None:
    """A class is required by conditional networks and refused by unconditional ones."""
    if G.c_dim == 0 and class_idx is not None:
        raise UsageError(f"--class {class_idx}: this network is unconditional (c_dim=0); leave out --class")
    if G.c_dim > 0 and class_idx is None:
        raise UsageError(f"this network is conditional ({G.c_dim} classes); pass --class N with N in 0..{G.c_dim - 1}")
    if G.c_dim > 0 and not 0 <= class_idx < G.c_dim:
        raise UsageError(f"--class {class_idx}: this network has {G.c_dim} classes; use 0..{G.c_dim - 1}")


def class_labels(G, class_idx: int | None, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One-hot labels c [n, c_dim] for class `class_idx` ([n, 0] for an unconditional network)."""
    check_class(G, class_idx)
    c = torch.zeros([n, G.c_dim], device=device)
    if class_idx is not None:
        c[:, class_idx] = 1
    return c


def is_stylegan3(G) -> bool:
    """StyleGAN3 synthesis starts from Fourier features with a user transform; StyleGAN2 has no such input."""
    return hasattr(getattr(G.synthesis, "input", None), "transform")


def network_device(G) -> torch.device:
    return next(iter(G.parameters())).device


# --- mapping -------------------------------------------------------------------------------------------------------

@torch.no_grad()
def seeds_to_ws(G, seeds: Sequence[int], psi: float = 1.0, cutoff: int | None = None,
                class_idx: int | None = None, batch: int = 64) -> torch.Tensor:
    """W+ latents ws [N, num_ws, w_dim] for `seeds`, truncated towards w_avg by `psi` in the first `cutoff` layers."""
    device = network_device(G)
    z = seeds_to_z(seeds, G.z_dim)
    out = []
    for i in range(0, len(seeds), batch):
        zb = z[i:i + batch].to(device)
        out.append(G.mapping(zb, class_labels(G, class_idx, len(zb), device),
                             truncation_psi=psi, truncation_cutoff=cutoff))
    return torch.cat(out) if out else torch.zeros([0, G.num_ws, G.w_dim], device=device)


def truncate(G, ws: torch.Tensor, psi: float = 1.0, cutoff: int | None = None) -> torch.Tensor:
    """Move ws [N, num_ws, w_dim] towards the network's average w by `psi`: the mapping network's own rule,
    for latents that did not come from seeds (--ws)."""
    return G.mapping.truncate(ws, psi, cutoff)


def style_mix(ws: torch.Tensor, other: torch.Tensor, layers: Sequence[int]) -> torch.Tensor:
    """ws with the given layers taken from `other` (style mixing, StyleGAN Sec. 3.1): both [N, num_ws, w_dim].

    `other` may be a single row [1, num_ws, w_dim], which then serves every row of ws."""
    check_layers(layers, ws.shape[1], "--styles")
    out = ws.clone()
    idx = torch.as_tensor(list(layers), dtype=torch.long, device=ws.device)
    out[:, idx] = other.to(ws.dtype).expand(ws.shape[0], -1, -1)[:, idx]
    return out


def check_layers(layers: Sequence[int], num_ws: int, flag: str) -> None:
    bad = [i for i in layers if not 0 <= i < num_ws]
    if bad:
        raise UsageError(f"{flag}: layer {bad[0]} does not exist; this network has {num_ws} layers, 0-{num_ws - 1}")


# --- the StyleGAN3 input transform and noise maps ------------------------------------------------------------------

def make_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """The 3x3 matrix that rotates by `angle` degrees and then shifts by `translate`, as gen_images.py builds it.

    Coordinates are those of StyleGAN3's Fourier input, where the image spans [-0.5, 0.5], so 0.1 is a tenth of
    the image width. The synthesis network takes the inverse of this matrix (`input_transform`)."""
    rad = math.radians(angle % 360)             # 360 -> 0 exactly, so full turns give identical frames
    cos, sin = math.cos(rad), math.sin(rad)
    return np.array([[cos, sin, translate[0]],
                     [-sin, cos, translate[1]],
                     [0.0, 0.0, 1.0]])


def input_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> np.ndarray:
    """What goes into G.synthesis.input.transform: the inverse of make_transform (the network maps output
    coordinates back to input coordinates, so it needs the inverse and never has to invert a matrix itself)."""
    return np.linalg.inv(make_transform(translate, angle))


@contextlib.contextmanager
def transformed(G, translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> Iterator[None]:
    """Within the block, StyleGAN3 output is shifted by `translate` and rotated by `angle`; afterwards restored."""
    if not is_stylegan3(G):
        if tuple(translate) != (0, 0) or angle != 0:
            raise UsageError(NO_INPUT_TRANSFORM)
        yield
        return
    buf = G.synthesis.input.transform
    saved = buf.clone()
    buf.copy_(torch.from_numpy(input_transform(translate, angle)).to(buf))
    try:
        yield
    finally:
        buf.copy_(saved)


def noise_buffers(G) -> dict[str, torch.Tensor]:
    """StyleGAN2's fixed noise maps by name (synthesis.b8.conv0.noise_const, ...); empty for StyleGAN3."""
    return {f"synthesis.{name}": buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}


@contextlib.contextmanager
def swapped_noise(G, noise: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Within the block, the named noise maps (e.g. those a projection optimised) replace the network's own."""
    bufs = noise_buffers(G)
    noise = {k: v for k, v in (noise or {}).items() if k in bufs}
    for name, value in noise.items():
        if tuple(value.shape) != tuple(bufs[name].shape):
            raise UsageError(f"noise map {name} has shape {tuple(value.shape)}, but this network's is "
                             f"{tuple(bufs[name].shape)}; were the latents made with another network?")
    saved = {name: bufs[name].clone() for name in noise}
    for name, value in noise.items():
        bufs[name].copy_(torch.as_tensor(value).to(bufs[name]))
    try:
        yield
    finally:
        for name, value in saved.items():
            bufs[name].copy_(value)


# --- synthesis -----------------------------------------------------------------------------------------------------

def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] in [-1, 1] -> uint8 [N, H, W, C]. Adding 128 before truncating rounds to nearest, giving the
    same bytes as NVIDIA's scripts."""
    return (img.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


@torch.no_grad()
def synthesize(G, ws: torch.Tensor, noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0),
               rotate: float = 0.0, batch: int = 8, noise_seeds: Sequence[int] | None = None,
               noise: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Images uint8 [N, H, W, C] (on the CPU) for ws [N, num_ws, w_dim].

    noise_mode 'random' draws each image's noise from its own seed (`noise_seeds`, default 0..N-1), so an image
    does not depend on which others share its batch. `noise` replaces named noise maps (see swapped_noise)."""
    if noise_mode not in NOISE_MODES:
        raise UsageError(f"--noise-mode: {noise_mode!r} is not allowed; choose one of {', '.join(NOISE_MODES)}")
    if ws.ndim != 3 or ws.shape[1:] != (G.num_ws, G.w_dim):
        raise UsageError(f"latents of shape {list(ws.shape)} do not fit this network, which takes "
                         f"[N, {G.num_ws}, {G.w_dim}]")
    device = network_device(G)
    ws = ws.to(device, torch.float32)
    out = []
    with transformed(G, translate, rotate), swapped_noise(G, noise):
        if noise_mode == "random":
            seeds = list(noise_seeds) if noise_seeds is not None else list(range(len(ws)))
            for w, seed in zip(ws, seeds):
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(seed)
                    out.append(to_uint8(G.synthesis(w[None], noise_mode="random")).cpu())
        else:
            for i in range(0, len(ws), batch):
                out.append(to_uint8(G.synthesis(ws[i:i + batch], noise_mode=noise_mode)).cpu())
    if not out:
        return torch.zeros([0, G.img_resolution, G.img_resolution, G.img_channels], dtype=torch.uint8)
    return torch.cat(out)


def require_one_source(seeds, ws) -> None:
    """Seeds or latents: exactly one of them."""
    if (seeds is None) == (ws is None):
        raise UsageError("give either --seeds or --ws, not both and not neither")


def render(G, seeds: Sequence[int] | None = None, ws: torch.Tensor | None = None,
           options: RenderOptions = RenderOptions(), batch: int = 8,
           noise: dict[str, torch.Tensor] | None = None, noise_seeds: Sequence[int] | None = None) -> torch.Tensor:
    """Images uint8 [N, H, W, C] for `seeds` (mapped with psi, cutoff and class) or for latents `ws` (truncated
    with psi and cutoff). Exactly one of seeds and ws. Same inputs, same bytes.

    With noise_mode 'random', each image's noise comes from its seed (or from `noise_seeds`, default 0..N-1 for ws)."""
    require_one_source(seeds, ws)
    options.check(G, seeds=seeds is not None)
    if seeds is not None:
        ws = seeds_to_ws(G, seeds, options.psi, options.cutoff, options.class_idx)
        noise_seeds = list(seeds) if noise_seeds is None else noise_seeds
    else:
        ws = truncate(G, ws.to(network_device(G), torch.float32), options.psi, options.cutoff)
    return synthesize(G, ws, options.noise_mode, options.translate, options.rotate, batch=batch,
                      noise_seeds=noise_seeds, noise=noise)


# --- grids ---------------------------------------------------------------------------------------------------------

def image_grid(images: torch.Tensor | np.ndarray, cols: int, rows: int | None = None) -> np.ndarray:
    """uint8 [N, H, W, C] -> one image [rows*H, cols*W, C], filled row by row; empty cells stay black."""
    images = np.asarray(images)
    n, h, w, c = images.shape
    rows = rows if rows is not None else max(1, -(-n // cols))
    if n > rows * cols:
        raise UsageError(f"--grid {cols}x{rows} has {rows * cols} cells but there are {n} images; "
                         f"use a larger grid or fewer seeds")
    canvas = np.zeros([rows * cols, h, w, c], dtype=np.uint8)
    canvas[:n] = images
    return canvas.reshape(rows, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(rows * h, cols * w, c)


def parse_grid(text: str, flag: str = "--grid") -> tuple[int, int]:
    """'4x2' (or '4,2') -> (cols, rows)."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        cols, rows = (int(p) for p in parts)
    except ValueError:
        raise UsageError(f"{flag}: cannot read {text!r}; write columns x rows, such as 4x2") from None
    if cols < 1 or rows < 1:
        raise UsageError(f"{flag}: {text!r} has an empty side; both columns and rows must be at least 1")
    return cols, rows


def parse_vec2(text: str, flag: str) -> tuple[float, float]:
    """'0.1,-0.2' -> (0.1, -0.2)."""
    try:
        x, y = (float(p) for p in str(text).split(","))
    except ValueError:
        raise UsageError(f"{flag}: cannot read {text!r}; write two numbers X,Y such as 0.1,-0.2") from None
    return x, y
