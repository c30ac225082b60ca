"""Polyphase upfirdn2d: the same numbers as `upfirdn2d_ref`, without ever multiplying an inserted zero.

- Upsampling is a transposed depthwise convolution with stride `up`: each input pixel is scattered through the
  filter, so the up-1 zeros that the reference inserts are never touched (a factor `up` per axis less work).
- Downsampling is a depthwise convolution with stride `down`: only the pixels that are kept are computed.
- A separable filter runs as two 1-D passes, and so does a 2-D filter that is an outer product (StyleGAN2's
  [1, 3, 3, 1] resample filter is stored as 4x4): 2k taps per pixel instead of k*k.
- All (image, channel) pairs share one filter, so they are folded into a single depthwise "batch" and processed
  in chunks whose intermediates stay in the CPU cache, in channels-last layout, where oneDNN's depthwise kernels
  vectorise across channels. A fresh multi-megabyte tensor costs page faults on every call; small chunks are
  recycled by the allocator.
- The adjoint of upfirdn2d is upfirdn2d with up and down swapped, the filter flipped and the padding adjusted, so
  backward calls this same op; gradients of any order work (R1 needs double backward through the discriminator).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakIdKeyDictionary

from stylegan.ops.upfirdn2d import filter_size, output_size, parse_padding, parse_scaling

CL = torch.channels_last
CHUNK_BYTES = 4 << 20       # target size of the largest per-chunk intermediate (fits in L2/L3)
SMALL_TAPS = 16             # filters up to 4x4 run as one 2-D pass over NCHW data (see Resampler)
SMALL_NUMEL = 1 << 16       # so do tensors this small, where per-chunk overhead would dominate


@dataclass(frozen=True)
class Geometry:
    """One upfirdn2d call: factors and padding per axis. Padding refers to the upsampled image."""
    upx: int
    upy: int
    downx: int
    downy: int
    px0: int
    px1: int
    py0: int
    py1: int

    @staticmethod
    def parse(up: int | Sequence[int], down: int | Sequence[int], padding) -> "Geometry":
        upx, upy = parse_scaling(up)
        downx, downy = parse_scaling(down)
        return Geometry(upx, upy, downx, downy, *parse_padding(padding))

    def out_size(self, h: int, w: int, fw: int, fh: int) -> tuple[int, int]:
        return (output_size(h, self.upy, self.downy, self.py0, self.py1, fh),
                output_size(w, self.upx, self.downx, self.px0, self.px1, fw))

    def adjoint(self, h: int, w: int, fw: int, fh: int) -> "Geometry":
        """The geometry whose upfirdn2d (with the flipped filter) is this one's transpose, for an input of h x w.
        Zero insertion and decimation trade places; the padding makes the result land back on the h x w grid."""
        oh, ow = self.out_size(h, w, fw, fh)
        return Geometry(self.downx, self.downy, self.upx, self.upy,
                        fw - self.px0 - 1, w * self.upx - ow * self.downx + self.px0 - self.upx + 1,
                        fh - self.py0 - 1, h * self.upy - oh * self.downy + self.py0 - self.upy + 1)


def check_args(x: torch.Tensor, f: torch.Tensor | None, g: Geometry) -> None:
    """The reference's argument checks, so both paths reject the same inputs with the same message."""
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    fw, fh = filter_size(f)
    if x.shape[3] * g.upx + g.px0 + g.px1 < fw or x.shape[2] * g.upy + g.py0 + g.py1 < fh:
        raise ValueError("the padded, upsampled image is smaller than the filter")


def parse_call(x: torch.Tensor, f: torch.Tensor | None, up, down, padding) -> Geometry:
    """The geometry of a fast-path or Triton upfirdn2d call, after the reference's checks; neither path gives the
    filter a gradient, so a filter that requires one is refused here (dispatch sends it to the reference)."""
    g = Geometry.parse(up, down, padding)
    check_args(x, f, g)
    if f is not None and f.requires_grad:
        raise ValueError("upfirdn2d does not differentiate with respect to the filter; pass f.detach()")
    return g


def supports(x: torch.Tensor) -> bool:
    """Whether the fast path can run on x: floating point, and on CPU a dtype its convolutions implement."""
    if not x.is_floating_point():
        return False
    return x.device.type != "cpu" or x.dtype in (torch.float32, torch.float64, torch.bfloat16)


# ---------------------------------------------------------------------------------------------------------------
# One FIR step on a [1, n, H, W] tensor (channels-last chunks, or all channels at once in NCHW).

def _pad(x: torch.Tensor, pad: list[int]) -> torch.Tensor:
    # F.pad crops where an entry is negative, and keeps the channels-last layout.
    return F.pad(x, pad) if any(pad) else x


