"""Configs and presets: train.py's derived arguments, validation messages, JSON round trips."""
import dataclasses
import json

import pytest

import stylegan
from stylegan.core.errors import UsageError
from stylegan.networks import (
    GeneratorConfig, MappingConfig, StyleGAN3SynthesisConfig, config_from_dict,
    discriminator_config, generator_config)


def test_presets_resolve_to_train_py_arguments():
    g2 = generator_config("stylegan2", 256)
    assert (g2.family, g2.z_dim, g2.w_dim, g2.mapping.num_layers) == ("stylegan2", 512, 512, 8)
    assert (g2.synthesis.channel_base, g2.synthesis.channel_max) == (32768, 512)
    assert (g2.synthesis.num_fp16_res, g2.synthesis.conv_clamp) == (4, 256)
    assert g2.synthesis.architecture == "skip" and g2.synthesis.fused_modconv_default == "inference_only"
    assert g2.mapping.lr_multiplier == 0.01 and g2.mapping.w_avg_beta == 0.998

    t = generator_config("stylegan3-t", 256, batch=64)
    assert (t.family, t.mapping.num_layers, t.synthesis.channel_base, t.synthesis.channel_max) == \
        ("stylegan3", 2, 32768, 512)
    assert t.synthesis.magnitude_ema_beta == 0.5 ** (64 / 20e3)
    assert (t.synthesis.conv_kernel, t.synthesis.use_radial_filters) == (3, False)

    r = generator_config("stylegan3-r", 256, cbase=16384, cmax=256)
    assert (r.synthesis.channel_base, r.synthesis.channel_max) == (32768, 512)      # doubled for -R
    assert (r.synthesis.conv_kernel, r.synthesis.use_radial_filters) == (1, True)

    d = discriminator_config("stylegan3-r", 256, cbase=16384, cmax=256, mbstd_group=8, freezed=3)
    assert (d.channel_base, d.channel_max, d.architecture) == (16384, 256, "resnet")   # not doubled for D
    assert (d.mbstd_group_size, d.freeze_layers, d.num_fp16_res, d.conv_clamp) == (8, 3, 4, 256)


def test_fp32_and_overrides():
    g = generator_config("stylegan2", 64, fp16=False, map_depth=2, architecture="resnet", z_dim=64)
    assert (g.synthesis.num_fp16_res, g.synthesis.conv_clamp) == (0, None)
    assert (g.mapping.num_layers, g.synthesis.architecture, g.z_dim) == (2, "resnet", 64)
    assert generator_config("stylegan3-t", 64, conv_clamp=None).synthesis.conv_clamp is None
    assert generator_config("stylegan3-t", 64, margin_size=4).synthesis.margin_size == 4
    assert generator_config("stylegan2", 64, mapping=dict(lr_multiplier=0.1)).mapping.lr_multiplier == 0.1
    assert discriminator_config("stylegan2", 64, fp16=False, architecture="skip").conv_clamp is None


@pytest.mark.parametrize("call, match", [
    (lambda: stylegan.build_generator("stylegan4", 64), r"cfg: unknown preset 'stylegan4'; choose one of stylegan2"),
    (lambda: stylegan.build_generator("stylegan2", 48), r"resolution: 48 is not allowed; use a power of two"),
    (lambda: stylegan.build_generator("stylegan3-t", 8), r"resolution: 8 .* power of two >= 16"),
    (lambda: stylegan.build_discriminator("stylegan2", 100), r"resolution: 100"),
    (lambda: stylegan.build_generator("stylegan2", 64, cbase=0), r"cbase: 0 is not allowed"),
    (lambda: stylegan.build_generator("stylegan2", 64, architecture="unet"),
     r"synthesis.architecture: 'unet' is not allowed; choose one of 'orig', 'skip', 'resnet'"),
    (lambda: stylegan.build_generator("stylegan2", 64, margin_size=3), r"unknown argument 'margin_size'"),
    (lambda: stylegan.build_discriminator("stylegan2", 64, mbstd_group=0), r"mbstd_group: 0"),
    (lambda: GeneratorConfig(family="stylegan2", img_resolution=64, cfg="stylegan3-t"), r"generator.cfg"),
    (lambda: MappingConfig(w_avg_beta=2), r"mapping.w_avg_beta: 2 is not allowed; use a number in \[0, 1\]"),
    (lambda: StyleGAN3SynthesisConfig(num_critical=14), r"synthesis.num_critical"),
])
def test_validation_errors_name_the_field_and_allowed_values(call, match):
    with pytest.raises(UsageError, match=match):
        call()


def test_configs_round_trip_through_json():
    for config in (generator_config("stylegan2", 64, 3), generator_config("stylegan3-r", 1024),
                   discriminator_config("stylegan2", 128, 10, architecture="orig")):
        data = json.loads(json.dumps(config.to_dict()))
        assert data["kind"] in ("generator", "discriminator")
        assert config_from_dict(data) == config
    with pytest.raises(UsageError, match="unknown field"):
        GeneratorConfig.from_dict({"family": "stylegan2", "img_resolution": 64, "colour": 1})
    with pytest.raises(UsageError, match="kind"):
        config_from_dict({"kind": "vae"})


def test_configs_are_frozen():
    g = generator_config("stylegan2", 64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.img_resolution = 128
    assert dataclasses.replace(g, c_dim=3).c_dim == 3
