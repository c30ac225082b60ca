"""bias_act's Triton kernels against the reference, run on the CPU in Triton's interpreter (TRITON_INTERPRET=1).

Every activation with and without the clamp: values and gradients (x and b) of the first and second order, in
float64, float32, float16 and bfloat16; the bias along any dim; the dispatch.
"""
import warnings

import pytest
import torch

from stylegan.ops import _dispatch
from stylegan.ops.bias_act import ACTIVATIONS, bias_act, bias_act_ref
from test_ops_bias_act import _rand

if _dispatch.triton_unsupported(torch.empty(0)) is not None:                 # no triton, or TRITON_INTERPRET=0
    pytest.skip(f"the kernels cannot run: {_dispatch.triton_unsupported(torch.empty(0))}", allow_module_level=True)

from stylegan.ops import _bias_act_triton  # noqa: E402  (after the skips: it imports triton)
from stylegan.ops._bias_act_triton import bias_act_triton  # noqa: E402

F64 = torch.float64
TOLERANCES = {torch.float32: dict(rtol=2e-5, atol=2e-5), F64: dict(rtol=1e-10, atol=1e-10)}
# The kernel computes in float32 and rounds once to the output dtype, at most one unit of roundoff (2^-11 for
# float16, 2^-8 for bfloat16) of |y|: the tolerances allow two. The bias gradient sums rounded elements.
LOW_PRECISION = {torch.float16: dict(rtol=2 ** -10, atol=1e-3), torch.bfloat16: dict(rtol=2 ** -7, atol=1e-2)}
CLAMP = 0.5                     # cuts a good part of x * 3 (the tests check that it does)


def _inputs(dtype, shape=(2, 5, 3, 4), dim=1, seed=0):
    x = (_rand(*shape, seed=seed) * 3).to(dtype)
    b = _rand(shape[dim], seed=seed + 1).to(dtype)
    return x, b


def _values_and_grads(op, x, b, dy, **kw):
    """(y, dL/dx, dL/db) of op for L = <y, dy>."""
    x, b = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    y = op(x, b, **kw)
    return (y.detach(), *torch.autograd.grad(y, [x, b], dy))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("clamp", [None, CLAMP])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_values_and_gradients_match_ref(act, clamp, dtype):
    x, b = _inputs(dtype)
    dy = _rand(*x.shape, seed=2).to(dtype)
    ours = _values_and_grads(bias_act_triton, x, b, dy, act=act, clamp=clamp)
    ref = _values_and_grads(bias_act_ref, x, b, dy, act=act, clamp=clamp)
    if clamp is not None:
        cut = ref[0].abs() == clamp
        assert cut.any() and not cut.all()                                 # the clamp is exercised
    torch.testing.assert_close(ours, ref, **TOLERANCES[dtype])


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_matches_float32_ref(act, dtype):
    # Against the float32 reference on the same (rounded) inputs: the kernel rounds only its result.
    x, b = _inputs(dtype)
    dy = _rand(*x.shape, seed=2).to(dtype)
    ours = _values_and_grads(bias_act_triton, x, b, dy, act=act, clamp=4.0)
    assert all(t.dtype == dtype for t in ours)
    ref = _values_and_grads(bias_act_ref, x.float(), b.float(), dy.float(), act=act, clamp=4.0)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o.float(), r, **LOW_PRECISION[dtype])


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_second_order_gradients_match_ref(act):
    # R1-style: differentiate a function of the gradient (create_graph=True) with respect to x and b.
    x, b = _inputs(F64, shape=(2, 3, 4))
    w = _rand(*x.shape, seed=3)
    results = []
    for op in (bias_act_ref, bias_act_triton):
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        y = op(torch.sin(xi), bi, act=act, clamp=2.0)                     # nonlinear before: d2/dx2 != 0 for all
        gx, gb = torch.autograd.grad((y * w).sum(), [xi, bi], create_graph=True)
        # (b gets no second-order gradient from the piecewise linear activations: materialise it as zeros)
        ggx, ggb = torch.autograd.grad(gx.square().sum() + gb.sin().sum(), [xi, bi], allow_unused=True,
                                       materialize_grads=True)
        results.append((gx.detach(), gb.detach(), ggx, ggb))
    torch.testing.assert_close(results[1], results[0], **TOLERANCES[F64])


