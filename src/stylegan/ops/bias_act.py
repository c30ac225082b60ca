"""bias_act: add a bias, apply an activation, scale by a gain, clamp. The fused step after every layer.

Each activation carries its default alpha and gain; the gains keep the signal's magnitude (He et al. 2015
for the ReLU family, hence sqrt(2)). `clamp` bounds the output to [-clamp, clamp] (StyleGAN2-ADA's conv_clamp,
which keeps fp16 activations finite); values outside receive zero gradient.

`bias_act_ref` is the ground truth. `bias_act` runs it, or on CUDA the Triton kernel (`_bias_act_triton`), which is
tested against it on the CPU under Triton's interpreter, values and gradients of the first and second order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from stylegan.ops._dispatch import kernel_unsupported, pick


@dataclass(frozen=True)
class Activation:
    func: Callable[[torch.Tensor, float], torch.Tensor]   # (x, alpha) -> y
    def_alpha: float                                      # default negative slope (lrelu) or unused
    def_gain: float                                       # default output gain


ACTIVATIONS: dict[str, Activation] = {
    "linear":   Activation(lambda x, a: x,                        0.0, 1.0),
    "relu":     Activation(lambda x, a: F.relu(x),                0.0, math.sqrt(2)),
    "lrelu":    Activation(lambda x, a: F.leaky_relu(x, a),       0.2, math.sqrt(2)),
    "tanh":     Activation(lambda x, a: torch.tanh(x),            0.0, 1.0),
    "sigmoid":  Activation(lambda x, a: torch.sigmoid(x),         0.0, 1.0),
    "elu":      Activation(lambda x, a: F.elu(x),                 0.0, 1.0),
    "selu":     Activation(lambda x, a: F.selu(x),                0.0, 1.0),
    "softplus": Activation(lambda x, a: F.softplus(x),            0.0, 1.0),
    "swish":    Activation(lambda x, a: torch.sigmoid(x) * x,     0.0, math.sqrt(2)),
}


def _resolve(x: torch.Tensor, b: torch.Tensor | None, dim: int, act: str, alpha: float | None,
             gain: float | None, clamp: float | None) -> tuple[Activation, float, float, float | None]:
    """The arguments' checks and defaults, shared by every path: (activation, alpha, gain, clamp or None)."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
    spec = ACTIVATIONS[act]
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias must be [{x.shape[dim]}], got {tuple(b.shape)}")
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    clamp = float(clamp) if clamp is not None and clamp >= 0 else None
    return spec, alpha, gain, clamp


def bias_act_ref(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
                 alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Reference bias_act: y = clamp(act(x + b, alpha) * gain, -clamp, clamp), step by step with standard ops.

    x: any shape; b: [x.shape[dim]] or None; act: a key of ACTIVATIONS;
    alpha/gain: None uses the activation's default; clamp: None or a value >= 0 (a negative value means none).
    """
    spec, alpha, gain, clamp = _resolve(x, b, dim, act, alpha, gain, clamp)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None,
             impl: str = "auto") -> torch.Tensor:
    """y = clamp(act(x + b, alpha) * gain, -clamp, clamp), with the implementation chosen by `impl`.

    Arguments as in `bias_act_ref`. impl: 'auto' (the Triton kernel on CUDA, else the reference), 'ref',
    'triton' (`_bias_act_triton`, one fused pass each way; gradients of any order), or 'fast' (there is no
    pure-torch fast path: the reference runs)."""
    triton = kernel_unsupported("_bias_act_triton", impl, (x, b), x, b)
    if pick("bias_act", impl, x.device, fast=False, triton=triton) == "triton":
        from stylegan.ops._bias_act_triton import bias_act_triton
        return bias_act_triton(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
