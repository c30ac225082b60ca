"""upfirdn2d: the reference against scipy.signal, and the polyphase fast path against the reference."""
import warnings

import numpy as np
import pytest
import torch

from ops_numpy import upfirdn2d_np
from stylegan.ops import _dispatch, _upfirdn2d_fast
from stylegan.ops._upfirdn2d_fast import Geometry, separable_factors, upfirdn2d_fast
from stylegan.ops.upfirdn2d import (downsample2d, filter2d, output_size, setup_filter, upfirdn2d, upfirdn2d_ref,
                                    upsample2d)

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- the reference against scipy -------------------------------------------------------------------------------

@pytest.mark.parametrize("up,down,pad", [
    (1, 1, [0, 0, 0, 0]), (2, 1, [2, 1, 2, 1]), (1, 2, [1, 1, 1, 1]), (3, 2, [2, 0, 1, 3]), (2, 3, [0, 0, 0, 0]),
    (1, 1, [-2, -1, -1, -3]), (4, 1, [-3, -6, 5, -2]), ((2, 1), (1, 3), [1, 2, 0, 4]),
])
@pytest.mark.parametrize("flip", [False, True])
def test_ref_matches_scipy_upfirdn_on_separable_filters(up, down, pad, flip):
    x = _rand(2, 3, 9, 10)
    f = _rand(5, seed=1)
    ours = upfirdn2d_ref(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=1.7)
    theirs = upfirdn2d_np(x.numpy(), f.numpy(), up=up, down=down, pad=pad, flip=flip, gain=1.7)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("up,down,pad", [(1, 1, 0), (2, 1, [2, 1, 3, 0]), (1, 2, [1, 2, 0, 1]), (2, 2, [-1, 1, 2, -2])])
@pytest.mark.parametrize("flip", [False, True])
def test_ref_matches_direct_2d_convolution(up, down, pad, flip):
    x = _rand(1, 2, 6, 7)
    f = _rand(3, 4, seed=2)                                        # not separable, not square
    ours = upfirdn2d_ref(x, f, up=up, down=down, padding=pad, flip_filter=flip, gain=0.5)
    theirs = upfirdn2d_np(x.numpy(), f.numpy(), up=up, down=down, pad=pad, flip=flip, gain=0.5)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12, atol=1e-12)


def test_ref_without_filter_only_resamples_and_pads():
    x = _rand(1, 1, 3, 4)
    y = upfirdn2d_ref(x, None, up=2, padding=[1, -1, 0, 0])
    z = torch.zeros(1, 1, 6, 8, dtype=F64)
    z[..., ::2, ::2] = x
    torch.testing.assert_close(y, torch.nn.functional.pad(z, [1, -1, 0, 0]))
    torch.testing.assert_close(upfirdn2d_ref(x, None, down=2), x[..., ::2, ::2])


def test_output_size_formula():
    for n, up, down, p0, p1, k in [(7, 2, 1, 2, 1, 4), (8, 1, 2, 1, 1, 4), (36, 2, 1, 9, 8, 12), (5, 3, 2, -1, 4, 3)]:
        x = torch.zeros(1, 1, 1, n)
        y = upfirdn2d_ref(x, torch.ones(1, k), up=(up, 1), down=(down, 1), padding=[p0, p1, 0, 0])
        assert y.shape[-1] == output_size(n, up, down, p0, p1, k)


@pytest.mark.parametrize("bad", [
    dict(x=torch.zeros(2, 3, 4)), dict(f=torch.ones(9)), dict(padding=[1, 2, 3]), dict(up=0), dict(down=[1, 0]),
    dict(f=torch.ones(2, 2, 2)),
])
@pytest.mark.parametrize("impl", ["ref", "fast"])
def test_bad_arguments_are_rejected_by_both_paths(bad, impl):
    args = dict(x=torch.zeros(1, 1, 4, 4), f=torch.ones(3), up=1, down=1, padding=0) | bad
    with pytest.raises(ValueError):
        upfirdn2d(args.pop("x"), args.pop("f"), impl=impl, **args)


# --- helpers ---------------------------------------------------------------------------------------------------

def test_setup_filter_forms():
    f = setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and float(f.sum()) == pytest.approx(1)       # short 1-D filters become 2-D
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    g = setup_filter(list(range(1, 9)))
    assert g.shape == (8,) and float(g.sum()) == pytest.approx(1)          # 8 taps or more stay separable
    assert setup_filter([1, 2], separable=True).shape == (2,)
    torch.testing.assert_close(setup_filter([1, 2, 4], normalize=False, separable=True, flip_filter=True),
                               torch.tensor([4., 2, 1]))
    torch.testing.assert_close(setup_filter([1, 1], normalize=False, gain=4), torch.full([2, 2], 4.0))
    assert setup_filter(None).shape == (1, 1)
    with pytest.raises(ValueError):
        setup_filter(np.ones([2, 2, 2]))


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("f", [None, [1, 3, 3, 1], [1, 2, 1], list(range(1, 13))])
def test_resampling_helpers_keep_the_documented_sizes(impl, f):
    f = setup_filter(f) if f is not None else None
    x = _rand(2, 3, 8, 6, dtype=torch.float32)
    assert filter2d(x, f, impl=impl).shape == (2, 3, 8, 6)
    assert filter2d(x, f, padding=1, impl=impl).shape == (2, 3, 10, 8)
    assert upsample2d(x, f, impl=impl).shape == (2, 3, 16, 12)
    assert upsample2d(x, f, up=(3, 2), impl=impl).shape == (2, 3, 16, 18)
    assert downsample2d(x, f, impl=impl).shape == (2, 3, 4, 3)
    assert downsample2d(x, f, down=(2, 1), padding=-1, impl=impl).shape == (2, 3, 6, 2)


