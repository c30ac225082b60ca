"""bias_act: every activation with its default alpha and gain, the bias along any dim, and the clamp's gradient."""
import math

import numpy as np
import pytest
import scipy.special
import torch

from stylegan.ops.bias_act import ACTIVATIONS, bias_act

F64 = torch.float64
SQRT2 = math.sqrt(2)

# Independent formulas and the defaults StyleGAN2-ADA documents (alpha, gain).
EXPECTED = {
    "linear": (lambda v: v, 1.0),
    "relu": (lambda v: np.maximum(v, 0), SQRT2),
    "lrelu": (lambda v: np.where(v > 0, v, 0.2 * v), SQRT2),
    "tanh": (np.tanh, 1.0),
    "sigmoid": (scipy.special.expit, 1.0),
    "elu": (lambda v: np.where(v > 0, v, np.expm1(v)), 1.0),
    "selu": (lambda v: 1.0507009873554805 * np.where(v > 0, v, 1.6732632423543772 * np.expm1(v)), 1.0),
    "softplus": (lambda v: np.logaddexp(0, v), 1.0),
    "swish": (lambda v: v * scipy.special.expit(v), SQRT2),
}


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_every_activation_is_covered():
    assert set(ACTIVATIONS) == set(EXPECTED)


@pytest.mark.parametrize("act", sorted(EXPECTED))
def test_values_with_default_alpha_and_gain(act):
    x, b = _rand(3, 4, 5, 2) * 3, _rand(4, seed=1)
    func, gain = EXPECTED[act]
    expected = func(x.numpy() + b.numpy()[None, :, None, None]) * gain
    np.testing.assert_allclose(bias_act(x, b, act=act).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert ACTIVATIONS[act].def_gain == pytest.approx(gain)


def test_alpha_gain_and_bias_dimension():
    x, b = _rand(2, 3, 6), _rand(6, seed=1)
    y = bias_act(x, b, dim=2, act="lrelu", alpha=0.5, gain=3.0)
    v = x.numpy() + b.numpy()[None, None, :]
    np.testing.assert_allclose(y.numpy(), np.where(v > 0, v, 0.5 * v) * 3.0, rtol=1e-12)
    torch.testing.assert_close(bias_act(x), x)                              # linear, no bias: identity


@pytest.mark.parametrize("act", sorted(EXPECTED))
def test_clamp_bounds_values_and_stops_their_gradient(act):
    x = (_rand(4, 5, 6) * 4).requires_grad_(True)
    b = _rand(5, seed=1).requires_grad_(True)
    y = bias_act(x, b, act=act, clamp=0.5)
    unclamped = bias_act(x.detach(), b.detach(), act=act)
    torch.testing.assert_close(y, unclamped.clamp(-0.5, 0.5))
    gx, gb = torch.autograd.grad(y.sum(), [x, b])
    outside = unclamped.abs() > 0.5
    assert outside.any() and not outside.all()                             # the clamp is exercised
    assert torch.all(gx[outside] == 0)
    ref = torch.autograd.grad(bias_act(x, b, act=act).sum(), x)[0]
    torch.testing.assert_close(gx[~outside], ref[~outside])
    torch.testing.assert_close(gb, gx.sum([0, 2]))                          # the bias gradient sums over dim


@pytest.mark.parametrize("act", sorted(EXPECTED))
def test_gradcheck(act):
    x = (_rand(2, 3, 4) * 2).requires_grad_(True)
    b = _rand(3, seed=1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, b: bias_act(x, b, act=act, clamp=2.0), (x, b), fast_mode=True)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        bias_act(torch.zeros(2, 3), act="gelu")
    with pytest.raises(ValueError, match="bias must be"):
        bias_act(torch.zeros(2, 3), torch.zeros(2))
