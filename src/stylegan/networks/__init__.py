"""Networks: the StyleGAN2 and StyleGAN3 generators, the discriminator, their configs and presets.

    from stylegan.networks import build_generator, build_discriminator
    G = build_generator('stylegan3-t', resolution=64, cbase=8192, cmax=256)

Imports only stylegan.ops and stylegan.core (see the layering in shared/STYLE.md).
"""
from stylegan.networks.config import (
    CFGS, DiscriminatorConfig, GeneratorConfig, MappingConfig, StyleGAN2SynthesisConfig, StyleGAN3SynthesisConfig,
    config_from_dict)
from stylegan.networks.discriminator import Discriminator
from stylegan.networks.layers import FullyConnectedLayer, Conv2dLayer, MappingNetwork
from stylegan.networks.presets import (
    PRESETS, build_discriminator, build_from_config, build_generator, discriminator_config, generator_config)
from stylegan.networks.stylegan2 import Generator as StyleGAN2Generator
from stylegan.networks.stylegan3 import Generator as StyleGAN3Generator

__all__ = [
    "CFGS", "PRESETS", "GeneratorConfig", "DiscriminatorConfig", "MappingConfig", "StyleGAN2SynthesisConfig",
    "StyleGAN3SynthesisConfig", "config_from_dict", "build_generator", "build_discriminator", "build_from_config",
    "generator_config", "discriminator_config", "StyleGAN2Generator", "StyleGAN3Generator", "Discriminator",
    "MappingNetwork", "FullyConnectedLayer", "Conv2dLayer",
]
