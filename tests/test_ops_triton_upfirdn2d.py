"""upfirdn2d's Triton kernel against the reference, run on the CPU in Triton's interpreter (TRITON_INTERPRET=1).

Every geometry StyleGAN2 and StyleGAN3 use, plus random ones: values and gradients of the first and second order,
in float64, float32, float16 and bfloat16. Shapes are tiny because the interpreter runs each program in Python.
"""
import warnings

import pytest
import torch

from stylegan.ops import _dispatch
from stylegan.ops.upfirdn2d import setup_filter, upfirdn2d, upfirdn2d_ref
from test_ops_upfirdn2d import CASES, TOLERANCES, _rand

if _dispatch.triton_unsupported(torch.empty(0)) is not None:                 # no triton, or TRITON_INTERPRET=0
    pytest.skip(f"the kernels cannot run: {_dispatch.triton_unsupported(torch.empty(0))}", allow_module_level=True)

from stylegan.ops import _upfirdn2d_triton  # noqa: E402  (after the skips: it imports triton)
from stylegan.ops._upfirdn2d_triton import upfirdn2d_triton  # noqa: E402

F64 = torch.float64
# Rounding the float32 accumulation to the output dtype costs at most one unit of roundoff (2^-11 for float16, 2^-8
# for bfloat16) of |y|: the tolerances allow two.
LOW_PRECISION = {torch.float16: dict(rtol=2 ** -10, atol=1e-4), torch.bfloat16: dict(rtol=2 ** -7, atol=1e-3)}


def _sg2_filter():
    return setup_filter([1, 3, 3, 1])                                      # StyleGAN2's 4x4 resample filter


def _sg3_filter(taps, seed):
    return setup_filter(_rand(taps, seed=seed).abs() + 0.5)                 # a separable low-pass-like filter


def _radial_filter():
    r = torch.linspace(-1, 1, 12)
    return setup_filter(torch.sinc(torch.hypot(r[:, None], r[None, :]) * 2.5))      # a 2-D 12x12 radial filter


# (name, input [N, C, H, W], filter, upfirdn2d arguments): each StyleGAN layer's resampling, at a tiny size.
GEOMETRIES = [
    ("sg2 upsample2d", (1, 2, 5, 6), _sg2_filter(), dict(up=2, padding=[2, 1, 2, 1], gain=4)),
    ("sg2 up-conv filter", (1, 2, 9, 8), _sg2_filter(), dict(padding=1, gain=4)),
    ("sg2 downsample2d", (2, 2, 8, 6), _sg2_filter(), dict(down=2, padding=1)),
    ("sg2 down-conv filter", (1, 2, 6, 7), _sg2_filter(), dict(padding=2)),
    ("sg2 flipped filter2d", (1, 2, 6, 5), _sg2_filter(), dict(padding=[2, 1, 2, 1], flip_filter=True)),
    ("sg3 up 2, 12 taps", (1, 2, 6, 5), _sg3_filter(12, 1), dict(up=2, padding=[9, 8, 9, 8], gain=4)),
    ("sg3 down 2, 12 taps", (1, 2, 14, 13), _sg3_filter(12, 2), dict(down=2)),
    ("sg3 up 4, 24 taps", (1, 2, 4, 5), _sg3_filter(24, 3), dict(up=4, padding=[10, 7, 10, 7], gain=16)),
    ("sg3 down 4, 24 taps", (1, 2, 26, 27), _sg3_filter(24, 4), dict(down=4, padding=[-1, 2, 0, 1])),
    ("sg3 crop, down 2", (1, 2, 16, 15), _sg3_filter(12, 5), dict(down=2, padding=[-2, -1, -1, -3])),
    ("sg3 radial up 2", (1, 1, 4, 5), _radial_filter(), dict(up=2, padding=[6, 5, 7, 4], gain=4)),
    ("sg3 radial down 2", (1, 1, 14, 13), _radial_filter(), dict(down=2, padding=[1, 0, -1, 0], flip_filter=True)),
]
IDS = [g[0] for g in GEOMETRIES]


def _values_and_grads(op, x, f, kw, dy_seed, dy_dtype=None):
    """(y, dL/dx) of op for L = <y, dy> with a fixed random dy, rounded to dy_dtype (default: x's)."""
    x = x.clone().requires_grad_(True)
    y = op(x, f, **kw)
    dy = _rand(*y.shape, seed=dy_seed).to(dy_dtype or x.dtype).to(x.dtype)
    (gx,) = torch.autograd.grad(y, x, dy)
    return y.detach(), gx


@pytest.mark.parametrize("name,shape,f,kw", GEOMETRIES, ids=IDS)
def test_stylegan_geometries_match_ref_in_float32(name, shape, f, kw):
    x = _rand(*shape, dtype=torch.float32)
    ours, ref = (_values_and_grads(op, x, f, kw, dy_seed=1) for op in (upfirdn2d_triton, upfirdn2d_ref))
    torch.testing.assert_close(ours, ref, **TOLERANCES[torch.float32])


@pytest.mark.parametrize("name,shape,f,kw", GEOMETRIES[:9], ids=IDS[:9])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_stylegan_geometries_in_low_precision(name, shape, f, kw, dtype):
    # Against the float32 reference on the same (rounded) inputs: only the final rounding differs.
    x = _rand(*shape, dtype=torch.float32).to(dtype)
    y, gx = _values_and_grads(upfirdn2d_triton, x, f, kw, dy_seed=1)
    assert y.dtype == gx.dtype == dtype
    y_ref, gx_ref = _values_and_grads(upfirdn2d_ref, x.float(), f, kw, dy_seed=1, dy_dtype=dtype)
    torch.testing.assert_close(y.float(), y_ref, **LOW_PRECISION[dtype])
    torch.testing.assert_close(gx.float(), gx_ref, **LOW_PRECISION[dtype])


