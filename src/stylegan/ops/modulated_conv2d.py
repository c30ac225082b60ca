"""Modulated convolution: per-sample styles scale the weights' input channels, then (optionally) demodulate.

StyleGAN2 (Karras et al. 2020), Sec. 2.2, eqs. 1-3:
  w'_ijk = s_i * w_ijk                                   (modulation, eq. 1)
  w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk^2 + eps)      (demodulation, eqs. 2-3)
Two equivalent executions: fused (one grouped convolution with per-sample weights) and non-fused (scale the
activations before and after a shared convolution), which is cheaper when the batch is large.
"""
from __future__ import annotations

import numpy as np
import torch

from stylegan.core.misc import assert_shape
from stylegan.ops.conv2d_resample import conv2d_resample
from stylegan.ops.upfirdn2d import Padding


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding: Padding = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """StyleGAN2's modulated conv.

    x: [N, I, H, W]; weight: [O, I, kh, kw]; styles: [N, I]; noise: broadcastable to [N, O, H', W'] or None.
    Returns [N, O, H', W'].
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    assert_shape(x, [n, in_ch, None, None])
    assert_shape(styles, [n, in_ch])

    # In fp16, scale weights and styles first so the products below cannot overflow; demodulation undoes it.
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / np.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Demodulation (eq. 3): sum_{i,k} (s_i w_oik)^2 = sum_i s_i^2 sum_k w_oik^2, an [N, I] x [I, O] product, so the
    # per-sample [N, O, I, kh, kw] weights are never built just to be squared and summed (nor kept for backward).
    dcoefs = None
    if demodulate:
        dcoefs = (styles.square() @ weight.square().sum([2, 3]).t() + 1e-8).rsqrt()  # [N, O]

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # Fused: fold the batch into groups so each sample is convolved with its own weights, built in one multiply.
    scale = styles.reshape(n, 1, -1)                                              # [N, 1, I]
    if demodulate:
        scale = scale * dcoefs.reshape(n, -1, 1)                                  # [N, O, I]
    w = weight.unsqueeze(0) * scale.unsqueeze(-1).unsqueeze(-1)                   # [N, O, I, kh, kw]
    x = x.reshape(1, -1, *x.shape[2:])                                            # [1, N*I, H, W]
    w = w.reshape(-1, in_ch, kh, kw)                                              # [N*O, I, kh, kw]
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=n,
                        flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])                                            # [N, O, H', W']
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


def modulated_conv2d_sg3(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor, demodulate: bool = True,
                         padding: Padding = 0, input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """StyleGAN3's modulated conv: weights and styles are pre-normalised to unit RMS (the styles over the whole
    batch), then modulated, demodulated and scaled by `input_gain`, and run as one grouped convolution.

    x: [N, I, H, W]; w: [O, I, kh, kw]; s: [N, I]; input_gain: [], [I] or [N, I] or None. Returns [N, O, H', W'].
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = w.shape
    assert_shape(x, [n, in_ch, None, None])
    assert_shape(s, [n, in_ch])

    if demodulate:
        w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        s = s * s.square().mean().rsqrt()
    # Modulation, demodulation and input gain are per (sample, output, input) scales of the shared weights: combine
    # them at [N, O, I] (demodulation as an [N, I] x [I, O] product) and build the per-sample weights in one multiply.
    scale = s.reshape(n, 1, in_ch)                                                # [N, 1, I]
    if demodulate:
        dcoefs = (s.square() @ w.square().sum([2, 3]).t() + 1e-8).rsqrt()         # [N, O]
        scale = scale * dcoefs.reshape(n, out_ch, 1)                              # [N, O, I]
    if input_gain is not None:
        scale = scale * input_gain.expand(n, in_ch).reshape(n, 1, in_ch)
    w = w.unsqueeze(0) * scale.unsqueeze(-1).unsqueeze(-1)                        # [N, O, I, kh, kw]

    x = x.reshape(1, -1, *x.shape[2:])                                            # [1, N*I, H, W]
    w = w.reshape(-1, in_ch, kh, kw)                                              # [N*O, I, kh, kw]
    x = torch.nn.functional.conv2d(x, w.to(x.dtype), padding=padding, groups=n)
    return x.reshape(n, -1, *x.shape[2:])                                         # [N, O, H', W']
