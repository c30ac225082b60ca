"""StyleGAN2 generator (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), configs E-F,
with StyleGAN2-ADA's mixed precision and conv_clamp.

  MappingNetwork: z, c -> w, broadcast to num_ws                         (Sec. 2 of StyleGAN)
  SynthesisNetwork: a learned 4x4 constant, then one SynthesisBlock per resolution 4, 8, ..., img_resolution.
    SynthesisBlock: [conv0 (2x up)] -> conv1, each a modulated 3x3 conv with noise, bias and lrelu (Sec. 2.2);
                    ToRGB (a 1x1 modulated conv without demodulation); the architecture decides how blocks connect:
                    'skip' sums upsampled RGB outputs of every block, 'resnet' adds a 1x1 skip per block and only
                    the last block has ToRGB, 'orig' chains blocks and only the last has ToRGB (Sec. 4.1, Fig. 7).
Parameter and buffer names equal NVIDIA's (synthesis.b<res>.conv0.weight, mapping.fc0.bias, ...).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from stylegan.core.misc import assert_shape
from stylegan.networks.config import GeneratorConfig, StyleGAN2SynthesisConfig
from stylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, GeneratorBase
from stylegan.ops.bias_act import ACTIVATIONS, bias_act
from stylegan.ops.modulated_conv2d import modulated_conv2d
from stylegan.ops.upfirdn2d import setup_filter, upsample2d

NOISE_MODES = ("const", "random", "none")


def _use_fp16(flag: bool, force_fp32: bool, device: torch.device) -> bool:
    # Mixed precision only where it is fast and tested, as NVIDIA does: on CUDA. Everything else runs fp32.
    return flag and not force_fp32 and device.type == "cuda"


class SynthesisLayer(torch.nn.Module):
    """Modulated conv (Sec. 2.2, eqs. 1-3) + per-pixel noise scaled by a learned strength + bias + activation."""

    def __init__(self,
                 in_channels: int,                      # input channels
                 out_channels: int,                     # output channels
                 w_dim: int,                            # W dimensionality
                 resolution: int,                       # output resolution of this layer
                 kernel_size: int = 3,                  # convolution kernel size
                 up: int = 1,                           # 2 for the first conv of a block, else 1
                 use_noise: bool = True,                # add noise inputs
                 activation: str = "lrelu",             # activation after the conv
                 resample_filter=(1, 3, 3, 1),          # FIR taps for the upsampling conv
                 conv_clamp: float | None = None,       # clamp the output to +-X
                 channels_last: bool = False):          # channels-last weight format
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.activation = activation
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)        # w -> styles s (eq. 1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = torch.nn.Parameter(torch.zeros([]))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const", fused_modconv: bool = True,
                gain: float = 1) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.resolution // self.up, self.resolution // self.up])
        styles = self.affine(w)                                                   # [N, in_channels]

        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength                                   # [N, 1, H, W]
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength                        # [H, W]

        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1),
                             fused_modconv=fused_modconv)
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}, "
                f"resolution={self.resolution}, up={self.up}, activation={self.activation}")


class ToRGBLayer(torch.nn.Module):
    """1x1 modulated conv without demodulation, to img_channels (Sec. 4.1, Fig. 7b 'tRGB')."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None, channels_last: bool = False):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.weight = torch.nn.Parameter(
            torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format))
        self.bias = torch.nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain     # equalized lr folded into the styles, as no demodulation follows
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, w_dim={self.w_dim}"


