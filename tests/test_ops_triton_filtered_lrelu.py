"""filtered_lrelu's Triton kernels against the reference, run on the CPU by Triton's interpreter (TRITON_INTERPRET=1,
set in conftest.py): every StyleGAN3 layer geometry on small planes cut into several tiles, random geometries,
values and x/b gradients in float32 and float64, float16/bfloat16 within their rounding, the float32 precision
setting, the filter-factor cache, second order, what backward keeps, and the dispatch. The interpreter runs each
program in Python, so planes and batches are tiny."""
import warnings

import pytest
import torch

from stylegan.ops import _dispatch, _filtered_lrelu_triton as tri
from stylegan.ops.filtered_lrelu import filtered_lrelu, filtered_lrelu_ref, output_shape
from test_ops_filtered_lrelu import (
    SG3_DISTINCT, SG3_LAYERS, _layer_case, _rand, _valid_cases, second_order)

F64 = torch.float64
# Against the reference on the same inputs, relative to max(1, |y|max) (float16/bfloat16: HALF_TOLERANCES).
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), F64: dict(rtol=1e-12, atol=1e-12)}


def _small_layer_case(name, dtype, out_size=28, channels=1, batch=1):
    """A StyleGAN3 layer's filters, factors, padding, gain and slope on an input just large enough for an
    out_size output (the padding, cropping included, is the layer's own)."""
    layer = SG3_LAYERS[name]
    x, b, kw = _layer_case(layer, channels=channels, batch=batch, dtype=dtype)
    size = next(s for s in range(1, x.shape[-1] + 1)
                if output_shape(s, s, kw["fu"], kw["fd"], kw["up"], kw["down"], kw["padding"])[0] >= out_size)
    kw["clamp"] = 40.0                                      # the inputs reach ~50 * gain: the clamp cuts somewhere
    return x[..., :size, :size].contiguous(), b, kw


def _run(op, x, b, kw, seed=0):
    """y and the gradients of x (and b) for a fixed random dy."""
    xi = x.clone().requires_grad_(True)
    bi = None if b is None else b.clone().requires_grad_(True)
    y = op(xi, b=bi, **kw)
    dy = _rand(*y.shape, seed=seed, dtype=y.dtype)
    return (y.detach(), *torch.autograd.grad(y, [xi] + ([bi] if b is not None else []), dy))