SECOND_ORDER = (0, 2, 5, 9, 10)


@pytest.mark.parametrize("name,shape,f,kw", [GEOMETRIES[i] for i in SECOND_ORDER], ids=[IDS[i] for i in SECOND_ORDER])
def test_second_order_gradients_match_ref(name, shape, f, kw):
    # R1 differentiates the discriminator's gradient, so backward must itself be differentiable.
    x = _rand(*shape)
    w = _rand(*upfirdn2d_ref(x, f, **kw).shape, seed=2)
    results = []
    for op in (upfirdn2d_ref, upfirdn2d_triton):
        xi = x.clone().requires_grad_(True)
        y = op(torch.sin(xi), f, **kw)                                      # nonlinear before, so d2/dx2 != 0
        (gx,) = torch.autograd.grad((y * w).sum(), xi, create_graph=True)
        (ggx,) = torch.autograd.grad(gx.square().sum(), xi)
        results.append((gx.detach(), ggx))
    torch.testing.assert_close(results[1], results[0], **TOLERANCES[F64])


@pytest.mark.slow
def test_random_geometries_match_ref_in_float64_and_float32():
    # Any up/down (1 to 4), padding (cropping too), separable, 2-D and no filter, flip_filter and gain.
    for i, (shape, f, kw) in enumerate(CASES[:12]):
        dtype = F64 if i % 2 == 0 else torch.float32
        x = _rand(*shape, seed=i, dtype=dtype)
        fi = None if f is None else f.to(dtype)
        ours, ref = (_values_and_grads(op, x, fi, kw, dy_seed=1000 + i) for op in (upfirdn2d_triton, upfirdn2d_ref))
        torch.testing.assert_close(ours, ref, **TOLERANCES[dtype], msg=lambda m: f"case {i} {kw}: {m}")


def test_gradcheck_and_gradgradcheck():
    x = _rand(1, 1, 4, 3).requires_grad_(True)
    f = torch.tensor([[1.0, 2.0, 0.5], [0.0, 1.0, -1.0]], dtype=F64)
    fn = lambda t: upfirdn2d_triton(t, f, up=(2, 1), down=(1, 2), padding=[1, 2, -1, 1], gain=1.5)    # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_non_contiguous_input_and_many_tiles(monkeypatch):
    # Small tiles force several programs along both axes, with ragged edges; a transposed input is copied.
    monkeypatch.setattr(_upfirdn2d_triton, "TILE", 16)
    monkeypatch.setattr(_upfirdn2d_triton, "MAX_BLOCK_W", 4)
    x = _rand(1, 2, 7, 6, dtype=torch.float32).transpose(2, 3)
    for f in (_sg2_filter(), _sg3_filter(12, 1)):                           # one 2-D pass, two 1-D passes
        kw = dict(up=2, padding=[2, 1, 2, 1], gain=4)
        torch.testing.assert_close(upfirdn2d_triton(x, f, **kw), upfirdn2d_ref(x, f, **kw),
                                   **TOLERANCES[torch.float32])


@pytest.mark.parametrize("bad", [
    dict(x=torch.zeros(2, 3, 4)), dict(f=torch.ones(9)), dict(padding=[1, 2, 3]), dict(up=0),
    dict(f=torch.ones(3).requires_grad_(True)),
])
def test_bad_arguments_are_rejected(bad):
    args = dict(x=torch.zeros(1, 1, 4, 4), f=torch.ones(3), up=1, down=1, padding=0) | bad
    with pytest.raises(ValueError):
        upfirdn2d_triton(args.pop("x"), args.pop("f"), **args)


# --- dispatch --------------------------------------------------------------------------------------------------

def test_triton_impl_runs_the_kernel_and_auto_on_cpu_does_not(monkeypatch):
    calls = []
    real = _upfirdn2d_triton.upfirdn2d_triton
    monkeypatch.setattr(_upfirdn2d_triton, "upfirdn2d_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, f = _rand(1, 2, 5, 5, dtype=torch.float32), _sg2_filter()
    y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], impl="triton")
    assert calls == [1]
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1]))
    upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])                             # 'auto' on the CPU: the fast path
    with _dispatch.auto_impl("triton"):
        upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])
    assert calls == [1, 1]


def test_triton_on_cpu_without_the_interpreter_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    x, f = _rand(1, 2, 5, 5, dtype=torch.float32), _sg2_filter()
    with pytest.warns(RuntimeWarning, match=r"upfirdn2d: the triton path cannot run \(tensors on cpu"):
        y = upfirdn2d(x, f, down=2, padding=1, impl="triton")
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, down=2, padding=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upfirdn2d(x, f, down=2, padding=1, impl="triton")                  # the second time is silent


def test_filter_requiring_grad_falls_back_to_the_reference(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    x, f = _rand(1, 1, 5, 5, dtype=torch.float32), _sg2_filter().requires_grad_(True)
    with pytest.warns(RuntimeWarning) as record:
        y = upfirdn2d(x, f, padding=1, impl="triton")
    assert [str(w.message).split(";")[0] for w in record] == [
        "upfirdn2d: the triton path cannot run (the filter requires grad)",
        "upfirdn2d: the fast path cannot run (the filter requires grad)"]
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, padding=1))
    (gf,) = torch.autograd.grad(y.sum(), f)                                 # the reference differentiates f
    assert gf.shape == f.shape
