"""Layers shared by both generator families and the discriminator.

Equalized learning rate (Karras et al. 2018, ProGAN Sec. 4.1): weights are stored as N(0, 1) draws and scaled
at run time by the He constant 1/sqrt(fan_in), times an optional learning-rate multiplier. Names of parameters
and buffers follow NVIDIA's stylegan3 repository so its weights map one-to-one.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from stylegan.core.misc import assert_shape
from stylegan.ops.bias_act import ACTIVATIONS, bias_act
from stylegan.ops.conv2d_resample import conv2d_resample
from stylegan.ops.upfirdn2d import setup_filter


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square (StyleGAN, Sec. 2 / Appendix: 'normalize z')."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(torch.nn.Module):
    """y = act(x @ (W * gain).T + b * lr_multiplier), with gain = lr_multiplier / sqrt(in_features) (equalized lr)."""

    def __init__(self,
                 in_features: int,                      # input width
                 out_features: int,                     # output width
                 bias: bool = True,                     # add a learned bias before the activation
                 activation: str = "linear",            # a name in ops.bias_act.ACTIVATIONS
                 lr_multiplier: float = 1,              # learning-rate multiplier (0.01 in the mapping network)
                 weight_init: float = 1,                # initial standard deviation of the effective weights
                 bias_init: float | Sequence[float] = 0):   # initial effective bias (a scalar or one per output)
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = torch.nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
            self.bias = torch.nn.Parameter(torch.from_numpy(init / lr_multiplier))
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(torch.nn.Module):
    """Equalized-lr conv with optional FIR up/downsampling, bias, activation and clamp (StyleGAN2 Appendix B)."""

    def __init__(self,
                 in_channels: int,                      # input channels
                 out_channels: int,                     # output channels
                 kernel_size: int,                      # square kernel size
                 bias: bool = True,                     # add a learned bias before the activation
                 activation: str = "linear",            # a name in ops.bias_act.ACTIVATIONS
                 up: int = 1,                           # integer upsampling factor
                 down: int = 1,                         # integer downsampling factor
                 resample_filter: Sequence[float] = (1, 3, 3, 1),   # FIR taps for resampling
                 conv_clamp: float | None = None,       # clamp the output to +-X; None = off
                 channels_last: bool = False,           # store the weight in channels-last format
                 trainable: bool = True):               # False = weights are buffers (Freeze-D)
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ACTIVATIONS[activation].def_gain

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias_init = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = torch.nn.Parameter(weight)
            self.bias = torch.nn.Parameter(bias_init) if bias_init is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", bias_init)

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                            padding=self.padding, flip_weight=(self.up == 1))
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


class MappingNetwork(torch.nn.Module):
    """z (and label c) -> w (StyleGAN, Sec. 2): normalise, embed c, an MLP with lr x0.01, broadcast to num_ws.

    Tracks the average w for the truncation trick (StyleGAN, Sec. 3.3 / Appendix B):
    w' = w_avg + psi * (w - w_avg) on the first `truncation_cutoff` of the broadcast ws.
    One class serves StyleGAN2, StyleGAN3 (whose mapping is this one with embed/layer widths = w_dim) and the
    discriminator's label mapping (z_dim=0, num_ws=None, w_avg_beta=None).
    """

    def __init__(self,
                 z_dim: int,                            # input latent (Z) dimensionality; 0 = no latent
                 c_dim: int,                            # label dimensionality; 0 = no label
                 w_dim: int,                            # output (W) dimensionality
                 num_ws: int | None,                    # how many copies of w to output; None = [N, w_dim] unbroadcast
                 num_layers: int = 8,                   # fully connected layers
                 embed_features: int | None = None,     # label embedding width; None = w_dim
                 layer_features: int | None = None,     # hidden width; None = w_dim
                 activation: str = "lrelu",             # activation of every layer
                 lr_multiplier: float = 0.01,           # learning-rate multiplier
                 w_avg_beta: float | None = 0.998):     # decay of the tracked average of w; None = do not track
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        embed_features = (w_dim if embed_features is None else embed_features) if c_dim > 0 else 0
        layer_features = w_dim if layer_features is None else layer_features
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, update_emas: bool = False) -> torch.Tensor:
        """Returns ws [N, num_ws, w_dim] (or [N, w_dim] when num_ws is None)."""
        x = None
        if self.z_dim > 0:
            assert_shape(z, [None, self.z_dim])
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            assert_shape(c, [None, self.c_dim])
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y

        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        if update_emas and self.w_avg_beta is not None:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])                # [N, num_ws, w_dim]

        return self.truncate(x, truncation_psi, truncation_cutoff)

    def truncate(self, ws: torch.Tensor, psi: float = 1, cutoff: int | None = None) -> torch.Tensor:
        """The truncation trick in W (StyleGAN, appendix B): w' = w_avg + psi * (w - w_avg).

        ws is [N, num_ws, w_dim] (or [N, w_dim]); only its first `cutoff` layers move when cutoff is given.
        The one rule for latents from seeds and for latents from files (--ws)."""
        if psi == 1:
            return ws
        if self.w_avg_beta is None:
            raise ValueError("truncation needs w_avg, which this mapping network does not track")
        w_avg = self.w_avg.to(ws.device, ws.dtype)
        if ws.ndim == 2 or cutoff is None:
            return w_avg.lerp(ws, psi)
        head = w_avg.lerp(ws[:, :cutoff], psi)                           # [N, cutoff, w_dim]
        return torch.cat([head, ws[:, head.shape[1]:]], dim=1)

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class GeneratorBase(torch.nn.Module):
    """What both generator families share: the Generator = mapping + synthesis (StyleGAN, Fig. 1b).

    A subclass names its `family` and builds its synthesis network in `build_synthesis`; the synthesis is
    built first, as NVIDIA does, so num_ws is known when the mapping network is built.
    """

    family: str = ""

    def __init__(self, config):
        super().__init__()
        if config.family != self.family:
            raise ValueError(f"{type(self).__module__}.Generator needs a {self.family} config, got {config.family!r}")
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_resolution = config.img_resolution
        self.img_channels = config.img_channels
        self.synthesis = self.build_synthesis(config)
        self.num_ws = self.synthesis.num_ws
        m = config.mapping
        self.mapping = MappingNetwork(
            z_dim=config.z_dim, c_dim=config.c_dim, w_dim=config.w_dim, num_ws=self.num_ws,
            num_layers=m.num_layers, embed_features=m.embed_features, layer_features=m.layer_features,
            activation=m.activation, lr_multiplier=m.lr_multiplier, w_avg_beta=m.w_avg_beta)

    def build_synthesis(self, config) -> torch.nn.Module:
        raise NotImplementedError

    def forward(self, z: torch.Tensor, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, noise_mode: str = "const", update_emas: bool = False,
                **synthesis_kwargs) -> torch.Tensor:
        """z [N, z_dim], c [N, c_dim] (or None when c_dim is 0) -> image [N, img_channels, H, W] in about [-1, 1].

        noise_mode: 'const' (the stored noise buffers; what generation wants), 'random' (fresh noise, what
        training wants; NVIDIA's default) or 'none'. StyleGAN3 has no noise inputs and ignores it."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas, **synthesis_kwargs)
