"""StyleGAN3 generator (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"), configs T and R.

  MappingNetwork: z, c -> w (2 layers), broadcast to num_ws = num_layers + 2.
  SynthesisInput: Fourier features whose frequencies are drawn in a disc of radius f_{c,0}, rotated and translated
                  by an affine map of w and by the user's `transform` buffer (Sec. 3.1, Appendix D).
  SynthesisLayer x (num_layers + 1): modulated conv, then filtered_lrelu: upsample, leaky ReLU at a higher rate,
                  low-pass filter and downsample (Sec. 3.2, Fig. 4); the input is normalised by a running average of
                  its magnitude (Appendix F.1). The last layer is ToRGB (1x1 conv, linear).
  Per-layer schedule (Sec. 4, Fig. 4b / Appendix F.1): cutoff f_c and minimum stopband f_t rise geometrically
  from the first layer to the last `num_critical` layers, which are critically sampled at the output resolution;
  sampling rate s = the smallest power of two >= 2 f_t (capped at the resolution); half-width f_h = max(f_t, s/2) - f_c;
  every layer but the last two keeps a margin of `margin_size` pixels around the image.
StyleGAN3-R (Sec. 3.3): 1x1 convolutions and radially symmetric (jinc) downsampling filters in all
non-critically-sampled layers. Layers are named L<i>_<size>_<channels>, as in NVIDIA's code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from stylegan.core.misc import assert_shape
from stylegan.networks.config import GeneratorConfig, StyleGAN3SynthesisConfig
from stylegan.networks.layers import FullyConnectedLayer, GeneratorBase
from stylegan.ops.filtered_lrelu import filtered_lrelu
from stylegan.ops.filters import design_lowpass_filter
from stylegan.ops.modulated_conv2d import modulated_conv2d_sg3

NOISE_MODES = ("const", "random", "none")


@dataclass(frozen=True)
class LayerSpec:
    """One synthesis layer's place in the schedule. Index 0 also describes the Fourier-feature input."""
    index: int
    size: int                   # spatial size of the layer's output, margin included
    sampling_rate: int          # s[i]
    cutoff: float               # f_c[i]
    stopband: float             # f_t[i]
    half_width: float           # f_h[i]
    channels: int
    critically_sampled: bool