def test_resampling_helpers_preserve_dc():
    f = setup_filter([1, 3, 3, 1])
    x = torch.ones(1, 1, 12, 12)
    assert float(upsample2d(x, f)[..., 4:-4, 4:-4].std()) < 1e-6
    assert float(upsample2d(x, f)[..., 6, 6]) == pytest.approx(1, abs=1e-6)
    assert float(downsample2d(x, f)[..., 3, 3]) == pytest.approx(1, abs=1e-6)
    assert float(filter2d(x, f)[..., 5, 5]) == pytest.approx(1, abs=1e-6)


# --- the fast path against the reference -----------------------------------------------------------------------

def _random_case(seed):
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, [1], generator=g))      # noqa: E731
    kind = seed % 4
    taps = r(1, 7)
    if kind == 0:
        f = torch.randn(taps, generator=g, dtype=F64)                       # separable
    elif kind == 1:
        f = torch.randn(r(1, 5), taps, generator=g, dtype=F64)              # general 2-D
    elif kind == 2:
        f = torch.outer(torch.rand(taps, generator=g, dtype=F64), torch.rand(taps, generator=g, dtype=F64))
    else:
        f = None
    up, down = (r(1, 4), r(1, 4)), (r(1, 3), r(1, 3))
    pad = [r(-3, 6) for _ in range(4)]
    shape = (r(1, 3), r(1, 4), r(3, 9), r(3, 9))
    kw = dict(up=up, down=down, padding=pad, flip_filter=bool(r(0, 1)), gain=float(0.25 + torch.rand(1, generator=g)))
    return shape, f, kw


def _valid(shape, f, kw):
    try:
        upfirdn2d_ref(torch.zeros(shape), f, **kw)
        return True
    except ValueError:
        return False


CASES = [c for c in map(_random_case, range(300)) if _valid(*c)][:80]

TOLERANCES = {torch.float32: dict(rtol=2e-5, atol=2e-5), F64: dict(rtol=1e-10, atol=1e-10)}


@pytest.fixture(params=["direct", "chunked"])
def path(request, monkeypatch):
    """The fast path runs small filters/tensors as one NCHW pass and the rest in channels-last chunks: test both."""
    if request.param == "chunked":
        monkeypatch.setattr(_upfirdn2d_fast, "SMALL_TAPS", 0)
        monkeypatch.setattr(_upfirdn2d_fast, "SMALL_NUMEL", 0)
    return request.param


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fast_matches_ref_on_random_cases_values_and_gradients(dtype, path):
    assert len(CASES) == 80
    for i, (shape, f, kw) in enumerate(CASES):
        f = None if f is None else f.to(dtype)
        x = _rand(*shape, seed=i, dtype=dtype)
        xr = x.clone().requires_grad_(True)
        xf = x.clone().requires_grad_(True)
        yr = upfirdn2d_ref(xr, f, **kw)
        yf = upfirdn2d_fast(xf, f, **kw)
        torch.testing.assert_close(yf, yr, **TOLERANCES[dtype], msg=lambda m: f"case {i} {kw}: {m}")
        dy = _rand(*yr.shape, seed=1000 + i, dtype=dtype)
        (gr,), (gf,) = torch.autograd.grad(yr, xr, dy), torch.autograd.grad(yf, xf, dy)
        torch.testing.assert_close(gf, gr, **TOLERANCES[dtype], msg=lambda m: f"grad case {i} {kw}: {m}")


