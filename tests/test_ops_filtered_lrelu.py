"""filtered_lrelu: the reference against a step-by-step NumPy computation (StyleGAN3's layer configurations included),
and the fused fast path against the reference: values, gradients, second order, and what it keeps for backward."""
import warnings

import numpy as np
import pytest
import torch

from ops_numpy import filtered_lrelu_np, operator_matrix, stylegan3_layers, upfirdn2d_np
from stylegan.ops import _dispatch, _filtered_lrelu_fast, _upfirdn2d_fast
from stylegan.ops._filtered_lrelu_fast import filtered_lrelu_fast
from stylegan.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_ref, output_shape
from stylegan.ops.filters import design_lowpass_filter

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def _layer_case(layer, channels=2, batch=2, dtype=F64):
    """Inputs and arguments of one StyleGAN3 synthesis layer's filtered_lrelu, with few channels."""
    fu = design_lowpass_filter(layer["up_taps"], layer["up_cutoff"], layer["up_width"], layer["fs"])
    fd = design_lowpass_filter(layer["down_taps"], layer["down_cutoff"], layer["down_width"], layer["fs"],
                               radial=layer["radial"])
    size = layer["in_size"] + layer["conv_kernel"] - 1                      # the modulated conv pads by k-1
    x = _rand(batch, channels, size, size, seed=layer["index"], dtype=dtype, scale=50)
    b = _rand(channels, seed=100 + layer["index"], dtype=dtype)
    kw = dict(fu=fu, fd=fd, up=layer["up"], down=layer["down"], padding=layer["padding"], gain=layer["gain"],
              slope=layer["slope"], clamp=256)
    return x, b, kw


SG3_LAYERS = {f"{name}-L{layer['index']}": layer
              for name, layers in [("T", stylegan3_layers()),
                                   ("R", stylegan3_layers(channel_base=16384, channel_max=512, radial=True,
                                                          conv_kernel=1))]
              for layer in layers}
# The distinct geometries: up 2 and 4, down 2, separable and radial down filters, cropping, ToRGB (up=down=1).
SG3_DISTINCT = ["T-L0", "T-L4", "T-L9", "T-L13", "T-L14", "R-L0", "R-L4", "R-L12", "R-L13"]


# --- the reference against NumPy -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SG3_DISTINCT)
def test_ref_matches_numpy_on_stylegan3_layers(name):
    layer = SG3_LAYERS[name]
    x, b, kw = _layer_case(layer, channels=1, batch=1)
    ours = filtered_lrelu_ref(x, b=b, **kw)
    theirs, _ = filtered_lrelu_np(x.numpy(), None if kw["fu"] is None else kw["fu"].double().numpy(),
                                  None if kw["fd"] is None else kw["fd"].double().numpy(), b.numpy(), kw["up"],
                                  kw["down"], kw["padding"], kw["gain"], kw["slope"], kw["clamp"])
    assert ours.shape[2:] == (layer["out_size"], layer["out_size"])
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-6, atol=1e-6 * np.abs(theirs).max())


@pytest.mark.parametrize("up,down,pad,fu,fd", [
    (1, 1, 0, None, None), (2, 1, [2, 1, 2, 1], "sep", None), (1, 2, [1, 0, 0, 1], None, "sep"),
    (2, 2, [3, 2, 1, 4], "sep", "2d"), (4, 2, [-2, -1, 5, 0], "sep", "sep"), (1, 4, [2, 2, 2, 2], "2d", "sep"),
    (4, 4, [0, 0, 0, 0], "2d", "2d"),
])
@pytest.mark.parametrize("flip", [False, True])
def test_ref_matches_numpy_step_by_step(up, down, pad, fu, fd, flip):
    filters = {None: None, "sep": _rand(4, seed=1) + 1, "2d": _rand(3, 4, seed=2) + 1}
    x, b = _rand(2, 3, 7, 6, seed=3, scale=3), _rand(3, seed=4)
    fu, fd = filters[fu], filters[fd]
    ours = filtered_lrelu_ref(x, fu, fd, b, up=up, down=down, padding=pad, gain=1.3, slope=0.1, clamp=4.0,
                              flip_filter=flip)
    theirs, _ = filtered_lrelu_np(x.numpy(), None if fu is None else fu.numpy(), None if fd is None else fd.numpy(),
                                  b.numpy(), up, down, pad, 1.3, 0.1, 4.0, flip)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-12, atol=1e-12)
    assert ours.shape[2:] == output_shape(7, 6, fu, fd, up, down, pad)


