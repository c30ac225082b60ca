"""filtered_lrelu as fused Triton kernels: the upsampled intermediate never leaves the chip.

Each program owns one tile of one (image, channel) plane. Along each axis, upfirdn is a banded matrix:
    upsampling   mid[i] = sum_j U[i, j] x[j],    U[i, j] = k_u[j*up + p0 - i]   (0 <= index < taps, else 0)
    downsampling out[o] = sum_i D[o, i] mid[i],  D[o, i] = k_d[i - o*down]
where k is the correlation kernel (the filter, flipped unless flip_filter). Zero insertion and padding/cropping are
both inside U's index arithmetic. A separable filter makes the 2-D operator a product of the two axes, so a tile is
    forward   Y = Dy act(Uy X Ux^T) Dx^T
    backward  dX = Uy^T (m * (Dy^T dY Dx)) Ux,   m = act'(Uy X Ux^T)   (recomputed from x and b)
four tl.dot calls each way, with U and D built in registers from the taps. A 2-D filter (StyleGAN3-R's radial
jinc) is an exact sum of rank-1 filters from its SVD, col_r row_r^T; each term is one more pair of dots. The lrelu
gain is folded into the upsampling taps (lrelu(v) g = lrelu(g v) for g > 0), as in `_filtered_lrelu_fast`.

Tiles: the intermediate (mid) tile is BM x BM with BM in {16, 32, 64}; the tile steps by the outputs (forward) or
inputs (backward) it can compute exactly, and every operand is padded to a power of two >= 16, as tl.dot needs.
Arithmetic is float32 for float16/bfloat16/float32 inputs (input_precision='ieee': no TF32), float64 for float64.
Backward keeps x and b only, like the fast path; second order (create_graph=True) runs the fast path's
differentiable backward. The bias gradient is summed per tile in float32, then over tiles by torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from stylegan.ops import _filtered_lrelu_fast as fast
from stylegan.ops._upfirdn2d_fast import Geometry
from stylegan.ops.upfirdn2d import filter_size, parse_padding

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
MAX_BLOCK = 64          # largest tile side of any operand: 64x64 float32 is 16 KiB of registers per tile
BLOCKS = (16, 32, 64)   # candidate sides of the intermediate tile
SHIFT = 1 << 16         # makes numerators non-negative: Triton's integer division truncates toward zero


def _pow2(n: int) -> int:
    return max(16, 1 << max(0, n - 1).bit_length())


def _span(length: int, rate: int, taps: int) -> int:
    """Most samples at rate 1/rate whose taps-long footprints meet a window of `length` samples, anywhere."""
    return (length + taps - 2 + rate - 1) // rate + 1


@dataclass(frozen=True)
class _Axis:
    """Tile sizes along one axis. Forward: a tile makes `out_step` outputs from `mid` intermediate samples and
    `inp` inputs. Backward: a tile makes `in_step` input gradients from `mid` samples, `grad` output gradients
    and `inp` inputs (to recompute the mask). Each field except the steps is a power of two."""
    mid: int
    out_step: int
    out: int
    inp: int
    in_step: int
    in_block: int
    grad: int

    @staticmethod
    def plan(up: int, down: int, ku: int, kd: int, in_len: int, out_len: int) -> "_Axis | None":
        best = None
        for bm in BLOCKS:
            out_step = (bm - kd) // down + 1
            in_step = (bm - ku) // up + 1
            if out_step < 1 or in_step < 1:
                continue
            axis = _Axis(bm, out_step, _pow2(out_step), _pow2(_span(bm, up, ku)), in_step, _pow2(in_step),
                         _pow2(_span(bm, down, kd)))
            if max(axis.inp, axis.grad, axis.out, axis.in_block) > MAX_BLOCK:
                continue
            best = axis
            if out_step >= out_len and in_step >= in_len:       # one tile covers the plane: stop growing
                break
        return best


def _factors(f: torch.Tensor | None, flip_filter: bool, gain: float, dtype: torch.dtype,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(col [R, fh], row [R, fw]) correlation kernels with sum_r outer(col_r, row_r) = gain * the 2-D filter.

    A 1-D filter is rank 1 (col = row = f). A 2-D filter is split by its SVD; singular values below the compute
    precision (relative to the largest) are dropped, which changes the result by less than rounding does."""
    if f is None:
        f = torch.ones([1])
    f = f.detach().to(dtype=torch.float64)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))                                  # convolution = correlation with flipped f
    if f.ndim == 1:
        col, row = f[None] * gain, f[None]
    else:
        u, s, vh = torch.linalg.svd(f.cpu())                            # tiny: on the host (one sync per call)
        keep = max(1, int((s > s[0] * torch.finfo(dtype).eps).sum()))
        col, row = (u[:, :keep] * s[:keep] * gain).T, vh[:keep]
    return (col.to(device=device, dtype=dtype).contiguous(), row.to(device=device, dtype=dtype).contiguous())