def test_fast_double_backward_matches_ref(path):
    # R1 differentiates a gradient, so the discriminator's resampling needs second-order gradients.
    for i, (shape, f, kw) in enumerate(CASES[:16]):
        x = _rand(*shape, seed=i)
        w = _rand(*upfirdn2d_ref(x, f, **kw).shape, seed=2000 + i)
        results = []
        for op in (upfirdn2d_ref, upfirdn2d_fast):
            xi = x.clone().requires_grad_(True)
            y = op(torch.sin(xi), f, **kw)                                  # nonlinear before, so d2/dx2 != 0
            (gx,) = torch.autograd.grad((y * w).sum(), xi, create_graph=True)
            (ggx,) = torch.autograd.grad(gx.square().sum(), xi)
            results.append((gx.detach(), ggx))
        torch.testing.assert_close(results[1], results[0], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,down,pad,f", [
    (2, 1, [2, 1, 2, 1], [1, 3, 3, 1]), (1, 2, [1, 1, 1, 1], [1, 3, 3, 1]), (2, 2, [0, 0, 0, 0], [1, 2, 1]),
    (3, 1, [-1, 2, 0, 1], None), (1, 1, [1, 1, 1, 1], [[1., 2.], [0., 1.]]),
])
def test_fast_gradcheck_and_gradgradcheck(up, down, pad, f, path):
    f = torch.as_tensor(f, dtype=F64) if f is not None else None
    x = _rand(1, 2, 5, 4).requires_grad_(True)
    fn = lambda t: upfirdn2d_fast(t, f, up=up, down=down, padding=pad, gain=1.5)        # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_ref_gradcheck():
    x = _rand(1, 2, 5, 4).requires_grad_(True)
    f = torch.tensor([1.0, 2.0, 1.0], dtype=F64)
    assert torch.autograd.gradcheck(lambda t: upfirdn2d_ref(t, f, up=2, down=1, padding=[2, 1, 1, 2]), (x,),
                                    fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda t: upfirdn2d_ref(t, f, up=1, down=2, padding=1), (x,), fast_mode=True)


def test_fast_processes_channels_in_chunks(monkeypatch):
    # Force many small chunks (including a ragged last one); the result must not depend on the chunking.
    monkeypatch.setattr(_upfirdn2d_fast, "SMALL_TAPS", 0)
    monkeypatch.setattr(_upfirdn2d_fast, "SMALL_NUMEL", 0)
    monkeypatch.setattr(_upfirdn2d_fast, "CHUNK_BYTES", 3 * 20 * 20 * 4)
    x = _rand(3, 7, 9, 9, dtype=torch.float32).requires_grad_(True)
    f = setup_filter([1, 3, 3, 1])
    y = upfirdn2d_fast(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4), rtol=1e-5, atol=1e-6)
    (g,) = torch.autograd.grad(y.sum(), x)
    (gr,) = torch.autograd.grad(upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1], gain=4).sum(), x)
    torch.testing.assert_close(g, gr, rtol=1e-5, atol=1e-5)


def test_stylegan2_resample_filter_runs_separably():
    f = setup_filter([1, 3, 3, 1])
    col, row = separable_factors(f.double(), rtol=4 * torch.finfo(torch.float32).eps)
    torch.testing.assert_close(torch.outer(col, row).float(), f)
    assert separable_factors(torch.tensor([[1.0, 2.0], [3.0, 1.0]], dtype=F64), rtol=1e-6) is None


def test_adjoint_geometry_is_the_transpose():
    # <upfirdn(x), y> == <x, upfirdn_adjoint(y)> for the padding formula used by backward.
    g = Geometry(upx=3, upy=2, downx=2, downy=3, px0=2, px1=-1, py0=-2, py1=4)
    f = _rand(4, 3, seed=5)
    x = _rand(1, 1, 7, 8)
    y = upfirdn2d_ref(x, f, up=(3, 2), down=(2, 3), padding=[2, -1, -2, 4])
    dy = _rand(*y.shape, seed=6)
    a = g.adjoint(7, 8, fw=3, fh=4)
    dx = upfirdn2d_ref(dy, f, up=(a.upx, a.upy), down=(a.downx, a.downy), padding=[a.px0, a.px1, a.py0, a.py1],
                       flip_filter=True)
    assert dx.shape == x.shape
    assert float((y * dy).sum()) == pytest.approx(float((x * dx).sum()), rel=1e-12)


# --- dispatch --------------------------------------------------------------------------------------------------

def test_auto_uses_the_fast_path_and_ref_never_does(monkeypatch):
    calls = []
    real = _upfirdn2d_fast.upfirdn2d_fast
    monkeypatch.setattr(_upfirdn2d_fast, "upfirdn2d_fast", lambda *a, **k: calls.append(1) or real(*a, **k))
    x = torch.randn(1, 2, 6, 6)
    f = setup_filter([1, 3, 3, 1])
    upfirdn2d(x, f, up=2)
    assert calls == [1]
    upfirdn2d(x, f, up=2, impl="ref")
    with _dispatch.auto_impl("ref"):
        upfirdn2d(x, f, up=2)
        upsample2d(x, f)
    assert calls == [1]
    with pytest.raises(ValueError, match="impl"):
        upfirdn2d(x, f, impl="cuda")


def test_unsupported_input_falls_back_to_ref_with_one_warning(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    x = torch.randn(1, 2, 6, 6).to(torch.float16)
    f = setup_filter([1, 3, 3, 1])
    with pytest.warns(RuntimeWarning, match="upfirdn2d: the fast path cannot run"):
        y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])
    torch.testing.assert_close(y, upfirdn2d_ref(x, f, up=2, padding=[2, 1, 2, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1])                         # the second time is silent
    fg = f.clone().requires_grad_(True)
    with pytest.warns(RuntimeWarning, match="filter requires grad"):
        upfirdn2d(torch.randn(1, 1, 5, 5), fg)