def test_ref_gradient_is_the_masked_adjoint_and_zero_through_the_clamp():
    # dx = U^T (m * D^T dy), m = gain * lrelu'(v) * [|lrelu(v) gain| <= clamp], with U and D as explicit matrices.
    fu, fd = _rand(4, seed=1) + 1, _rand(3, 3, seed=2) + 1
    up, down, pad, gain, slope, clamp = 2, 2, [2, 1, 1, 2], 1.5, 0.2, 3.0
    x = _rand(1, 1, 5, 4, seed=3, scale=2)
    U = operator_matrix(lambda a: upfirdn2d_np(a[None, None], fu.numpy(), up=up, pad=pad, gain=up * up), (5, 4))
    y_np, v = filtered_lrelu_np(x.numpy(), fu.numpy(), fd.numpy(), None, up, down, pad, gain, slope, clamp)
    D = operator_matrix(lambda a: upfirdn2d_np(a[None, None], fd.numpy(), down=down), v.shape[2:])
    v = v.reshape(-1)
    t = np.where(v > 0, v, slope * v) * gain
    m = gain * np.where(v > 0, 1.0, slope) * (np.abs(t) <= clamp)
    assert 0 < (np.abs(t) > clamp).sum() < t.size                          # the clamp is active somewhere
    dy = _rand(*y_np.shape, seed=5)
    expected = U.T @ (m * (D.T @ dy.numpy().reshape(-1)))
    xr = x.clone().requires_grad_(True)
    (dx,) = torch.autograd.grad(filtered_lrelu_ref(xr, fu, fd, up=up, down=down, padding=pad, gain=gain,
                                                   slope=slope, clamp=clamp), xr, dy)
    np.testing.assert_allclose(dx.numpy().reshape(-1), expected, rtol=1e-10, atol=1e-10)
    # Where everything is clamped, nothing flows back.
    xc = torch.full((1, 1, 5, 4), 100.0, dtype=F64, requires_grad=True)
    for op in (filtered_lrelu_ref, filtered_lrelu_fast):
        y = op(xc, torch.ones(2, dtype=F64), torch.ones(2, dtype=F64), up=2, padding=1, clamp=1.0)
        (g,) = torch.autograd.grad(y.sum(), xc)
        assert torch.count_nonzero(g) == 0


def test_ref_gradcheck():
    x = _rand(1, 2, 5, 5, scale=2).requires_grad_(True)
    b = _rand(2, seed=1).requires_grad_(True)
    f = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=F64) / 8
    fn = lambda x, b: filtered_lrelu_ref(x, f, f, b, up=2, down=2, padding=[2, 1, 2, 1], clamp=2.5)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)


# --- the fast path against the reference -----------------------------------------------------------------------

TOLERANCES = {torch.float32: dict(rtol=1e-4, atol=1e-4), F64: dict(rtol=1e-9, atol=1e-9)}


