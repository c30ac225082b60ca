"""Independent NumPy/SciPy versions of the ops' semantics, for the tests in test_ops_*.py.

They share no code with stylegan.ops: zero insertion, padding and filtering are spelled out with scipy.signal.
"""
from __future__ import annotations

import numpy as np
import scipy.signal


def upfirdn_1d(x: np.ndarray, f: np.ndarray, up: int, down: int, pad0: int, pad1: int, axis: int) -> np.ndarray:
    """upfirdn along one axis via scipy.signal.upfirdn, which zero-inserts (no trailing zeros) and convolves fully.

    Output o before decimation is full-convolution index o + k-1-pad0 (zeros outside), for o < n*up+pad0+pad1-k+1.
    """
    k = len(f)
    n = x.shape[axis]
    full = scipy.signal.upfirdn(f, x, up=up, down=1, axis=axis)           # length (n-1)*up + k along axis
    length = n * up + pad0 + pad1 - k + 1
    start = k - 1 - pad0
    margin = max(0, -start) + length + k
    full = np.moveaxis(full, axis, -1)
    padded = np.concatenate([np.zeros(full.shape[:-1] + (margin,)), full, np.zeros(full.shape[:-1] + (margin,))], -1)
    out = padded[..., margin + start: margin + start + length][..., ::down]
    return np.moveaxis(out, -1, axis)


def upfirdn2d_sep(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip=False,
                  gain=1.0) -> np.ndarray:
    """upfirdn2d of [..., H, W] with a 1-D filter applied along both axes. up/down: (x, y); pad: (x0, x1, y0, y1)."""
    f = f[::-1] if flip else f
    y = upfirdn_1d(x, f, up[0], down[0], pad[0], pad[1], axis=-1)
    y = upfirdn_1d(y, f, up[1], down[1], pad[2], pad[3], axis=-2)
    return y * gain


def upfirdn2d_full(x: np.ndarray, f: np.ndarray, up=(1, 1), down=(1, 1), pad=(0, 0, 0, 0), flip=False,
                   gain=1.0) -> np.ndarray:
    """upfirdn2d of [N, C, H, W] with a 2-D filter: explicit zero insertion, padding, convolve2d, decimation."""
    upx, upy = up
    n, c, h, w = x.shape
    z = np.zeros((n, c, h * upy, w * upx))
    z[:, :, ::upy, ::upx] = x
    px0, px1, py0, py1 = pad
    z = np.pad(z, [(0, 0), (0, 0), (max(py0, 0), max(py1, 0)), (max(px0, 0), max(px1, 0))])
    z = z[:, :, max(-py0, 0): z.shape[2] - max(-py1, 0), max(-px0, 0): z.shape[3] - max(-px1, 0)]
    k = f[::-1, ::-1] if flip else f
    out = np.stack([np.stack([scipy.signal.convolve2d(z[i, j], k, mode="valid") for j in range(c)])
                    for i in range(n)])
    return out[:, :, ::down[1], ::down[0]] * gain


def upfirdn2d_np(x, f, up=1, down=1, pad=0, flip=False, gain=1.0):
    """Dispatch on the filter's rank; None is the 1x1 identity filter. up/down int or (x, y); pad int or 4 values."""
    up = (up, up) if isinstance(up, int) else tuple(up)
    down = (down, down) if isinstance(down, int) else tuple(down)
    pad = (pad,) * 4 if isinstance(pad, int) else tuple(pad)
    if f is None:
        f = np.ones((1, 1))
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 1:
        return upfirdn2d_sep(np.asarray(x, np.float64), f, up, down, pad, flip, gain)
    return upfirdn2d_full(np.asarray(x, np.float64), f, up, down, pad, flip, gain)


def filtered_lrelu_np(x, fu, fd, b, up, down, pad, gain, slope, clamp, flip=False):
    """StyleGAN3's filtered leaky ReLU step by step: bias, upsample (gain up^2), lrelu * gain, clip, downsample."""
    x = np.asarray(x, np.float64)
    if b is not None:
        x = x + np.asarray(b, np.float64)[None, :, None, None]
    v = upfirdn2d_np(x, fu, up=up, pad=pad, flip=flip, gain=up * up)
    t = np.where(v > 0, v, v * slope) * gain
    if clamp is not None:
        t = np.clip(t, -clamp, clamp)
    return upfirdn2d_np(t, fd, down=down, flip=flip), v


def operator_matrix(fn, in_shape) -> np.ndarray:
    """The dense matrix of a linear map on arrays of in_shape, column j = fn(e_j) flattened."""
    size = int(np.prod(in_shape))
    cols = []
    for j in range(size):
        e = np.zeros(size)
        e[j] = 1
        cols.append(np.asarray(fn(e.reshape(in_shape))).reshape(-1))
    return np.stack(cols, 1)


def stylegan3_layers(resolution: int = 64, channel_base: int = 8192, channel_max: int = 256, radial: bool = False,
                     conv_kernel: int = 3, num_layers: int = 14, num_critical: int = 2, margin: int = 10,
                     filter_size: int = 6, lrelu_upsampling: int = 2) -> list[dict]:
    """The filtered_lrelu configuration of every StyleGAN3 synthesis layer (Karras et al. 2021, Sec. 3.2 and
    Appendix F): geometric cutoff/stopband schedule, sampling rates, filter taps, and the padding that keeps the
    symmetric sample positions. StyleGAN3-R doubles channel_base/max, uses 1x1 convs and radial down filters."""
    last_cutoff = resolution / 2
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = 2 * (last_cutoff / 2) ** exponents
    stopbands = 2 ** 2.1 * (last_cutoff * 2 ** 0.3 / 2 ** 2.1) ** exponents
    rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, resolution))))
    half_widths = np.maximum(stopbands, rates / 2) - cutoffs
    sizes = rates + margin * 2
    sizes[-2:] = resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = 3
    layers = []
    for i in range(num_layers + 1):
        p = max(i - 1, 0)
        torgb = i == num_layers
        critical = i >= num_layers - num_critical
        tmp_rate = max(rates[p], rates[i]) * (1 if torgb else lrelu_upsampling)
        up, down = int(round(tmp_rate / rates[p])), int(round(tmp_rate / rates[i]))
        up_taps = filter_size * up if up > 1 and not torgb else 1
        down_taps = filter_size * down if down > 1 and not torgb else 1
        kernel = 1 if torgb else conv_kernel
        in_size, out_size = int(sizes[p]), int(sizes[i])
        total = (out_size - 1) * down + 1 - (in_size + kernel - 1) * up + up_taps + down_taps - 2
        lo = (total + up) // 2
        layers.append(dict(
            index=i, in_channels=int(channels[p]), out_channels=int(channels[i]), in_size=in_size,
            out_size=out_size, conv_kernel=kernel, up=up, down=down, up_taps=up_taps, down_taps=down_taps,
            fs=tmp_rate, up_cutoff=cutoffs[p], up_width=half_widths[p] * 2, down_cutoff=cutoffs[i],
            down_width=half_widths[i] * 2, radial=radial and not critical, padding=[lo, total - lo, lo, total - lo],
            gain=1.0 if torgb else np.sqrt(2), slope=1.0 if torgb else 0.2))
    return layers