class _Plan:
    """Geometry, tile sizes and filter factors of one call, for both passes."""

    def __init__(self, x: torch.Tensor, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
        n, c, h, w = x.shape
        self.args = (fu, fd, up, down, padding, gain, slope, clamp, flip_filter)
        self.px0, _, self.py0, _ = parse_padding(padding)
        self.up, self.down, self.slope, self.clamp = up, down, slope, clamp
        self.compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        self.fu_w, self.fu_h = filter_size(fu)
        self.fd_w, self.fd_h = filter_size(fd)
        self.in_hw = (h, w)
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        gu, gd = Geometry(up, up, 1, 1, *parse_padding(padding)), Geometry(1, 1, down, down, 0, 0, 0, 0)
        self.mid_hw = gu.out_size(h, w, self.fu_w, self.fu_h)
        self.out_hw = gd.out_size(*self.mid_hw, self.fd_w, self.fd_h)
        self.ax = _Axis.plan(up, down, self.fu_w, self.fd_w, w, self.out_hw[1])
        self.ay = _Axis.plan(up, down, self.fu_h, self.fd_h, h, self.out_hw[0])
        self.fu_col, self.fu_row = _factors(fu, flip_filter, up * up * gain, self.compute, x.device)
        self.fd_col, self.fd_row = _factors(fd, flip_filter, 1.0, self.compute, x.device)
        # slope and clamp as a tensor in the compute dtype: a float argument would reach the kernel as float32.
        self.act = torch.tensor([slope, 0.0 if clamp is None else clamp], dtype=self.compute, device=x.device)

    def fast_plan(self) -> fast._Plan:
        """The fast path's plan of the same call, for its differentiable backward."""
        return fast._Plan(self.shape, *self.args, self.dtype, self.device)

    def common(self) -> dict:
        """Kernel arguments shared by both passes."""
        return dict(UP=self.up, DOWN=self.down, PX0=self.px0, PY0=self.py0, KUW=self.fu_w, KUH=self.fu_h,
                    KDW=self.fd_w, KDH=self.fd_h, RANK_U=self.fu_col.shape[0], RANK_D=self.fd_col.shape[0],
                    act_ptr=self.act, HAS_CLAMP=self.clamp is not None, SHIFT=SHIFT,
                    FP64=self.compute == torch.float64)


def unsupported(x: torch.Tensor, fu, fd, up: int, down: int, padding) -> str | None:
    """Why the kernels cannot run this call, or None."""
    if x.dtype not in DTYPES:
        return f"dtype {x.dtype}"
    if x.ndim != 4 or not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        return None                                             # let the op reject the arguments
    for f in (fu, fd):
        if f is not None and f.ndim not in (1, 2):
            return None
    fu_w, fu_h = filter_size(fu)
    fd_w, fd_h = filter_size(fd)
    for ku, kd in ((fu_w, fd_w), (fu_h, fd_h)):
        if _Axis.plan(up, down, ku, kd, 1, 1) is None:
            return f"filters of {ku} and {kd} taps at up={up}, down={down} exceed the {MAX_BLOCK}-pixel tile"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Kernels

@triton.jit
def _floordiv(a, d, SHIFT: tl.constexpr):
    return (a + d * SHIFT) // d - SHIFT


@triton.jit
def _band_up(taps_ptr, r, i0, j0, BI_: tl.constexpr, BJ: tl.constexpr, UP: tl.constexpr, P0, K: tl.constexpr):
    """U[i, j] = taps[r, j*up + p0 - i] for mid rows i0 + [0, BI_) and input rows j0 + [0, BJ), as [BI_, BJ]."""
    i = i0 + tl.arange(0, BI_)[:, None]
    j = j0 + tl.arange(0, BJ)[None, :]
    t = j * UP + P0 - i
    return tl.load(taps_ptr + r * K + t, mask=(t >= 0) & (t < K), other=0.0)


@triton.jit
def _band_down(taps_ptr, r, o0, i0, BO: tl.constexpr, BI_: tl.constexpr, DOWN: tl.constexpr, K: tl.constexpr):
    """D[o, i] = taps[r, i - o*down] for outputs o0 + [0, BO) and mid rows i0 + [0, BI_), as [BO, BI_]."""
    o = o0 + tl.arange(0, BO)[:, None]
    i = i0 + tl.arange(0, BI_)[None, :]
    t = i - o * DOWN
    return tl.load(taps_ptr + r * K + t, mask=(t >= 0) & (t < K), other=0.0)


@triton.jit
def _load_plane(ptr, y0, x0, H, W, BY: tl.constexpr, BX: tl.constexpr, bias, DT: tl.constexpr):
    """A [BY, BX] window at (y0, x0) of an H x W plane, plus bias inside the plane, zeros outside."""
    y = y0 + tl.arange(0, BY)[:, None]
    x = x0 + tl.arange(0, BX)[None, :]
    inside = (y >= 0) & (y < H) & (x >= 0) & (x < W)
    v = tl.load(ptr + y * W + x, mask=inside, other=0.0).to(DT)
    return tl.where(inside, v + bias, 0.0)


@triton.jit
def _tile(tiles, tiles_x, STEP_Y: tl.constexpr, STEP_X: tl.constexpr):
    """(plane, y0, x0): this program's plane and the first row and column it writes. Consecutive programs share a
    plane, so the halos they read twice hit in L2."""
    pid = tl.program_id(0)
    tile = pid % tiles
    return pid // tiles, (tile // tiles_x) * STEP_Y, (tile % tiles_x) * STEP_X


@triton.jit
def _recompute(x_ptr, b_ptr, plane, C, H, W, fu_col, fu_row, my0, mx0, PY0, PX0, SHIFT: tl.constexpr,
               HAS_BIAS: tl.constexpr, BMY: tl.constexpr, BMX: tl.constexpr, BIY: tl.constexpr, BIX: tl.constexpr,
               UP: tl.constexpr, KUH: tl.constexpr, KUW: tl.constexpr, RANK_U: tl.constexpr, PREC: tl.constexpr,
               DT: tl.constexpr):
    """v = U(x + b) on the intermediate tile [BMY, BMX] at (my0, mx0), gain included: sum_r Uy_r X Ux_r^T."""
    jy0 = _floordiv(my0 - PY0, UP, SHIFT)           # first input sample with a tap on the tile
    jx0 = _floordiv(mx0 - PX0, UP, SHIFT)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + plane % C).to(DT)
    x = _load_plane(x_ptr + plane.to(tl.int64) * H * W, jy0, jx0, H, W, BIY, BIX, bias, DT)
    v = tl.zeros([BMY, BMX], dtype=DT)
    for r in tl.static_range(RANK_U):
        uy = _band_up(fu_col, r, my0, jy0, BMY, BIY, UP, PY0, KUH)                        # [BMY, BIY]
        ux_t = tl.trans(_band_up(fu_row, r, mx0, jx0, BMX, BIX, UP, PX0, KUW))           # [BIX, BMX]
        v += tl.dot(tl.dot(uy, x, input_precision=PREC), ux_t, input_precision=PREC)
    return v


