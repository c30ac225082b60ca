"""filtered_lrelu as fused Triton kernels: the upsampled intermediate never leaves the chip.

Each program owns one tile of one (image, channel) plane. Along each axis, upfirdn is a banded matrix:
    upsampling   mid[i] = sum_j U[i, j] x[j],    U[i, j] = k_u[j*up + p0 - i]   (0 <= index < taps, else 0)
    downsampling out[o] = sum_i D[o, i] mid[i],  D[o, i] = k_d[i - o*down]
where k is the correlation kernel (the filter, flipped unless flip_filter). Zero insertion and padding/cropping are
both inside U's index arithmetic. A separable filter makes the 2-D operator a product of the two axes, so a tile is
    forward   Y = Dy act(Uy X Ux^T) Dx^T
    backward  dX = Uy^T (m * (Dy^T dY Dx)) Ux,   m = act'(Uy X Ux^T)   (recomputed from x and b)
A 2-D filter (StyleGAN3-R's radial jinc) is an exact sum of rank-1 filters from its SVD, col_r row_r^T. The lrelu
gain is folded into the upsampling taps (lrelu(v) g = lrelu(g v) for g > 0), as in `_filtered_lrelu_fast`.

Only the blocks that meet the band are multiplied. The intermediate tile is walked in S x S sub-tiles (S = 16, the
smallest tl.dot side). A sub-tile's S rows of U meet at most `_span(S, up, taps)` inputs, so each sub-tile is
    v_sc = Uy_s X_sc Ux_c^T      with X_sc that window of x, loaded from memory (L1/L2) at the sub-tile's own offset,
and every factor is S x (a power of two >= S). Forward, the activated sub-tile goes straight into the output:
    W_s = sum_c act(v_sc) Dx_c^T   [S, out tile],      Y += Dy_s W_s   [out tile, out tile]   once per row slab s;
backward is the same with the roles of U and D swapped (dY windows through D^T, then U^T into the input tile).
Versus the whole-tile product (64 x 64 operands for a 12-tap up=2 layer), this cuts the multiplies 2-3x; the rest of
the gap to a direct polyphase filter (~4-6x) is tl.dot's 16-wide minimum against 6-12 taps.

Rank-r filters: the up terms are a loop (2 dots each); the down terms (forward) or up terms (backward) of the second
stage are stacked along one dot's N side and the next dot's K side, so a rank-3 jinc costs one wider dot, not three.

Dot precision: float16/bfloat16 inputs multiply in their own dtype on tensor cores, accumulating in float32 (every dot
operand, intermediate tiles included, is rounded to the input dtype: NVIDIA's fp16 kernel does the same); the
activation and the clamp run in float32. float32 multiplies in IEEE float32 (CUDA-core FMA) unless `FP32_PRECISION`
says otherwise: None (default) follows torch.backends.cuda.matmul.allow_tf32 ("tf32" when set, as under mixed
precision training with TF32 allowed), or pin it to "ieee", "tf32" or "tf32x3" (three TF32 products: ~float32
accuracy at tensor-core speed). float64 is IEEE float64. Triton's CPU interpreter ignores TF32, so only a GPU can
show its rounding.

Backward keeps x and b only, like the fast path; second order (create_graph=True) runs the fast path's
differentiable backward. The bias gradient is summed per tile in float32, then over tiles by torch.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from stylegan.ops import _filtered_lrelu_fast as fast
from stylegan.ops._upfirdn2d_fast import Geometry
from stylegan.ops.upfirdn2d import filter_size, parse_padding

DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SUB = 16                # side of an intermediate sub-tile: tl.dot's smallest operand side
MAX_BLOCK = 64          # largest side of any operand: a 64x64 float32 accumulator is 16 KiB of registers
MAX_STEP = MAX_BLOCK    # most samples a tile writes along an axis (tests lower it to cut small planes into tiles)
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"     # read when the kernels are defined, as Triton does
SHIFT = 1 << 16         # makes numerators non-negative: Triton's integer division truncates toward zero
FP32_PRECISION: str | None = None   # float32 dots: None follows torch.backends.cuda.matmul.allow_tf32; or
                                    # "ieee", "tf32", "tf32x3" (see the module docstring)


def _pow2(n: int) -> int:
    return max(16, 1 << max(0, n - 1).bit_length())


def _span(length: int, rate: int, taps: int) -> int:
    """Most samples at rate 1/rate whose taps-long footprints meet a window of `length` samples, anywhere."""
    return (length + taps - 2 + rate - 1) // rate + 1


def _rank_block(rank: int) -> int:
    """Rank terms stacked side by side in one dot: a power of two (1 for a separable filter)."""
    return 1 if rank == 1 else 1 << (rank - 1).bit_length()


@dataclass(frozen=True)
class _Axis:
    """One pass's tiling along one axis. A tile writes `step` samples (outputs forward, input gradients backward)
    into a `block`-long accumulator (a power of two) from `subs` intermediate sub-tiles of SUB samples; each sub-tile
    reads `inp` inputs (and, backward, `grad` output gradients)."""
    step: int
    block: int
    subs: int
    inp: int
    grad: int

    @staticmethod
    def candidates(rate: int, taps: int, inp: int, grad: int, length: int, max_step: int) -> list["_Axis"]:
        """Tilings whose sub-tiles cover exactly the intermediate samples they need, or capped by a block size, the
        plane's length or max_step: a step of n needs (n - 1) * rate + taps intermediate samples."""
        out = {}
        for subs in range(1, 4 * MAX_BLOCK // SUB + 1):
            top = (subs * SUB - taps) // rate + 1
            for step in {min(top, cap) for cap in (16, 32, 64, length, max_step)}:
                if 1 <= step <= max_step and _pow2(step) <= MAX_BLOCK:
                    need = -(-((step - 1) * rate + taps) // SUB)
                    out[step] = _Axis(step, _pow2(step), need, inp, grad)
        return sorted(out.values(), key=lambda a: a.step)


def _up_flops(ay: _Axis, ax: _Axis, rank_u: int) -> int:
    """Multiply-adds x 2 of one intermediate sub-tile, v = sum_r (Uy_r X) Ux_r^T."""
    return rank_u * (2 * SUB * ay.inp * ax.inp + 2 * SUB * ax.inp * SUB)


def forward_flops(ay: _Axis, ax: _Axis, rank_u: int, rank_d: int) -> int:
    """2 M N K summed over one forward tile's dots."""
    rd = _rank_block(rank_d)
    sub = _up_flops(ay, ax, rank_u) + 2 * SUB * SUB * rd * ax.block           # + W_s += act(v) Dx_c^T
    return ay.subs * ax.subs * sub + ay.subs * 2 * ay.block * rd * SUB * ax.block      # + Y += Dy_s W_s


def backward_flops(ay: _Axis, ax: _Axis, rank_u: int, rank_d: int) -> int:
    """2 M N K summed over one backward tile's dots."""
    ru = _rank_block(rank_u)
    g = rank_d * (2 * SUB * ay.grad * ax.grad + 2 * SUB * ax.grad * SUB)        # Dy_r^T dY Dx_r
    sub = _up_flops(ay, ax, rank_u) + g + 2 * SUB * SUB * ru * ax.block         # + W_s += (g m) Ux_c
    return ay.subs * ax.subs * sub + ay.subs * 2 * ay.block * ru * SUB * ax.block      # + dX += Uy_s^T W_s


@functools.lru_cache(maxsize=256)
def _tiling(up: int, down: int, ku: tuple[int, int], kd: tuple[int, int], rank_u: int, rank_d: int,
            in_hw: tuple[int, int], out_hw: tuple[int, int], max_step: int):
    """((forward y, x), (backward y, x)) tilings with the fewest multiplies for the whole plane (ku, kd: (h, w) taps);
    None where a window exceeds MAX_BLOCK."""
    axes = []
    for k_u, k_d, n_in, n_out in zip(ku, kd, in_hw, out_hw):
        inp, grad = _pow2(_span(SUB, up, k_u)), _pow2(_span(SUB, down, k_d))
        if max(inp, grad) > MAX_BLOCK:
            return None
        axes.append((_Axis.candidates(down, k_d, inp, grad, n_out, max_step),
                     _Axis.candidates(up, k_u, inp, grad, n_in, max_step),
                     n_in, n_out))
    (fy, by, h, oh), (fx, bx, w, ow) = axes
    cdiv = triton.cdiv
    fwd = min(itertools.product(fy, fx), key=lambda a: (
        cdiv(oh, a[0].step) * cdiv(ow, a[1].step) * forward_flops(*a, rank_u, rank_d),
        cdiv(oh, a[0].step) * cdiv(ow, a[1].step)))
    bwd = min(itertools.product(by, bx), key=lambda a: (
        cdiv(h, a[0].step) * cdiv(w, a[1].step) * backward_flops(*a, rank_u, rank_d),
        cdiv(h, a[0].step) * cdiv(w, a[1].step)))
    return fwd, bwd


_FACTORS: dict = {}     # (filter identity, arguments) -> (filter, col, row); the filter is held so its address stays
_FACTORS_MAX = 64       # unique while cached (a freed filter's address could be reused by another with version 0)


def _factors(f: torch.Tensor | None, flip_filter: bool, gain: float, dtype: torch.dtype,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(col [R, fh], row [R, fw]) correlation kernels with sum_r outer(col_r, row_r) = gain * the 2-D filter.

    A 1-D filter is rank 1 (col = row = f). A 2-D filter is split by its SVD; singular values below the compute
    precision (relative to the largest) are dropped, which changes the result by less than rounding does. The SVD
    runs on the host (a device sync), so factors are cached per filter tensor, its in-place version, layout and the
    arguments: a training step reuses its layers' filters without recomputing or syncing."""
    key = None
    if f is not None:
        key = (f.data_ptr(), f._version, tuple(f.shape), f.stride(), f.dtype, f.device, flip_filter, gain, dtype,
               device)
        hit = _FACTORS.get(key)
        if hit is not None:
            return hit[1], hit[2]
    col, row = _compute_factors(f, flip_filter, gain, dtype, device)
    if key is not None:
        if len(_FACTORS) >= _FACTORS_MAX:
            _FACTORS.pop(next(iter(_FACTORS)))                          # oldest first
        _FACTORS[key] = (f, col, row)
    return col, row


def _compute_factors(f, flip_filter, gain, dtype, device):
    if f is None:
        f = torch.ones([1])
    f = f.detach().to(dtype=torch.float64)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))                                  # convolution = correlation with flipped f
    if f.ndim == 1:
        col, row = f[None] * gain, f[None]
    else:
        u, s, vh = torch.linalg.svd(f.cpu())                            # tiny: on the host
        keep = max(1, int((s > s[0] * torch.finfo(dtype).eps).sum()))
        col, row = (u[:, :keep] * s[:keep] * gain).T, vh[:keep]
    return (col.to(device=device, dtype=dtype).contiguous(), row.to(device=device, dtype=dtype).contiguous())


def fp32_precision() -> str:
    """input_precision of float32 dots: FP32_PRECISION, or TF32 when torch allows it for float32 matmuls."""
    if FP32_PRECISION is not None:
        return FP32_PRECISION
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


class _Plan:
    """Geometry, tile sizes and filter factors of one call, for both passes."""

    def __init__(self, x: torch.Tensor, fu, fd, up, down, padding, gain, slope, clamp, flip_filter):
        n, c, h, w = x.shape
        self.args = (fu, fd, up, down, padding, gain, slope, clamp, flip_filter)
        self.px0, _, self.py0, _ = parse_padding(padding)
        self.up, self.down, self.slope, self.clamp = up, down, slope, clamp
        self.compute = torch.float64 if x.dtype == torch.float64 else torch.float32
        self.precision = fp32_precision() if x.dtype == torch.float32 else "ieee"
        self.fu_w, self.fu_h = filter_size(fu)
        self.fd_w, self.fd_h = filter_size(fd)
        self.in_hw = (h, w)
        self.shape, self.dtype, self.device = x.shape, x.dtype, x.device
        gu, gd = Geometry(up, up, 1, 1, *parse_padding(padding)), Geometry(1, 1, down, down, 0, 0, 0, 0)
        self.mid_hw = gu.out_size(h, w, self.fu_w, self.fu_h)
        self.out_hw = gd.out_size(*self.mid_hw, self.fd_w, self.fd_h)
        self.fu_col, self.fu_row = _factors(fu, flip_filter, up * up * gain, self.compute, x.device)
        self.fd_col, self.fd_row = _factors(fd, flip_filter, 1.0, self.compute, x.device)
        self.rank_u, self.rank_d = self.fu_col.shape[0], self.fd_col.shape[0]
        (self.fy, self.fx), (self.by, self.bx) = _tiling(
            up, down, (self.fu_h, self.fu_w), (self.fd_h, self.fd_w), self.rank_u, self.rank_d, self.in_hw,
            tuple(self.out_hw), MAX_STEP)
        # slope and clamp as a tensor in the compute dtype: a float argument would reach the kernel as float32.
        self.act = torch.tensor([slope, 0.0 if clamp is None else clamp], dtype=self.compute, device=x.device)

    def fast_plan(self) -> fast._Plan:
        """The fast path's plan of the same call, for its differentiable backward."""
        return fast._Plan(self.shape, *self.args, self.dtype, self.device)

    def common(self) -> dict:
        """Kernel arguments shared by both passes."""
        return dict(UP=self.up, DOWN=self.down, PX0=self.px0, PY0=self.py0, KUW=self.fu_w, KUH=self.fu_h,
                    KDW=self.fd_w, KDH=self.fd_h, RANK_U=self.rank_u, RANK_D=self.rank_d,
                    act_ptr=self.act, HAS_CLAMP=self.clamp is not None, SHIFT=SHIFT,
                    FP64=self.compute == torch.float64, PREC=self.precision,
                    HALF=self.dtype in (torch.float16, torch.bfloat16),
                    EMULATE=self.dtype == torch.bfloat16 and _INTERPRETED)


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
        if max(_pow2(_span(SUB, up, ku)), _pow2(_span(SUB, down, kd))) > MAX_BLOCK:
            return (f"filters of {ku} and {kd} taps at up={up}, down={down} exceed the {MAX_BLOCK}-sample window of "
                    f"a {SUB}-sample sub-tile")
    return None


# ---------------------------------------------------------------------------------------------------------------
# Kernels

# Written for Triton's CPU interpreter too: it re-patches the language on every call of a nested @triton.jit
# function, so band loads and dots are written out inline in the loops rather than as helpers.
# Dots are tl.dot(a.to(OP).to(OPD), b.to(OP).to(OPD), acc, input_precision=PREC, out_dtype=DT). OP is the input
# dtype for float16/bfloat16 (tensor cores, float32 accumulate) and DT otherwise (a no-op cast). OPD is OP, except
# for bfloat16 in the interpreter, whose dot multiplies bfloat16's raw bits (it stores them as uint16): there the
# rounded operands multiply in float32, which is what a bfloat16 tensor-core dot does (products of bfloat16 values
# are exact in float32, sums accumulate in float32).
# Band matrices come from their index arithmetic t: tl.load(taps + r*K + t, mask=(t >= 0) & (t < K), other=0).
# Floor division is (a + d*SHIFT) // d - SHIFT: Triton's integer division truncates toward zero.

@triton.jit
def _stack_rows(w, S: tl.constexpr, R: tl.constexpr, B: tl.constexpr):
    """[S, R*B] (rank terms side by side) -> [R*S, B] (stacked), so one dot sums the terms."""
    if R == 1:
        return w
    else:
        return tl.reshape(tl.permute(tl.reshape(w, [S, R, B]), [1, 0, 2]), [R * S, B])


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
def _up_sub(xp, H, W, bias, fu_col, fu_row, ms, mc, PY0, PX0, SHIFT: tl.constexpr, UP: tl.constexpr,
            KUH: tl.constexpr, KUW: tl.constexpr, RANK_U: tl.constexpr, KIY: tl.constexpr, KIX: tl.constexpr,
            PREC: tl.constexpr, OP: tl.constexpr, OPD: tl.constexpr, DT: tl.constexpr):
    """v = U(x + b) on the SUB x SUB intermediate sub-tile at (ms, mc), gain included: sum_r Uy_r X Ux_r^T, with X
    the KIY x KIX input window that meets it (the only columns of Uy and rows of Ux^T that are not zero)."""
    S: tl.constexpr = 16
    jy = (ms - PY0 + UP * SHIFT) // UP - SHIFT      # first input sample with a tap on the sub-tile
    jx = (mc - PX0 + UP * SHIFT) // UP - SHIFT
    x = _load_plane(xp, jy, jx, H, W, KIY, KIX, bias, DT).to(OP).to(OPD)
    i = tl.arange(0, S)
    ty = tl.arange(0, KIY)[None, :] * UP - i[:, None] + (jy * UP + PY0 - ms)             # [S, KIY]
    tx = tl.arange(0, KIX)[:, None] * UP - i[None, :] + (jx * UP + PX0 - mc)             # [KIX, S]
    my, mx = (ty >= 0) & (ty < KUH), (tx >= 0) & (tx < KUW)
    v = tl.zeros([S, S], dtype=DT)
    for r in tl.static_range(RANK_U):
        uy = tl.load(fu_col + r * KUH + ty, mask=my, other=0.0).to(OP).to(OPD)
        ux_t = tl.load(fu_row + r * KUW + tx, mask=mx, other=0.0).to(OP).to(OPD)
        t = tl.dot(uy, x, input_precision=PREC, out_dtype=DT)
        v = tl.dot(t.to(OP).to(OPD), ux_t, v, input_precision=PREC, out_dtype=DT)
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
                    HAS_BIAS: tl.constexpr, SHIFT: tl.constexpr, FP64: tl.constexpr, PREC: tl.constexpr,
                    HALF: tl.constexpr, EMULATE: tl.constexpr, NSY: tl.constexpr, NSX: tl.constexpr, KIY: tl.constexpr,
                    KIX: tl.constexpr, BOY: tl.constexpr, BOX: tl.constexpr, OSY: tl.constexpr, OSX: tl.constexpr,
                    RD: tl.constexpr):
    DT: tl.constexpr = tl.float64 if FP64 else tl.float32
    OP: tl.constexpr = x_ptr.dtype.element_ty if HALF else DT
    OPD: tl.constexpr = DT if EMULATE else OP
    S: tl.constexpr = 16
    plane, oy0, ox0 = _tile(tiles, tiles_x, OSY, OSX)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + plane % C).to(DT)
    xp = x_ptr + plane.to(tl.int64) * H * W
    slope = tl.load(act_ptr)
    clamp = tl.load(act_ptr + 1)
    # Dx_c^T of every down term side by side, [S, RD*BOX] (column r*BOX + o), and Dy_s stacked to match,
    # [BOY, RD*S] (column r*S + i): a rank-r filter is one wider dot in each. Tap index = t + the sub-tile's origin.
    n = tl.arange(0, RD * BOX)[None, :]
    rx = n // BOX
    tx = tl.arange(0, S)[:, None] - (ox0 + n % BOX) * DOWN
    k = tl.arange(0, RD * S)[None, :]
    ry = k // S
    ty = k % S - (oy0 + tl.arange(0, BOY)[:, None]) * DOWN

    out = tl.zeros([BOY, BOX], dtype=DT)
    for s in range(NSY):
        ms = oy0 * DOWN + s * S                     # the sub-tile row's first intermediate sample
        w = tl.zeros([S, RD * BOX], dtype=DT)
        for c in range(NSX):
            mc = ox0 * DOWN + c * S
            v = _up_sub(xp, H, W, bias, fu_col, fu_row, ms, mc, PY0, PX0, SHIFT, UP, KUH, KUW, RANK_U, KIY, KIX,
                        PREC, OP, OPD, DT)
            a = tl.where(v > 0, v, v * slope)       # the gain is already in the taps
            if HAS_CLAMP:
                a = tl.minimum(tl.maximum(a, -clamp), clamp)
            t = tx + mc
            dx_t = tl.load(fd_row + rx * KDW + t, mask=(t >= 0) & (t < KDW) & (rx < RANK_D), other=0.0)
            w = tl.dot(a.to(OP).to(OPD), dx_t.to(OP).to(OPD), w, input_precision=PREC, out_dtype=DT)
        t = ty + ms
        dy = tl.load(fd_col + ry * KDH + t, mask=(t >= 0) & (t < KDH) & (ry < RANK_D), other=0.0)
        out = tl.dot(dy.to(OP).to(OPD), _stack_rows(w, S, RD, BOX).to(OP).to(OPD), out, input_precision=PREC,
                     out_dtype=DT)

    _store_tile(y_ptr, plane, oy0, ox0, OH, OW, out, BOY, BOX, OSY, OSX)


