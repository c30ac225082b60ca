"""The StyleGAN2 discriminator (Karras et al. 2020, Sec. 4.1 and Fig. 7), used by every preset, StyleGAN3's included.

  Blocks at img_resolution, ..., 8: [fromrgb] -> conv0 (3x3) -> conv1 (3x3, 2x down), connected per `architecture`:
  'resnet' (the default) adds a 1x1 downsampling skip, both branches scaled by sqrt(1/2); 'skip' feeds a
  downsampled image to every block's fromrgb; 'orig' simply chains the blocks.
  Epilogue at 4x4: minibatch standard deviation (ProGAN, Sec. 3), conv, fc, out.
  Conditioning (StyleGAN2-ADA, after Miyato & Koyama 2018): a mapping network turns c into cmap, and the logit is the
  projection <out, cmap> / sqrt(cmap_dim).
Block, layer and parameter names equal NVIDIA's, so Freeze-D by name prefix (b<res>) and weight import both work.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from stylegan.core.errors import StyleGANError
from stylegan.core.misc import assert_shape
from stylegan.networks.config import DiscriminatorConfig
from stylegan.networks.layers import Conv2dLayer, FullyConnectedLayer, MappingNetwork
from stylegan.ops.upfirdn2d import downsample2d, setup_filter


class DiscriminatorBlock(torch.nn.Module):
    """One resolution: [fromrgb] -> conv0 -> conv1 (down 2x) [+ skip]."""

    def __init__(self,
                 in_channels: int,                      # input channels; 0 = the first block (reads the image)
                 tmp_channels: int,                     # channels inside the block
                 out_channels: int,                     # output channels
                 resolution: int,                       # resolution of this block's input
                 img_channels: int,                     # image color channels
                 first_layer_idx: int,                  # index of this block's first layer, for Freeze-D
                 architecture: str = "resnet",          # 'orig', 'skip' or 'resnet'
                 activation: str = "lrelu",             # activation of every conv
                 resample_filter=(1, 3, 3, 1),          # FIR taps for downsampling
                 conv_clamp: float | None = None,       # clamp conv outputs to +-X
                 use_fp16: bool = False,                # run this block in fp16 (CUDA only)
                 fp16_channels_last: bool = False,      # channels-last format with fp16
                 freeze_layers: int = 0):               # Freeze-D: layers with index < this are frozen
        assert in_channels in (0, tmp_channels)
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))

        self.num_layers = 0

        def trainable() -> bool:
            # Layers are numbered from the image inwards; Freeze-D freezes the first `freeze_layers` of them.
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        common = dict(channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       trainable=trainable(), conv_clamp=conv_clamp, **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 trainable=trainable(), conv_clamp=conv_clamp, **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 trainable=trainable(), resample_filter=resample_filter, conv_clamp=conv_clamp,
                                 **common)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter, **common)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False):
        device = (x if x is not None else img).device
        fp16 = self.use_fp16 and not force_fp32 and device.type == "cuda"     # mixed precision only on CUDA
        dtype = torch.float16 if fp16 else torch.float32
        memory_format = torch.channels_last if self.channels_last and fp16 else torch.contiguous_format

        if x is not None:
            assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))      # a Python float: a numpy one breaks torch.compile's graph
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x                                      # out of place, as op outputs may be views
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class MinibatchStdLayer(torch.nn.Module):
    """Append the average standard deviation over groups of samples as extra channels (ProGAN, Sec. 3),
    so the discriminator can see a lack of variety."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g != 0:
            raise StyleGANError(f"the batch per device ({n}) must be a multiple of the minibatch-stddev group size "
                                f"({g}); change the batch size or --mbstd-group")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)          # [G, n, F, c, H, W]: n groups of G samples, F channel groups
        y = y - y.mean(dim=0)                          # deviation from the group mean
        y = y.square().mean(dim=0)                     # [n, F, c, H, W] variance over the group
        y = (y + 1e-8).sqrt()                          # standard deviation
        y = y.mean(dim=[2, 3, 4])                      # [n, F] averaged over channels and pixels
        y = y.reshape(-1, f, 1, 1)                     # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)                       # [N, F, H, W] back to every sample and pixel
        return torch.cat([x, y], dim=1)                # [N, C + F, H, W]

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(torch.nn.Module):
    """4x4: [fromrgb] -> minibatch stddev -> conv -> fc -> out [-> projection onto cmap]."""

    def __init__(self,
                 in_channels: int,                      # channels at 4x4
                 cmap_dim: int,                         # mapped label width; 0 = unconditional
                 resolution: int,                       # 4
                 img_channels: int,                     # image color channels
                 architecture: str = "resnet",          # 'orig', 'skip' or 'resnet'
                 mbstd_group_size: int | None = 4,      # minibatch-stddev group size; None = whole batch
                 mbstd_num_channels: int = 1,           # minibatch-stddev channels; 0 = off
                 activation: str = "lrelu",             # activation of every layer
                 conv_clamp: float | None = None):      # clamp conv outputs to +-X
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution])
        x = x.to(dtype=torch.float32, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            assert_shape(img, [None, self.img_channels, self.resolution, self.resolution])
            x = x + self.fromrgb(img.to(dtype=torch.float32, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))                                                # [N, C]
        x = self.out(x)                                                          # [N, 1] or [N, cmap_dim]
        if self.cmap_dim > 0:
            # Projection discriminator (Miyato & Koyama 2018, eq. 3), normalised by sqrt(cmap_dim).
            assert_shape(cmap, [None, self.cmap_dim])
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class Discriminator(torch.nn.Module):
    """img [N, C, H, W] (and c [N, c_dim]) -> logits [N, 1]. Built from a DiscriminatorConfig."""

    def __init__(self, config: DiscriminatorConfig):
        super().__init__()
        self.config = config
        cfg = config
        self.c_dim = cfg.c_dim
        self.img_resolution = cfg.img_resolution
        self.img_resolution_log2 = int(np.log2(cfg.img_resolution))
        self.img_channels = cfg.img_channels
        self.block_resolutions = [2 ** i for i in range(self.img_resolution_log2, 2, -1)]
        channels = {res: min(cfg.channel_base // res, cfg.channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (self.img_resolution_log2 + 1 - cfg.num_fp16_res), 8)
        cmap_dim = (channels[4] if cfg.cmap_dim is None else cfg.cmap_dim) if cfg.c_dim > 0 else 0

        common = dict(img_channels=cfg.img_channels, architecture=cfg.architecture, conv_clamp=cfg.conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[res] if res < cfg.img_resolution else 0, channels[res], channels[res // 2], resolution=res,
                first_layer_idx=layer_idx, use_fp16=res >= fp16_resolution, activation=cfg.activation,
                resample_filter=cfg.resample_filter, fp16_channels_last=cfg.fp16_channels_last,
                freeze_layers=cfg.freeze_layers, **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if cfg.c_dim > 0:
            m = cfg.mapping
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=cfg.c_dim, w_dim=cmap_dim, num_ws=None, num_layers=m.num_layers,
                embed_features=m.embed_features, layer_features=m.layer_features, activation=m.activation,
                lr_multiplier=m.lr_multiplier, w_avg_beta=None)
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4,
                                        mbstd_group_size=cfg.mbstd_group_size,
                                        mbstd_num_channels=cfg.mbstd_num_channels, activation=cfg.activation, **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False,
                force_fp32: bool = False) -> torch.Tensor:
        """update_emas is accepted for a common signature; the discriminator tracks no averages."""
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution])
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None                 # [N, cmap_dim]
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
