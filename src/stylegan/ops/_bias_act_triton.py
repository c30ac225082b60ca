"""bias_act as one Triton kernel each way: y = clamp(act(x + b) * gain), and its gradient.

- Forward reads x once and writes y once: the bias add, the activation, the gain and the clamp are fused, where the
  reference makes a full-size tensor for each step. Every element computes in float32 (float64 for float64 inputs)
  and stores in the output's dtype.
- x is made contiguous and seen as a flat array; the bias index of element i is (i // inner) % channels, where inner
  is the product of the sizes after `dim`.
- Backward keeps only x and b and recomputes v = x + b, so it reads x and dy and writes dv in one pass:
      dv = dy * act'(v) * gain * [|act(v) * gain| <= clamp],   dx = dv,   db = dv summed over every dim but `dim`.
- Gradients of any order: act' is not constant (tanh, sigmoid, elu, ...), so when backward must itself be
  differentiable (create_graph=True, as R1 needs) it runs the reference's ops under autograd instead of the kernel.

Import this module only when triton imports (see `_dispatch.kernel_unsupported`); the tests run it in Triton's
interpreter (TRITON_INTERPRET=1, read when the kernels below are defined).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from stylegan.ops.bias_act import _resolve, bias_act_ref

BLOCK = 1024            # elements per program: 8 per thread with 4 warps, contiguous, so loads are coalesced
DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SELU_SCALE = 1.0507009873554805     # Klambauer et al. 2017, eq. 2: selu(v) = scale * elu(v, alpha)
SELU_ALPHA = 1.6732632423543772


def unsupported(x: torch.Tensor, b: torch.Tensor | None) -> str | None:
    """Why the kernel cannot run on these inputs (beyond device and import), or None when it can."""
    for t in (x, b):
        if t is not None and t.dtype not in DTYPES:
            return f"dtype {t.dtype}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# The activations and their derivatives, on a block of v = x + b in the compute dtype. ACT is a constexpr name, so
# each (activation, dtype) pair compiles to straight-line code. selu runs as "elu" with selu's alpha and its scale
# folded into the gain. alpha, gain and clamp come from a tensor in the compute dtype, not as kernel scalars (Triton
# passes Python floats as float32, which would cost float64 inputs their precision).

@triton.jit
def _act(v, alpha, ACT: tl.constexpr):
    if ACT == "linear":
        y = v
    elif ACT == "relu":
        y = tl.where(v > 0, v, 0.0)
    elif ACT == "lrelu":
        y = tl.where(v > 0, v, v * alpha)
    elif ACT == "tanh":
        e = tl.exp(-2.0 * tl.abs(v))                                  # in (0, 1]: no overflow for large |v|
        t = (1.0 - e) / (1.0 + e)
        y = tl.where(v < 0, -t, t)
    elif ACT == "sigmoid":
        y = tl.sigmoid(v)
    elif ACT == "elu":
        y = tl.where(v > 0, v, alpha * (tl.exp(tl.minimum(v, 0.0)) - 1.0))
    elif ACT == "softplus":
        y = tl.maximum(v, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(v)))    # log(1 + e^v) without overflow
    else:
        tl.static_assert(ACT == "swish")
        y = v * tl.sigmoid(v)
    return y


@triton.jit
def _act_grad(v, y, alpha, ACT: tl.constexpr):
    """d act(v) / dv, given y = act(v). At v == 0 the one-sided choices are torch's (relu 0, lrelu alpha)."""
    if ACT == "linear":
        d = tl.full(v.shape, 1.0, v.dtype)
    elif ACT == "relu":
        d = tl.where(v > 0, 1.0, 0.0)
    elif ACT == "lrelu":
        d = tl.where(v > 0, 1.0, alpha)
    elif ACT == "tanh":
        d = 1.0 - y * y
    elif ACT == "sigmoid":
        d = y * (1.0 - y)
    elif ACT == "elu":
        d = tl.where(v > 0, 1.0, y + alpha)                          # alpha * e^v
    elif ACT == "softplus":
        d = tl.sigmoid(v)
    else:
        tl.static_assert(ACT == "swish")
        s = tl.sigmoid(v)
        d = s + v * s * (1.0 - s)
    return d


