"""Typed configs that fully describe a network's architecture.

A config is what every network file stores (as JSON) and what `build_from_config` rebuilds a network from.
The field names and defaults are NVIDIA's constructor arguments (stylegan3 repo, training/networks_*.py),
so a config reads like the kwargs NVIDIA records, grouped by owner: the Generator's own arguments at the top,
`mapping` for MappingNetwork, `synthesis` for the family's SynthesisNetwork. Every config is validated on
construction; an error names the field and the allowed values.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from stylegan.core.errors import UsageError

FAMILIES = ("stylegan2", "stylegan3")
CFGS = ("stylegan2", "stylegan3-t", "stylegan3-r")      # train.py --cfg values
ARCHITECTURES = ("orig", "skip", "resnet")
FUSED_MODCONV = (True, False, "inference_only")
ACTIVATION_NAMES = ("linear", "relu", "lrelu", "tanh", "sigmoid", "elu", "selu", "softplus", "swish")


def _fail(owner: str, name: str, value: Any, allowed: str) -> None:
    raise UsageError(f"{owner}.{name}: {value!r} is not allowed; {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_int(owner: str, name: str, v: Any, lo: int) -> None:
    if not (_is_int(v) and v >= lo):
        _fail(owner, name, v, f"use an integer >= {lo}")


def _check_pow2(owner: str, name: str, v: Any, lo: int) -> None:
    if not (_is_int(v) and v >= lo and v & (v - 1) == 0):
        _fail(owner, name, v, f"use a power of two >= {lo} (e.g. {lo}, {lo * 2}, ..., 1024)")


def _check_choice(owner: str, name: str, v: Any, choices: tuple) -> None:
    if not any(v is c if isinstance(c, bool) else (not isinstance(v, bool) and v == c) for c in choices):
        _fail(owner, name, v, f"choose one of {', '.join(repr(c) for c in choices)}")


def _check_unit(owner: str, name: str, v: Any, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not (_is_number(v) and 0 <= v <= 1):
        _fail(owner, name, v, "use a number in [0, 1]" + (" or None" if allow_none else ""))


def _check_capacity(owner: str, config: Any) -> None:
    """The channel and precision fields every synthesis network and the discriminator share."""
    _check_int(owner, "channel_base", config.channel_base, 1)
    _check_int(owner, "channel_max", config.channel_max, 1)
    _check_int(owner, "num_fp16_res", config.num_fp16_res, 0)
    if config.conv_clamp is not None and not (_is_number(config.conv_clamp) and config.conv_clamp > 0):
        _fail(owner, "conv_clamp", config.conv_clamp, "use a positive number, or None for no clamping")


def _check_filter(owner: str, v: tuple) -> None:
    if not (len(v) >= 1 and all(_is_number(t) for t in v) and sum(v) != 0):
        _fail(owner, "resample_filter", list(v), "use a list of numbers with a nonzero sum, e.g. [1, 3, 3, 1]")


def _coerce_mapping(config, owner: str) -> None:
    """Accept the mapping config as a dict too (JSON); anything else is an error naming the field."""
    if isinstance(config.mapping, dict):
        object.__setattr__(config, "mapping", MappingConfig.from_dict(config.mapping))
    if not isinstance(config.mapping, MappingConfig):
        _fail(owner, "mapping", config.mapping, "use a MappingConfig or a dict of its fields")


class _Config:
    """Shared JSON plumbing: to_dict() and from_dict() for nested config dataclasses."""

    _nested: ClassVar[dict[str, type]] = {}
    _tuples: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        # Top-level configs carry their kind ('generator' / 'discriminator') so config_from_dict can pick the class.
        out: dict[str, Any] = {"kind": self.kind} if hasattr(self, "kind") else {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, _Config) else list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise UsageError(f"{cls.__name__}: expected a dict of fields, got {type(data).__name__}")
        if hasattr(cls, "kind"):
            data = {k: v for k, v in data.items() if k != "kind"}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise UsageError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; "
                             f"allowed fields are {', '.join(sorted(names))}")
        kwargs = dict(data)
        for name in cls._tuples:
            if isinstance(kwargs.get(name), list):
                kwargs[name] = tuple(kwargs[name])
        for name, sub in cls._nested.items():
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = sub.from_dict(kwargs[name])
        return cls(**kwargs)


@dataclass(frozen=True)
class MappingConfig(_Config):
    """MappingNetwork arguments (StyleGAN, Sec. 2: z -> w through an MLP with a 100x lower learning rate)."""
    num_layers: int = 8                         # fully connected layers (--map-depth: 8 for stylegan2, 2 for stylegan3)
    embed_features: int | None = None           # width of the label embedding; None = w_dim
    layer_features: int | None = None           # width of the hidden layers; None = w_dim
    activation: str = "lrelu"                   # activation of every layer
    lr_multiplier: float = 0.01                 # learning-rate multiplier of the mapping layers (equalized lr)
    w_avg_beta: float | None = 0.998            # decay of the tracked average of w; None = do not track (discriminator)

    _tuples = ()

    def __post_init__(self):
        o = "mapping"
        _check_int(o, "num_layers", self.num_layers, 0)
        for name in ("embed_features", "layer_features"):
            v = getattr(self, name)
            if v is not None:
                _check_int(o, name, v, 1)
        _check_choice(o, "activation", self.activation, ACTIVATION_NAMES)
        if not (_is_number(self.lr_multiplier) and self.lr_multiplier > 0):
            _fail(o, "lr_multiplier", self.lr_multiplier, "use a positive number (0.01 in every NVIDIA config)")
        _check_unit(o, "w_avg_beta", self.w_avg_beta, allow_none=True)


@dataclass(frozen=True)
class StyleGAN2SynthesisConfig(_Config):
    """StyleGAN2 SynthesisNetwork / SynthesisBlock / SynthesisLayer arguments (Karras et al. 2020, Fig. 7)."""
    channel_base: int = 32768                   # channels at resolution r are min(channel_base // r, channel_max)
    channel_max: int = 512                      # largest number of channels in any layer
    num_fp16_res: int = 4                       # run the N highest resolutions in fp16 (on CUDA only)
    conv_clamp: float | None = 256              # clamp conv outputs to +-X (ADA; keeps fp16 finite); None = off
    architecture: str = "skip"                  # 'orig', 'skip' (output skips, the default) or 'resnet'
    resample_filter: tuple = (1, 3, 3, 1)       # FIR taps used for up/downsampling
    use_noise: bool = True                      # per-pixel noise inputs with learned strength
    activation: str = "lrelu"                   # activation of the modulated convs
    fused_modconv_default: bool | str = True    # True, False, or 'inference_only' (grouped conv only when not training)
    fp16_channels_last: bool = False            # channels-last memory format in the fp16 blocks

    _tuples = ("resample_filter",)

    def __post_init__(self):
        o = "synthesis"
        _check_capacity(o, self)
        _check_choice(o, "architecture", self.architecture, ARCHITECTURES)
        _check_filter(o, self.resample_filter)
        _check_choice(o, "use_noise", self.use_noise, (True, False))
        _check_choice(o, "activation", self.activation, ACTIVATION_NAMES)
        _check_choice(o, "fused_modconv_default", self.fused_modconv_default, FUSED_MODCONV)
        _check_choice(o, "fp16_channels_last", self.fp16_channels_last, (True, False))


@dataclass(frozen=True)
class StyleGAN3SynthesisConfig(_Config):
    """StyleGAN3 SynthesisNetwork / SynthesisLayer arguments (Karras et al. 2021, Sec. 3-4 and Appendix F)."""
    channel_base: int = 32768                   # layer i: rint(min((channel_base / 2) / f_c[i], channel_max)) channels
    channel_max: int = 512                      # largest number of channels in any layer
    num_fp16_res: int = 4                       # fp16 where sampling rate * 2**N > resolution (CUDA only)
    conv_clamp: float | None = 256              # clamp pre-activation values to +-X; None = off
    num_layers: int = 14                        # synthesis layers, not counting the Fourier input and ToRGB
    num_critical: int = 2                       # critically sampled layers at the end
    first_cutoff: float = 2                     # cutoff frequency of the first layer, f_{c,0}
    first_stopband: float = 2 ** 2.1            # minimum stopband of the first layer, f_{t,0}
    last_stopband_rel: float = 2 ** 0.3         # minimum stopband of the last layer, relative to its cutoff
    margin_size: int = 10                       # extra pixels computed outside the image on each side
    output_scale: float = 0.25                  # scale of the output image
    conv_kernel: int = 3                        # convolution kernel size (1 for StyleGAN3-R); ToRGB is always 1x1
    filter_size: int = 6                        # low-pass filter taps, relative to the lower resolution
    lrelu_upsampling: int = 2                   # oversampling of the leaky ReLU, relative to the layer's rate
    use_radial_filters: bool = False            # radially symmetric downsampling filters (StyleGAN3-R)
    magnitude_ema_beta: float = 0.999           # decay of the input-magnitude average (train.py: 0.5 ** (batch / 20k))

    _tuples = ()

    def __post_init__(self):
        o = "synthesis"
        _check_capacity(o, self)
        _check_int(o, "num_layers", self.num_layers, 1)
        if not (_is_int(self.num_critical) and 0 <= self.num_critical < self.num_layers):
            _fail(o, "num_critical", self.num_critical,
                  f"use an integer in [0, num_layers - 1 = {self.num_layers - 1}]")
        for name in ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale"):
            v = getattr(self, name)
            if not (_is_number(v) and v > 0):
                _fail(o, name, v, "use a positive number")
        _check_int(o, "margin_size", self.margin_size, 0)
        _check_int(o, "conv_kernel", self.conv_kernel, 1)
        _check_int(o, "filter_size", self.filter_size, 1)
        _check_int(o, "lrelu_upsampling", self.lrelu_upsampling, 1)
        _check_choice(o, "use_radial_filters", self.use_radial_filters, (True, False))
        _check_unit(o, "magnitude_ema_beta", self.magnitude_ema_beta)


SYNTHESIS_CONFIGS: dict[str, type] = {"stylegan2": StyleGAN2SynthesisConfig, "stylegan3": StyleGAN3SynthesisConfig}


@dataclass(frozen=True)
class GeneratorConfig(_Config):
    """A generator of either family: the Generator's own arguments plus its mapping and synthesis configs."""
    family: str                                 # 'stylegan2' or 'stylegan3': which synthesis network
    img_resolution: int                         # output resolution (a power of two)
    c_dim: int = 0                              # conditioning label dimensionality; 0 = unconditional
    z_dim: int = 512                            # input latent (Z) dimensionality
    w_dim: int = 512                            # intermediate latent (W) dimensionality
    img_channels: int = 3                       # output color channels
    cfg: str | None = None                      # the train.py --cfg preset it was built from, where known
    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: StyleGAN2SynthesisConfig | StyleGAN3SynthesisConfig | None = None   # None = the family's defaults

    kind: ClassVar[str] = "generator"
    _nested = {"mapping": MappingConfig}

    def __post_init__(self):
        o = "generator"
        _check_choice(o, "family", self.family, FAMILIES)
        _check_pow2(o, "img_resolution", self.img_resolution, 4 if self.family == "stylegan2" else 16)
        _check_int(o, "c_dim", self.c_dim, 0)
        _check_int(o, "z_dim", self.z_dim, 1)
        _check_int(o, "w_dim", self.w_dim, 1)
        _check_int(o, "img_channels", self.img_channels, 1)
        if self.cfg is not None:
            _check_choice(o, "cfg", self.cfg, CFGS)
            if (self.cfg == "stylegan2") != (self.family == "stylegan2"):
                _fail(o, "cfg", self.cfg, f"it does not belong to family {self.family!r}")
        _coerce_mapping(self, o)
        if self.mapping.w_avg_beta is None:
            _fail(o, "mapping.w_avg_beta", None, "a generator tracks w_avg for truncation; use a number in [0, 1]")
        syn_cls = SYNTHESIS_CONFIGS[self.family]
        if self.synthesis is None:
            object.__setattr__(self, "synthesis", syn_cls())
        elif isinstance(self.synthesis, dict):
            object.__setattr__(self, "synthesis", syn_cls.from_dict(self.synthesis))
        if not isinstance(self.synthesis, syn_cls):
            _fail(o, "synthesis", type(self.synthesis).__name__, f"family {self.family!r} needs a {syn_cls.__name__}")



