"""Equivariance metrics of StyleGAN3 (Karras et al. 2021, "Alias-Free GANs", section 3 and appendix E).

The generator is asked for a transformed image by setting the 3x3 matrix `G.synthesis.input.transform`
(the transform applied to its input Fourier features), and the result is compared with the same
transform applied to the untransformed image, only where both are defined (a mask). The score is a PSNR
in dB over the whole run, with peak 2 (images span [-1, 1]):

    PSNR = 20 log10(2) - 10 log10( sum (ref - img)^2 mask / sum mask )

- EQ-T  (eqt50k_int):  translation by a whole number of pixels, up to 1/8 of the image each way.
- EQ-T_frac (eqt50k_frac): the same translations unrounded; the reference image is shifted with a
  separable Lanczos (a=3) windowed sinc.
- EQ-R  (eqr50k): rotation by up to +-180 degrees; the reference is the ideally band-limited rotation
  of the original (sinc filter convolved with its rotated copy, under a Lanczos window, applied on a 4x
  upsampled grid), and the generator's output is filtered with the same band-limit ("pseudo rotation")
  so both sides carry the same spectrum.

A generator without an input transform but with a learned constant input (StyleGAN2) is translated by
shifting that constant (see `_ConstantInputShift`); NVIDIA's code refuses it. It cannot be rotated.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from stylegan.core import dist
from stylegan.core.errors import StyleGANError
from stylegan.core.misc import derive_seed
from stylegan.metrics.features import MetricOptions, label_sampler, prepared_generator, progress_bar, rank_share
from stylegan.ops.upfirdn2d import filter2d, upsample2d


def sinc(x: torch.Tensor) -> torch.Tensor:
    """sin(pi x) / (pi x), with sinc(0) = 1."""
    y = (x * math.pi).abs()
    return torch.where(y < 1e-30, torch.ones_like(x), torch.sin(y) / y.clamp(min=1e-30))


def lanczos_window(x: torch.Tensor, a: float) -> torch.Tensor:
    """sinc(x / a) inside |x| < a, zero outside."""
    return torch.where(x.abs() < a, sinc(x / a), torch.zeros_like(x))


def rotation_matrix(angle: torch.Tensor | float) -> torch.Tensor:
    """3x3 homogeneous matrix [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]]."""
    angle = torch.as_tensor(angle, dtype=torch.float32)
    c, s = angle.cos(), angle.sin()
    mat = torch.eye(3, device=angle.device)
    mat[0, 0], mat[0, 1], mat[1, 0], mat[1, 1] = c, s, -s, c
    return mat


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """out[..., y, x] = x[..., y - dy, x - dx], zero where that falls outside."""
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    if abs(dx) < w and abs(dy) < h:
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _box_mask(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    m = torch.zeros_like(x)
    m[..., max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)] = 1
    return m


def integer_translation(x: torch.Tensor, tx: float, ty: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate [N, C, H, W] by (tx, ty) image widths/heights, rounded to whole pixels. Returns (image, mask)."""
    h, w = x.shape[-2:]
    ix, iy = int(round(float(tx) * w)), int(round(float(ty) * h))
    return _shift(x, ix, iy), _box_mask(x, ix, w + ix, iy, h + iy)


def _lanczos_taps(frac: float, a: int, device) -> torch.Tensor:
    # Weights of input pixels x - i - m (m = -(a-1) .. a) for a shift by i + frac: L(m - frac), normalised.
    m = torch.arange(-(a - 1), a + 1, device=device, dtype=torch.float32)
    taps = sinc(m - frac) * sinc((m - frac) / a)
    return taps / taps.sum()


