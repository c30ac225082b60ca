"""The differentiable augmentation pipeline of StyleGAN2-ADA.

Karras et al. 2020, "Training Generative Adversarial Networks with Limited Data", Sec. 2-3 and Appendix B.
Every augmentation is applied to each image independently with probability p times its own multiplier, so
that p (the "augmentation probability", driven by ada.AdaController) sets the overall strength. The stages
run in a fixed order:

  1. pixel blitting:   x-flip, quarter-turn rotation, integer translation (moved pixel for pixel);
  2. general geometry: isotropic scale, pre-rotation, anisotropic scale, post-rotation, fractional
                       translation, composed into one matrix and applied as one warp (reflect padding,
                       2x upsampling with the sym6 wavelet, bilinear sampling, 2x downsampling);
  3. colour:           brightness, contrast, luma flip, hue rotation, saturation, as one 4x4 matrix;
  4. image filtering:  a random gain on each of four octave bands;
  5. corruptions:      additive RGB noise, cutout.

Every stage is linear (affine) in the pixels, so gradients reach the generator, and it is built from ops
that are twice differentiable, so the R1 penalty (a gradient of D(augment(x)) w.r.t. x) can be
backpropagated. All randomness comes from torch's global RNG on the images' device.

One deliberate difference from NVIDIA's implementation: NVIDIA folds the blits into the geometric warp, so
a flip or a quarter turn passes through the asymmetric sym6 filter and is not exact. Here they are done by
indexing, so they move pixels exactly and cost nothing; the same random numbers are drawn in the same order.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from stylegan.augment import matrices as M
from stylegan.augment.wavelets import SYM6, octave_filter_bank
from stylegan.core.misc import assert_shape
from stylegan.ops.upfirdn2d import downsample2d, setup_filter, upsample2d

# Assumed share of the image power in each octave band, lowest first (roughly a 1/f spectrum). Band gains are
# renormalised with it so that filtering changes the spectrum's shape, not the image's overall power.
_BAND_POWER = (10 / 13, 1 / 13, 1 / 13, 1 / 13)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Fold integer pixel coordinates into [0, size) by mirroring about the edge pixels (the edge is not
    repeated), as F.pad(mode='reflect') does, but for any distance."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index >= size, period - index, index)


def reflect_pad(x: torch.Tensor, pad: Sequence[int]) -> torch.Tensor:
    """Reflect-pad [N, C, H, W] by (x0, x1, y0, y1) pixels; unlike F.pad, the padding may exceed the size."""
    x0, x1, y0, y1 = (int(v) for v in pad)
    h, w = x.shape[2], x.shape[3]
    ix = _reflect(torch.arange(-x0, w + x1, device=x.device), w)
    iy = _reflect(torch.arange(-y0, h + y1, device=x.device), h)
    return x.index_select(3, ix).index_select(2, iy)          # [N, C, H+y0+y1, W+x0+x1]


class _Draw:
    """The random numbers of one forward pass, in a fixed order from torch's RNG.

    With `quantile` q set (debug mode), every parameter takes its q-quantile instead and every enabled
    transform fires, whatever p is: a deterministic way to look at (and test) one transform at a time.
    """

    def __init__(self, batch_size: int, device: torch.device, quantile: float | None):
        self.n, self.device, self.q = batch_size, device, quantile

    def _shape(self, cols: int | None) -> list[int]:
        return [self.n] if cols is None else [self.n, cols]

    def uniform(self, lo: float, hi: float, cols: int | None = None) -> torch.Tensor:
        u = torch.rand(self._shape(cols), device=self.device)
        if self.q is not None:
            u = torch.full_like(u, self.q)
        return lo + (hi - lo) * u

    def normal(self, std: float, cols: int | None = None) -> torch.Tensor:
        z = torch.randn(self._shape(cols), device=self.device)
        if self.q is not None:
            z = torch.full_like(z, math.sqrt(2) * torch.erfinv(torch.tensor(2 * self.q - 1)).item())
        return z * std

    def half_normal(self, std: float) -> torch.Tensor:
        """|N(0, std^2)|."""
        z = torch.randn([self.n], device=self.device).abs()
        if self.q is not None:
            z = torch.full_like(z, math.sqrt(2) * torch.erfinv(torch.tensor(float(self.q))).item())
        return z * std

    def choice(self, count: int) -> torch.Tensor:
        """A uniformly random integer in [0, count), as float."""
        return torch.floor(self.uniform(0, count)).clamp(max=count - 1)

    def gate(self, value: torch.Tensor, identity: float, prob: torch.Tensor | float) -> torch.Tensor:
        """`value` for the samples where the transform fires (with probability `prob`), `identity` elsewhere."""
        fires = torch.rand([self.n] + [1] * (value.ndim - 1), device=self.device) < prob
        if self.q is not None:
            return value
        return torch.where(fires, value, torch.full_like(value, identity))


class AugmentPipe(torch.nn.Module):
    """ADA's augmentation pipeline: images [N, C, H, W] in [-1, 1] -> augmented images of the same shape.

    Every transform is off (multiplier 0) unless enabled; presets.AUGMENT_PRESETS holds the paper's
    combinations. Multipliers scale the overall probability p (the buffer `p`, saved in state_dict()).
    The defaults of the ranges and standard deviations are the paper's (Appendix B).
    Colour transforms need RGB (3 channels); on greyscale (1 channel) images brightness, contrast and luma
    flip act on the grey level, and hue and saturation are skipped.
    """

    def __init__(
        self,
        *,
        p: float = 1.0,                      # overall augmentation probability; ADA adjusts it during training
        # Pixel blitting.
        xflip: float = 0,                    # probability multiplier for x-flip
        rotate90: float = 0,                 # ... for rotation by a random multiple of 90 degrees
        xint: float = 0,                     # ... for integer translation
        xint_max: float = 0.125,             # integer translation range, as a fraction of the image size
        # General geometric transformations.
        scale: float = 0,                    # ... for isotropic scaling
        rotate: float = 0,                   # ... for arbitrary rotation (pre or post, see forward)
        aniso: float = 0,                    # ... for anisotropic scaling
        xfrac: float = 0,                    # ... for fractional translation
        scale_std: float = 0.2,              # log2 standard deviation of isotropic scaling
        rotate_max: float = 1,               # rotation range, 1 = full circle
        aniso_std: float = 0.2,              # log2 standard deviation of anisotropic scaling
        xfrac_std: float = 0.125,            # standard deviation of fractional translation, fraction of image size
        # Colour transformations.
        brightness: float = 0,               # ... for brightness
        contrast: float = 0,                 # ... for contrast
        lumaflip: float = 0,                 # ... for luma flip
        hue: float = 0,                      # ... for hue rotation
        saturation: float = 0,               # ... for saturation
        brightness_std: float = 0.2,         # standard deviation of the brightness offset
        contrast_std: float = 0.5,           # log2 standard deviation of contrast
        hue_max: float = 1,                  # hue rotation range, 1 = full circle
        saturation_std: float = 1,           # log2 standard deviation of saturation
        # Image-space filtering.
        imgfilter: float = 0,                # ... for image-space filtering
        imgfilter_bands: Sequence[float] = (1, 1, 1, 1),  # multipliers for each frequency band, lowest first
        imgfilter_std: float = 1,            # log2 standard deviation of the band gains
        # Image-space corruptions.
        noise: float = 0,                    # ... for additive RGB noise
        cutout: float = 0,                   # ... for cutout
        noise_std: float = 0.1,              # standard deviation of the noise's standard deviation (half-normal)
        cutout_size: float = 0.5,            # side of the cutout square, as a fraction of the image size
    ):
        super().__init__()
        # Every argument but p, as given: the pipeline's recipe (locals() holds exactly the arguments here).
        kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__", "p")}
        kwargs["imgfilter_bands"] = [float(v) for v in imgfilter_bands]
        for name, value in kwargs.items():
            if name == "imgfilter_bands":
                if len(value) != 4 or min(value) < 0:
                    raise ValueError(f"imgfilter_bands must be 4 non-negative multipliers, got {list(value)}")
                continue
            if not (float(value) >= 0 and math.isfinite(float(value))):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            kwargs[name] = float(value)
        # ADA may carry p past 1 (it stops only at 0, as NVIDIA's); a probability p * multiplier >= 1 fires always.
        if not (float(p) >= 0 and math.isfinite(float(p))):
            raise ValueError(f"p must be a finite number >= 0, got {p!r}")
        self.init_kwargs = kwargs        # AugmentPipe(**pipe.init_kwargs) rebuilds the same pipeline (p aside)
        for name, value in kwargs.items():
            setattr(self, name, value)
        self.register_buffer("p", torch.tensor(float(p)))
        # Derived constants, rebuilt on construction rather than saved: the state is p alone.
        self.register_buffer("geom_filter", setup_filter(SYM6), persistent=False)                     # [12]
        # sym6 is not symmetric: its taps' centre of mass lies 0.40 taps before the middle. So upsampling puts
        # low-res pixel k at 2x-pixel 2k + 0.098 rather than at 2k + 0.5 (a symmetric filter's), and the
        # mirrored filter reads it back from there. Using that alignment for the warp keeps rotations and
        # scalings centred (3x closer to torch.rot90 for a 90-degree turn than NVIDIA's 2k, see the tests).
        taps = torch.arange(len(SYM6), dtype=torch.float64)
        self._geom_align = 0.5 + float((taps * self.geom_filter).sum() / self.geom_filter.sum()) - (len(SYM6) - 1) / 2
        self.register_buffer("band_filters", torch.as_tensor(octave_filter_bank(), dtype=torch.float32),
                             persistent=False)                                                        # [4, 43]

    def extra_repr(self) -> str:
        on = [k for k, v in self.init_kwargs.items() if k in _MULTIPLIERS and v > 0]
        return f"p={float(self.p):.4f}, enabled=[{', '.join(on)}]"

    def forward(self, images: torch.Tensor, debug_percentile: float | None = None) -> torch.Tensor:
        """Augment a batch. `debug_percentile` in [0, 1] replaces every random parameter by that quantile of
        its distribution and fires every enabled transform (for visualising and testing)."""
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(f"images must be a float tensor [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if debug_percentile is None and float(self.p) == 0:
            return images                # p = 0 is the identity (and costs nothing, as at the start of ADA)
        draw = _Draw(images.shape[0], images.device, debug_percentile)
        images = self._blit(images, draw)
        images = self._warp(images, draw)
        images = self._color(images, draw)
        images = self._filter(images, draw)
        return self._corrupt(images, draw)

    # ----------------------------------------------------------------------------------------------------
    # 1. Pixel blitting.

    def _blit(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        if not (self.xflip > 0 or self.rotate90 > 0 or self.xint > 0):
            return images
        n, c, h, w = images.shape
        # inv maps each output pixel to the input pixel it shows (centred coordinates), so every step below
        # appends the inverse of its own transform.
        inv = torch.eye(3, device=images.device).repeat(n, 1, 1)
        ones = torch.ones([n], device=images.device)
        if self.xflip > 0:
            i = draw.gate(draw.choice(2), 0, self.xflip * self.p)
            inv = inv @ M.scale2d(1 - 2 * i, ones)
        if self.rotate90 > 0:
            # k quarter turns counter-clockwise on screen, as torch.rot90(images, k, dims=(2, 3)).
            k = draw.gate(draw.choice(4), 0, self.rotate90 * self.p)
            inv = inv @ M.quarter_turn2d(k)
        if self.xint > 0:
            t = draw.gate(draw.uniform(-self.xint_max, self.xint_max, cols=2), 0, self.xint * self.p)  # [N, 2]
            inv = inv @ M.translate2d(-torch.round(t[:, 0] * w), -torch.round(t[:, 1] * h))

        # Source pixel of every output pixel; out-of-range sources are mirrored back (reflect padding).
        cx, cy = (w - 1) / 2, (h - 1) / 2
        gx = (torch.arange(w, device=images.device) - cx)[None, None, :]          # [1, 1, W]
        gy = (torch.arange(h, device=images.device) - cy)[None, :, None]          # [1, H, 1]
        a = inv[:, :2, :, None, None]                                             # [N, 2, 3, 1, 1]
        sx = torch.round(a[:, 0, 0] * gx + a[:, 0, 1] * gy + a[:, 0, 2] + cx).long()  # [N, H, W]
        sy = torch.round(a[:, 1, 0] * gx + a[:, 1, 1] * gy + a[:, 1, 2] + cy).long()  # [N, H, W]
        index = (_reflect(sy, h) * w + _reflect(sx, w)).reshape(n, 1, h * w).expand(n, c, h * w)
        return images.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)

    # ----------------------------------------------------------------------------------------------------
    # 2. General geometric transformations.

    def _warp(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        if not (self.scale > 0 or self.rotate > 0 or self.aniso > 0 or self.xfrac > 0):
            return images
        n, c, h, w = images.shape
        dev = images.device
        inv = torch.eye(3, device=dev).repeat(n, 1, 1)       # output pixel -> input pixel, centred coordinates
        if self.scale > 0:
            s = draw.gate(torch.exp2(draw.normal(self.scale_std)), 1, self.scale * self.p)
            inv = inv @ M.scale2d(1 / s, 1 / s)
        # Rotation happens before and after the anisotropic scaling, each with probability p_rot chosen so
        # that P(pre or post) = rotate * p.
        p_rot = 1 - torch.sqrt((1 - self.rotate * self.p).clamp(0, 1))
        if self.rotate > 0:
            theta = draw.gate(draw.uniform(-math.pi * self.rotate_max, math.pi * self.rotate_max), 0, p_rot)
            inv = inv @ M.rotate2d(theta)
        if self.aniso > 0:
            s = draw.gate(torch.exp2(draw.normal(self.aniso_std)), 1, self.aniso * self.p)
            inv = inv @ M.scale2d(1 / s, s)
        if self.rotate > 0:
            theta = draw.gate(draw.uniform(-math.pi * self.rotate_max, math.pi * self.rotate_max), 0, p_rot)
            if draw.q is not None:
                theta = torch.zeros_like(theta)             # debug mode shows a single rotation
            inv = inv @ M.rotate2d(theta)
        if self.xfrac > 0:
            t = draw.gate(draw.normal(self.xfrac_std, cols=2), 0, self.xfrac * self.p)                  # [N, 2]
            inv = inv @ M.translate2d(-t[:, 0] * w, -t[:, 1] * h)

        # Warp only the images whose matrix is not the identity; the others stay exactly as they are.
        moved = (inv != torch.eye(3, device=dev)).flatten(1).any(dim=1).nonzero()[:, 0]
        if moved.numel() == 0:
            return images
        warped = self._warp_images(images if moved.numel() == n else images[moved], inv[moved])
        return warped if moved.numel() == n else images.index_copy(0, moved, warped)

    def _warp_images(self, images: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
        """Resample images [N, C, H, W] at inv [N, 3, 3] @ (output pixel), without aliasing (Appendix B):
        reflect-pad, upsample 2x with sym6, sample bilinearly, downsample 2x with the mirrored sym6."""
        n, c, h, w = images.shape
        dev = images.device
        border = len(SYM6) // 4          # low-res pixels the 12-tap filter reaches on each side at 2x
        cx, cy = (w - 1) / 2, (h - 1) / 2

        # The output is computed `border` pixels beyond each edge, for the downsampling filter. Pad the input
        # by how far outside it the corners of that region land, plus the upsampling filter's reach and half a
        # pixel for the bilinear footprint. Reflect padding cannot reach beyond one image width.
        ex, ey = cx + border + 0.5, cy + border + 0.5
        corners = torch.tensor([[-ex, ex, ex, -ex], [-ey, -ey, ey, ey], [1, 1, 1, 1]], device=dev)  # [3, 4]
        src = inv[:, :2] @ corners                                                                   # [N, 2, 4]
        reach = torch.stack([-src[:, 0] - cx, -src[:, 1] - cy, src[:, 0] - cx, src[:, 1] - cy]).amax(dim=(1, 2))
        reach = (reach + border + 0.5).ceil().clamp(min=0)
        reach = torch.minimum(reach, torch.tensor([w - 1, h - 1, w - 1, h - 1], device=dev))
        mx0, my0, mx1, my1 = (int(v) for v in reach.tolist())
        images = reflect_pad(images, [mx0, mx1, my0, my1])
        images = upsample2d(images, self.geom_filter, up=2)                  # [N, C, 2(H+my0+my1), 2(W+mx0+mx1)]

        # One affine map from affine_grid's normalised output coordinates to grid_sample's normalised input
        # coordinates, per axis: output (normalised -> 2x pixel -> centred low-res pixel), then inv, then
        # input (centred -> pixel of the padded 2x image -> normalised). align_corners=False throughout.
        wo, ho = 2 * (w + 2 * border), 2 * (h + 2 * border)
        wi, hi = images.shape[3], images.shape[2]

        def axis_map(scale: list[float], shift: list[float]) -> torch.Tensor:
            return torch.tensor([[scale[0], 0, shift[0]], [0, scale[1], shift[1]], [0, 0, 1]], device=dev)

        out_norm_to_px = axis_map([wo / 2, ho / 2], [(wo - 1) / 2, (ho - 1) / 2])
        a = self._geom_align
        out_px_to_centred = axis_map([0.5, 0.5], [-a / 2 - border - cx, -a / 2 - border - cy])
        in_centred_to_px = axis_map([2, 2], [2 * (cx + mx0) + a, 2 * (cy + my0) + a])
        in_px_to_norm = axis_map([2 / wi, 2 / hi], [1 / wi - 1, 1 / hi - 1])
        theta = in_px_to_norm @ in_centred_to_px @ inv @ out_px_to_centred @ out_norm_to_px             # [N, 3, 3]
        grid = F.affine_grid(theta[:, :2].to(images.dtype), [n, c, ho, wo], align_corners=False)    # [N, Ho, Wo, 2]
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        images = downsample2d(images, self.geom_filter, down=2, padding=-2 * border, flip_filter=True)
        assert_shape(images, [n, c, h, w])
        return images

    # ----------------------------------------------------------------------------------------------------
    # 3. Colour transformations.

    def _color(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        n, c, h, w = images.shape
        rgb_only = c > 1                 # hue and saturation mean nothing on a grey image
        if not (self.brightness > 0 or self.contrast > 0 or self.lumaflip > 0
                or (rgb_only and (self.hue > 0 or self.saturation > 0))):
            return images
        mat = torch.eye(4, device=images.device).repeat(n, 1, 1)     # colour in -> colour out, (r, g, b, 1)
        if self.brightness > 0:
            b = draw.gate(draw.normal(self.brightness_std), 0, self.brightness * self.p)
            mat = M.brightness3d(b) @ mat
        if self.contrast > 0:
            k = draw.gate(torch.exp2(draw.normal(self.contrast_std)), 1, self.contrast * self.p)
            mat = M.contrast3d(k) @ mat
        if self.lumaflip > 0:
            i = draw.gate(draw.choice(2), 0, self.lumaflip * self.p)
            mat = M.lumaflip3d(i) @ mat
        if self.hue > 0 and rgb_only:
            theta = draw.gate(draw.uniform(-math.pi * self.hue_max, math.pi * self.hue_max), 0, self.hue * self.p)
            mat = M.hue3d(theta) @ mat
        if self.saturation > 0 and rgb_only:
            s = draw.gate(torch.exp2(draw.normal(self.saturation_std)), 1, self.saturation * self.p)
            mat = M.saturation3d(s) @ mat

        mat = mat.to(images.dtype)
        pixels = images.reshape(n, c, h * w)
        if c == 3:
            pixels = mat[:, :3, :3] @ pixels + mat[:, :3, 3:]
        elif c == 1:
            # A grey level l is the colour (l, l, l); map it and average the channels back to grey.
            gain = mat[:, :3, :3].sum(dim=2).mean(dim=1)                  # [N]
            offset = mat[:, :3, 3].mean(dim=1)                           # [N]
            pixels = pixels * gain[:, None, None] + offset[:, None, None]
        else:
            raise ValueError(f"colour augmentations need RGB (3 channels) or grey (1 channel) images, got {c} channels")
        return pixels.reshape(n, c, h, w)

    # ----------------------------------------------------------------------------------------------------
    # 4. Image-space filtering.

    def _filter(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        if not self.imgfilter > 0:
            return images
        n, c, h, w = images.shape
        dev = images.device
        num_bands = self.band_filters.shape[0]
        band_power = torch.tensor(_BAND_POWER, device=dev)
        gains = torch.ones([n, num_bands], device=dev)
        fired = torch.zeros([n], dtype=torch.bool, device=dev)
        for i, band in enumerate(self.imgfilter_bands):
            g = draw.gate(torch.exp2(draw.normal(self.imgfilter_std)), 1, self.imgfilter * band * self.p)
            if draw.q is not None and band == 0:
                g = torch.ones_like(g)
            fired |= g != 1
            t = 1 + (g[:, None] - 1) * F.one_hot(torch.tensor(i, device=dev), num_bands)   # [N, bands]
            gains = gains * t / (band_power * t.square()).sum(dim=1, keepdim=True).sqrt()
        taps = gains.to(self.band_filters.dtype) @ self.band_filters         # [N, taps], symmetric

        # Filter only the images whose gains changed, each with its own separable filter (grouped conv).
        todo = fired.nonzero()[:, 0]
        if todo.numel() == 0:
            return images
        sub = images[todo] if todo.numel() < n else images
        m = sub.shape[0]
        half = taps.shape[1] // 2
        kernel = taps[todo].to(images.dtype).repeat_interleave(c, dim=0)     # [M*C, taps]
        x = reflect_pad(sub, [half] * 4).reshape(1, m * c, h + 2 * half, w + 2 * half)
        x = F.conv2d(x, kernel[:, None, None, :], groups=m * c)             # filter along x
        x = F.conv2d(x, kernel[:, None, :, None], groups=m * c)             # filter along y
        x = x.reshape(m, c, h, w)
        return x if todo.numel() == n else images.index_copy(0, todo, x)

    # ----------------------------------------------------------------------------------------------------
    # 5. Image-space corruptions.

    def _corrupt(self, images: torch.Tensor, draw: _Draw) -> torch.Tensor:
        n, c, h, w = images.shape
        dev = images.device
        if self.noise > 0:
            sigma = draw.gate(draw.half_normal(self.noise_std), 0, self.noise * self.p)
            images = images + torch.randn_like(images) * sigma.to(images.dtype)[:, None, None, None]
        if self.cutout > 0:
            size = draw.gate(torch.full([n], self.cutout_size, device=dev), 0, self.cutout * self.p)
            centre = draw.uniform(0, 1, cols=2)                                  # [N, 2], fraction of the image
            x = (torch.arange(w, device=dev) + 0.5) / w
            y = (torch.arange(h, device=dev) + 0.5) / h
            outside_x = (x[None, :] - centre[:, :1]).abs() >= size[:, None] / 2    # [N, W]
            outside_y = (y[None, :] - centre[:, 1:]).abs() >= size[:, None] / 2    # [N, H]
            keep = outside_x[:, None, :] | outside_y[:, :, None]                   # [N, H, W]
            images = images * keep[:, None].to(images.dtype)
        return images


# The names of the probability multipliers, for listing what a pipeline enables.
_MULTIPLIERS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                "lumaflip", "hue", "saturation", "imgfilter", "noise", "cutout")