def _fir(x: torch.Tensor, taps: torch.Tensor, upx: int, upy: int, downx: int, downy: int,
         px0: int, px1: int, py0: int, py1: int) -> torch.Tensor:
    """upfirdn of each channel with the correlation kernel `taps` [kh, kw] (already flipped and scaled).

    x: [1, n, H, W]. Returns [1, n, H', W'] in x's memory format, with H', W' as in `output_size`.
    """
    n = x.shape[1]
    kh, kw = taps.shape
    if upx == 1 and upy == 1:
        # Pad (or crop) then a strided correlation: only the kept outputs are computed.
        sx, sy = max(0, min(px0, px1)), max(0, min(py0, py1))       # the symmetric part goes to conv2d
        x = _pad(x, [px0 - sx, px1 - sx, py0 - sy, py1 - sy])
        w = taps.expand(n, 1, kh, kw).contiguous()
        return F.conv2d(x, w, stride=(downy, downx), padding=(sy, sx), groups=n)
    # A transposed conv with stride `up` is the full convolution of the zero-inserted image; output o of the
    # reference sits at index o + k-1-p0 of it, so crop (or zero-pad) k-1-p0 before and k-up-p1 after.
    ex0, ex1, ey0, ey1 = kw - 1 - px0, kw - upx - px1, kh - 1 - py0, kh - upy - py1
    sx, sy = max(0, min(ex0, ex1)), max(0, min(ey0, ey1))           # the symmetric crop goes to conv_transpose2d
    w = taps.flip([0, 1]).expand(n, 1, kh, kw).contiguous()
    y = F.conv_transpose2d(x, w, stride=(upy, upx), padding=(sy, sx), groups=n)
    y = _pad(y, [sx - ex0, sx - ex1, sy - ey0, sy - ey1])
    if downx > 1 or downy > 1:
        layout = CL if x.is_contiguous(memory_format=CL) and not x.is_contiguous() else torch.contiguous_format
        y = y[:, :, ::downy, ::downx].contiguous(memory_format=layout)
    return y


