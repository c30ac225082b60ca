"""upfirdn2d: upsample (zero insertion), pad/crop, FIR filter, downsample — for a batch of 2-D images.

The same sequence as scipy.signal.upfirdn, applied per channel on both image axes:
  1. upsample by inserting up-1 zeros after each pixel;
  2. pad with zeros (negative padding crops);
  3. convolve with the FIR filter f, keeping only outputs whose footprint lies inside the padded image;
  4. downsample by keeping every down-th pixel.

`upfirdn2d_ref` is the ground truth, written for clarity. `upfirdn2d` dispatches to a faster polyphase
path (strided and transposed depthwise convolutions, which never touch the inserted zeros; see
`_upfirdn2d_fast`) or, on CUDA, to a polyphase Triton kernel (`_upfirdn2d_triton`); both are tested against the
reference on random inputs, values and gradients (the kernel on the CPU, under Triton's interpreter).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.ops._dispatch import kernel_unsupported, pick

Padding = int | Sequence[int]


def parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    """An up/down factor as (x, y)."""
    if isinstance(scaling, int):
        scaling = (scaling, scaling)
    sx, sy = (int(v) for v in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"scaling factors must be >= 1, got {scaling}")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """Padding as (x0, x1, y0, y1) from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, (int, np.integer)):
        padding = (int(padding), int(padding))
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"padding must have 1, 2 or 4 values, got {padding}")
    return padding[0], padding[1], padding[2], padding[3]


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter; a 1-D (separable) filter of n taps is n x n."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1-D (separable) or 2-D, got shape {tuple(f.shape)}")
    return int(f.shape[-1]), int(f.shape[0])


def setup_filter(f, device: torch.device | str = "cpu", normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: bool | None = None) -> torch.Tensor:
    """Prepare a filter for upfirdn2d from a list, array or tensor.

    f: [taps] (separable), [h, w], a scalar (impulse) or None (identity).
    separable: None picks separable for 1-D filters of 8 taps or more, and the outer product otherwise
      (so [1, 3, 3, 1] becomes the 4x4 `resample_filter` buffer StyleGAN2 stores).
    Returns float32 [taps] or [h, w], normalised to unit DC gain (if `normalize`) and scaled by `gain`.
    """
    f = torch.as_tensor(1 if f is None else f, dtype=torch.float32).clone()
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"cannot use a filter of shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def output_size(in_size: int, up: int, down: int, pad0: int, pad1: int, taps: int) -> int:
    """Length of one axis after upfirdn2d."""
    return (in_size * up + pad0 + pad1 - taps + down) // down


def upfirdn2d_ref(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1,
                  down: int | Sequence[int] = 1, padding: Padding = 0, flip_filter: bool = False,
                  gain: float = 1) -> torch.Tensor:
    """Reference upfirdn2d, step by step with standard ops.

    x: [N, C, H, W]; f: float32 [taps] (applied to both axes), [fh, fw], or None.
    padding refers to the upsampled image; flip_filter=False is convolution, True is correlation.
    gain multiplies the whole result (split as gain**0.5 per axis for separable filters).
    Returns [N, C, H', W'].
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    n, c, h, w = x.shape
    fw, fh = filter_size(f)
    if w * upx + px0 + px1 < fw or h * upy + py0 + py1 < fh:
        raise ValueError("the padded, upsampled image is smaller than the filter")

    # 1. Zero insertion: each pixel is followed by up-1 zeros along each axis.
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
    x = x.reshape(n, c, h * upy, w * upx)

    # 2. Pad with zeros, then crop where the padding is negative.
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    # 3. FIR filter. conv2d computes correlation, so the filter is flipped for a true convolution.
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, fh, fw), groups=c)
    else:
        x = F.conv2d(x, f.reshape(1, 1, 1, fw).expand(c, 1, 1, fw), groups=c)
        x = F.conv2d(x, f.reshape(1, 1, fh, 1).expand(c, 1, fh, 1), groups=c)

    # 4. Keep every down-th pixel.
    return x[:, :, ::downy, ::downx]


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """upfirdn2d with the implementation chosen by `impl`: 'ref', 'fast', 'triton', or 'auto' (the Triton kernel
    on CUDA, else the fast path).

    The fast path (`_upfirdn2d_fast`) and the Triton kernel (`_upfirdn2d_triton`) are polyphase and never multiply
    inserted zeros; they match the reference to float rounding and support gradients of any order with respect to
    x (not f)."""
    from stylegan.ops import _upfirdn2d_fast as fast

    unsupported = None
    if not fast.supports(x):
        unsupported = f"dtype {x.dtype} on {x.device.type}"
    elif f is not None and f.requires_grad:
        unsupported = "the filter requires grad"
    # f may live anywhere: the kernel copies it to x's device.
    triton = kernel_unsupported("_upfirdn2d_triton", impl, (x,), x, f)
    path = pick("upfirdn2d", impl, x.device, fast=unsupported, triton=triton)
    kwargs = dict(up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    if path == "triton":
        from stylegan.ops._upfirdn2d_triton import upfirdn2d_triton
        return upfirdn2d_triton(x, f, **kwargs)
    if path == "fast":
        return fast.upfirdn2d_fast(x, f, **kwargs)
    return upfirdn2d_ref(x, f, **kwargs)


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Filter without resampling; by default the output has the input's size (extra padding on top)."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Upsample by `up`; by default the output is exactly `up` times the input size. Gain up*up keeps DC."""
    upx, upy = parse_scaling(up)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int | Sequence[int] = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """Downsample by `down`; by default the output is exactly the input size divided by `down`."""
    downx, downy = parse_scaling(down)
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    p = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2, py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
