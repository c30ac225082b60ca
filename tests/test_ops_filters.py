"""FIR filter design (stylegan.ops.filters) against scipy.signal and an independent jinc computation."""
import math

import numpy as np
import pytest
import scipy.signal
import scipy.special
import torch

from ops_numpy import stylegan3_layers
from stylegan.ops.filters import (design_lowpass_filter, jinc_lowpass_2d, kaiser_attenuation, kaiser_beta,
                                  kaiser_lowpass_1d)


@pytest.mark.parametrize("numtaps", [2, 7, 12, 24, 61])
@pytest.mark.parametrize("width", [0.01, 0.1, 0.3, 0.9])
def test_kaiser_attenuation_matches_scipy(numtaps, width):
    assert kaiser_attenuation(numtaps, width) == pytest.approx(scipy.signal.kaiser_atten(numtaps, width), rel=1e-12)


@pytest.mark.parametrize("atten", [0.0, 10.0, 21.0, 21.5, 35.0, 50.0, 50.5, 80.0, 120.0])
def test_kaiser_beta_matches_scipy_in_all_three_regimes(atten):
    assert kaiser_beta(atten) == pytest.approx(scipy.signal.kaiser_beta(atten), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("numtaps,cutoff,width,fs", [
    (12, 2.0, 6.4, 32), (12, 16, 8, 64), (24, 4.7, 5.0, 64), (6, 0.2, 0.1, 1), (25, 10, 3, 50), (13, 0.3, 0.2, 2),
])
def test_kaiser_lowpass_matches_firwin(numtaps, cutoff, width, fs):
    ours = kaiser_lowpass_1d(numtaps, cutoff, width, fs)
    theirs = scipy.signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-14)
    assert ours.sum() == pytest.approx(1.0, abs=1e-12)                       # unit DC gain
    np.testing.assert_allclose(ours, ours[::-1], atol=1e-15)                 # linear phase


def _jinc_independent(numtaps, cutoff, width, fs):
    # J1(2 pi fc r) / (pi r), windowed by the outer product of Kaiser windows (scipy.signal.windows.kaiser).
    t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = scipy.special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
    h[r == 0] = cutoff                                                       # limit of J1(z)/z = 1/2
    beta = scipy.signal.kaiser_beta(scipy.signal.kaiser_atten(numtaps, width / (fs / 2)))
    win = scipy.signal.windows.kaiser(numtaps, beta)
    h = h * win[:, None] * win[None, :]
    return h / h.sum()


@pytest.mark.parametrize("numtaps,cutoff,width,fs", [(12, 16, 8, 64), (12, 32, 8, 128), (8, 3, 2, 16), (9, 3, 2, 16)])
def test_radial_filter_matches_independent_jinc(numtaps, cutoff, width, fs):
    ours = jinc_lowpass_2d(numtaps, cutoff, width, fs)
    np.testing.assert_allclose(ours, _jinc_independent(numtaps, cutoff, width, fs), rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(ours, ours.T, atol=1e-15)                     # radially symmetric
    np.testing.assert_allclose(ours, ours[::-1, ::-1], atol=1e-15)


def test_design_lowpass_filter_forms():
    assert design_lowpass_filter(1, 2, 3, 16) is None                        # one tap: identity
    f = design_lowpass_filter(12, 16, 8, 64)
    assert f.dtype == torch.float32 and f.shape == (12,)
    g = design_lowpass_filter(12, 16, 8, 64, radial=True)
    assert g.dtype == torch.float32 and g.shape == (12, 12)
    assert float(g.sum()) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError):
        design_lowpass_filter(0, 1, 1, 1)


@pytest.mark.parametrize("radial", [False, True])
def test_stylegan3_layer_filters_match_scipy(radial):
    # Every filter of a StyleGAN3 64 px synthesis network, designed as NVIDIA's SynthesisLayer does.
    for layer in stylegan3_layers(radial=radial):
        up = design_lowpass_filter(layer["up_taps"], layer["up_cutoff"], layer["up_width"], layer["fs"])
        down = design_lowpass_filter(layer["down_taps"], layer["down_cutoff"], layer["down_width"], layer["fs"],
                                     radial=layer["radial"])
        if layer["up_taps"] == 1:
            assert up is None and down is None
            continue
        expected_up = scipy.signal.firwin(layer["up_taps"], layer["up_cutoff"], width=layer["up_width"], fs=layer["fs"])
        np.testing.assert_allclose(up.numpy(), expected_up, rtol=1e-6, atol=1e-8)
        if layer["radial"]:
            expected_down = _jinc_independent(layer["down_taps"], layer["down_cutoff"], layer["down_width"],
                                              layer["fs"])
        else:
            expected_down = scipy.signal.firwin(layer["down_taps"], layer["down_cutoff"], width=layer["down_width"],
                                                fs=layer["fs"])
        np.testing.assert_allclose(down.numpy(), expected_down, rtol=1e-6, atol=1e-8)


def test_lowpass_passes_dc_and_stops_above_the_stopband():
    f = kaiser_lowpass_1d(24, cutoff=8, width=8, fs=64)
    freqs, resp = scipy.signal.freqz(f, worN=4096, fs=64)
    assert abs(resp[0]) == pytest.approx(1.0, abs=1e-9)
    stop = np.abs(resp[freqs >= 8 + 4 + 0.5])
    assert stop.max() < 10 ** (-kaiser_attenuation(24, 8 / 32) / 20) * 3     # near the designed attenuation
    assert math.isfinite(stop.max())