@triton.jit
def _kernel(x_ptr, b_ptr, dy_ptr, out_ptr, p_ptr, numel, inner, channels, ACT: tl.constexpr, COMPUTE: tl.constexpr,
            HAS_BIAS: tl.constexpr, HAS_CLAMP: tl.constexpr, BACKWARD: tl.constexpr, BLOCK: tl.constexpr):
    """Forward: out = clamp(act(v) * gain). Backward: out = dv = dy * act'(v) * gain where the clamp let y through."""
    alpha, gain, clamp = tl.load(p_ptr), tl.load(p_ptr + 1), tl.load(p_ptr + 2)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    v = tl.load(x_ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    if HAS_BIAS:
        v += tl.load(b_ptr + (offs // inner) % channels, mask=mask, other=0.0).to(COMPUTE)
    y = _act(v, alpha, ACT)
    if BACKWARD:
        out = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(COMPUTE) * _act_grad(v, y, alpha, ACT) * gain
        if HAS_CLAMP:
            out = tl.where(tl.abs(y * gain) <= clamp, out, 0.0)     # the clamp passes its bounds, cuts beyond
    else:
        out = y * gain
        if HAS_CLAMP:
            out = tl.minimum(tl.maximum(out, -clamp), clamp)
    tl.store(out_ptr + offs, out.to(out_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------------------------
# Launching, and the op with its gradient.

@dataclass(frozen=True)
class _Spec:
    """One call's resolved arguments. dim is non-negative."""
    dim: int
    act: str
    alpha: float
    gain: float
    clamp: float | None


@functools.lru_cache(maxsize=256)
def _params(act: str, alpha: float, gain: float, clamp: float | None, dtype: torch.dtype,
            device: torch.device) -> tuple[str, torch.Tensor]:
    """The kernel's activation name and its [alpha, gain, clamp] in the compute dtype, made once per layer setting
    (a fresh tensor per call would be a host-to-device copy per call)."""
    if act == "selu":
        act, alpha, gain = "elu", SELU_ALPHA, gain * SELU_SCALE
    elif act == "elu":
        alpha = 1.0                                                 # the reference's elu ignores alpha
    return act, torch.tensor([alpha, gain, 0.0 if clamp is None else clamp], dtype=dtype, device=device)


def _launch(x: torch.Tensor, b: torch.Tensor | None, out: torch.Tensor, spec: _Spec,
            dy: torch.Tensor | None = None) -> torch.Tensor:
    """Run the kernel forward (dy None: out = y) or backward (out = dv) on contiguous x and dy."""
    numel = x.numel()
    if numel == 0:
        return out
    channels = x.shape[spec.dim] if b is not None else 1
    inner = math.prod(x.shape[spec.dim + 1:]) if b is not None else 1
    wide = out.dtype == torch.float64
    act, params = _params(spec.act, spec.alpha, spec.gain, spec.clamp, torch.float64 if wide else torch.float32,
                          x.device)
    _kernel[(triton.cdiv(numel, BLOCK),)](
        x, x if b is None else b, x if dy is None else dy, out, params, numel, inner, channels, ACT=act,
        COMPUTE=tl.float64 if wide else tl.float32, HAS_BIAS=b is not None, HAS_CLAMP=spec.clamp is not None,
        BACKWARD=dy is not None, BLOCK=BLOCK)
    return out


def _differentiable_backward(x: torch.Tensor, b: torch.Tensor | None, dy: torch.Tensor, spec: _Spec) -> torch.Tensor:
    """dv from the reference's ops under autograd, so that it can be differentiated again (double backward)."""
    v = x if b is None else x + b.reshape([-1 if i == spec.dim else 1 for i in range(x.ndim)])
    if not v.requires_grad:                     # neither x nor b carries a graph: dv depends on dy alone
        v = v.detach().requires_grad_(True)
    y = bias_act_ref(v, None, act=spec.act, alpha=spec.alpha, gain=spec.gain, clamp=spec.clamp)
    (dv,) = torch.autograd.grad(y, v, dy, create_graph=True)
    return dv


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, b, spec: _Spec):
        dtype = x.dtype if b is None else torch.promote_types(x.dtype, b.dtype)    # as the reference's x + b
        y = _launch(x.contiguous(), b, torch.empty(x.shape, dtype=dtype, device=x.device), spec)
        ctx.save_for_backward(x, b)                 # x itself, not a copy: double backward differentiates it
        ctx.spec = spec
        return y

    @staticmethod
    def backward(ctx, dy):
        x, b = ctx.saved_tensors
        spec = ctx.spec
        if torch.is_grad_enabled():
            dv = _differentiable_backward(x, b, dy, spec)
        else:
            dv = _launch(x.contiguous(), b, torch.empty(x.shape, dtype=dy.dtype, device=x.device), spec,
                         dy=dy.contiguous())
        dx = dv.to(x.dtype) if ctx.needs_input_grad[0] else None
        db = None
        if b is not None and ctx.needs_input_grad[1]:
            others = [i for i in range(x.ndim) if i != spec.dim]
            db = (dv.sum(others) if others else dv).to(b.dtype)         # sum([]) would sum over every dim
        return dx, db, None


def bias_act_triton(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
                    alpha: float | None = None, gain: float | None = None,
                    clamp: float | None = None) -> torch.Tensor:
    """bias_act as Triton kernels; same arguments and result as `bias_act_ref` (to float rounding)."""
    _, alpha, gain, clamp = _resolve(x, b, dim, act, alpha, gain, clamp)
    if b is not None:
        dim %= x.ndim
    return _BiasAct.apply(x, b, _Spec(dim, act, alpha, gain, clamp))