@triton.jit
def _store_tile(ptr, plane, y0, x0, H, W, val, BY: tl.constexpr, BX: tl.constexpr, SY: tl.constexpr,
                SX: tl.constexpr):
    """Store the first SY x SX samples of the [BY, BX] tile val at (y0, x0) of an H x W plane; returns the mask."""
    ty = tl.arange(0, BY)[:, None]
    tx = tl.arange(0, BX)[None, :]
    keep = (ty < SY) & (tx < SX) & (y0 + ty < H) & (x0 + tx < W)
    tl.store(ptr + plane.to(tl.int64) * H * W + (y0 + ty) * W + (x0 + tx), val.to(ptr.dtype.element_ty), mask=keep)
    return keep


@triton.jit
def _forward_kernel(x_ptr, b_ptr, y_ptr, fu_col, fu_row, fd_col, fd_row,
                    C, H, W, OH, OW, tiles_x, tiles,
                    UP: tl.constexpr, DOWN: tl.constexpr, PX0, PY0,
                    KUW: tl.constexpr, KUH: tl.constexpr, KDW: tl.constexpr, KDH: tl.constexpr,
                    RANK_U: tl.constexpr, RANK_D: tl.constexpr, act_ptr, HAS_CLAMP: tl.constexpr,
                    HAS_BIAS: tl.constexpr, SHIFT: tl.constexpr, FP64: tl.constexpr,
                    BMY: tl.constexpr, BMX: tl.constexpr, BIY: tl.constexpr, BIX: tl.constexpr,
                    BOY: tl.constexpr, BOX: tl.constexpr, OSY: tl.constexpr, OSX: tl.constexpr):
    DT: tl.constexpr = tl.float64 if FP64 else tl.float32
    PREC: tl.constexpr = "ieee"
    plane, oy0, ox0 = _tile(tiles, tiles_x, OSY, OSX)
    my0 = oy0 * DOWN                                # first intermediate sample of the tile
    mx0 = ox0 * DOWN
    v = _recompute(x_ptr, b_ptr, plane, C, H, W, fu_col, fu_row, my0, mx0, PY0, PX0, SHIFT, HAS_BIAS,
                   BMY, BMX, BIY, BIX, UP, KUH, KUW, RANK_U, PREC, DT)
    slope = tl.load(act_ptr)
    clamp = tl.load(act_ptr + 1)
    a = tl.where(v > 0, v, v * slope)               # the gain is already in the taps
    if HAS_CLAMP:
        a = tl.minimum(tl.maximum(a, -clamp), clamp)

    out = tl.zeros([BOY, BOX], dtype=DT)
    for r in tl.static_range(RANK_D):
        dy = _band_down(fd_col, r, oy0, my0, BOY, BMY, DOWN, KDH)                        # [BOY, BMY]
        dx_t = tl.trans(_band_down(fd_row, r, ox0, mx0, BOX, BMX, DOWN, KDW))            # [BMX, BOX]
        out += tl.dot(tl.dot(dy, a, input_precision=PREC), dx_t, input_precision=PREC)

    _store_tile(y_ptr, plane, oy0, ox0, OH, OW, out, BOY, BOX, OSY, OSX)


