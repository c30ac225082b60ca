"""Equivariance metrics on hand-made synthesis networks whose equivariance is known exactly.

`FourierG` draws each image as a sum of band-limited sinusoids of the transformed coordinates
q = A u + b, with (A | b) the generator's `synthesis.input.transform`: asked for a transformed image, it
returns exactly the transformed image. `BrokenG` ignores the transform, or adds a pattern locked to the
pixel grid, so it fails on purpose. The transforms themselves (shifts, Lanczos, band-limited rotation)
were checked against the definitions of the StyleGAN3 paper's code while writing them.
"""
import math

import pytest
import torch
from torch import nn

from stylegan.core.errors import StyleGANError
from stylegan import build_generator
from stylegan.metrics import calc_metric
from stylegan.metrics import equivariance as eq


class _Input(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("transform", torch.eye(3))


class FourierSynthesis(nn.Module):
    def __init__(self, res=32, waves=6, max_cycles_per_pixel=0.15, ignore_transform=False, grid_pattern=0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.res, self.waves = res, waves
        self.input = _Input()
        angle = torch.rand(3, waves, generator=g) * 2 * math.pi
        radius = torch.rand(3, waves, generator=g) * max_cycles_per_pixel * res  # cycles per image
        self.register_buffer("freqs", torch.stack([angle.cos(), angle.sin()], -1) * radius.unsqueeze(-1))  # [3, K, 2]
        self.register_buffer("pattern", torch.randn(1, 3, res, res, generator=g) * grid_pattern)
        self.ignore_transform = ignore_transform

    def forward(self, ws, noise_mode="const", **kwargs):
        u = (torch.arange(self.res, dtype=torch.float32) + 0.5) / self.res - 0.5
        uy, ux = torch.meshgrid(u, u, indexing="ij")
        m = torch.eye(3) if self.ignore_transform else self.input.transform
        qx = m[0, 0] * ux + m[0, 1] * uy + m[0, 2]
        qy = m[1, 0] * ux + m[1, 1] * uy + m[1, 2]
        phase = ws[:, 0, :self.waves].view(-1, 1, self.waves, 1, 1)  # [N, 1, K, 1, 1]
        arg = 2 * math.pi * (self.freqs[..., 0, None, None] * qx + self.freqs[..., 1, None, None] * qy)  # [3, K, H, W]
        img = torch.sin(arg.unsqueeze(0) + phase).sum(dim=2) / math.sqrt(self.waves)  # [N, 3, H, W]
        return img * 0.5 + self.pattern


class FourierG(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.synthesis = FourierSynthesis(**kwargs)
        self.z_dim = self.w_dim = 8
        self.c_dim, self.num_ws, self.img_channels = 0, 1, 3
        self.img_resolution = self.synthesis.res

    def mapping(self, z, c, **kwargs):
        return z.unsqueeze(1) * math.pi


def _psnr(name, G, n=8):
    return calc_metric(name, G, None, device="cpu", num_gen=n, progress=False)["results"][name]


def test_exactly_equivariant_network_scores_very_high():
    G = FourierG()
    assert _psnr("eqt50k_int", G) > 90      # whole-pixel shifts of sampled sinusoids: float rounding only
    assert _psnr("eqt50k_frac", G) > 40     # Lanczos-3 interpolation of a band-limited image
    assert _psnr("eqr50k", G) > 40          # band-limited rotation on both sides


def test_equivariance_shows_progress_with_an_eta(monkeypatch):
    # The equivariance metrics run for minutes on real networks; like every long job they show a tqdm bar (which
    # prints the rate and the remaining time), counting samples up to the total.
    from stylegan.metrics import features
    bars = []

    class Recording(features.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.done, self.shown = 0, not kwargs.get("disable")
            bars.append(self)

        def update(self, n=1):
            self.done += n
            return super().update(n)

    monkeypatch.setattr(features, "tqdm", Recording)
    calc_metric("eqt50k_int", FourierG(), None, device="cpu", num_gen=8, progress=True)
    (bar,) = [b for b in bars if b.desc.startswith("equivariance")]
    assert (bar.total, bar.done, bar.unit, bar.shown) == (8, 8, "sample", True)


def test_network_that_ignores_the_transform_scores_low():
    G = FourierG(ignore_transform=True)
    assert _psnr("eqt50k_int", G) < 20
    assert _psnr("eqt50k_frac", G) < 20
    assert _psnr("eqr50k", G) < 20


def test_pixel_locked_pattern_breaks_translation_equivariance():
    clean, locked = _psnr("eqt50k_int", FourierG()), _psnr("eqt50k_int", FourierG(grid_pattern=0.3))
    assert locked < 20 and clean > 90


def test_psnr_convention_peak_two():
    # Images in [-1, 1]: an error of 1 everywhere is MSE 1, PSNR 20 log10(2) = 6.02 dB.
    assert eq.psnr(100.0, 100.0) == pytest.approx(20 * math.log10(2))
    assert eq.psnr(1.0, 100.0) == pytest.approx(20 * math.log10(2) + 20)


def test_integer_translation_moves_content_and_masks_the_border():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    z, m = eq.integer_translation(x, 0.25, -0.25)  # one pixel right, one pixel up
    assert torch.equal(z[0, 0, 0, 1:], x[0, 0, 1, :3])
    assert m[0, 0].sum() == 9 and m[0, 0, 3].sum() == 0 and m[0, 0, :, 0].sum() == 0


def test_fractional_translation_by_whole_pixels_is_exact():
    x = torch.randn(1, 2, 12, 12)
    z_int, m_int = eq.integer_translation(x, 2 / 12, -1 / 12)
    z_frac, m_frac = eq.fractional_translation(x, 2 / 12, -1 / 12)
    both = m_int * m_frac
    assert both.sum() > 0
    assert torch.allclose(z_int * both, z_frac * both, atol=1e-5)


def test_rotation_filter_polyphase_components_sum_to_one():
    f = eq.affine_bandlimit_filter(eq.rotation_matrix(0.7), a=3, amax=6, up=4)
    assert f.shape == (47, 47)
    padded = torch.nn.functional.pad(f, [0, 1, 0, 1]).view(12, 4, 12, 4)
    assert torch.allclose(padded.sum(dim=[0, 2]) * 16, torch.ones(4, 4), atol=1e-5)


def test_generator_without_input_transform_is_refused():
    G = FourierG()
    del G.synthesis.input
    with pytest.raises(StyleGANError, match="input.transform"):
        _psnr("eqt50k_int", G)


def test_fourier_shift_of_a_band_limited_signal():
    r = 8
    u = torch.arange(r, dtype=torch.float32)
    x = torch.cos(2 * math.pi * (u.view(1, -1) * 1 + u.view(-1, 1) * 2) / r)  # frequencies (1, 2) of 8
    shifted = eq.fourier_shift(x, 0.5, -1.25)
    expected = torch.cos(2 * math.pi * ((u.view(1, -1) - 0.5) * 1 + (u.view(-1, 1) + 1.25) * 2) / r)
    assert torch.allclose(shifted, expected, atol=1e-5)
    assert torch.allclose(eq.fourier_shift(x, 3, 0), torch.roll(x, 3, dims=1), atol=1e-5)


def _real_generator(cfg):
    return build_generator(cfg, 16, cbase=1024, cmax=32)


@pytest.mark.slow
def test_stylegan3_t_at_initialisation_is_more_translation_equivariant_than_stylegan2():
    torch.manual_seed(0)
    sg3 = _psnr("eqt50k_int", _real_generator("stylegan3-t"), n=4)
    torch.manual_seed(0)
    sg2 = _psnr("eqt50k_int", _real_generator("stylegan2"), n=4)
    assert sg3 > sg2 + 10, (sg3, sg2)