def layer_schedule(img_resolution: int, img_channels: int, s: StyleGAN3SynthesisConfig) -> list[LayerSpec]:
    """The paper's per-layer schedule of cutoff, stopband, sampling rate, margin and width (Sec. 4, Appendix F.1)."""
    n = s.num_layers
    last_cutoff = img_resolution / 2                                         # f_{c,N}: Nyquist of the output
    last_stopband = last_cutoff * s.last_stopband_rel                       # f_{t,N}
    exponents = np.minimum(np.arange(n + 1) / (n - s.num_critical), 1)      # geometric ramp, flat at the end
    cutoffs = s.first_cutoff * (last_cutoff / s.first_cutoff) ** exponents
    stopbands = s.first_stopband * (last_stopband / s.first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + s.margin_size * 2
    sizes[-2:] = img_resolution                                              # the last two layers crop the margin
    channels = np.rint(np.minimum((s.channel_base / 2) / cutoffs, s.channel_max))
    channels[-1] = img_channels
    return [LayerSpec(index=i, size=int(sizes[i]), sampling_rate=int(sampling_rates[i]), cutoff=float(cutoffs[i]),
                      stopband=float(stopbands[i]), half_width=float(half_widths[i]), channels=int(channels[i]),
                      critically_sampled=i >= n - s.num_critical)
            for i in range(n + 1)]


class SynthesisInput(torch.nn.Module):
    """Fourier features (Sec. 3.1 and Appendix D): sin(2 pi (<f_k, x> + phi_k)) on a grid that covers the image
    plus its margin, for `channels` frequencies f_k drawn uniformly in the disc of radius `bandwidth`, followed by
    a learned channel mix. An affine map of w rotates and translates the features (Appendix F.1); `transform` is a
    user-settable 3x3 inverse transform of the output image (translation, rotation)."""

    def __init__(self,
                 w_dim: int,                            # W dimensionality
                 channels: int,                         # number of Fourier features and output channels
                 size: int,                             # output spatial size (image plus margin)
                 sampling_rate: float,                  # output sampling rate
                 bandwidth: float):                     # largest frequency, f_{c,0}
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2])                 # [width, height]
        self.hw = (int(self.size[1]), int(self.size[0]))                   # Python ints: constants to torch.compile
        self.sampling_rate = sampling_rate
        self.bandwidth = bandwidth

        # Uniform in the disc: a Gaussian direction, with the radius remapped so the density is flat in 2-D.
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs /= radii * radii.square().exp().pow(0.25)
        freqs *= bandwidth
        phases = torch.rand([channels]) - 0.5

        self.weight = torch.nn.Parameter(torch.randn([channels, channels]))
        # t = (r_c, r_s, t_x, t_y) starts as the identity: no rotation, no translation.
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))                  # user's inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        # Learned similarity transform from w: normalise (r_c, r_s) to a rotation, then translate.
        t = self.affine(w)                                                    # [N, 4]
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        m_r = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])   # [N, 3, 3] inverse rotation
        m_r[:, 0, 0] = t[:, 0]
        m_r[:, 0, 1] = -t[:, 1]
        m_r[:, 1, 0] = t[:, 1]
        m_r[:, 1, 1] = t[:, 0]
        m_t = torch.eye(3, device=w.device).unsqueeze(0).repeat([n, 1, 1])   # [N, 3, 3] inverse translation
        m_t[:, 0, 2] = -t[:, 2]
        m_t[:, 1, 2] = -t[:, 3]
        transforms = m_r @ m_t @ self.transform.unsqueeze(0)                  # rotate, translate, then the user's

        # Moving the image moves every frequency's phase; rotating it rotates the frequencies.
        phases = self.phases.unsqueeze(0) + (self.freqs.unsqueeze(0) @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = self.freqs.unsqueeze(0) @ transforms[:, :2, :2]                                          # [N, C, 2]

        # Fade out frequencies that the user's transform pushed past the band, before they could alias.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)                            # [N, C]

        # Sample positions: pixel centres of a size x size grid at the given sampling rate, centred on 0.
        theta = torch.eye(2, 3, device=w.device)
        theta[0, 0] = 0.5 * self.hw[1] / self.sampling_rate
        theta[1, 1] = 0.5 * self.hw[0] / self.sampling_rate
        grids = torch.nn.functional.affine_grid(theta.unsqueeze(0), [1, 1, *self.hw],
                                                align_corners=False)                                      # [1, H, W, 2]

        x = (grids.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)           # [N, H, W, C]
        x = x + phases.unsqueeze(1).unsqueeze(2)
        x = torch.sin(x * (np.pi * 2))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight / np.sqrt(self.channels)).t()                                               # [N, H, W, C]
        x = x.permute(0, 3, 1, 2)                                                                        # [N, C, H, W]
        assert_shape(x, [n, self.channels, *self.hw])
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={list(map(int, self.size))}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(torch.nn.Module):
    """Modulated conv + filtered_lrelu (Sec. 3.2): the nonlinearity runs at `lrelu_upsampling` times the higher of
    the input/output rates between an upsampling and a downsampling low-pass filter; the input is divided by the
    root of a running average of its squared magnitude (Appendix F.1). As ToRGB: 1x1, linear, no filters."""

    def __init__(self,
                 w_dim: int,                            # W dimensionality
                 is_torgb: bool,                        # the final ToRGB layer
                 is_critically_sampled: bool,           # critically sampled (no radial filter)
                 use_fp16: bool,                        # fp16 for this layer (CUDA only)
                 in_channels: int,                      # input channels
                 out_channels: int,                     # output channels
                 in_size: int,                          # input spatial size
                 out_size: int,                         # output spatial size
                 in_sampling_rate: int,                 # input sampling rate s
                 out_sampling_rate: int,                # output sampling rate s
                 in_cutoff: float,                      # input cutoff f_c
                 out_cutoff: float,                     # output cutoff f_c
                 in_half_width: float,                  # input transition half-width f_h
                 out_half_width: float,                 # output transition half-width f_h
                 conv_kernel: int = 3,                  # kernel size (ToRGB: always 1)
                 filter_size: int = 6,                  # filter taps relative to the lower rate
                 lrelu_upsampling: int = 2,             # oversampling of the nonlinearity (ToRGB: 1)
                 use_radial_filters: bool = False,      # radial downsampling filter (not for critical layers)
                 conv_clamp: float | None = 256,        # clamp to +-X; None = off
                 magnitude_ema_beta: float = 0.999):    # decay of the input-magnitude average
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2])
        self.out_size = np.broadcast_to(np.asarray(out_size), [2])
        self.in_hw = (int(self.in_size[1]), int(self.in_size[0]))          # Python ints: constants to torch.compile
        self.out_hw = (int(self.out_size[1]), int(self.out_size[0]))
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff = in_cutoff
        self.out_cutoff = out_cutoff
        self.in_half_width = in_half_width
        self.out_half_width = out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = torch.nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        # Upsampling filter: from the input rate to the temporary rate, cutting at the input's cutoff.
        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            numtaps=self.up_taps, cutoff=in_cutoff, width=in_half_width * 2, fs=self.tmp_sampling_rate))

        # Downsampling filter: back to the output rate, cutting at the output's cutoff (radial for -R).
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            numtaps=self.down_taps, cutoff=out_cutoff, width=out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding so the output has out_size pixels, with samples placed symmetrically (Appendix C.3).
        pad_total = (self.out_size - 1) * self.down_factor + 1                  # wanted size before downsampling
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor     # size after conv and upsampling
        pad_total += self.up_taps + self.down_taps - 2                          # what the two filters consume
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = False,
                force_fp32: bool = False) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, *self.in_hw])
        assert_shape(w, [x.shape[0], self.w_dim])

        if update_emas:
            magnitude_cur = x.detach().to(torch.float32).square().mean()
            self.magnitude_ema.copy_(magnitude_cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)                                                  # [N, in_channels]
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))

        fp16 = self.use_fp16 and not force_fp32 and x.device.type == "cuda"
        dtype = torch.float16 if fp16 else torch.float32
        x = modulated_conv2d_sg3(x.to(dtype), self.weight, styles, padding=self.conv_kernel - 1,
                                 demodulate=not self.is_torgb, input_gain=input_gain)
        gain = 1 if self.is_torgb else math.sqrt(2)       # a Python float: numpy's would break torch.compile's graph
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype), up=self.up_factor,
                           down=self.down_factor, padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)
        assert_shape(x, [None, self.out_channels, *self.out_hw])
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
                f"use_fp16={self.use_fp16}, in_sampling_rate={self.in_sampling_rate:g}, "
                f"out_sampling_rate={self.out_sampling_rate:g}, in_cutoff={self.in_cutoff:g}, "
                f"out_cutoff={self.out_cutoff:g}, in_half_width={self.in_half_width:g}, "
                f"out_half_width={self.out_half_width:g}, in_size={list(map(int, self.in_size))}, "
                f"out_size={list(map(int, self.out_size))}, in_channels={self.in_channels}, "
                f"out_channels={self.out_channels}")


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution]."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, config: StyleGAN3SynthesisConfig):
        super().__init__()
        s = config
        self.w_dim = w_dim
        self.num_ws = s.num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = s.num_layers
        self.num_critical = s.num_critical
        self.margin_size = s.margin_size
        self.output_scale = s.output_scale
        self.num_fp16_res = s.num_fp16_res
        self.schedule = layer_schedule(img_resolution, img_channels, s)

        first = self.schedule[0]
        self.input = SynthesisInput(w_dim=w_dim, channels=first.channels, size=first.size,
                                    sampling_rate=first.sampling_rate, bandwidth=first.cutoff)
        self.layer_names: list[str] = []
        for spec in self.schedule:
            prev = self.schedule[max(spec.index - 1, 0)]
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=spec.index == s.num_layers, is_critically_sampled=spec.critically_sampled,
                use_fp16=spec.sampling_rate * 2 ** s.num_fp16_res > img_resolution,
                in_channels=prev.channels, out_channels=spec.channels, in_size=prev.size, out_size=spec.size,
                in_sampling_rate=prev.sampling_rate, out_sampling_rate=spec.sampling_rate,
                in_cutoff=prev.cutoff, out_cutoff=spec.cutoff, in_half_width=prev.half_width,
                out_half_width=spec.half_width, conv_kernel=s.conv_kernel, filter_size=s.filter_size,
                lrelu_upsampling=s.lrelu_upsampling, use_radial_filters=s.use_radial_filters,
                conv_clamp=s.conv_clamp, magnitude_ema_beta=s.magnitude_ema_beta)
            name = f"L{spec.index}_{spec.size}_{spec.channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False,
                force_fp32: bool = False) -> torch.Tensor:
        """noise_mode is accepted for a common signature; StyleGAN3 has no noise inputs."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, update_emas=update_emas, force_fp32=force_fp32)
        if self.output_scale != 1:
            x = x * self.output_scale
        assert_shape(x, [None, self.img_channels, self.img_resolution, self.img_resolution])
        return x.to(torch.float32)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, "
                f"num_critical={self.num_critical}, margin_size={self.margin_size}, "
                f"num_fp16_res={self.num_fp16_res}")


class Generator(GeneratorBase):
    """StyleGAN3 generator: mapping + synthesis, built from a GeneratorConfig with family 'stylegan3'."""

    family = "stylegan3"

    def build_synthesis(self, config: GeneratorConfig) -> SynthesisNetwork:
        return SynthesisNetwork(w_dim=config.w_dim, img_resolution=config.img_resolution,
                                img_channels=config.img_channels, config=config.synthesis)