def fractional_translation(x: torch.Tensor, tx: float, ty: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate by (tx, ty) image sizes with Lanczos-a resampling. The mask keeps pixels whose 2a x 2a
    footprint lies inside the image."""
    h, w = x.shape[-2:]
    sx, sy = float(tx) * w, float(ty) * h
    ix, iy = math.floor(sx), math.floor(sy)
    fx, fy = sx - ix, sy - iy
    taps_x, taps_y = _lanczos_taps(fx, a, x.device), _lanczos_taps(fy, a, x.device)
    offsets = range(-(a - 1), a + 1)
    z = sum(t * _shift(x, ix + m, 0) for t, m in zip(taps_x, offsets))
    z = sum(t * _shift(z, 0, iy + m) for t, m in zip(taps_y, offsets))
    return z, _box_mask(x, ix + a, w + ix - (a - 1), iy + a, h + iy - (a - 1))


def affine_bandlimit_filter(mat: torch.Tensor, a: int = 3, amax: int = 16, aflt: int = 64, up: int = 4,
                            cutoff_in: float = 1, cutoff_out: float = 1) -> torch.Tensor:
    """2-D FIR filter that band-limits to the intersection of the input spectrum and its transform by `mat`.

    The ideal response, a sinc in input coordinates convolved with a sinc in transformed coordinates, is
    windowed by the same convolution of two Lanczos-a windows. Both are sampled at spacing 1/up on a
    (2 aflt up - 1)^2 grid and convolved through the FFT, then cropped to radius amax and normalised so each
    of the up x up polyphase components sums to 1/up^2. Returns [2 amax up - 1, 2 amax up - 1].
    """
    mat = torch.as_tensor(mat, dtype=torch.float32)
    n = aflt * up * 2 - 1
    # Sample positions in FFT order (0 first, then positive, then negative), so circular convolution is centred.
    pos = torch.arange(n, device=mat.device, dtype=torch.float32)
    pos = torch.where(pos < aflt * up, pos, pos - n) / up
    yi, xi = torch.meshgrid(pos, pos, indexing="ij")
    xo = mat[0, 0] * xi + mat[0, 1] * yi
    yo = mat[1, 0] * xi + mat[1, 1] * yi

    def conv(p, q):
        return torch.fft.ifftn(torch.fft.fftn(p) * torch.fft.fftn(q)).real

    response = conv(sinc(xi * cutoff_in) * sinc(yi * cutoff_in), sinc(xo * cutoff_out) * sinc(yo * cutoff_out))
    window = conv(lanczos_window(xi, a) * lanczos_window(yi, a), lanczos_window(xo, a) * lanczos_window(yo, a))
    f = torch.fft.fftshift(response * window)  # centre at index n // 2 = aflt * up - 1
    crop = (aflt - amax) * up
    f = f[crop:n - crop, crop:n - crop]  # [2 amax up - 1]^2
    f = F.pad(f, [0, 1, 0, 1]).reshape(amax * 2, up, amax * 2, up)
    f = f / f.sum(dim=[0, 2], keepdim=True) / up ** 2
    return f.reshape(amax * 2 * up, amax * 2 * up)[:-1, :-1]


def affine_transformation(x: torch.Tensor, mat: torch.Tensor, up: int = 4,
                          **filter_kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample [N, C, H, W] under the affine map `mat` (output pixel p reads input at mat^-1 p, in image
    coordinates where the image spans [-1, 1]): band-limit while upsampling by `up`, then bilinear lookup."""
    n, _c, h, w = x.shape
    mat = torch.as_tensor(mat, dtype=torch.float32, device=x.device)
    f = affine_bandlimit_filter(mat, up=up, **filter_kwargs)
    p = f.shape[0] // 2
    y = upsample2d(x, f, up=up, padding=p)  # [N, C, up H + 2p, up W + 2p]
    # Output pixel -> position in y (grid_sample's normalised coordinates): invert the map, shift by the
    # upsampling phase, and rescale to y's extent, which is the image plus p/up pixels on each side.
    theta = torch.linalg.inv(mat)
    theta[:2, 2] *= 2
    theta[0, 2] += 1 / up / w
    theta[1, 2] += 1 / up / h
    theta[0, :] *= w / (w + p / up * 2)
    theta[1, :] *= h / (h + p / up * 2)
    grid = F.affine_grid(theta[:2].unsqueeze(0).expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    z = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    valid = torch.zeros_like(y)
    border = p * 2 + 1
    valid[:, :, border:-border, border:-border] = 1
    mask = F.grid_sample(valid, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return z, mask


def fractional_rotation(x: torch.Tensor, angle, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Band-limited rotation of the image by `angle` radians."""
    return affine_transformation(x, rotation_matrix(angle).to(x.device), a=a, amax=a * 2)


def pseudo_rotation(x: torch.Tensor, angle, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Filter (without rotating) with the band-limit a rotation by `angle` would impose."""
    f = affine_bandlimit_filter(rotation_matrix(-torch.as_tensor(angle)).to(x.device), a=a, amax=a * 2, up=1)
    c = f.shape[0] // 2
    mask = torch.zeros_like(x)
    mask[:, :, c:-c, c:-c] = 1
    return filter2d(x, f), mask


def fourier_shift(x: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Translate a periodic, band-limited [..., H, W] signal by (dx, dy) pixels (shift theorem, real part)."""
    h, w = x.shape[-2:]
    ky = torch.fft.fftfreq(h, device=x.device).view(-1, 1)
    kx = torch.fft.fftfreq(w, device=x.device).view(1, -1)
    phase = torch.exp(-2j * math.pi * (kx * dx + ky * dy))
    return torch.fft.ifft2(torch.fft.fft2(x.to(torch.float32)) * phase).real.to(x.dtype)


class _ConstantInputShift:
    """EQ-T for generators without an input transform but with a learned constant input (StyleGAN2).

    NVIDIA's code refuses such generators. To compare architectures we translate the constant, taken as one
    period of a band-limited signal, by the requested fraction of the image (the shift theorem); noise and
    everything downstream are left alone, as they are in the network. Rotation has no such reading.
    """

    def __init__(self, const: torch.nn.Parameter):
        self.const, self.original = const, const.detach().clone()

    def copy_(self, mat: torch.Tensor) -> None:
        if not torch.allclose(mat[:2, :2], torch.eye(2, device=mat.device)):
            raise StyleGANError("eqr50k needs a StyleGAN3 generator (G.synthesis.input.transform); "
                                "a generator with a constant input can only be translated")
        r = self.original.shape[-1]
        t = -mat[:2, 2].cpu()  # the matrix maps output to input: the image moves by -translation
        with torch.no_grad():
            self.const.copy_(fourier_shift(self.original, float(t[0]) * r, float(t[1]) * r))


def _input_transform(G):
    """The object metric code sets the image transform through: StyleGAN3's buffer, or a constant-input shift."""
    transform = getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None)
    if transform is not None:
        return transform
    consts = [p for name, p in G.named_parameters() if name.endswith("const") and p.ndim == 3]
    if len(consts) == 1 and consts[0].shape[-1] == consts[0].shape[-2]:
        return _ConstantInputShift(consts[0])
    raise StyleGANError("equivariance metrics need a StyleGAN3 generator (G.synthesis.input.transform) or one "
                        "with a learned constant input; this network has neither")


def psnr(sum_sq: float | torch.Tensor, sum_mask: float | torch.Tensor) -> float:
    """PSNR in dB for images in [-1, 1] (peak-to-peak 2) from summed masked squared error and mask."""
    mse = float(sum_sq) / float(sum_mask)
    return float(20 * np.log10(2) - 10 * np.log10(mse)) if mse > 0 else float("inf")


@torch.no_grad()
def compute_equivariance(opts: MetricOptions, num_samples: int, batch_size: int = 4, translate_max: float = 0.125,
                         rotate_max: float = 1.0, eqt_int: bool = False, eqt_frac: bool = False, eqr: bool = False
                         ) -> dict[str, float]:
    """PSNRs (dB) of the requested equivariance tests over `num_samples` latents, split across ranks."""
    G = prepared_generator(opts)
    transform = _input_transform(G)
    seed = derive_seed(opts.seed, dist.get_rank(), "equivariance")
    rng = torch.Generator(device=opts.device).manual_seed(seed)
    labels = label_sampler(opts, batch_size, seed)
    names = [k for k, on in (("eqt_int", eqt_int), ("eqt_frac", eqt_frac), ("eqr", eqr)) if on]
    sums = torch.zeros(len(names), 2, dtype=torch.float64, device=opts.device)
    eye = torch.eye(3, device=opts.device)
    res = G.img_resolution

    def synth(ws, mat):
        transform.copy_(mat)
        return G.synthesis(ws, noise_mode="const", **opts.G_kwargs)

    def uniform(*shape):
        return torch.rand(shape, generator=rng, device=opts.device) * 2 - 1

    todo = rank_share(num_samples)
    bar = progress_bar(todo, "equivariance", opts, unit="sample")
    while todo > 0:
        n = min(batch_size, todo)
        todo -= n
        for name, buf in G.named_buffers():  # fresh noise images for every batch, as for FID
            if name.endswith("noise_const"):
                buf.copy_(torch.randn(buf.shape, generator=rng, device=opts.device))
        z = torch.randn([n, G.z_dim], generator=rng, device=opts.device)
        ws = G.mapping(z, next(labels)[:n])
        orig = synth(ws, eye)
        pairs = []
        if eqt_int:
            t = (uniform(2) * translate_max * res).round() / res
            mat = eye.clone()
            mat[:2, 2] = -t
            ref, mask = integer_translation(orig, t[0], t[1])
            pairs.append((ref, synth(ws, mat), mask))
        if eqt_frac:
            t = uniform(2) * translate_max
            mat = eye.clone()
            mat[:2, 2] = -t
            ref, mask = fractional_translation(orig, t[0], t[1])
            pairs.append((ref, synth(ws, mat), mask))
        if eqr:
            angle = uniform() * (rotate_max * math.pi)
            ref, ref_mask = fractional_rotation(orig, angle)
            img, img_mask = pseudo_rotation(synth(ws, rotation_matrix(-angle).to(opts.device)), angle)
            pairs.append((ref, img, ref_mask * img_mask))
        for i, (ref, img, mask) in enumerate(pairs):
            sums[i, 0] += ((ref - img).square() * mask).to(torch.float64).sum()
            sums[i, 1] += mask.to(torch.float64).sum()
        bar.update(n)
    bar.close()
    transform.copy_(eye)
    dist.all_reduce_sum_(sums)
    return {name: psnr(sums[i, 0], sums[i, 1]) for i, name in enumerate(names)}
