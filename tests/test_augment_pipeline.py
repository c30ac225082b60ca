"""AugmentPipe: each transform alone, the firing rates, the identity at p = 0, and gradients (including R1's
double backward) through the whole pipeline."""
import math

import pytest
import torch
import torch.nn.functional as F

from stylegan.augment.pipeline import AugmentPipe
from stylegan.augment.presets import AUGMENT_PRESETS, augment_pipe_from_preset
from stylegan.augment import matrices as M


def _images(n=4, c=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand([n, c, h, w], generator=g) * 2 - 1


def _smooth_images(n=4, c=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand([n, c, size // 4, size // 4], generator=g) * 2 - 1
    return F.interpolate(low, size=size, mode="bicubic", align_corners=False)


def _quantile_normal(q, std):
    return std * math.sqrt(2) * torch.erfinv(torch.tensor(2 * q - 1)).item()


# ------------------------------------------------------------------------------------------------------------
# Identity.

@pytest.mark.parametrize("name", list(AUGMENT_PRESETS))
def test_p_zero_is_the_identity(name):
    x = _images(c=3)
    assert torch.equal(augment_pipe_from_preset(name, p=0)(x), x)
    g = _images(c=1)
    assert torch.equal(augment_pipe_from_preset(name, p=0)(g), g)


def test_transforms_that_do_not_fire_leave_images_bit_exact():
    # A tiny p runs every stage, but no transform fires: nothing may change, not even by rounding.
    torch.manual_seed(0)
    x = _images(n=8)
    assert torch.equal(augment_pipe_from_preset("bgcfnc", p=1e-9)(x), x)


def test_same_seed_same_augmentation():
    pipe = augment_pipe_from_preset("bgcfnc", p=0.7)
    x = _images()
    torch.manual_seed(3)
    a = pipe(x)
    torch.manual_seed(3)
    b = pipe(x)
    c = pipe(x)
    assert torch.equal(a, b) and not torch.equal(b, c)


def test_p_past_one_is_always_for_unit_multipliers():
    # ADA's p is not capped at 1: with every multiplier 1, any p >= 1 fires every transform, the same draws
    # giving the same images. A multiplier below 1 still feels p beyond 1.
    x = _images(n=8)
    out = []
    for p in (1.0, 1.6, 7.0):
        torch.manual_seed(5)
        out.append(augment_pipe_from_preset("bgcfnc", p=p)(x))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    n = 4096
    rates = []
    for p in (1.0, 1.6):
        torch.manual_seed(6)
        y = _images(n=n, h=8, w=8, seed=2)
        rates.append(((AugmentPipe(p=p, brightness=0.5)(y) - y).abs().flatten(1).amax(dim=1) > 1e-4).float().mean())
    tol = 5 * math.sqrt(0.25 / n)
    assert rates[0].item() == pytest.approx(0.5, abs=tol) and rates[1].item() == pytest.approx(0.8, abs=tol)


# ------------------------------------------------------------------------------------------------------------
# Pixel blitting moves pixels exactly.

def test_xflip_mirrors_exactly():
    x = _images()
    pipe = AugmentPipe(xflip=1)
    assert torch.equal(pipe(x, debug_percentile=0.75), x.flip(3))
    assert torch.equal(pipe(x, debug_percentile=0.25), x)


@pytest.mark.parametrize("q, k", [(0.1, 0), (0.3, 1), (0.6, 2), (0.9, 3)])
def test_rotate90_turns_exactly(q, k):
    x = _images()
    assert torch.equal(AugmentPipe(rotate90=1)(x, debug_percentile=q), torch.rot90(x, k, dims=(2, 3)))


def test_integer_translation_shifts_the_image_and_reflects_at_the_border():
    x = _images(h=16, w=32)
    # q = 0.75 -> a shift of +0.0625 of the size: 2 pixels right and 1 pixel down.
    y = AugmentPipe(xint=1)(x, debug_percentile=0.75)
    assert torch.equal(y[:, :, 1:, 2:], x[:, :, :-1, :-2])
    assert torch.equal(y[:, :, 1:, :2], x[:, :, :-1, [2, 1]])     # columns -2, -1 mirror columns 2, 1
    assert torch.equal(y[:, :, :1, 2:], x[:, :, 1:2, :-2])         # row -1 mirrors row 1


# ------------------------------------------------------------------------------------------------------------
# General geometric transformations.

def test_warp_with_identity_matrix_reproduces_the_image():
    # Upsampling with sym6 and downsampling with its mirror image is exactly invertible (orthogonality).
    x = _images()
    inv = torch.eye(3).repeat(4, 1, 1)
    torch.testing.assert_close(AugmentPipe()._warp_images(x, inv), x, atol=3e-5, rtol=0)


def test_warp_translation_by_whole_pixels_does_not_blur():
    x = _images()
    inv = M.translate2d(torch.full([4], -2.0), torch.full([4], -1.0))   # content moves 2 right, 1 down
    y = AugmentPipe()._warp_images(x, inv)
    torch.testing.assert_close(y[:, :, 1:, 2:], x[:, :, :-1, :-2], atol=3e-5, rtol=0)


def test_warp_rotation_is_centred():
    # A 90-degree turn through the warp (q = 0.75 -> theta = pi/2) must match torch.rot90 on smooth images up to
    # interpolation error. With NVIDIA's alignment of the upsampled image the error is about 0.05 here.
    x = _smooth_images()
    y = AugmentPipe(rotate=1)(x, debug_percentile=0.75)
    err = (y - torch.rot90(x, 1, dims=(2, 3)))[:, :, 6:-6, 6:-6].abs().max().item()
    assert err < 0.03


def test_isotropic_scaling_zooms_about_the_centre():
    # q such that s = 2: the output's central 16x16 shows the input's central 8x8, enlarged.
    q = 0.5 * (1 + math.erf(1 / 0.2 / math.sqrt(2)))                    # normal quantile of log2(s) = 1
    x = _smooth_images(n=2, size=32)
    y = AugmentPipe(scale=1)(x, debug_percentile=q)
    expect = F.interpolate(x[:, :, 12:20, 12:20], scale_factor=2, mode="bicubic", align_corners=False)
    err = (y[:, :, 8:24, 8:24] - expect)[:, :, 2:-2, 2:-2].abs().mean().item()
    assert err < 0.02


# ------------------------------------------------------------------------------------------------------------
# Colour.

def test_brightness_adds_the_expected_offset():
    x = _images()
    y = AugmentPipe(brightness=1)(x, debug_percentile=0.8)
    b = _quantile_normal(0.8, 0.2)
    torch.testing.assert_close(y.mean() - x.mean(), torch.tensor(b), atol=1e-5, rtol=0)
    torch.testing.assert_close(y, x + b, atol=1e-5, rtol=0)


def test_contrast_scales_about_zero():
    x = _images()
    c = 2 ** _quantile_normal(0.3, 0.5)
    torch.testing.assert_close(AugmentPipe(contrast=1)(x, debug_percentile=0.3), x * c, atol=1e-5, rtol=0)


def test_luma_flip_inverts_luma_and_keeps_chroma():
    x = _images()
    y = AugmentPipe(lumaflip=1)(x, debug_percentile=0.75)
    luma_x, luma_y = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    torch.testing.assert_close(luma_y, -luma_x, atol=1e-5, rtol=0)
    torch.testing.assert_close(y - luma_y, x - luma_x, atol=1e-5, rtol=0)


def test_hue_rotation_preserves_luma_and_chroma_magnitude():
    x = _images()
    y = AugmentPipe(hue=1)(x, debug_percentile=0.6)                       # theta = 0.2 * pi
    torch.testing.assert_close(y.mean(1), x.mean(1), atol=1e-5, rtol=0)
    chroma_x, chroma_y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    torch.testing.assert_close(chroma_y.norm(dim=1), chroma_x.norm(dim=1), atol=1e-5, rtol=0)
    assert (chroma_y - chroma_x).abs().max() > 0.1


def test_saturation_zero_gives_grey():
    x = _images()
    y = AugmentPipe(saturation=1)(x, debug_percentile=0.0)                # quantile 0: s = 2^-inf = 0
    torch.testing.assert_close(y, x.mean(1, keepdim=True).expand_as(x), atol=1e-5, rtol=0)


def test_greyscale_images_get_luma_transforms_only():
    g = _images(c=1)
    torch.testing.assert_close(AugmentPipe(lumaflip=1)(g, debug_percentile=0.75), -g, atol=1e-6, rtol=0)
    # Hue and saturation are skipped on grey images (and draw no random numbers), so the colour preset acts
    # like brightness + contrast + luma flip.
    torch.manual_seed(1)
    a = augment_pipe_from_preset("color", p=1)(g)
    torch.manual_seed(1)
    b = AugmentPipe(brightness=1, contrast=1, lumaflip=1)(g)
    assert torch.equal(a, b)


def test_colour_on_other_channel_counts_is_an_error():
    with pytest.raises(ValueError, match="3 channels"):
        AugmentPipe(brightness=1)(_images(c=4))
    x = _images(c=4)
    assert AugmentPipe(xflip=1, scale=1, imgfilter=1)(x).shape == x.shape   # non-colour stages do not care


# ------------------------------------------------------------------------------------------------------------
# Image-space filtering and corruptions.

def test_filtering_with_unit_gains_is_the_identity():
    x = _images()
    assert torch.equal(AugmentPipe(imgfilter=1)(x, debug_percentile=0.5), x)


def test_band_gain_acts_on_its_band_and_keeps_power_balanced():
    q = 0.9
    g = 2 ** _quantile_normal(q, 1.0)
    pipe = AugmentPipe(imgfilter=1, imgfilter_bands=[0, 0, 0, 1])     # amplify only the highest octave
    norm = math.sqrt((12 + g * g) / 13)                                 # power normalisation of the gains
    # The 1-D filter runs along x and then y, so a gain acts once per axis. A constant image lives in band 0
    # alone (along both axes): its level only drops by the normalisation.
    flat = torch.full([1, 3, 32, 32], 0.5)
    torch.testing.assert_close(pipe(flat, debug_percentile=q), flat / norm ** 2, atol=1e-5, rtol=0)
    # The Nyquist checkerboard lives in band 3 alone: it is amplified by g per axis.
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = ((xx + yy) % 2 * 2 - 1).float().expand(1, 3, 32, 32)
    torch.testing.assert_close(pipe(checker, debug_percentile=q), checker * (g / norm) ** 2, atol=1e-4, rtol=0)


def test_noise_has_the_expected_strength():
    x = torch.zeros([2, 3, 128, 128])
    y = AugmentPipe(noise=1)(x, debug_percentile=0.5)
    sigma = 0.1 * math.sqrt(2) * torch.erfinv(torch.tensor(0.5)).item()     # half-normal median
    assert y.std().item() == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("q, lo", [(0.5, 4), (0.25, 0)])
def test_cutout_zeroes_a_square_of_the_expected_size(q, lo):
    x = _images(h=16, w=16) + 3                                         # no zeros of its own
    y = AugmentPipe(cutout=1)(x, debug_percentile=q)                   # cutout_size 0.5 -> 8x8, centred at q
    zero = y == 0
    assert zero.sum().item() == 4 * 3 * 8 * 8
    assert zero[:, :, lo:lo + 8, lo:lo + 8].all()
    torch.testing.assert_close(y[~zero], x[~zero], atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------------------
# Firing rates: each transform alone, with p = 0.6 and multiplier 0.5, changes an image with probability
# p * 0.5 times the chance that its random parameter is not a no-op.

_NO_OP_FREE = 1.0
RATES = {
    "xflip": 0.5,              # flips one time in two when it fires
    "rotate90": 0.75,          # k = 0 is no turn
    "xint": 0.75,              # at 8x8 a shift rounds to (0, 0) one time in four
    "scale": _NO_OP_FREE, "rotate": _NO_OP_FREE, "aniso": _NO_OP_FREE, "xfrac": _NO_OP_FREE,
    "brightness": _NO_OP_FREE, "contrast": _NO_OP_FREE, "lumaflip": 0.5, "hue": _NO_OP_FREE,
    "saturation": _NO_OP_FREE, "noise": _NO_OP_FREE, "cutout": _NO_OP_FREE,
}


@pytest.mark.parametrize("name", list(RATES) + ["imgfilter"])
def test_each_transform_fires_at_p_times_its_multiplier(name):
    n, p, mult = 4096, 0.6, 0.5
    torch.manual_seed(1234)
    x = _images(n=n, h=8, w=8, seed=1)
    changed = (AugmentPipe(p=p, **{name: mult})(x) - x).abs().flatten(1).amax(dim=1) > 1e-4
    pm = p * mult
    # Rotation fires before and after anisotropic scaling, each with 1 - sqrt(1 - pm): P(either) = pm.
    # The band filter fires on each of the four bands independently.
    expect = 1 - (1 - pm) ** 4 if name == "imgfilter" else pm * RATES[name]
    tolerance = 5 * math.sqrt(expect * (1 - expect) / n)
    assert changed.float().mean().item() == pytest.approx(expect, abs=tolerance)


# ------------------------------------------------------------------------------------------------------------
# Gradients.

def _fixed_draws(pipe, seed=7):
    """The pipeline as a fixed function of the images: the same random parameters on every call."""
    def f(x):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return pipe(x)
    return f


def test_backward_is_the_adjoint_of_the_pipeline():
    # With its random parameters fixed the pipeline is affine, f(x) = A x + b; backward must compute A^T.
    pipe = augment_pipe_from_preset("bgcfnc", p=0.6).double()
    f = _fixed_draws(pipe)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand([6, 3, 16, 16], generator=g, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    v = torch.randn([6, 3, 16, 16], generator=g, dtype=torch.float64)
    y = f(x)
    assert not torch.equal(y, x)
    (grad,) = torch.autograd.grad((y * v).sum(), x)
    ax = y - f(torch.zeros_like(x))
    torch.testing.assert_close((ax * v).sum(), (x * grad).sum(), rtol=1e-9, atol=1e-9)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()


class _TinyD(torch.nn.Module):
    def __init__(self, c=3):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, 4, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(4, 1, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv2(F.leaky_relu(self.conv1(x), 0.2)).mean(dim=(1, 2, 3))


def test_r1_penalty_double_backward_through_the_pipeline():
    # What training does: R1 = |grad_x D(augment(x))|^2, then backpropagate R1 into D's weights.
    torch.manual_seed(0)
    pipe = augment_pipe_from_preset("bgcfnc", p=0.6)
    disc = _TinyD()
    x = _images(n=4, h=16, w=16).requires_grad_(True)
    logits = disc(pipe(x))
    (r1_grads,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    r1_grads.square().sum().backward()
    # grad_x D does not depend on the biases (leaky ReLU is piecewise linear), but it does on the weights.
    for param in (disc.conv1.weight, disc.conv2.weight):
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0


@pytest.mark.slow
def test_second_derivatives_through_the_pipeline_match_finite_differences():
    pipe = augment_pipe_from_preset("bgcfnc", p=0.6).double()
    f = _fixed_draws(pipe, seed=3)
    disc = _TinyD().double()
    x = _images(n=2, h=8, w=8).double().requires_grad_(True)
    assert torch.autograd.gradgradcheck(lambda t: disc(f(t)), (x,), atol=1e-6, fast_mode=True)