@triton.jit
def _backward_kernel(x_ptr, b_ptr, dy_ptr, dx_ptr, db_ptr, fu_col, fu_row, fd_col, fd_row,
                     C, H, W, OH, OW, tiles_x, tiles,
                     UP: tl.constexpr, DOWN: tl.constexpr, PX0, PY0,
                     KUW: tl.constexpr, KUH: tl.constexpr, KDW: tl.constexpr, KDH: tl.constexpr,
                     RANK_U: tl.constexpr, RANK_D: tl.constexpr, act_ptr, HAS_CLAMP: tl.constexpr,
                     HAS_BIAS: tl.constexpr, SHIFT: tl.constexpr, FP64: tl.constexpr,
                     BMY: tl.constexpr, BMX: tl.constexpr, BIY: tl.constexpr, BIX: tl.constexpr,
                     BGY: tl.constexpr, BGX: tl.constexpr, BDY: tl.constexpr, BDX: tl.constexpr,
                     ISY: tl.constexpr, ISX: tl.constexpr):
    DT: tl.constexpr = tl.float64 if FP64 else tl.float32
    PREC: tl.constexpr = "ieee"
    plane, qy0, qx0 = _tile(tiles, tiles_x, ISY, ISX)     # the first input sample whose gradient this tile writes
    my0 = qy0 * UP + PY0 - (KUH - 1)                # first intermediate sample that reaches it through U
    mx0 = qx0 * UP + PX0 - (KUW - 1)
    gy0 = _floordiv(my0 - (KDH - 1), DOWN, SHIFT)   # first output gradient that reaches that through D
    gx0 = _floordiv(mx0 - (KDW - 1), DOWN, SHIFT)

    # The mask m = act'(v) at the intermediate resolution, from v = U(x + b) recomputed on the tile.
    v = _recompute(x_ptr, b_ptr, plane, C, H, W, fu_col, fu_row, my0, mx0, PY0, PX0, SHIFT, HAS_BIAS,
                   BMY, BMX, BIY, BIX, UP, KUH, KUW, RANK_U, PREC, DT)
    slope = tl.load(act_ptr)
    clamp = tl.load(act_ptr + 1)
    m = tl.where(v > 0, 1.0, slope)
    if HAS_CLAMP:
        a = v * m
        m = tl.where((a > -clamp) & (a < clamp), m, 0.0)

    # g = D^T dy on the tile. Outputs outside the image load as zero, so g vanishes outside the intermediate image.
    dyt = _load_plane(dy_ptr + plane.to(tl.int64) * OH * OW, gy0, gx0, OH, OW, BGY, BGX, 0.0, DT)
    g = tl.zeros([BMY, BMX], dtype=DT)
    for r in tl.static_range(RANK_D):
        dy_t = tl.trans(_band_down(fd_col, r, gy0, my0, BGY, BMY, DOWN, KDH))           # [BMY, BGY]
        dx_ = _band_down(fd_row, r, gx0, mx0, BGX, BMX, DOWN, KDW)                       # [BGX, BMX]
        g += tl.dot(tl.dot(dy_t, dyt, input_precision=PREC), dx_, input_precision=PREC)
    g = g * m

    # dx = U^T g.
    dxt = tl.zeros([BDY, BDX], dtype=DT)
    for r in tl.static_range(RANK_U):
        uy_t = tl.trans(_band_up(fu_col, r, my0, qy0, BMY, BDY, UP, PY0, KUH))           # [BDY, BMY]
        ux = _band_up(fu_row, r, mx0, qx0, BMX, BDX, UP, PX0, KUW)                       # [BMX, BDX]
        dxt += tl.dot(tl.dot(uy_t, g, input_precision=PREC), ux, input_precision=PREC)

    keep = _store_tile(dx_ptr, plane, qy0, qx0, H, W, dxt, BDY, BDX, ISY, ISX)
    if HAS_BIAS:
        tl.store(db_ptr + tl.program_id(0), tl.sum(tl.where(keep, dxt, 0.0)))