def _compare(x, b, kw, dtype, seed=0):
    """Run both paths on the same inputs; compare outputs and the gradients of x and b."""
    results = []
    for op in (filtered_lrelu_ref, filtered_lrelu_fast):
        xi = x.clone().requires_grad_(True)
        bi = None if b is None else b.clone().requires_grad_(True)
        y = op(xi, b=bi, **kw)
        dy = _rand(*y.shape, seed=seed, dtype=dtype)
        grads = torch.autograd.grad(y, [xi] + ([bi] if b is not None else []), dy)
        results.append((y.detach(), *grads))
    scale = max(1.0, float(results[0][0].abs().max()))
    tol = TOLERANCES[dtype]
    for ref, fast in zip(*results):
        torch.testing.assert_close(fast, ref, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("name", SG3_DISTINCT)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fast_matches_ref_on_stylegan3_layers(name, dtype):
    x, b, kw = _layer_case(SG3_LAYERS[name], dtype=dtype)
    _compare(x, b, kw, dtype)


def _random_case(seed, dtype):
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi + 1, [1], generator=g))      # noqa: E731

    def filt():
        kind = r(0, 3)
        if kind == 0:
            return None
        if kind == 1:
            return torch.randn(r(1, 6), generator=g, dtype=dtype)
        if kind == 2:
            return torch.randn(r(1, 5), r(1, 5), generator=g, dtype=dtype)
        return torch.outer(torch.rand(r(1, 5), generator=g, dtype=dtype), torch.rand(r(1, 5), generator=g, dtype=dtype))

    x = torch.randn(r(1, 2), r(1, 3), r(3, 8), r(3, 8), generator=g, dtype=dtype) * 3
    b = torch.randn(x.shape[1], generator=g, dtype=dtype) if r(0, 1) else None
    kw = dict(fu=filt(), fd=filt(), up=r(1, 4), down=r(1, 4), padding=[r(-2, 5) for _ in range(4)],
              gain=float(0.1 + 2 * torch.rand(1, generator=g)), slope=[0.2, 0.0, 1.0, 0.5][r(0, 3)],
              clamp=[None, 0.5, 2.0, 5.0][r(0, 3)], flip_filter=bool(r(0, 1)))
    return x, b, kw


def _valid_cases(dtype, count):
    cases = []
    for seed in range(10 * count):
        x, b, kw = _random_case(seed, dtype)
        try:
            filtered_lrelu_ref(x, b=b, **kw)
        except ValueError:
            continue
        cases.append((seed, x, b, kw))
        if len(cases) == count:
            return cases
    raise AssertionError("too few valid random cases")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_fast_matches_ref_on_random_cases(dtype):
    for seed, x, b, kw in _valid_cases(dtype, 40):
        try:
            _compare(x, b, kw, dtype, seed=seed)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, {kw}: {e}") from None


def second_order(op, x, b, kw):
    """(dx, d(dx . v)/dy) of a filtered_lrelu implementation: its gradient with create_graph, differentiated again
    with respect to the incoming gradient (R1-style), on fixed random y- and x-sized weights."""
    xi = x.clone().requires_grad_(True)
    y = op(xi, b=b, **kw)
    w = _rand(*y.shape, seed=7).requires_grad_(True)
    (gx,) = torch.autograd.grad(y, xi, w, create_graph=True)
    (gw,) = torch.autograd.grad((gx * _rand(*gx.shape, seed=8)).sum(), w)
    return gx.detach(), gw


def test_fast_second_order_gradients_match_ref():
    # d/d(dy) of dx: the backward is linear in dy, its mask constant. R1-style use: a gradient is differentiated.
    for name in ["T-L4", "R-L0", "T-L14"]:
        x, b, kw = _layer_case(SG3_LAYERS[name], channels=1, batch=1)
        out = [second_order(op, x, b, kw) for op in (filtered_lrelu_ref, filtered_lrelu_fast)]
        torch.testing.assert_close(out[1], out[0], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("up,down,fd", [(2, 2, "sep"), (4, 2, "2d"), (1, 1, None)])
def test_fast_gradcheck(up, down, fd):
    fu = torch.tensor([1.0, 3.0, 3.0, 1.0], dtype=F64) / 8
    fd = {"sep": fu, "2d": torch.outer(fu, fu) + 0.01 * _rand(4, 4, seed=3), None: None}[fd]
    x = _rand(1, 2, 5, 4, scale=2).requires_grad_(True)
    b = _rand(2, seed=1).requires_grad_(True)
    fn = lambda x, b: filtered_lrelu_fast(x, fu, fd, b, up=up, down=down, padding=[3, 2, 1, 2], clamp=2.5)  # noqa
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x, b), fast_mode=True)


