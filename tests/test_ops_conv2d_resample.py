"""conv2d_resample: the rearranged fast cases (strided and transposed convs) against the literal sequence."""
import itertools

import pytest
import torch
import torch.nn.functional as F

from stylegan.ops.conv2d_resample import conv2d_resample, conv2d_resample_ref
from stylegan.ops.upfirdn2d import setup_filter, upfirdn2d_ref

F64 = torch.float64


def _rand(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# Every (up, down, kernel, groups) combination, each with two (padding, flip_weight, flip_filter) variants.
COMBOS = [(up, down, k, groups, *variant) for up, down, k, groups in itertools.product([1, 2], [1, 2], [1, 3], [1, 2])
          for variant in [(0, True, False), (1, False, True)]]


@pytest.mark.parametrize("up,down,k,groups,pad,flip_weight,flip_filter", COMBOS)
def test_fast_cases_match_the_literal_sequence(up, down, k, groups, pad, flip_weight, flip_filter):
    x = _rand(2, 4, 7, 6)
    w = _rand(6, 4 // groups, k, k, seed=1)
    f = setup_filter([1, 3, 3, 1]).double() + 0.01 * _rand(4, 4, seed=2)  # asymmetric: flips must line up
    kw = dict(f=f, up=up, down=down, padding=pad, groups=groups, flip_weight=flip_weight, flip_filter=flip_filter)
    xr, xf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    wr, wf = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
    yr, yf = conv2d_resample_ref(xr, wr, **kw), conv2d_resample(xf, wf, **kw)
    torch.testing.assert_close(yf, yr, rtol=1e-10, atol=1e-10)
    dy = _rand(*yr.shape, seed=3)
    torch.testing.assert_close(torch.autograd.grad(yf, [xf, wf], dy), torch.autograd.grad(yr, [xr, wr], dy),
                               rtol=1e-10, atol=1e-10)


def test_stylegan2_shapes_and_the_literal_meaning():
    # StyleGAN2's up/down convs keep sizes exactly 2x / 0.5x; the reference is: upsample, conv, filter+decimate.
    f = setup_filter([1, 3, 3, 1]).double()
    x, w = _rand(2, 3, 8, 8), _rand(5, 3, 3, 3, seed=1)
    assert conv2d_resample(x, w, f, up=2, padding=1).shape == (2, 5, 16, 16)
    assert conv2d_resample(x, w, f, down=2, padding=1).shape == (2, 5, 4, 4)
    literal = F.conv2d(upfirdn2d_ref(x, f, up=2, padding=[3, 2, 3, 2], gain=4), w)
    torch.testing.assert_close(conv2d_resample(x, w, f, up=2, padding=1), literal, rtol=1e-10, atol=1e-10)
    literal = upfirdn2d_ref(F.conv2d(F.pad(x, [2, 2, 2, 2]), w), f, down=2)
    torch.testing.assert_close(conv2d_resample(x, w, f, down=2, padding=1), literal, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,down", [(2, 1), (1, 2), (1, 1)])
def test_gradcheck(up, down):
    f = setup_filter([1, 3, 3, 1]).double()
    x = _rand(1, 2, 5, 5).requires_grad_(True)
    w = _rand(3, 2, 3, 3, seed=1).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: conv2d_resample(x, w, f, up=up, down=down, padding=1), (x, w),
                                    fast_mode=True)


def test_errors():
    with pytest.raises(ValueError):
        conv2d_resample(torch.zeros(2, 3, 4), torch.zeros(1, 3, 1, 1))
    with pytest.raises(ValueError):
        conv2d_resample(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 1, 1), up=0)