# ---------------------------------------------------------------------------------------------------------------
# Launchers and the autograd Function

NUM_WARPS = 8           # four 64x64 float32 operands live at once: 8 warps keep them in registers without spills


def _forward(x: torch.Tensor, b: torch.Tensor | None, plan: _Plan) -> torch.Tensor:
    n, c, h, w = x.shape
    oh, ow = plan.out_hw
    y = x.new_empty([n, c, oh, ow])
    ax, ay = plan.ax, plan.ay
    tiles_x, tiles_y = triton.cdiv(ow, ax.out_step), triton.cdiv(oh, ay.out_step)
    if y.numel() == 0:
        return y
    _forward_kernel[(n * c * tiles_x * tiles_y,)](
        x, x if b is None else b, y, plan.fu_col, plan.fu_row, plan.fd_col, plan.fd_row,
        c, h, w, oh, ow, tiles_x, tiles_x * tiles_y, HAS_BIAS=b is not None, **plan.common(),
        BMY=ay.mid, BMX=ax.mid, BIY=ay.inp, BIX=ax.inp, BOY=ay.out, BOX=ax.out, OSY=ay.out_step, OSX=ax.out_step,
        num_warps=NUM_WARPS)
    return y


def _backward(x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor, plan: _Plan):
    n, c, h, w = x.shape
    oh, ow = plan.out_hw
    ax, ay = plan.ax, plan.ay
    tiles_x, tiles_y = triton.cdiv(w, ax.in_step), triton.cdiv(h, ay.in_step)
    grid = n * c * tiles_x * tiles_y
    dx = torch.empty_like(x)
    db = torch.empty(grid if b is not None else 1, dtype=plan.compute, device=x.device)     # per-tile sums
    _backward_kernel[(grid,)](
        x, x if b is None else b, dy.contiguous(), dx, db, plan.fu_col, plan.fu_row, plan.fd_col, plan.fd_row,
        c, h, w, oh, ow, tiles_x, tiles_x * tiles_y, HAS_BIAS=b is not None, **plan.common(),
        BMY=ay.mid, BMX=ax.mid, BIY=ay.inp, BIX=ax.inp, BGY=ay.grad, BGX=ax.grad, BDY=ay.in_block,
        BDX=ax.in_block, ISY=ay.in_step, ISX=ax.in_step, num_warps=NUM_WARPS)
    db = None if b is None else db.view(n, c, -1).sum([0, 2]).to(b.dtype)
    return dx, db


