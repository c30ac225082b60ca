"""upfirdn2d as a Triton kernel: each output pixel gathers only the input pixels its filter taps hit.

Output o (along one axis) is the correlation of the padded, zero-inserted image z with the taps t (the filter,
flipped unless flip_filter, times the gain):  y[o] = sum_k t[k] z[o*down + k],  z[j] = x[(j - pad0) / up] when
up divides j - pad0 and that index is inside x, else 0.
- Polyphase: for a given o, the taps that hit real pixels are k0(o), k0(o) + up, k0(o) + 2 up, ..., where
  k0(o) = (pad0 - o*down) mod up, and tap k0 + i*up reads x[i0(o) + i]. Each output therefore loops over
  ceil(taps / up) taps per axis and never multiplies an inserted zero; negative padding (a crop) needs nothing more.
- Tiling: a program computes a BLOCK_H x BLOCK_W tile of output pixels. Rows run over (plane, output row) pairs of
  all N*C planes together, so small images (4x4 at the start of a generator) still fill a tile; columns run along W,
  so the loads of x and the stores of y are contiguous across a row. Row terms ([BLOCK_H]) and column terms
  ([BLOCK_W]) of the index arithmetic are computed apart and broadcast.
- The sum accumulates in float32 (float64 for float64 inputs) and is stored in x's dtype.
- A 1-D (separable) filter runs as two 1-D passes, horizontal then vertical, with a float32 intermediate: fw + fh
  taps per pixel instead of fw * fh. A 2-D filter (StyleGAN2's 4x4, a radial 12x12) is one pass over its taps.
- Backward is this op with the adjoint geometry (`Geometry.adjoint`: up and down swap places) and the flipped
  filter, so it keeps only the filter, and gradients of any order run on the kernel (R1 differentiates a gradient).

Import this module only when triton imports (see `_dispatch.kernel_unsupported`); the tests run it in Triton's
interpreter (TRITON_INTERPRET=1, read when the kernel below is defined).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import triton
import triton.language as tl

from stylegan.ops._upfirdn2d_fast import Geometry, parse_call
from stylegan.ops.upfirdn2d import filter_size

TILE = 1024             # output pixels per program: 8 per thread with 4 warps
MAX_BLOCK_W = 64        # a tile row: 64 contiguous pixels, 256 bytes of float32
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def unsupported(x: torch.Tensor, f: torch.Tensor | None) -> str | None:
    """Why the kernel cannot run on these inputs (beyond device and import), or None when it can."""
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype}"
    if f is not None and f.requires_grad:
        return "the filter requires grad"
    return None


@triton.jit
def _phase(o, DOWN: tl.constexpr, UP: tl.constexpr, shift, shift_in):
    """(k0, i0) of output positions o: the first tap that hits a real pixel, and the input index it reads.

    shift = q - pad0 and shift_in = q / up, for the smallest multiple q of up with q >= max(pad0, 0): then
    s = o*down + q - pad0 >= 0, so the remainders and quotients below involve no negative numbers."""
    s = o * DOWN + shift
    k0 = (UP - s % UP) % UP
    return k0, (s + k0) // UP - shift_in


@triton.jit
def _upfirdn2d_kernel(x_ptr, t_ptr, y_ptr, rows, in_h, in_w, out_h, out_w, shift_x, shift_in_x, shift_y, shift_in_y,
                      UPX: tl.constexpr, UPY: tl.constexpr, DOWNX: tl.constexpr, DOWNY: tl.constexpr,
                      FW: tl.constexpr, FH: tl.constexpr, ACC: tl.constexpr,
                      BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    col_tiles = tl.cdiv(out_w, BLOCK_W)
    pid = tl.program_id(0).to(tl.int64)         # 64-bit indices: offsets past 2^31 in large batches need them
    r = (pid // col_tiles) * BLOCK_H + tl.arange(0, BLOCK_H)         # [BLOCK_H] (plane, output row) pairs
    ox = (pid % col_tiles) * BLOCK_W + tl.arange(0, BLOCK_W)         # [BLOCK_W] output columns
    row_ok = r < rows
    col_ok = ox < out_w
    plane = r // out_h
    oy = r % out_h
    ky0, iy0 = _phase(oy, DOWNY, UPY, shift_y, shift_in_y)           # [BLOCK_H]
    kx0, ix0 = _phase(ox, DOWNX, UPX, shift_x, shift_in_x)           # [BLOCK_W]
    x_rows = x_ptr + plane * in_h * in_w                             # [BLOCK_H] start of each row's plane

    acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=ACC)
    for ty in range((FH + UPY - 1) // UPY):
        ky = ky0 + ty * UPY
        iy = iy0 + ty
        y_ok = row_ok & (ky < FH) & (iy >= 0) & (iy < in_h)
        x_row = x_rows + iy * in_w                                   # [BLOCK_H]
        for tx in range((FW + UPX - 1) // UPX):
            kx = kx0 + tx * UPX
            ix = ix0 + tx
            x_ok = col_ok & (kx < FW) & (ix >= 0) & (ix < in_w)
            ok = y_ok[:, None] & x_ok[None, :]                       # [BLOCK_H, BLOCK_W]
            v = tl.load(x_row[:, None] + ix[None, :], mask=ok, other=0.0).to(ACC)
            if UPX == 1 and UPY == 1:
                w = tl.load(t_ptr + (ty * FW + tx))                  # one tap for the whole tile
            else:
                w = tl.load(t_ptr + ky[:, None] * FW + kx[None, :], mask=ok, other=0.0)    # the tap of each phase
            acc += v * w
    y_ptrs = y_ptr + r[:, None] * out_w + ox[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def _shift(up: int, pad0: int) -> tuple[int, int]:
    """(q - pad0, q / up) for the smallest multiple q of up with q >= max(pad0, 0); see `_phase`."""
    q = -(-max(pad0, 0) // up) * up
    return q - pad0, q // up


def _pass(x: torch.Tensor, taps: torch.Tensor, g: Geometry, out_dtype: torch.dtype) -> torch.Tensor:
    """One kernel launch: upfirdn of each plane of contiguous x [P, H, W] with the correlation taps [fh, fw]
    (already flipped and scaled, in the accumulation dtype). Returns [P, H', W'] in out_dtype."""
    planes, h, w = x.shape
    fh, fw = taps.shape
    out_h, out_w = g.out_size(h, w, fw, fh)
    y = torch.empty([planes, out_h, out_w], dtype=out_dtype, device=x.device)
    rows = planes * out_h
    if y.numel() == 0:
        return y
    block_w = min(MAX_BLOCK_W, triton.next_power_of_2(out_w))
    block_h = min(TILE // block_w, triton.next_power_of_2(rows))
    grid = (triton.cdiv(rows, block_h) * triton.cdiv(out_w, block_w),)
    _upfirdn2d_kernel[grid](
        x, taps, y, rows, h, w, out_h, out_w, *_shift(g.upx, g.px0), *_shift(g.upy, g.py0),
        UPX=g.upx, UPY=g.upy, DOWNX=g.downx, DOWNY=g.downy, FW=fw, FH=fh,
        ACC=tl.float64 if taps.dtype == torch.float64 else tl.float32, BLOCK_H=block_h, BLOCK_W=block_w)
    return y


def _upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, g: Geometry, flip_filter: bool, gain: float) -> torch.Tensor:
    """The op without autograd: x [N, C, H, W] -> [N, C, H', W'] in x's dtype."""
    n, c, h, w = x.shape
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    t = torch.ones([1, 1]) if f is None else f
    t = t.to(device=x.device, dtype=acc)
    if not flip_filter:
        t = t.flip(list(range(t.ndim)))                              # convolution = correlation with flipped f
    planes = x.contiguous().reshape(n * c, h, w)
    if t.ndim == 2:
        y = _pass(planes, (t * gain).contiguous(), g, x.dtype)
    else:
        t = t * math.sqrt(gain)                                      # the gain, split between the two passes
        across = Geometry(g.upx, 1, g.downx, 1, g.px0, g.px1, 0, 0)
        down = Geometry(1, g.upy, 1, g.downy, 0, 0, g.py0, g.py1)
        y = _pass(_pass(planes, t.reshape(1, -1), across, acc), t.reshape(-1, 1), down, x.dtype)
    return y.reshape(n, c, *y.shape[1:])


class _UpFirDn2dTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, g: Geometry, flip_filter: bool, gain: float):
        ctx.save_for_backward(f)
        ctx.geometry, ctx.flip_filter, ctx.gain, ctx.in_hw = g, flip_filter, gain, tuple(x.shape[2:])
        return _upfirdn2d(x, f, g, flip_filter, gain)

    @staticmethod
    def backward(ctx, dy):
        f, = ctx.saved_tensors
        adj = ctx.geometry.adjoint(*ctx.in_hw, *filter_size(f))
        dx = _UpFirDn2dTriton.apply(dy, f, adj, not ctx.flip_filter, ctx.gain) if ctx.needs_input_grad[0] else None
        return dx, None, None, None, None


def upfirdn2d_triton(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1,
                     down: int | Sequence[int] = 1, padding=0, flip_filter: bool = False,
                     gain: float = 1) -> torch.Tensor:
    """upfirdn2d as a Triton kernel; same arguments and result as `upfirdn2d_ref` (the filter gets no gradient)."""
    g = parse_call(x, f, up, down, padding)
    return _UpFirDn2dTriton.apply(x, f, g, bool(flip_filter), float(gain))
