"""The two orthogonal wavelet filters ADA is built on, and the per-band filter bank made from one of them.

StyleGAN2-ADA (Karras et al. 2020), Appendix B:
  - geometric warps upsample and downsample 2x with the low-pass filter of Daubechies' least-asymmetric
    wavelet of order 6 ("sym6", 12 taps). Being orthogonal, upsampling with it and then downsampling with
    its mirror image reproduces the input exactly, so the warp itself adds no blur and no aliasing;
  - image-space filtering splits the spectrum into four octave bands with "sym2" (4 taps, equal to db2)
    and amplifies each band by its own random gain.

The coefficients are the standard published values of these wavelets (Daubechies, "Ten Lectures on
Wavelets", 1992, Sec. 6.4 for the least-asymmetric family; the same numbers PyWavelets ships as sym2/sym6).
tests/test_augment_wavelets.py checks they are orthonormal and have the expected number of vanishing moments,
which a wrong digit would break.
"""
from __future__ import annotations

import math

import numpy as np

# Low-pass decomposition filter of sym2 (= db2), in its well-known closed form.
_R3 = math.sqrt(3)
SYM2 = np.array([1 - _R3, 3 - _R3, 3 + _R3, 1 + _R3]) / (4 * math.sqrt(2))

# Low-pass decomposition filter of sym6 (12 taps, 6 vanishing moments).
SYM6 = np.array([
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
])


def _dilate(taps: np.ndarray) -> np.ndarray:
    """h(z) -> h(z^2): insert a zero between consecutive taps (moves a filter down one octave)."""
    out = np.zeros(2 * len(taps) - 1)
    out[::2] = taps
    return out


def octave_filter_bank(lowpass: np.ndarray = SYM2, num_bands: int = 4) -> np.ndarray:
    """Zero-phase filters that split a signal into `num_bands` octave bands and sum to the identity.

    With H(z) the wavelet low-pass filter, the two half-band filters H(z)H(z^-1)/2 and H(-z)H(-z^-1)/2 are
    symmetric and add up to 1 (the power-complementary property of an orthogonal wavelet). Splitting the
    low half again and again gives the bands, from the lowest (row 0) to the highest (row num_bands-1).
    Returns float64 [num_bands, taps]; for sym2 and 4 bands, taps = 43.
    """
    lo = np.asarray(lowpass, dtype=np.float64)
    hi = lo * (-1.0) ** np.arange(len(lo))                 # H(-z): the matching high-pass filter
    lo2 = np.convolve(lo, lo[::-1]) / 2                     # H(z) H(z^-1) / 2, zero phase
    hi2 = np.convolve(hi, hi[::-1]) / 2                     # H(-z) H(-z^-1) / 2, zero phase
    bands = [np.ones(1)]
    for _ in range(1, num_bands):
        # Every band found so far moves down one octave and keeps only the low half of the new scale;
        # the new top band is the high half at the finest scale.
        bands = [np.convolve(_dilate(b), lo2) for b in bands]
        pad = (len(bands[0]) - len(hi2)) // 2
        bands.append(np.pad(hi2, [pad, pad]))
    return np.stack(bands)
