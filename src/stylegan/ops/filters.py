"""FIR filter design: Kaiser-windowed lowpass filters (separable, and the radial jinc variant of StyleGAN3-R).

StyleGAN3 (Karras et al. 2021), Sec. 3.2 and Appendix: every resampling step uses a windowed-sinc lowpass
filter with cutoff f_c and transition band half-width f_h, designed with the Kaiser window formulas of
Oppenheim & Schafer (Discrete-Time Signal Processing, eq. 7.62/7.63). The results equal scipy.signal.firwin
with a (kaiser, beta) window; tests check that.
"""
from __future__ import annotations

import math

import numpy as np
import scipy.special
import torch


def kaiser_attenuation(numtaps: int, width: float) -> float:
    """Stopband attenuation (dB) reached by a Kaiser filter of `numtaps` taps and transition `width`
    (as a fraction of Nyquist). Oppenheim & Schafer eq. 7.63 solved for A."""
    return 2.285 * (numtaps - 1) * math.pi * width + 7.95


def kaiser_beta(attenuation_db: float) -> float:
    """Kaiser window shape parameter for a stopband attenuation in dB (Oppenheim & Schafer eq. 7.62)."""
    a = attenuation_db
    if a > 50:
        return 0.1102 * (a - 8.7)
    if a > 21:
        return 0.5842 * (a - 21) ** 0.4 + 0.07886 * (a - 21)
    return 0.0


def kaiser_lowpass_1d(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Windowed-sinc lowpass with unit DC gain.

    numtaps: filter length; cutoff: cutoff frequency in the units of fs; width: transition band width in the
    units of fs; fs: sampling rate. Returns float64 [numtaps].
    """
    nyq = fs / 2
    beta = kaiser_beta(kaiser_attenuation(numtaps, width / nyq))
    t = np.arange(numtaps) - (numtaps - 1) / 2          # tap positions, centred
    c = cutoff / nyq                                    # cutoff as a fraction of Nyquist
    h = c * np.sinc(c * t)                              # ideal lowpass impulse response
    h = h * np.kaiser(numtaps, beta)
    return h / h.sum()                                  # unit gain at DC (firwin's scale=True)


def jinc_lowpass_2d(numtaps: int, cutoff: float, width: float, fs: float) -> np.ndarray:
    """Radially symmetric lowpass (StyleGAN3-R): a jinc, J1(2*pi*fc*r)/(pi*r), under a separable Kaiser
    window of the same design, normalised to unit DC gain. Returns float64 [numtaps, numtaps]."""
    x = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(x, x))
    # scipy's J1 is accurate to float64 rounding; torch.special.bessel_j1 is off by up to 5e-7 (10 float32 ulps).
    with np.errstate(invalid="ignore", divide="ignore"):
        h = scipy.special.j1(2 * math.pi * cutoff * r) / (math.pi * r)
    # J1(z) ~ z/2 near 0, so J1(2*pi*fc*r)/(pi*r) -> fc at the centre tap.
    h[r == 0] = cutoff
    beta = kaiser_beta(kaiser_attenuation(numtaps, width / (fs / 2)))
    w = np.kaiser(numtaps, beta)
    h = h * np.outer(w, w)
    return h / h.sum()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> torch.Tensor | None:
    """The filters StyleGAN3's layers store as `up_filter`/`down_filter` buffers: None for one tap (identity),
    float32 [numtaps] when separable, float32 [numtaps, numtaps] when radial."""
    if numtaps < 1:
        raise ValueError("numtaps must be >= 1")
    if numtaps == 1:
        return None
    if radial:
        return torch.as_tensor(jinc_lowpass_2d(numtaps, cutoff, width, fs), dtype=torch.float32)
    return torch.as_tensor(kaiser_lowpass_1d(numtaps, cutoff, width, fs), dtype=torch.float32)
