"""filtered_lrelu: StyleGAN3's alias-free nonlinearity (Karras et al. 2021, Sec. 3.2, Fig. 4).

For each channel: add bias; upsample by `up` (zero insertion), pad, filter with fu (gain up**2);
leaky ReLU times `gain`; clamp to [-clamp, clamp]; filter with fd and keep every `down`-th pixel.
The nonlinearity runs at the higher sampling rate, so the new frequencies it creates are removed by fd
before they can alias.

`filtered_lrelu_ref` composes bias_act and upfirdn2d_ref literally and is the ground truth. `filtered_lrelu`
dispatches to a faster, lower-memory path when one is available (the fused Triton kernel on CUDA, the fused
pure-torch path elsewhere); each is tested against the reference.
"""
from __future__ import annotations

import math

import torch

from stylegan.ops._dispatch import kernel_unsupported, pick
from stylegan.ops.bias_act import bias_act
from stylegan.ops.upfirdn2d import Padding, filter_size, parse_padding, upfirdn2d_ref


def output_shape(in_h: int, in_w: int, fu: torch.Tensor | None, fd: torch.Tensor | None, up: int, down: int,
                 padding: Padding) -> tuple[int, int]:
    """(height, width) of filtered_lrelu's output."""
    px0, px1, py0, py1 = parse_padding(padding)
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    out_w = (in_w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_h, out_w


def filtered_lrelu_ref(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                       b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                       gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                       flip_filter: bool = False) -> torch.Tensor:
    """Reference filtered leaky ReLU.

    x: [N, C, H, W]; fu/fd: float32 [taps] (separable), [h, w] (e.g. radial), or None;
    b: [C] or None; padding refers to the upsampled image, before fu.
    Returns [N, C, H', W'] with H', W' from `output_shape`.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError("up and down must be integers >= 1")
    out_h, out_w = output_shape(x.shape[2], x.shape[3], fu, fd, up, down, padding)
    x = bias_act(x, b, impl="ref")                  # the reference stays pure torch, whatever impl auto means
    x = upfirdn2d_ref(x, fu, up=up, padding=padding, gain=up ** 2, flip_filter=flip_filter)
    x = bias_act(x, act="lrelu", alpha=slope, gain=gain, clamp=clamp, impl="ref")
    x = upfirdn2d_ref(x, fd, down=down, flip_filter=flip_filter)
    assert x.shape[2:] == (out_h, out_w), (tuple(x.shape), out_h, out_w)
    return x


def filtered_lrelu(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                   b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding: Padding = 0,
                   gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                   flip_filter: bool = False, impl: str = "auto") -> torch.Tensor:
    """filtered_lrelu with the implementation chosen by `impl`: 'ref', 'fast', 'triton' or 'auto' (see `_dispatch`).

    The fast path (`_filtered_lrelu_fast`) is fused and chunked; the Triton path (`_filtered_lrelu_triton`) is one
    fused kernel per pass whose upsampled intermediate never leaves the chip. Both keep only x and b for backward
    and match the reference to float rounding, values and gradients (second order included)."""
    from stylegan.ops import _filtered_lrelu_fast as fast
    from stylegan.ops import _upfirdn2d_fast

    shared = None                                   # what rules out both fused paths
    if not fast.supports(gain):
        shared = f"gain {gain} <= 0"
    elif any(t is not None and t.requires_grad for t in (fu, fd)):
        shared = "a filter requires grad"
    unsupported = shared
    if unsupported is None and not _upfirdn2d_fast.supports(x):
        unsupported = f"dtype {x.dtype} on {x.device.type}"
    triton = shared
    if triton is None:
        triton = kernel_unsupported("_filtered_lrelu_triton", impl, (x, b), x, fu, fd, up, down, padding)
    path = pick("filtered_lrelu", impl, x.device, fast=unsupported, triton=triton)
    args = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=padding, gain=gain, slope=slope, clamp=clamp,
                flip_filter=flip_filter)
    if path == "triton":
        from stylegan.ops import _filtered_lrelu_triton
        return _filtered_lrelu_triton.filtered_lrelu_triton(x, **args)
    if path == "fast":
        return fast.filtered_lrelu_fast(x, **args)
    return filtered_lrelu_ref(x, **args)
