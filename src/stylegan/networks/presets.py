"""Presets: train.py's --cfg values resolved into network configs, and building networks from configs.

Each preset resolves to the constructor arguments NVIDIA's train.py (stylegan3 repo) derives for `--cfg`:
  all:          z_dim = w_dim = 512; channel_base = --cbase (32768), channel_max = --cmax (512);
                num_fp16_res = 4 and conv_clamp = 256 (None and 0 with --fp32); D: resnet, --mbstd-group 4, --freezed 0.
  stylegan2:    8 mapping layers; skip generator; fused_modconv_default = 'inference_only'.
  stylegan3-t:  2 mapping layers; magnitude_ema_beta = 0.5 ** (batch / 20k).
  stylegan3-r:  as -T, plus conv_kernel = 1, use_radial_filters = True, and the generator's channel_base and
                channel_max doubled (the discriminator's are not).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from stylegan.core.errors import UsageError
from stylegan.networks.config import (
    CFGS, DiscriminatorConfig, GeneratorConfig, MappingConfig, StyleGAN2SynthesisConfig, StyleGAN3SynthesisConfig,
    config_from_dict)


@dataclass(frozen=True)
class Preset:
    family: str                 # which generator
    map_depth: int              # mapping layers (train.py --map-depth default)
    g_channel_mult: int         # multiplier on the generator's --cbase and --cmax
    synthesis: dict             # synthesis arguments train.py sets for this --cfg


PRESETS: dict[str, Preset] = {
    "stylegan2":   Preset("stylegan2", map_depth=8, g_channel_mult=1,
                          synthesis=dict(fused_modconv_default="inference_only")),
    "stylegan3-t": Preset("stylegan3", map_depth=2, g_channel_mult=1, synthesis=dict()),
    "stylegan3-r": Preset("stylegan3", map_depth=2, g_channel_mult=2,
                          synthesis=dict(conv_kernel=1, use_radial_filters=True)),
}
DEFAULT_CBASE = 32768           # train.py --cbase
DEFAULT_CMAX = 512              # train.py --cmax
DEFAULT_BATCH = 32              # the batch size the stylegan3 presets' magnitude_ema_beta is derived from


def _preset(cfg: str) -> Preset:
    if cfg not in PRESETS:
        raise UsageError(f"cfg: unknown preset {cfg!r}; choose one of {', '.join(CFGS)}")
    return PRESETS[cfg]


def _check_resolution(resolution: Any, lo: int) -> None:
    if not (isinstance(resolution, int) and not isinstance(resolution, bool) and resolution >= lo
            and resolution & (resolution - 1) == 0):
        raise UsageError(f"resolution: {resolution!r} is not allowed; use a power of two >= {lo} (e.g. 64, 256, 1024)")


def _check_positive(name: str, value: Any) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise UsageError(f"{name}: {value!r} is not allowed; use an integer >= 1")


def _precision(fp16: bool, overrides: dict) -> dict:
    # train.py: mixed precision (4 fp16 resolutions, clamp 256) unless --fp32, which sets 0 and None.
    out = dict(num_fp16_res=4, conv_clamp=256) if fp16 else dict(num_fp16_res=0, conv_clamp=None)
    for key in ("num_fp16_res", "conv_clamp"):
        if key in overrides:
            out[key] = overrides.pop(key)
    return out


def _split_overrides(overrides: dict, groups: dict[str, type], what: str) -> list[dict]:
    """Route keyword overrides to the config class that owns each field name."""
    out = [dict() for _ in groups]
    for key, value in overrides.items():
        for bucket, cls in zip(out, groups.values()):
            if key in {f.name for f in dataclasses.fields(cls)}:
                bucket[key] = value
                break
        else:
            allowed = sorted({f.name for cls in groups.values() for f in dataclasses.fields(cls)} - {"family", "cfg"})
            raise UsageError(f"{what}: unknown argument {key!r}; allowed overrides are {', '.join(allowed)}")
    return out


def generator_config(cfg: str, resolution: int, c_dim: int = 0, *,
                     cbase: int | None = None,          # train.py --cbase (default 32768); doubled for stylegan3-r
                     cmax: int | None = None,           # train.py --cmax (default 512); doubled for stylegan3-r
                     map_depth: int | None = None,      # --map-depth (default 8 for stylegan2, 2 for stylegan3)
                     batch: int = DEFAULT_BATCH,        # train.py --batch: sets stylegan3's magnitude_ema_beta
                     fp16: bool = True,                 # False = train.py --fp32 (num_fp16_res=0, conv_clamp=None)
                     img_channels: int = 3,             # image color channels
                     **overrides) -> GeneratorConfig:
    """The GeneratorConfig train.py derives for --cfg `cfg`; keyword overrides set any other field by name
    (z_dim, w_dim, num_fp16_res, conv_clamp, architecture, margin_size, ..., or mapping=dict(...))."""
    preset = _preset(cfg)
    _check_resolution(resolution, 4 if preset.family == "stylegan2" else 16)
    cbase = DEFAULT_CBASE if cbase is None else cbase
    cmax = DEFAULT_CMAX if cmax is None else cmax
    for name, value in (("cbase", cbase), ("cmax", cmax), ("batch", batch)):
        _check_positive(name, value)
    overrides = dict(overrides)
    mapping = dict(overrides.pop("mapping", None) or {})
    mapping["num_layers"] = (preset.map_depth if map_depth is None else map_depth)

    synthesis_cls = StyleGAN2SynthesisConfig if preset.family == "stylegan2" else StyleGAN3SynthesisConfig
    synthesis = dict(channel_base=cbase * preset.g_channel_mult, channel_max=cmax * preset.g_channel_mult,
                     **_precision(fp16, overrides), **preset.synthesis)
    if preset.family == "stylegan3":
        synthesis["magnitude_ema_beta"] = 0.5 ** (batch / 20e3)
    top, syn = _split_overrides(overrides, {"generator": GeneratorConfig, "synthesis": synthesis_cls},
                                f"build_generator({cfg!r})")
    synthesis.update(syn)
    return GeneratorConfig(family=preset.family, img_resolution=resolution, c_dim=c_dim, img_channels=img_channels,
                           cfg=cfg, mapping=MappingConfig(**mapping), synthesis=synthesis_cls(**synthesis), **top)


def discriminator_config(cfg: str, resolution: int, c_dim: int = 0, *,
                         cbase: int | None = None,      # train.py --cbase (default 32768); never doubled for D
                         cmax: int | None = None,       # train.py --cmax (default 512)
                         mbstd_group: int = 4,          # train.py --mbstd-group
                         freezed: int = 0,              # train.py --freezed (Freeze-D layers)
                         fp16: bool = True,             # False = train.py --fp32
                         img_channels: int = 3,         # image color channels
                         **overrides) -> DiscriminatorConfig:
    """The DiscriminatorConfig train.py derives; keyword overrides set any other field by name."""
    _preset(cfg)
    _check_resolution(resolution, 8)
    cbase = DEFAULT_CBASE if cbase is None else cbase
    cmax = DEFAULT_CMAX if cmax is None else cmax
    for name, value in (("cbase", cbase), ("cmax", cmax), ("mbstd_group", mbstd_group)):
        _check_positive(name, value)
    overrides = dict(overrides)
    precision = _precision(fp16, overrides)
    (top,) = _split_overrides(overrides, {"discriminator": DiscriminatorConfig}, f"build_discriminator({cfg!r})")
    kwargs = dict(img_resolution=resolution, c_dim=c_dim, img_channels=img_channels, channel_base=cbase,
                  channel_max=cmax, mbstd_group_size=mbstd_group, freeze_layers=freezed, cfg=cfg, **precision)
    kwargs.update(top)
    return DiscriminatorConfig(**kwargs)


def build_from_config(config: GeneratorConfig | DiscriminatorConfig | dict) -> torch.nn.Module:
    """A freshly initialised network for a config (or its to_dict() form)."""
    config = config_from_dict(config)
    if isinstance(config, DiscriminatorConfig):
        from stylegan.networks.discriminator import Discriminator
        return Discriminator(config)
    if config.family == "stylegan2":
        from stylegan.networks.stylegan2 import Generator
        return Generator(config)
    from stylegan.networks.stylegan3 import Generator
    return Generator(config)


def build_generator(cfg: str, resolution: int, c_dim: int = 0, **kwargs) -> torch.nn.Module:
    """A new generator for preset `cfg` ('stylegan2', 'stylegan3-t', 'stylegan3-r'); arguments as generator_config."""
    return build_from_config(generator_config(cfg, resolution, c_dim, **kwargs))


def build_discriminator(cfg: str, resolution: int, c_dim: int = 0, **kwargs) -> torch.nn.Module:
    """A new discriminator for preset `cfg`; arguments as discriminator_config."""
    return build_from_config(discriminator_config(cfg, resolution, c_dim, **kwargs))


_CFG_TITLES = {"stylegan2": "StyleGAN2", "stylegan3-t": "StyleGAN3-T", "stylegan3-r": "StyleGAN3-R"}


def module_summary(module: torch.nn.Module) -> dict[str, Any]:
    """A JSON-ready description of a network: architecture, resolution, channels, parameter counts per
    top-level submodule and in total, and the config (what `stylegan info` prints)."""
    config = module.config
    if isinstance(config, DiscriminatorConfig):
        title = f"{_CFG_TITLES.get(config.cfg, 'StyleGAN2')} discriminator, {config.architecture}"
        channels = {str(res): min(config.channel_base // res, config.channel_max)
                    for res in module.block_resolutions + [4]}
        extra = {"c_dim": config.c_dim}
    else:
        title = _CFG_TITLES.get(config.cfg, config.family.replace("stylegan", "StyleGAN"))
        if config.family == "stylegan2":
            title += f" generator, {config.synthesis.architecture}"
            channels = {str(res): getattr(module.synthesis, f"b{res}").conv1.out_channels
                        for res in module.synthesis.block_resolutions}
        else:
            s = config.synthesis
            title += f" generator, {s.num_layers} layers, conv {s.conv_kernel}x{s.conv_kernel}" + \
                (", radial filters" if s.use_radial_filters else "")
            channels = {name: getattr(module.synthesis, name).out_channels for name in module.synthesis.layer_names}
        extra = {"z_dim": config.z_dim, "c_dim": config.c_dim, "w_dim": config.w_dim, "num_ws": module.num_ws}
    parameters = {name: sum(p.numel() for p in child.parameters()) for name, child in module.named_children()}
    parameters = {name: n for name, n in parameters.items() if n > 0}
    return {"kind": config.kind, "family": config.family, "cfg": config.cfg, "architecture": title,
            "resolution": config.img_resolution, "img_channels": config.img_channels, "channels": channels, **extra,
            "parameters": parameters, "total_parameters": sum(p.numel() for p in module.parameters()),
            "total_buffer_elements": sum(b.numel() for b in module.buffers()), "config": config.to_dict()}
