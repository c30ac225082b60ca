"""Fused filtered_lrelu: polyphase upsampling, leaky ReLU and clamp, polyphase downsampling, one chunk at a time.

Same result as `filtered_lrelu_ref`, computed the way StyleGAN3's CUDA kernel avoids its costs, in plain PyTorch:
- Resampling is polyphase (see `_upfirdn2d_fast`): inserted zeros are never multiplied and only kept outputs are
  computed. The gain is folded into the upsampling filter, since lrelu(v) * gain == lrelu(v * gain) for gain > 0.
- The channels are processed in chunks small enough that the upsampled intermediate (up^2 times the input) stays
  in the CPU cache; it never exists for the whole batch.
- Training memory: the reference's autograd graph keeps every intermediate at the upsampled resolution (about
  twenty input-sized float tensors per layer). The backward pass is linear in the incoming gradient,
      dx = U^T (m * D^T dy),   m = lrelu'(v) * [lrelu(v) within the clamp],   v = U(x + b),
  so this op keeps only its input x (and b) and recomputes v chunk by chunk in backward. x is as large as a one-byte
  code per upsampled pixel would be for up=2 (a quarter of it for up=4), and recomputing v costs less than
  computing such a code in the forward pass.
- Second-order gradients: m is piecewise constant in x, so d(dx)/dx = 0 almost everywhere and dx is linear in dy.
  When a graph is requested (create_graph=True), backward runs as differentiable upfirdn2d ops.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from stylegan.ops._upfirdn2d_fast import (Geometry, Resampler, _UpFirDn2d, chunk_size, is_separable, load_chunk,
                                          run_chunked)
from stylegan.ops.upfirdn2d import filter_size, parse_padding

_aten = torch.ops.aten


class _Plan:
    """The geometry and prepared filters of one call, for both passes."""

    def __init__(self, x_shape, fu, fd, up, down, padding, gain, slope, clamp, flip_filter, dtype, device):
        n, c, h, w = x_shape
        px0, px1, py0, py1 = parse_padding(padding)
        fuw, fuh = filter_size(fu)
        fdw, fdh = filter_size(fd)
        self.fu, self.fd, self.flip_filter, self.slope, self.clamp = fu, fd, flip_filter, slope, clamp
        self.up_gain = up * up * gain                               # upfirdn2d's gain up**2, times the lrelu gain
        self.gu = Geometry(up, up, 1, 1, px0, px1, py0, py1)
        self.gd = Geometry(1, 1, down, down, 0, 0, 0, 0)
        self.in_hw = (h, w)
        self.mid_hw = self.gu.out_size(h, w, fuw, fuh)
        self.out_hw = self.gd.out_size(*self.mid_hw, fdw, fdh)
        self.separable_u, self.separable_d = is_separable(fu, dtype), is_separable(fd, dtype)
        self.up = Resampler(fu, self.gu, flip_filter, self.up_gain, dtype, device, self.separable_u)
        self.down = Resampler(fd, self.gd, flip_filter, 1.0, dtype, device, self.separable_d)
        work = max(self.up.work_size(h, w), self.mid_hw[0] * self.mid_hw[1])
        self.step = chunk_size(n * c, work, torch.finfo(dtype).bits // 8)

    def activate_(self, v: torch.Tensor) -> torch.Tensor:
        """lrelu then clamp, in place on the (gain-scaled) upsampled chunk v."""
        if self.slope != 1:
            F.leaky_relu_(v, self.slope)
        if self.clamp is not None:
            v.clamp_(-self.clamp, self.clamp)
        return v

    def mask_grad_(self, g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """g * d activate(v) / dv, in place: slope on the negative side, 0 where the clamp cut the value."""
        if self.slope != 1:
            _aten.leaky_relu_backward.grad_input(g, v, self.slope, False, grad_input=g)
        if self.clamp is not None:
            # lrelu(v) lies in [-clamp, clamp] exactly when v lies in [-clamp/slope, clamp].
            lo = -self.clamp / self.slope if self.slope > 0 else -math.inf
            _aten.hardtanh_backward.grad_input(g, v, lo, self.clamp, grad_input=g)
        return g


class _FilteredLReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, plan: _Plan):
        n = x.shape[0]
        bias = None if b is None else b.to(x.dtype).repeat(n)
        y = run_chunked(x, plan.out_hw, plan.step, lambda chunk, _: plan.down(plan.activate_(plan.up(chunk))),
                        bias=bias)
        ctx.plan = plan
        ctx.save_for_backward(x, b)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        plan = ctx.plan
        if torch.is_grad_enabled():
            dx = _differentiable_backward(plan, x, b, dy)
        else:
            dx = _fused_backward(plan, x, b, dy)
        db = dx.sum([0, 2, 3]) if b is not None and ctx.needs_input_grad[1] else None
        return dx, db, None


def _bias_per_channel(x: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor | None:
    return None if b is None else b.to(x.dtype).repeat(x.shape[0])          # [N*C]: one per folded channel


def _fused_backward(plan: _Plan, x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor) -> torch.Tensor:
    """dx = U^T(m * D^T dy), chunk by chunk, recomputing v = U(x + b) for each chunk."""
    down_t = Resampler(plan.fd, plan.gd.adjoint(*plan.mid_hw, *filter_size(plan.fd)), not plan.flip_filter, 1.0,
                       dy.dtype, dy.device, plan.separable_d)
    up_t = Resampler(plan.fu, plan.gu.adjoint(*plan.in_hw, *filter_size(plan.fu)), not plan.flip_filter,
                     plan.up_gain, dy.dtype, dy.device, plan.separable_u)
    xs = x.reshape(1, -1, *x.shape[2:])
    bias = _bias_per_channel(x, b)

    def body(chunk, start):
        g = down_t(chunk)                                                   # D^T dy, at the upsampled size
        v = plan.up(load_chunk(xs, start, chunk.shape[1], bias))
        return up_t(plan.mask_grad_(g, v))

    return run_chunked(dy, plan.in_hw, plan.step, body)


def _differentiable_backward(plan: _Plan, x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor) -> torch.Tensor:
    """The same dx from differentiable ops, for double backward: d(dx)/d(dy); the mask is a constant."""
    with torch.no_grad():
        xs = x.reshape(1, -1, *x.shape[2:])
        v = plan.up(load_chunk(xs, 0, xs.shape[1], _bias_per_channel(x, b)))
        m = plan.mask_grad_(torch.ones_like(v), v).reshape(x.shape[0], x.shape[1], *plan.mid_hw)
    g = _UpFirDn2d.apply(dy, plan.fd, plan.gd.adjoint(*plan.mid_hw, *filter_size(plan.fd)), not plan.flip_filter, 1.0,
                         plan.separable_d)
    return _UpFirDn2d.apply(g * m, plan.fu, plan.gu.adjoint(*plan.in_hw, *filter_size(plan.fu)),
                            not plan.flip_filter, plan.up_gain, plan.separable_u)


def supports(gain: float) -> bool:
    """The gain must be positive to fold it into the upsampling filter (StyleGAN3 uses sqrt(2) and 1)."""
    return gain > 0


def check_args(x: torch.Tensor, b: torch.Tensor | None, up, down, gain: float) -> None:
    """Raise ValueError for arguments no fused path takes (shared with `_filtered_lrelu_triton`)."""
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W], got {tuple(x.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError("up and down must be integers >= 1")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[1]):
        raise ValueError(f"bias must be [{x.shape[1]}], got {tuple(b.shape)}")
    if not supports(gain):
        raise ValueError(f"the fused filtered_lrelu needs gain > 0, got {gain}")


def filtered_lrelu_fast(x: torch.Tensor, fu: torch.Tensor | None = None, fd: torch.Tensor | None = None,
                        b: torch.Tensor | None = None, up: int = 1, down: int = 1, padding=0, gain: float = 2 ** 0.5,
                        slope: float = 0.2, clamp: float | None = None, flip_filter: bool = False) -> torch.Tensor:
    """Fused filtered_lrelu; same arguments and result as `filtered_lrelu_ref`. Requires gain > 0."""
    check_args(x, b, up, down, gain)
    clamp = None if clamp is None or clamp < 0 else float(clamp)
    plan = _Plan(x.shape, fu, fd, up, down, padding, float(gain), float(slope), clamp, bool(flip_filter),
                 x.dtype, x.device)
    return _FilteredLReLU.apply(x, b, plan)