@triton.jit
def _backward_kernel(x_ptr, b_ptr, dy_ptr, dx_ptr, db_ptr, fu_col, fu_row, fd_col, fd_row,
                     C, H, W, OH, OW, tiles_x, tiles,
                     UP: tl.constexpr, DOWN: tl.constexpr, PX0, PY0,
                     KUW: tl.constexpr, KUH: tl.constexpr, KDW: tl.constexpr, KDH: tl.constexpr,
                     RANK_U: tl.constexpr, RANK_D: tl.constexpr, act_ptr, HAS_CLAMP: tl.constexpr,
                     HAS_BIAS: tl.constexpr, SHIFT: tl.constexpr, FP64: tl.constexpr, PREC: tl.constexpr,
                     HALF: tl.constexpr, EMULATE: tl.constexpr, NSY: tl.constexpr, NSX: tl.constexpr, KIY: tl.constexpr,
                     KIX: tl.constexpr, KGY: tl.constexpr, KGX: tl.constexpr, BDY: tl.constexpr,
                     BDX: tl.constexpr, ISY: tl.constexpr, ISX: tl.constexpr, RU: tl.constexpr):
    DT: tl.constexpr = tl.float64 if FP64 else tl.float32
    OP: tl.constexpr = x_ptr.dtype.element_ty if HALF else DT
    OPD: tl.constexpr = DT if EMULATE else OP
    S: tl.constexpr = 16
    plane, qy0, qx0 = _tile(tiles, tiles_x, ISY, ISX)     # the first input sample whose gradient this tile writes
    my0 = qy0 * UP + PY0 - (KUH - 1)                # first intermediate sample that reaches it through U
    mx0 = qx0 * UP + PX0 - (KUW - 1)
    bias = 0.0
    if HAS_BIAS:
        bias = tl.load(b_ptr + plane % C).to(DT)
    xp = x_ptr + plane.to(tl.int64) * H * W
    dyp = dy_ptr + plane.to(tl.int64) * OH * OW
    slope = tl.load(act_ptr)
    clamp = tl.load(act_ptr + 1)
    i = tl.arange(0, S)
    # Ux_c of every up term side by side, [S, RU*BDX] (column r*BDX + q), and Uy_s^T stacked to match,
    # [BDY, RU*S] (column r*S + i). Tap index = t minus the sub-tile's origin.
    n = tl.arange(0, RU * BDX)[None, :]
    rx = n // BDX
    tux = (qx0 + n % BDX) * UP + PX0 - i[:, None]
    k = tl.arange(0, RU * S)[None, :]
    ry = k // S
    tuy = (qy0 + tl.arange(0, BDY)[:, None]) * UP + PY0 - k % S
    # D^T on a sub-tile, [S, KGY] and D, [KGX, S]: tap index = t plus (sub-tile origin - window origin * DOWN).
    tdy = i[:, None] - tl.arange(0, KGY)[None, :] * DOWN
    tdx = i[None, :] - tl.arange(0, KGX)[:, None] * DOWN

    dxt = tl.zeros([BDY, BDX], dtype=DT)
    for s in range(NSY):
        ms = my0 + s * S
        gy = (ms - (KDH - 1) + DOWN * SHIFT) // DOWN - SHIFT      # first output gradient that reaches the row
        w = tl.zeros([S, RU * BDX], dtype=DT)
        for c in range(NSX):
            mc = mx0 + c * S
            gx = (mc - (KDW - 1) + DOWN * SHIFT) // DOWN - SHIFT
            # The mask m = act'(v) on the sub-tile, from v = U(x + b) recomputed.
            v = _up_sub(xp, H, W, bias, fu_col, fu_row, ms, mc, PY0, PX0, SHIFT, UP, KUH, KUW, RANK_U, KIY, KIX,
                        PREC, OP, OPD, DT)
            m = tl.where(v > 0, 1.0, slope)
            if HAS_CLAMP:
                a = v * m
                m = tl.where((a > -clamp) & (a < clamp), m, 0.0)
            # g = D^T dy on the sub-tile. Outputs outside the image load as zero, so g vanishes outside the
            # intermediate image.
            dyt = _load_plane(dyp, gy, gx, OH, OW, KGY, KGX, 0.0, DT).to(OP).to(OPD)
            t_y = tdy + (ms - gy * DOWN)
            t_x = tdx + (mc - gx * DOWN)
            g = tl.zeros([S, S], dtype=DT)
            for r in tl.static_range(RANK_D):
                dy_t = tl.load(fd_col + r * KDH + t_y, mask=(t_y >= 0) & (t_y < KDH), other=0.0)  # [S, KGY]
                dx_ = tl.load(fd_row + r * KDW + t_x, mask=(t_x >= 0) & (t_x < KDW), other=0.0)   # [KGX, S]
                h = tl.dot(dy_t.to(OP).to(OPD), dyt, input_precision=PREC, out_dtype=DT)             # [S, KGX]
                g = tl.dot(h.to(OP).to(OPD), dx_.to(OP).to(OPD), g, input_precision=PREC, out_dtype=DT)
            t = tux - mc
            ux = tl.load(fu_row + rx * KUW + t, mask=(t >= 0) & (t < KUW) & (rx < RANK_U), other=0.0)  # [S, RU*BDX]
            w = tl.dot((g * m).to(OP).to(OPD), ux.to(OP).to(OPD), w, input_precision=PREC, out_dtype=DT)
        t = tuy - ms
        uy_t = tl.load(fu_col + ry * KUH + t, mask=(t >= 0) & (t < KUH) & (ry < RANK_U), other=0.0)  # [BDY, RU*S]
        dxt = tl.dot(uy_t.to(OP).to(OPD), _stack_rows(w, S, RU, BDX).to(OP).to(OPD), dxt, input_precision=PREC,
                     out_dtype=DT)

    keep = _store_tile(dx_ptr, plane, qy0, qx0, H, W, dxt, BDY, BDX, ISY, ISX)
    if HAS_BIAS:
        tl.store(db_ptr + tl.program_id(0), tl.sum(tl.where(keep, dxt, 0.0)))