def _compare(x, b, kw, seed=0):
    ref = _run(filtered_lrelu_ref, x, b, kw, seed)
    ours = _run(tri.filtered_lrelu_triton, x, b, kw, seed)
    tol = TOLERANCES[x.dtype]
    for name, r, o in zip(("y", "dx", "db"), ref, ours):
        assert o.dtype == r.dtype and o.shape == r.shape, name
        scale = max(1.0, float(r.abs().max()))
        torch.testing.assert_close(o, r, rtol=tol["rtol"], atol=tol["atol"] * scale, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("name,dtype", [(name, torch.float32) for name in SG3_DISTINCT]
                         + [(name, F64) for name in ("T-L4", "R-L4")])       # float64: the up=4 and radial layers
def test_matches_ref_on_stylegan3_layers(name, dtype, monkeypatch):
    # Tiles of at most 8 samples a side cut a 12x12 output into 2x2 tiles in both passes, each tile walking 2x2 or
    # more sub-tiles (ToRGB, up=down=1 without filters, takes one).
    monkeypatch.setattr(tri, "MAX_STEP", 8)
    x, b, kw = _small_layer_case(name, dtype, out_size=12)
    plan = tri._Plan(x, kw["fu"], kw["fd"], kw["up"], kw["down"], kw["padding"], kw["gain"], kw["slope"],
                     kw["clamp"], False)
    if kw["up"] > 1:
        assert plan.out_hw[0] > plan.fy.step and x.shape[2] > plan.by.step, "one tile: seams untested"
        assert plan.fy.subs > 1 and plan.by.subs > 1, "one sub-tile: the band windows are untested"
    _compare(x, b, kw)


def test_radial_filter_runs_as_few_exact_rank_one_terms():
    # StyleGAN3-R's 12x12 jinc down filter: 3 rank-1 terms reproduce it to float32 precision (6 in float64).
    _, _, kw = _layer_case(SG3_LAYERS["R-L4"])
    fd = kw["fd"].double()
    for dtype, rtol, rank in ((torch.float32, 1e-6, 3), (F64, 1e-14, 6)):
        col, row = tri._factors(fd, False, 1.0, dtype, torch.device("cpu"))
        assert col.shape[0] == rank
        rebuilt = torch.einsum("ri,rj->ij", col.double(), row.double())
        torch.testing.assert_close(rebuilt, fd.flip([0, 1]), rtol=0, atol=rtol * float(fd.abs().max()))


@pytest.mark.slow
def test_matches_ref_on_a_full_size_layer():
    # The default 64-sample tiles on a real StyleGAN3-T layer (up=2, down=2, 12 taps, 52x52 output).
    x, b, kw = _layer_case(SG3_LAYERS["T-L4"], channels=1, batch=1, dtype=torch.float32)
    _compare(x, b, kw)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_matches_ref_on_random_cases(dtype):
    # up and down 1-4, 1-D, 2-D and outer-product filters, padding -2..5, slope 0/0.2/0.5/1, clamp on/off,
    # flip_filter, with and without bias, random gain.
    for seed, x, b, kw in _valid_cases(dtype, 10):
        try:
            _compare(x, b, kw, seed=seed)
        except AssertionError as e:
            raise AssertionError(f"seed {seed}, {kw}: {e}") from None


# float16/bfloat16 multiply on tensor cores in their own dtype (every dot operand rounded, float32 accumulation), so
# the result is not the float32 result rounded once. Measured against the float32 reference on the same rounded
# inputs, over the 9 StyleGAN3 layer geometries (relative to max(1, |ref|)), in units of the format's eps
# (float16 2^-10, bfloat16 2^-7): float16 y <= 0.85, dx <= 4.4, db <= 5.8; bfloat16 y <= 3.1, dx <= 16, db <= 9.
# The gradients' worst cases are mask flips: |v| within a rounding of 0 or of the clamp, where act' jumps (without
# the clamp, bfloat16 dx stays within 2.3).
HALF_TOLERANCES = {torch.float16: (2 * 2 ** -10, 8 * 2 ** -10), torch.bfloat16: (4 * 2 ** -7, 24 * 2 ** -7)}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_dots_stay_within_their_rounding(dtype, monkeypatch):
    # In the interpreter float16 dots run in numpy on the rounded operands with float32 sums, as tensor cores do;
    # bfloat16 operands are rounded and multiplied in float32 (the same arithmetic). Tensor-core speed, and
    # that the GPU's dot really uses these dtypes, only a GPU can show.
    monkeypatch.setattr(tri, "MAX_STEP", 8)
    x, b, kw = _small_layer_case("T-L4", torch.float32, out_size=12)
    x, b = x.to(dtype), b.to(dtype)
    ref = _run(filtered_lrelu_ref, x.float(), b.float(), kw)
    ours = _run(tri.filtered_lrelu_triton, x, b, kw)
    y_tol, grad_tol = HALF_TOLERANCES[dtype]
    for name, r, o, tol in zip(("y", "dx", "db"), ref, ours, (y_tol, grad_tol, grad_tol)):
        assert o.dtype == dtype, name
        torch.testing.assert_close(o.float(), r, rtol=tol, atol=tol * max(1.0, float(r.abs().max())),
                                   msg=lambda m: f"{name}: {m}")


def test_float32_precision_follows_torch_unless_pinned(monkeypatch):
    # float32 stays IEEE unless TF32 is allowed for float32 matmuls (or pinned); other dtypes ignore the setting.
    # The interpreter computes "tf32" and "tf32x3" dots in full float32, so their rounding is a GPU check.
    x, b, kw = _small_layer_case("T-L4", torch.float32, out_size=4)
    plan = lambda t: tri._Plan(t, kw["fu"], kw["fd"], kw["up"], kw["down"], kw["padding"], kw["gain"],  # noqa: E731
                               kw["slope"], None, False).precision
    matmul, allowed = torch.backends.cuda.matmul, torch.backends.cuda.matmul.allow_tf32
    try:                                                # (monkeypatch cannot undo a setting on torch's cuBLAS module)
        matmul.allow_tf32 = False
        assert plan(x) == "ieee"
        matmul.allow_tf32 = True
        assert plan(x) == "tf32" and plan(x.double()) == "ieee" and plan(x.half()) == "ieee"
        monkeypatch.setattr(tri, "FP32_PRECISION", "tf32x3")
        assert plan(x) == "tf32x3"
    finally:
        matmul.allow_tf32 = allowed
    torch.testing.assert_close(tri.filtered_lrelu_triton(x, b=b, **kw), filtered_lrelu_ref(x, b=b, **kw),
                               **TOLERANCES[torch.float32])


def test_filter_factors_are_cached_per_filter_and_version(monkeypatch):
    # The SVD (a host sync) runs once per 2-D filter, not once per call; writing into the filter recomputes it.
    calls = []
    svd = torch.linalg.svd
    monkeypatch.setattr(torch.linalg, "svd", lambda f: calls.append(1) or svd(f))
    monkeypatch.setattr(tri, "_FACTORS", {})
    x, b, kw = _small_layer_case("R-L0", F64, out_size=4)
    fd = kw["fd"].clone()
    kw = kw | dict(fd=fd)
    for _ in range(2):
        tri.filtered_lrelu_triton(x, b=b, **kw)
    assert calls == [1]
    fd.mul_(torch.linspace(0.5, 1.5, fd.shape[1], dtype=fd.dtype))
    torch.testing.assert_close(tri.filtered_lrelu_triton(x, b=b, **kw), filtered_lrelu_ref(x, b=b, **kw),
                               **TOLERANCES[F64])
    assert calls == [1, 1]


def test_flip_filter_and_no_bias():
    x, _, kw = _small_layer_case("R-L0", F64, out_size=12, batch=2)
    _compare(x, None, kw | dict(flip_filter=True, fu=kw["fu"] * torch.linspace(0.5, 1.5, kw["fu"].shape[0])))


def test_second_order_gradients_match_ref():
    # d/d(dy) of dx, as R1-style regularisation differentiates a gradient; backward reuses the fast path's
    # differentiable form when a graph is requested.
    for name in ["T-L4", "R-L0"]:
        x, b, kw = _small_layer_case(name, F64, out_size=6, channels=1)
        out = [second_order(op, x, b, kw) for op in (filtered_lrelu_ref, tri.filtered_lrelu_triton)]
        torch.testing.assert_close(out[1], out[0], rtol=1e-10, atol=1e-10)


def test_keeps_only_its_inputs_for_backward():
    x, b, kw = _small_layer_case("T-L4", torch.float32, out_size=4)
    sizes = []
    xi, bi = x.clone().requires_grad_(True), b.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
        tri.filtered_lrelu_triton(xi, b=bi, **kw)
    assert sum(sizes) == x.numel() + b.numel()
    with torch.no_grad():
        assert tri.filtered_lrelu_triton(xi, b=bi, **kw).grad_fn is None


@pytest.mark.parametrize("bad", [dict(x=torch.zeros(2, 3, 4)), dict(b=torch.zeros(4)), dict(up=0), dict(down=1.5),
                                 dict(padding=-6)])
def test_bad_arguments_are_rejected(bad):
    args = dict(x=torch.zeros(1, 3, 6, 6), b=torch.zeros(3), up=2, down=1, padding=1) | bad
    with pytest.raises(ValueError):
        filtered_lrelu(args.pop("x"), torch.ones(2), torch.ones(2), impl="triton", **args)


# --- dispatch --------------------------------------------------------------------------------------------------

def _count_kernel_calls(monkeypatch):
    calls = []
    real = tri.filtered_lrelu_triton
    monkeypatch.setattr(tri, "filtered_lrelu_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_triton_is_picked_when_asked_and_auto_stays_on_the_fast_path_on_cpu(monkeypatch):
    calls = _count_kernel_calls(monkeypatch)
    x, b, kw = _small_layer_case("T-L4", torch.float32, out_size=4, channels=1)
    y = filtered_lrelu(x, b=b, impl="triton", **kw)
    assert calls == [1]
    filtered_lrelu(x, b=b, **kw)                            # 'auto' prefers Triton on CUDA only
    assert calls == [1]
    with _dispatch.auto_impl("triton"):
        torch.testing.assert_close(filtered_lrelu(x, b=b, **kw), y)
    assert calls == [1, 1]


@pytest.mark.filterwarnings("ignore:filtered_lrelu. the fast path cannot run")     # gain and grad rule it out too
@pytest.mark.parametrize("change,reason", [(dict(gain=-1.0), "gain"), (dict(fd=torch.ones(120) / 120), "exceed"),
                                           ("grad", "requires grad")])
def test_fallbacks_warn_once_and_match_ref(monkeypatch, change, reason):
    monkeypatch.setattr(_dispatch, "_warned", set())
    calls = _count_kernel_calls(monkeypatch)
    x, b, kw = _small_layer_case("T-L4", torch.float32, out_size=4, channels=1)
    kw = kw | (dict(fu=kw["fu"].clone().requires_grad_(True)) if change == "grad" else change)
    if reason == "exceed":
        kw["padding"] = [p + 54 for p in kw["padding"]]     # room for the 120-tap filter
    with pytest.warns(RuntimeWarning, match=f"filtered_lrelu: the triton path cannot run.*{reason}"):
        y = filtered_lrelu(x, b=b, impl="triton", **kw)
    torch.testing.assert_close(y, filtered_lrelu_ref(x, b=b, **kw))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        filtered_lrelu(x, b=b, impl="triton", **kw)
    assert calls == []
