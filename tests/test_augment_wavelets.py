"""The wavelet filters behind ADA's warp and band filtering: orthonormal, with the right vanishing moments."""
import math

import numpy as np
import pytest

from stylegan.augment.wavelets import SYM2, SYM6, octave_filter_bank


@pytest.mark.parametrize("taps, moments", [(SYM2, 2), (SYM6, 6)])
def test_wavelet_lowpass_is_orthonormal_with_vanishing_moments(taps, moments):
    h = np.asarray(taps)
    assert h.sum() == pytest.approx(math.sqrt(2), abs=1e-12)
    # Orthonormal to its own even shifts: sum_k h[k] h[k + 2m] = delta(m).
    for m in range(1, len(h) // 2):
        assert np.dot(h[:-2 * m], h[2 * m:]) == pytest.approx(0, abs=1e-12)
    assert np.dot(h, h) == pytest.approx(1, abs=1e-12)
    # The high-pass filter (-1)^k h[k] kills polynomials up to degree moments-1, and not degree `moments`.
    k = np.arange(len(h))
    g = (-1.0) ** k * h
    for j in range(moments):
        assert np.dot(g, k.astype(float) ** j) == pytest.approx(0, abs=1e-9 * 10 ** j)
    assert abs(np.dot(g, k.astype(float) ** moments)) > 1e-3


def test_octave_filter_bank_splits_the_spectrum_and_sums_to_identity():
    bank = octave_filter_bank()
    assert bank.shape == (4, 43)
    np.testing.assert_allclose(bank, bank[:, ::-1], atol=1e-15)          # zero phase
    delta = np.zeros(43)
    delta[21] = 1
    np.testing.assert_allclose(bank.sum(axis=0), delta, atol=1e-12)     # all gains 1 -> no change

    # Frequency responses: band 0 alone passes DC, band 3 alone passes Nyquist, and each band's response
    # peaks in its own octave, lowest band first.
    omega = np.linspace(0, np.pi, 1025)
    t = np.arange(43) - 21
    response = np.real(np.exp(-1j * np.outer(omega, t)) @ bank.T)     # [freq, band]
    np.testing.assert_allclose(response[0], [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(response[-1], [0, 0, 0, 1], atol=1e-12)
    peaks = omega[np.argmax(response, axis=0)]
    assert list(peaks) == sorted(peaks)
    for band, peak in enumerate(peaks[1:], start=1):
        lo, hi = np.pi / 2 ** (4 - band), np.pi / 2 ** (3 - band)
        assert lo <= peak <= hi, (band, peak)