# ---------------------------------------------------------------------------------------------------------------
# Launchers and the autograd Function

NUM_WARPS = 4           # the largest live operands are the accumulator (up to 64x64) and one [16, 64] row slab


def _forward(x: torch.Tensor, b: torch.Tensor | None, plan: _Plan) -> torch.Tensor:
    n, c, h, w = x.shape
    oh, ow = plan.out_hw
    y = x.new_empty([n, c, oh, ow])
    ay, ax = plan.fy, plan.fx
    tiles_x, tiles_y = triton.cdiv(ow, ax.step), triton.cdiv(oh, ay.step)
    if y.numel() == 0:
        return y
    _forward_kernel[(n * c * tiles_x * tiles_y,)](
        x, x if b is None else b, y, plan.fu_col, plan.fu_row, plan.fd_col, plan.fd_row,
        c, h, w, oh, ow, tiles_x, tiles_x * tiles_y, HAS_BIAS=b is not None, **plan.common(),
        NSY=ay.subs, NSX=ax.subs, KIY=ay.inp, KIX=ax.inp, BOY=ay.block, BOX=ax.block, OSY=ay.step, OSX=ax.step,
        RD=_rank_block(plan.rank_d), num_warps=NUM_WARPS)
    return y


def _backward(x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor, plan: _Plan):
    n, c, h, w = x.shape
    oh, ow = plan.out_hw
    ay, ax = plan.by, plan.bx
    tiles_x, tiles_y = triton.cdiv(w, ax.step), triton.cdiv(h, ay.step)
    grid = n * c * tiles_x * tiles_y
    dx = torch.empty_like(x)
    db = torch.empty(grid if b is not None else 1, dtype=plan.compute, device=x.device)     # per-tile sums
    _backward_kernel[(grid,)](
        x, x if b is None else b, dy.contiguous(), dx, db, plan.fu_col, plan.fu_row, plan.fd_col, plan.fd_row,
        c, h, w, oh, ow, tiles_x, tiles_x * tiles_y, HAS_BIAS=b is not None, **plan.common(),
        NSY=ay.subs, NSX=ax.subs, KIY=ay.inp, KIX=ax.inp, KGY=ay.grad, KGX=ax.grad, BDY=ay.block, BDX=ax.block,
        ISY=ay.step, ISX=ax.step, RU=_rank_block(plan.rank_u), num_warps=NUM_WARPS)
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
    fast.check_args(x, b, up, down, gain)
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
