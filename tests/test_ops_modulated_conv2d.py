"""Modulated convolutions: StyleGAN2's fused and non-fused paths, demodulation, and StyleGAN3's normalised variant,
each against a per-sample loop that builds the modulated weights literally (StyleGAN2 eqs. 1-3)."""
import pytest
import torch
import torch.nn.functional as F

from stylegan.ops.conv2d_resample import conv2d_resample_ref
from stylegan.ops.modulated_conv2d import modulated_conv2d, modulated_conv2d_sg3
from stylegan.ops.upfirdn2d import setup_filter

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _per_sample_sg2(x, weight, styles, noise, up, down, padding, f, demodulate, flip_weight):
    out = []
    for n in range(x.shape[0]):
        w = weight * styles[n].reshape(1, -1, 1, 1)                                 # eq. 1
        if demodulate:
            w = w / (w.square().sum([1, 2, 3], keepdim=True) + 1e-8).sqrt()         # eqs. 2-3
        out.append(conv2d_resample_ref(x[n:n + 1], w, f, up=up, down=down, padding=padding, flip_weight=flip_weight))
    y = torch.cat(out)
    return y if noise is None else y + noise


CASES = [(1, 1, 1, 3), (2, 1, 1, 3), (1, 2, 1, 3), (1, 1, 0, 1), (2, 1, 0, 1)]


