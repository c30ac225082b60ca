"""Looking inside the synthesis network: its layers' activations as images, and 2-D power spectra.

Layers are found with forward hooks on every submodule of G.synthesis: each output that is a 4-D tensor [N, C, H, W]
becomes a layer, named by the module's path (StyleGAN3: 'input', 'L0_36_512', ...; StyleGAN2: 'b8.conv0',
'b8.torgb', 'b8:1' for a block's running RGB image, ...) and 'output' for the image itself. A module that returns a
tuple gives 'name:i' per tensor; a tensor already listed under another name (a block passing on its last conv's
output) is listed once, except 'output', which is always there.
"""
from __future__ import annotations

import collections
import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import PIL.Image
import torch

OUTPUT = "output"
FFT_RANGE_DB = 50.0                 # the colour map spans -50..+50 dB around the mean power
KAISER_BETA = 8.0                   # window against leakage from the image borders


@dataclass(frozen=True)
class LayerInfo:
    name: str
    shape: tuple[int, int, int]     # [C, H, W] of one image's activations


@contextlib.contextmanager
def layer_hooks(synthesis: torch.nn.Module, on_layer: Callable[[str, torch.Tensor], None]) -> Iterator[None]:
    """Within the block, every forward pass of `synthesis` calls on_layer(name, tensor [N, C, H, W]) per layer,
    in execution order. on_layer may raise to stop the pass early."""
    names = {module: name for name, module in synthesis.named_modules()}
    recent: collections.deque = collections.deque(maxlen=4)     # a repeat comes right after its first sighting

    def hook(module, _inputs, outputs):
        tensors = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        for i, t in enumerate(tensors):
            is_output = module is synthesis
            if not isinstance(t, torch.Tensor) or t.ndim != 4 or (any(t is r for r in recent) and not is_output):
                continue
            recent.append(t)
            name = names[module] or OUTPUT
            on_layer(f"{name}:{i}" if len(tensors) > 1 else name, t)

    handles = [module.register_forward_hook(hook) for module in synthesis.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        recent.clear()


class _Captured(Exception):
    """Raised by a hook to end the forward pass once the wanted layer has been seen."""


def run_capturing(synthesize: Callable[[], torch.Tensor], synthesis: torch.nn.Module, layer: str | None,
                  stop_early: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Run `synthesize()` and keep a copy of `layer`'s activations [C, H, W] (float32) of the first image.

    Returns (what synthesize returned or None if stopped early, activations or None if `layer` is None). With
    stop_early, the pass ends right after the layer, skipping the rest of the network."""
    captured: list[torch.Tensor] = []

    def on_layer(name: str, t: torch.Tensor) -> None:
        if name == layer and not captured:
            captured.append(t[0].detach().to(torch.float32).clone())   # clone: later layers may add in place
            if stop_early:
                raise _Captured

    if layer is None:
        return synthesize(), None
    with layer_hooks(synthesis, on_layer):
        try:
            result = synthesize()
        except _Captured:
            result = None
    return result, (captured[0] if captured else None)


def list_layers(run_forward: Callable[[], object], synthesis: torch.nn.Module) -> list[LayerInfo]:
    """Every layer of the synthesis network with its shape, found by running one forward pass."""
    layers: list[LayerInfo] = []
    with layer_hooks(synthesis, lambda name, t: layers.append(LayerInfo(name, tuple(int(s) for s in t.shape[1:])))):
        run_forward()
    return layers


def activation_image(x: torch.Tensor, channel: int | None) -> np.ndarray:
    """Activations [C, H, W] -> grey uint8 [H', W', 1]: one channel, or every channel in a grid (row by row, a
    1-pixel black line between tiles). Each channel is scaled by its own largest magnitude, so 0 is mid-grey and
    quiet channels stay visible."""
    x = x[channel:channel + 1] if channel is not None else x
    peak = x.abs().amax(dim=(1, 2), keepdim=True).clamp(min=1e-8)
    tiles = (x / peak * 127.5 + 128).clamp(0, 255).to(torch.uint8).cpu().numpy()      # [C, H, W]
    if channel is not None:
        return tiles[0, :, :, None]
    c, h, w = tiles.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    canvas = np.zeros([rows * (h + 1) - 1, cols * (w + 1) - 1], dtype=np.uint8)
    for i in range(c):
        r, q = divmod(i, cols)
        canvas[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = tiles[i]
    return canvas[:, :, None]


def power_spectrum_image(x: torch.Tensor) -> np.ndarray:
    """Signal [C, H, W] -> uint8 RGB [H, W, 3]: its 2-D power spectrum summed over channels, zero frequency in the
    centre, in dB relative to the mean power, from -50 (dark) to +50 dB (bright) through the colour map.

    Each channel has its mean removed and is windowed by a separable Kaiser window (beta 8) first, so the image
    borders do not leak a cross of power through the spectrum; what is left off the central peak and its
    harmonics is the signal's own content, aliasing included (StyleGAN3 paper, Fig. 1 and Sec. 2)."""
    x = x.to(torch.float64)
    x = x - x.mean(dim=(1, 2), keepdim=True)
    h, w = x.shape[1:]
    window = (torch.kaiser_window(h, periodic=False, beta=KAISER_BETA, dtype=torch.float64, device=x.device)[:, None]
              * torch.kaiser_window(w, periodic=False, beta=KAISER_BETA, dtype=torch.float64, device=x.device)[None])
    power = torch.fft.fft2(x * window).abs().square().sum(dim=0)                      # [H, W]
    power = torch.fft.fftshift(power)
    db = 10 * torch.log10(power / power.mean().clamp(min=1e-30) + 1e-30)
    return colormap(((db / FFT_RANGE_DB + 1) / 2).clamp(0, 1).cpu().numpy())


# Five anchor colours of matplotlib's 'viridis' (perceptually uniform, dark blue to yellow), linearly interpolated.
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def colormap(values: np.ndarray) -> np.ndarray:
    """Values [H, W] in 0..1 -> uint8 RGB [H, W, 3]."""
    pos = np.clip(values, 0, 1) * (len(_VIRIDIS) - 1)
    i = np.minimum(pos.astype(np.int64), len(_VIRIDIS) - 2)
    frac = (pos - i)[..., None]
    return np.rint(_VIRIDIS[i] * (1 - frac) + _VIRIDIS[i + 1] * frac).astype(np.uint8)


def resize(image: np.ndarray, size: int | None, max_size: int) -> np.ndarray:
    """uint8 [H, W, C] with its longer edge set to `size` (None: unchanged, but at most max_size). Enlarging keeps
    pixels sharp (nearest), so single samples and aliasing stay visible; shrinking filters (Lanczos)."""
    h, w, c = image.shape
    target = min(size if size is not None else max(h, w), max_size)
    if target == max(h, w):
        return image
    scale = target / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    pil = PIL.Image.fromarray(image[:, :, 0] if c == 1 else image)
    pil = pil.resize((new_w, new_h), PIL.Image.NEAREST if scale > 1 else PIL.Image.LANCZOS)
    out = np.asarray(pil)
    return out[:, :, None] if out.ndim == 2 else out