class _FilteredLReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plan: _Plan):
        ctx.plan = plan
        ctx.save_for_backward(x, b)
        return _forward(x, b, plan)

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        plan = ctx.plan
        if torch.is_grad_enabled():                 # create_graph=True: a differentiable backward (second order)
            dx = fast._differentiable_backward(plan.fast_plan(), x, b, dy)
            db = dx.sum([0, 2, 3]) if b is not None and ctx.needs_input_grad[1] else None
            return dx, db, None
        dx, db = _backward(x, b, dy, plan)
        return dx, db if ctx.needs_input_grad[1] else None, None


def filtered_lrelu_triton(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                          b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding=0,
                          gain: float = math.sqrt(2), slope: float = 0.2, clamp: float | None = None,
                          flip_filter: bool = False) -> torch.Tensor:
    """Fused filtered_lrelu in Triton; same arguments and result as `filtered_lrelu_ref`. Requires gain > 0 and
    filters that fit the tile (see `unsupported`)."""
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError("up and down must be integers >= 1")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias must be [{x.shape[1]}], got {tuple(b.shape)}")
    if not fast.supports(gain):
        raise ValueError(f"the fused filtered_lrelu needs gain > 0, got {gain}")
    reason = unsupported(x, fu, fd, up, down, padding)
    if reason is not None:
        raise ValueError(f"the Triton filtered_lrelu cannot run: {reason}")
    px0, px1, py0, py1 = parse_padding(padding)
    (fu_w, fu_h), (fd_w, fd_h) = filter_size(fu), filter_size(fd)
    mid_h, mid_w = x.shape[2] * up + py0 + py1 - fu_h + 1, x.shape[3] * up + px0 + px1 - fu_w + 1
    if min(mid_h, mid_w) < 1 or mid_h < fd_h or mid_w < fd_w:
        raise ValueError("the padded, upsampled image is smaller than the filter")
    clamp = None if clamp is None or clamp < 0 else float(clamp)
    plan = _Plan(x, fu, fd, up, down, padding, float(gain), float(slope), clamp, bool(flip_filter))
    return _FilteredLReLU.apply(x.contiguous(), b, plan)