@dataclass(frozen=True)
class DiscriminatorConfig(_Config):
    """The StyleGAN2 discriminator (used by every preset): blocks down to 4x4, then the epilogue."""
    img_resolution: int                         # input resolution (a power of two)
    c_dim: int = 0                              # conditioning label dimensionality; 0 = unconditional
    img_channels: int = 3                       # input color channels
    architecture: str = "resnet"                # 'orig', 'skip' or 'resnet' (the default)
    channel_base: int = 32768                   # channels at resolution r are min(channel_base // r, channel_max)
    channel_max: int = 512                      # largest number of channels in any layer
    num_fp16_res: int = 4                       # run the N highest resolutions in fp16 (on CUDA only)
    conv_clamp: float | None = 256              # clamp conv outputs to +-X; None = off
    cmap_dim: int | None = None                 # width of the mapped label for the projection; None = channels at 4x4
    activation: str = "lrelu"                   # activation of every layer (block_kwargs and epilogue_kwargs)
    resample_filter: tuple = (1, 3, 3, 1)       # FIR taps used for downsampling
    fp16_channels_last: bool = False            # channels-last memory format in the fp16 blocks
    freeze_layers: int = 0                      # Freeze-D: the first N layers become buffers (train.py --freezed)
    mbstd_group_size: int | None = 4            # minibatch-stddev group size (--mbstd-group); None = whole batch
    mbstd_num_channels: int = 1                 # minibatch-stddev feature channels; 0 = no minibatch stddev
    mapping: MappingConfig = field(default_factory=lambda: MappingConfig(w_avg_beta=None))   # maps c to cmap
    cfg: str | None = None                      # the train.py --cfg preset it was built for, where known

    kind: ClassVar[str] = "discriminator"
    family: ClassVar[str] = "discriminator"
    _nested = {"mapping": MappingConfig}
    _tuples = ("resample_filter",)

    def __post_init__(self):
        o = "discriminator"
        _check_pow2(o, "img_resolution", self.img_resolution, 8)
        _check_int(o, "c_dim", self.c_dim, 0)
        _check_int(o, "img_channels", self.img_channels, 1)
        _check_choice(o, "architecture", self.architecture, ARCHITECTURES)
        _check_capacity(o, self)
        if self.cmap_dim is not None:
            _check_int(o, "cmap_dim", self.cmap_dim, 1)
        _check_choice(o, "activation", self.activation, ACTIVATION_NAMES)
        _check_filter(o, self.resample_filter)
        _check_choice(o, "fp16_channels_last", self.fp16_channels_last, (True, False))
        _check_int(o, "freeze_layers", self.freeze_layers, 0)
        if self.mbstd_group_size is not None:
            _check_int(o, "mbstd_group_size", self.mbstd_group_size, 1)
        _check_int(o, "mbstd_num_channels", self.mbstd_num_channels, 0)
        _coerce_mapping(self, o)
        if self.cfg is not None:
            _check_choice(o, "cfg", self.cfg, CFGS)



NetworkConfig = GeneratorConfig | DiscriminatorConfig
CONFIG_KINDS: dict[str, type] = {"generator": GeneratorConfig, "discriminator": DiscriminatorConfig}


def config_from_dict(data: dict[str, Any] | NetworkConfig) -> NetworkConfig:
    """A GeneratorConfig or DiscriminatorConfig from its to_dict() form (the 'kind' key picks which)."""
    if isinstance(data, (GeneratorConfig, DiscriminatorConfig)):
        return data
    if not isinstance(data, dict) or data.get("kind") not in CONFIG_KINDS:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise UsageError(f"network config: kind {kind!r} is not known; expected one of {', '.join(CONFIG_KINDS)}")
    return CONFIG_KINDS[data["kind"]].from_dict(data)