def outer_factors(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(column, row) whose outer product rebuilds the 2-D filter f when f is an outer product u v^T: its row sums
    are u*sum(v) and its column sums v*sum(u)."""
    total = f.sum()
    return f.sum(1) / total, f.sum(0)


def separable_factors(f: torch.Tensor, rtol: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(column, row) with outer(column, row) equal to the 2-D filter f within rtol (of its largest tap), else None."""
    if f.ndim != 2 or f.sum().abs() < 1e-12:
        return None
    col, row = outer_factors(f)
    if (torch.outer(col, row) - f).abs().max() > rtol * f.abs().max():
        return None
    return col, row


_separable: WeakIdKeyDictionary = WeakIdKeyDictionary()     # filter -> ((version, x dtype), decision)


@torch.compiler.assume_constant_result
def is_separable(f: torch.Tensor | None, dtype: torch.dtype) -> bool:
    """Whether `Resampler` runs filter f as two 1-D passes for x of `dtype`: always for None and 1-D filters; for a
    2-D filter when it is an outer product exactly to dtype's precision (float32 filters are, for float32 x).

    The answer depends on f's values, so it is decided once per filter tensor and version and kept: eager calls do
    not wait on a comparison each time, and torch.compile does not break the graph on it (dynamo calls this on the
    real filter while tracing and keeps the answer as a constant of the graph; a filter changed in place after
    that keeps its old answer until torch._dynamo.reset(), which no network does: filters are fixed buffers)."""
    if f is None or f.ndim != 2:
        return True
    key = (f._version, dtype)
    known = _separable.get(f)
    if known is None or known[0] != key:
        f64 = f.detach().to(torch.float64)
        known = (key, separable_factors(f64, rtol=4 * torch.finfo(dtype).eps) is not None)
        _separable[f] = known
    return known[1]


class Resampler:
    """A prepared upfirdn2d: filter taps in x's dtype, and the geometry.

    Called on a channels-last [1, n, H, W] chunk, a separable filter runs as two 1-D passes. `direct` runs the
    whole [1, N*C, H, W] tensor in NCHW as one 2-D pass: for small filters (StyleGAN2's 4x4) the work is bound by
    memory traffic, so one pass beats two and the channels-last round trip would cost more than it saves.
    """

    def __init__(self, f: torch.Tensor | None, g: Geometry, flip_filter: bool, gain: float, dtype: torch.dtype,
                 device: torch.device, separable: bool):
        """separable: `is_separable(f, dtype)`, decided by the caller once per filter (flipping f keeps it)."""
        if f is None:
            f = torch.ones([1, 1])
        f = f.to(device=device, dtype=torch.float64)
        if not flip_filter:
            f = f.flip(list(range(f.ndim)))                          # convolution = correlation with flipped f
        self.g = g
        self.fw, self.fh = filter_size(f)
        # Run an outer product separably when that is exact to x's precision (float32 filters are, for float32 x).
        factors = (f, f) if f.ndim == 1 else outer_factors(f) if separable else None
        if factors is None:
            self.taps2d = (f * gain).to(dtype)
            self.col = self.row = None
        else:
            col, row = factors
            self.row = row.reshape(1, -1).to(dtype)
            self.col = (col * gain).reshape(-1, 1).to(dtype)
            self.taps2d = torch.outer(col * gain, row).to(dtype)
        self.small = self.fw * self.fh <= SMALL_TAPS

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        g = self.g
        if self.row is None:
            return _fir(x, self.taps2d, g.upx, g.upy, g.downx, g.downy, g.px0, g.px1, g.py0, g.py1)
        x = _fir(x, self.row, g.upx, 1, g.downx, 1, g.px0, g.px1, 0, 0)
        return _fir(x, self.col, 1, g.upy, 1, g.downy, 0, 0, g.py0, g.py1)

    def direct(self, x: torch.Tensor) -> torch.Tensor:
        g = self.g
        return _fir(x, self.taps2d, g.upx, g.upy, g.downx, g.downy, g.px0, g.px1, g.py0, g.py1)

    def work_size(self, h: int, w: int) -> int:
        """Elements per channel of the largest intermediate, for choosing the chunk size."""
        g = self.g
        return max(h * w, (h * g.upy + g.py0 + g.py1) * (w * g.upx + g.px0 + g.px1))


def chunk_size(channels: int, elems_per_channel: int, itemsize: int) -> int:
    """How many channels to process at once so the largest intermediate is about CHUNK_BYTES."""
    return max(1, min(channels, CHUNK_BYTES // max(1, elems_per_channel * itemsize)))


def load_chunk(xs: torch.Tensor, start: int, m: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A fresh channels-last copy of channels [start, start+m) of xs [1, N*C, H, W], plus bias [N*C] if given."""
    chunk = torch.empty([1, m, *xs.shape[2:]], dtype=xs.dtype, device=xs.device, memory_format=CL)
    if bias is None:
        return chunk.copy_(xs[:, start:start + m])
    if torch.compiler.is_compiling():       # dynamo breaks the graph on out= into a channels-last tensor
        return chunk.copy_(xs[:, start:start + m] + bias[start:start + m].reshape(1, m, 1, 1))
    return torch.add(xs[:, start:start + m], bias[start:start + m].reshape(1, m, 1, 1), out=chunk)


def run_chunked(x: torch.Tensor, out_hw: tuple[int, int], step: int,
                body: Callable[[torch.Tensor, int], torch.Tensor], bias: torch.Tensor | None = None) -> torch.Tensor:
    """Gather body(chunk, start) over chunks of `step` of x's N*C channels into an NCHW tensor.

    Each chunk is a fresh channels-last [1, n, H, W] copy (plus bias [N*C] if given) that body may overwrite."""
    n, c, h, w = x.shape
    xs = x.reshape(1, n * c, h, w)
    out = x.new_empty([n, c, *out_hw])
    outs = out.view(1, n * c, *out_hw)
    for i in range(0, n * c, step):
        m = min(step, n * c - i)
        outs[:, i:i + m].copy_(body(load_chunk(xs, i, m, bias), i))
    return out


# ---------------------------------------------------------------------------------------------------------------
# The op, with its adjoint as backward.

class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, g: Geometry, flip_filter: bool, gain: float, separable: bool):
        _, _, h, w = x.shape
        fw, fh = filter_size(f)
        ctx.save_for_backward(f)
        ctx.geometry, ctx.flip_filter, ctx.gain, ctx.in_hw, ctx.separable = g, flip_filter, gain, (h, w), separable
        r = Resampler(f, g, flip_filter, gain, x.dtype, x.device, separable)
        if r.small or x.numel() <= SMALL_NUMEL:
            y = r.direct(x.reshape(1, -1, h, w))                             # all N*C channels as one image
            return y.reshape(x.shape[0], x.shape[1], *y.shape[2:])
        step = chunk_size(x.shape[0] * x.shape[1], r.work_size(h, w), x.element_size())
        return run_chunked(x, g.out_size(h, w, fw, fh), step, lambda chunk, _: r(chunk))

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        fw, fh = filter_size(f)
        adj = ctx.geometry.adjoint(*ctx.in_hw, fw, fh)
        dx = (_UpFirDn2d.apply(dy, f, adj, not ctx.flip_filter, ctx.gain, ctx.separable)
              if ctx.needs_input_grad[0] else None)
        return dx, None, None, None, None, None


def upfirdn2d_fast(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1,
                   down: int | Sequence[int] = 1, padding=0, flip_filter: bool = False,
                   gain: float = 1) -> torch.Tensor:
    """Polyphase upfirdn2d; same arguments and result as `upfirdn2d_ref` (the filter gets no gradient)."""
    g = parse_call(x, f, up, down, padding)
    return _UpFirDn2d.apply(x, f, g, bool(flip_filter), float(gain), is_separable(f, x.dtype))
