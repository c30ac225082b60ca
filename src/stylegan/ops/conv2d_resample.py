"""conv2d with integrated up/down resampling (StyleGAN2, Sec. 4 / Appendix B: "bilinear" FIR resampling).

Semantically: upsample by `up` with FIR filter f (upfirdn2d, gain up**2), pad, convolve with w, then filter
with f and keep every `down`-th pixel. Padding is applied once, relative to the upsampled image. The cases
below are algebraically equal rearrangements that skip work (strided or transposed convolutions in place of
zero insertion); `conv2d_resample_ref` is the literal sequence and the tests hold the two together.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from stylegan.ops.upfirdn2d import Padding, filter_size, parse_padding, upfirdn2d


def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding=0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    # F.conv2d is a correlation; flip_weight=False asks for a true convolution.
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def _resampling_padding(padding: Padding, f: torch.Tensor | None, up: int, down: int) -> list[int]:
    """User padding plus what the FIR filter needs so that sizes scale exactly by up/down."""
    px0, px1, py0, py1 = parse_padding(padding)
    fw, fh = filter_size(f)
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2
    return [px0, px1, py0, py1]


def conv2d_resample_ref(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1,
                        down: int = 1, padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                        flip_filter: bool = False) -> torch.Tensor:
    """Literal sequence: upsample+pad, convolve, filter+downsample. x: [N, Cin, H, W]; w: [Cout, Cin/groups, kh, kw]."""
    px0, px1, py0, py1 = _resampling_padding(padding, f, up, down)
    x = upfirdn2d(x, f if up > 1 else None, up=up, padding=[px0, px1, py0, py1], gain=up ** 2,
                  flip_filter=flip_filter, impl="ref")
    x = _conv(x, w, groups=groups, flip_weight=flip_weight)
    if down > 1:
        x = upfirdn2d(x, f, down=down, flip_filter=flip_filter, impl="ref")
    return x


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """2-D convolution with optional FIR up/downsampling.

    x: [N, Cin, H, W]; w: [Cout, Cin/groups, kh, kw] (same dtype as x); f: prepared filter (setup_filter) or None;
    padding: relative to the upsampled image; flip_weight=True is correlation (like conv2d);
    flip_filter=False is convolution for f. Returns [N, Cout, H', W'].
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError("x and w must be 4-D")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError("up and down must be integers >= 1")
    cout, cin_per_group, kh, kw = w.shape
    px0, px1, py0, py1 = _resampling_padding(padding, f, up, down)
    pad = [px0, px1, py0, py1]

    # 1x1 kernel, downsampling only: filter and decimate first, so the conv runs at the low resolution.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, upsampling only: convolve at the low resolution, then upsample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    # Downsampling only: filter at full resolution, then a strided conv computes only the kept pixels.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Upsampling: a transposed strided conv does zero insertion and convolution in one step.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)                                          # [Cin, Cout, kh, kw]
        else:
            w = w.reshape(groups, cout // groups, cin_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * cin_per_group, cout // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric, non-negative padding: plain conv2d.
    if up == 1 and down == 1 and px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    return conv2d_resample_ref(x, w, f=f, up=up, down=down, padding=padding, groups=groups,
                               flip_weight=flip_weight, flip_filter=flip_filter)