@pytest.mark.parametrize("act", ["lrelu", "tanh", "selu"])
def test_gradcheck_and_gradgradcheck(act):
    x, b = _inputs(F64, shape=(2, 3, 2))
    fn = lambda x, b: bias_act_triton(x, b, act=act, clamp=4.0)                    # noqa: E731
    args = (x.requires_grad_(True), b.requires_grad_(True))
    assert torch.autograd.gradcheck(fn, args, fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, args, fast_mode=True)


@pytest.mark.parametrize("shape,dim", [((7, 6), 1), ((6,), 0), ((3, 4, 5), 2), ((3, 4, 5), -1), ((4, 3, 2, 2), 0)])
def test_bias_along_any_dim(shape, dim):
    x, b = _inputs(F64, shape=shape, dim=dim)
    dy = _rand(*x.shape, seed=2)
    ours = _values_and_grads(bias_act_triton, x, b, dy, dim=dim, act="lrelu", alpha=0.3, gain=1.7)
    ref = _values_and_grads(bias_act_ref, x, b, dy, dim=dim % len(shape), act="lrelu", alpha=0.3, gain=1.7)
    torch.testing.assert_close(ours, ref, **TOLERANCES[F64])


def test_no_bias_non_contiguous_input_empty_input_and_dtype_promotion():
    x = _rand(4, 3, 5).requires_grad_(True)
    results = []
    for op in (bias_act_ref, bias_act_triton):
        y = op(x.transpose(0, 2), act="swish", gain=0.5)                  # [5, 3, 4], not contiguous
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        results.append((y.detach(), gx.detach(), *torch.autograd.grad(gx.sum(), x)))
    torch.testing.assert_close(results[1], results[0], **TOLERANCES[F64])
    assert bias_act_triton(torch.zeros(0, 3), torch.ones(3), act="relu").shape == (0, 3)
    # As the reference's x + b: a float16 x with a float32 bias gives float32.
    x16, b32 = _rand(2, 3).half(), _rand(3, seed=1).float()
    y = bias_act_triton(x16, b32, act="tanh")
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, bias_act_ref(x16, b32, act="tanh"), **TOLERANCES[torch.float32])


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act_triton(torch.zeros(2, 3), act="gelu")
    with pytest.raises(ValueError, match="bias must be"):
        bias_act_triton(torch.zeros(2, 3), torch.zeros(2))


# --- dispatch --------------------------------------------------------------------------------------------------

def test_triton_impl_runs_the_kernel_and_auto_on_cpu_runs_the_reference(monkeypatch):
    calls = []
    real = _bias_act_triton.bias_act_triton
    monkeypatch.setattr(_bias_act_triton, "bias_act_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, b = _inputs(torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                      # no path is missing: no warning
        y = bias_act(x, b, act="lrelu", impl="triton")
        assert calls == [1]
        torch.testing.assert_close(y, bias_act_ref(x, b, act="lrelu"))
        for impl in ("auto", "fast", "ref"):                                # no fast path: 'fast' is the reference
            bias_act(x, b, act="lrelu", impl=impl)
        with _dispatch.auto_impl("triton"):
            bias_act(x, b, act="lrelu")
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="impl"):
        bias_act(x, b, impl="cuda")


def test_triton_on_cpu_without_the_interpreter_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, b = _inputs(torch.float32)
    with pytest.warns(RuntimeWarning, match=r"bias_act: the triton path cannot run \(tensors on cpu"):
        y = bias_act(x, b, act="relu", impl="triton")
    torch.testing.assert_close(y, bias_act_ref(x, b, act="relu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bias_act(x, b, act="relu", impl="triton")                           # the second time is silent