def test_fast_keeps_only_its_inputs_for_backward():
    # The reference's graph holds the upsampled intermediates; the fused op holds x and b, nothing else.
    x, b, kw = _layer_case(SG3_LAYERS["T-L4"], channels=2, batch=2, dtype=torch.float32)
    saved = {}
    for op in (filtered_lrelu_ref, filtered_lrelu_fast):
        sizes = []
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            op(xi, b=bi, **kw)
        saved[op.__name__] = sum(sizes)
    assert saved["filtered_lrelu_fast"] == x.numel() + b.numel()
    assert saved["filtered_lrelu_ref"] > 20 * x.numel()


def test_fast_chunking_does_not_change_the_result(monkeypatch):
    x, b, kw = _layer_case(SG3_LAYERS["T-L9"], channels=5, batch=3, dtype=torch.float32)
    whole = []
    for chunk_bytes in (1 << 30, 7 * 178 * 178 * 4):                        # one chunk; chunks of 7 and a ragged 1
        monkeypatch.setattr(_upfirdn2d_fast, "CHUNK_BYTES", chunk_bytes)
        xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
        y = filtered_lrelu_fast(xi, b=bi, **kw)
        whole.append((y, *torch.autograd.grad(y, [xi, bi], _rand(*y.shape, dtype=torch.float32))))
    torch.testing.assert_close(whole[1], whole[0], rtol=1e-5, atol=1e-4)


def test_fast_inference_keeps_no_graph():
    x, b, kw = _layer_case(SG3_LAYERS["T-L0"], dtype=torch.float32)
    with torch.no_grad():
        y = filtered_lrelu_fast(x.requires_grad_(True), b=b, **kw)
    assert not y.requires_grad and y.grad_fn is None


@pytest.mark.parametrize("impl", ["ref", "fast"])
@pytest.mark.parametrize("bad", [dict(x=torch.zeros(2, 3, 4)), dict(b=torch.zeros(4)), dict(up=0), dict(down=1.5)])
def test_bad_arguments_are_rejected_by_both_paths(impl, bad):
    args = dict(x=torch.zeros(1, 3, 6, 6), b=torch.zeros(3), up=2, down=1, padding=1) | bad
    with pytest.raises(ValueError):
        filtered_lrelu(args.pop("x"), torch.ones(2), torch.ones(2), impl=impl, **args)


# --- dispatch --------------------------------------------------------------------------------------------------

def test_auto_uses_the_fused_path(monkeypatch):
    calls = []
    real = _filtered_lrelu_fast.filtered_lrelu_fast
    monkeypatch.setattr(_filtered_lrelu_fast, "filtered_lrelu_fast", lambda *a, **k: calls.append(1) or real(*a, **k))
    x, b, kw = _layer_case(SG3_LAYERS["T-L0"], dtype=torch.float32)
    filtered_lrelu(x, b=b, **kw)
    filtered_lrelu(x, b=b, impl="ref", **kw)
    with _dispatch.auto_impl("ref"):
        filtered_lrelu(x, b=b, **kw)
    assert calls == [1]


def test_fallbacks_warn_once_and_match_ref(monkeypatch):
    monkeypatch.setattr(_dispatch, "_warned", set())
    x, b, kw = _layer_case(SG3_LAYERS["T-L0"], channels=1, batch=1, dtype=torch.float32)
    kw["gain"] = -1.0
    with pytest.warns(RuntimeWarning, match="filtered_lrelu: the fast path cannot run"):
        y = filtered_lrelu(x, b=b, **kw)
    torch.testing.assert_close(y, filtered_lrelu_ref(x, b=b, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filtered_lrelu(x, b=b, **kw)
    with pytest.warns(RuntimeWarning, match="float16"):
        filtered_lrelu(x.half(), b=b.half(), **(kw | dict(gain=1.0)))