class SynthesisBlock(torch.nn.Module):
    """One resolution: [const | conv0 (up 2x)] -> conv1 -> [torgb], connected per `architecture` (Fig. 7)."""

    def __init__(self,
                 in_channels: int,                      # input channels; 0 = the first (4x4) block with the constant
                 out_channels: int,                     # output channels
                 w_dim: int,                            # W dimensionality
                 resolution: int,                       # resolution of this block
                 img_channels: int,                     # output color channels
                 is_last: bool,                         # the last block always has ToRGB
                 architecture: str = "skip",            # 'orig', 'skip' or 'resnet'
                 resample_filter=(1, 3, 3, 1),          # FIR taps for upsampling
                 conv_clamp: float | None = 256,        # clamp conv outputs to +-X
                 use_fp16: bool = False,                # run this block in fp16 (CUDA only)
                 fp16_channels_last: bool = False,      # channels-last format with fp16
                 fused_modconv_default: bool | str = True,  # True, False or 'inference_only'
                 **layer_kwargs):                       # use_noise, activation, kernel_size for SynthesisLayer
        super().__init__()
        self.in_channels = in_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.is_last = is_last
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.fused_modconv_default = fused_modconv_default
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.num_conv = 0
        self.num_torgb = 0

        if in_channels == 0:
            self.const = torch.nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp,
                                        channels_last=self.channels_last, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution,
                                    conv_clamp=conv_clamp, channels_last=self.channels_last, **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp,
                                    channels_last=self.channels_last)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter, channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor, force_fp32: bool = False,
                fused_modconv: bool | str | None = None, noise_mode: str = "const"):
        assert_shape(ws, [None, self.num_conv + self.num_torgb, self.w_dim])
        w_iter = iter(ws.unbind(dim=1))
        fp16 = _use_fp16(self.use_fp16, force_fp32, ws.device)
        dtype = torch.float16 if fp16 else torch.float32
        memory_format = torch.channels_last if self.channels_last and fp16 else torch.contiguous_format
        if fused_modconv is None:
            fused_modconv = self.fused_modconv_default
            if ws.device.type == "cpu":
                # Both give the same result. On a CPU one plain conv over the batch beats a grouped conv whether
                # training or not (inference 1.5x faster at 64 px, batch 8 and 16; see docs/benchmarks.md).
                fused_modconv = False
        if fused_modconv == "inference_only":
            # On a GPU grouped convs are faster for inference; plain convs on the whole batch for training.
            fused_modconv = not self.training
        kw = dict(fused_modconv=fused_modconv, noise_mode=noise_mode)

        if self.in_channels == 0:
            x = self.const.to(dtype=dtype, memory_format=memory_format)
            x = x.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])                   # [N, C, 4, 4]
            x = self.conv1(x, next(w_iter), **kw)
        else:
            assert_shape(x, [None, self.in_channels, self.resolution // 2, self.resolution // 2])
            x = x.to(dtype=dtype, memory_format=memory_format)
            if self.architecture == "resnet":
                # Residual block with both branches scaled by sqrt(1/2) to keep the variance (Sec. 4.1).
                y = self.skip(x, gain=math.sqrt(0.5))      # a Python float: a numpy one breaks torch.compile's graph
                x = self.conv0(x, next(w_iter), **kw)
                x = self.conv1(x, next(w_iter), gain=math.sqrt(0.5), **kw)
                x = y + x                                  # out of place, as op outputs may be views
            else:
                x = self.conv0(x, next(w_iter), **kw)
                x = self.conv1(x, next(w_iter), **kw)

        if img is not None:
            assert_shape(img, [None, self.img_channels, self.resolution // 2, self.resolution // 2])
            img = upsample2d(img, self.resample_filter)                           # [N, C, H, W]
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv)
            y = y.to(dtype=torch.float32, memory_format=torch.contiguous_format)
            img = img + y if img is not None else y      # out of place: op outputs may be autograd views
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class SynthesisNetwork(torch.nn.Module):
    """ws [N, num_ws, w_dim] -> image [N, img_channels, img_resolution, img_resolution]."""

    def __init__(self,
                 w_dim: int,                            # W dimensionality
                 img_resolution: int,                   # output resolution (power of two >= 4)
                 img_channels: int,                     # output color channels
                 channel_base: int = 32768,             # channels at res r: min(channel_base // r, channel_max)
                 channel_max: int = 512,                # largest number of channels
                 num_fp16_res: int = 4,                 # fp16 in the N highest resolutions (CUDA only)
                 **block_kwargs):                       # SynthesisBlock and SynthesisLayer arguments
        if not (img_resolution >= 4 and img_resolution & (img_resolution - 1) == 0):
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        super().__init__()
        self.w_dim = w_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = int(np.log2(img_resolution))
        self.img_channels = img_channels
        self.num_fp16_res = num_fp16_res
        self.block_resolutions = [2 ** i for i in range(2, self.img_resolution_log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - num_fp16_res), 8)

        self.num_ws = 0
        for res in self.block_resolutions:
            is_last = res == img_resolution
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim,
                                   resolution=res, img_channels=img_channels, is_last=is_last,
                                   use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if is_last else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", update_emas: bool = False,
                force_fp32: bool = False, fused_modconv: bool | str | None = None) -> torch.Tensor:
        """noise_mode: 'const' (the stored noise_const buffers), 'random' (fresh noise, as in training) or 'none'.
        update_emas is accepted for a common signature; StyleGAN2 synthesis tracks no averages."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
        assert_shape(ws, [None, self.num_ws, self.w_dim])
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            # A block's ToRGB shares its w with the next block's first conv, hence the overlapping windows.
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)     # [N, k, w_dim]
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, force_fp32=force_fp32, fused_modconv=fused_modconv,
                           noise_mode=noise_mode)
        return img

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_fp16_res={self.num_fp16_res}")


class Generator(GeneratorBase):
    """StyleGAN2 generator: mapping + synthesis, built from a GeneratorConfig with family 'stylegan2'."""

    family = "stylegan2"

    def build_synthesis(self, config: GeneratorConfig) -> SynthesisNetwork:
        s: StyleGAN2SynthesisConfig = config.synthesis
        return SynthesisNetwork(
            w_dim=config.w_dim, img_resolution=config.img_resolution, img_channels=config.img_channels,
            channel_base=s.channel_base, channel_max=s.channel_max, num_fp16_res=s.num_fp16_res,
            conv_clamp=s.conv_clamp, architecture=s.architecture, resample_filter=s.resample_filter,
            fp16_channels_last=s.fp16_channels_last, fused_modconv_default=s.fused_modconv_default,
            use_noise=s.use_noise, activation=s.activation)