@pytest.mark.parametrize("up,down,padding,k", CASES)
@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_sg2_fused_and_non_fused_match_the_per_sample_definition(up, down, padding, k, demodulate, fused):
    x, weight, styles = _rand(3, 4, 6, 6), _rand(5, 4, k, k, seed=1), _rand(3, 4, seed=2) + 1
    f = setup_filter([1, 3, 3, 1]).double()
    noise = _rand(3, 1, 1, 1, seed=3)
    args = (x, weight, styles)
    kw = dict(noise=noise, up=up, down=down, padding=padding, resample_filter=f, demodulate=demodulate)
    expected = _per_sample_sg2(*args, noise, up, down, padding, f, demodulate, True)
    ins = [t.clone().requires_grad_(True) for t in args]
    y = modulated_conv2d(*ins, fused_modconv=fused, **kw)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    ref_ins = [t.clone().requires_grad_(True) for t in args]
    dy = _rand(*y.shape, seed=4)
    torch.testing.assert_close(
        torch.autograd.grad(y, ins, dy),
        torch.autograd.grad(_per_sample_sg2(*ref_ins, noise, up, down, padding, f, demodulate, True), ref_ins, dy),
        rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("fused", [True, False])
def test_demodulated_weights_have_unit_norm_per_output_channel(fused):
    # With each input channel's impulse in its own, non-overlapping place, the output holds every modulated and
    # demodulated weight once, so its energy per (sample, output channel) is sum w''^2 = 1 (up to the 1e-8 eps).
    n, i, o, k = 2, 3, 4, 3
    x = torch.zeros(n, i, 3 * 4 * i, 5, dtype=F64)
    for c in range(i):
        x[:, c, 4 * c + 1, 2] = 1
    y = modulated_conv2d(x, _rand(o, i, k, k, seed=1) * 5, _rand(n, i, seed=2), padding=1, fused_modconv=fused)
    torch.testing.assert_close(y.square().sum([2, 3]), torch.ones(n, o, dtype=F64), rtol=1e-7, atol=1e-7)


def test_only_float16_takes_the_prescaling_path(monkeypatch):
    # In fp16, weights and styles are first divided by their max norms so the products cannot overflow;
    # demodulation undoes it exactly in exact arithmetic. float32 (the CPU dtype) must not take that path.
    x, weight = _rand(2, 4, 6, 6, dtype=torch.float32), _rand(5, 4, 3, 3, seed=1, dtype=torch.float32)
    styles = _rand(2, 4, seed=2, dtype=torch.float32) * 100
    y32 = modulated_conv2d(x, weight, styles, padding=1)
    y16 = modulated_conv2d(x.half(), weight, styles * 1e3, padding=1)         # styles that would overflow fp16
    assert y16.dtype == torch.float16 and torch.isfinite(y16).all()
    torch.testing.assert_close(y16.float(), y32, rtol=2e-2, atol=2e-2)
    norms = []
    real_norm = torch.Tensor.norm
    monkeypatch.setattr(torch.Tensor, "norm", lambda t, *a, **k: norms.append(a) or real_norm(t, *a, **k))
    modulated_conv2d(x, weight, styles, padding=1)
    assert norms == []
    modulated_conv2d(x.half(), weight, styles, padding=1)
    assert len(norms) == 2


def _per_sample_sg3(x, w, s, demodulate, padding, input_gain):
    if demodulate:
        w = w / w.square().mean([1, 2, 3], keepdim=True).sqrt()                    # unit RMS per output channel
        s = s / s.square().mean().sqrt()                                           # unit RMS over the batch
    out = []
    for n in range(x.shape[0]):
        wn = w * s[n].reshape(1, -1, 1, 1)
        if demodulate:
            wn = wn / (wn.square().sum([1, 2, 3], keepdim=True) + 1e-8).sqrt()
        if input_gain is not None:
            g = input_gain if input_gain.ndim < 2 else input_gain[n]
            wn = wn * torch.as_tensor(g, dtype=w.dtype).reshape(1, -1, 1, 1)
        out.append(F.conv2d(x[n:n + 1], wn, padding=padding))
    return torch.cat(out)


@pytest.mark.parametrize("demodulate,k,gain_shape", [(True, 3, ()), (True, 1, (4,)), (False, 1, None),
                                                     (True, 3, (3, 4)), (False, 3, ())])
def test_sg3_matches_the_per_sample_definition(demodulate, k, gain_shape):
    x, w, s = _rand(3, 4, 7, 7), _rand(5, 4, k, k, seed=1), _rand(3, 4, seed=2)
    gain = None if gain_shape is None else _rand(*gain_shape, seed=3).abs() + 0.5
    ins = [t.clone().requires_grad_(True) for t in (x, w, s)]
    y = modulated_conv2d_sg3(*ins, demodulate=demodulate, padding=k - 1, input_gain=gain)
    ref_ins = [t.clone().requires_grad_(True) for t in (x, w, s)]
    expected = _per_sample_sg3(*ref_ins, demodulate, k - 1, gain)
    torch.testing.assert_close(y, expected, rtol=1e-10, atol=1e-10)
    dy = _rand(*y.shape, seed=4)
    torch.testing.assert_close(torch.autograd.grad(y, ins, dy), torch.autograd.grad(expected, ref_ins, dy),
                               rtol=1e-9, atol=1e-9)


def test_gradcheck_both():
    x, w, s = _rand(2, 3, 5, 5).requires_grad_(True), _rand(4, 3, 3, 3, seed=1).requires_grad_(True), \
        (_rand(2, 3, seed=2) + 1).requires_grad_(True)
    f = setup_filter([1, 3, 3, 1]).double()
    assert torch.autograd.gradcheck(lambda x, w, s: modulated_conv2d(x, w, s, up=2, padding=1, resample_filter=f),
                                    (x, w, s), fast_mode=True)
    assert torch.autograd.gradcheck(lambda x, w, s: modulated_conv2d_sg3(x, w, s, padding=2, input_gain=None),
                                    (x, w, s), fast_mode=True)


def test_shape_errors():
    with pytest.raises(AssertionError):
        modulated_conv2d(torch.zeros(2, 3, 4, 4), torch.zeros(4, 3, 3, 3), torch.zeros(2, 4))
    with pytest.raises(AssertionError):
        modulated_conv2d_sg3(torch.zeros(2, 3, 4, 4), torch.zeros(4, 3, 1, 1), torch.zeros(3, 3))
