"""NVIDIA's recorded constructor arguments (a pickle's init_kwargs) translated to our configs, per repository."""
import pytest

from stylegan.core.errors import StyleGANError
from stylegan.io.nvidia_kwargs import discriminator_config_from_nvidia_kwargs, generator_config_from_nvidia_kwargs
from stylegan.networks import DiscriminatorConfig, generator_config


def test_nvidia_kwargs_stylegan3_repository():
    # What NVIDIA's train.py records for --cfg=stylegan3-r --cbase=16384 --cmax=256 with a 10-class dataset.
    kwargs = dict(z_dim=512, w_dim=512, c_dim=10, img_resolution=256, img_channels=3, channel_base=32768,
                  channel_max=512, mapping_kwargs=dict(num_layers=2), magnitude_ema_beta=0.5 ** (32 / 20e3),
                  conv_kernel=1, use_radial_filters=True)
    g = generator_config_from_nvidia_kwargs(kwargs, "training.networks_stylegan3.Generator")
    assert g == generator_config("stylegan3-r", 256, 10, cbase=16384, cmax=256)
    assert generator_config_from_nvidia_kwargs(kwargs) == g                # guessed from the arguments
    g2 = generator_config_from_nvidia_kwargs(
        dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=64, img_channels=3, mapping_kwargs=dict(num_layers=8),
             channel_base=32768, channel_max=512, fused_modconv_default="inference_only"),
        "training.networks_stylegan2.Generator")
    assert g2 == generator_config("stylegan2", 64)


def test_nvidia_kwargs_stylegan2_ada_defaults():
    kwargs = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=64, img_channels=3,
                  mapping_kwargs=dict(num_layers=2),
                  synthesis_kwargs=dict(channel_base=16384, channel_max=512, architecture="skip"))
    g = generator_config_from_nvidia_kwargs(kwargs, "training.networks.Generator")
    assert (g.synthesis.num_fp16_res, g.synthesis.conv_clamp, g.mapping.w_avg_beta) == (0, None, 0.995)
    assert g.synthesis.channel_base == 16384 and g.cfg == "stylegan2"
    d = discriminator_config_from_nvidia_kwargs(
        dict(c_dim=0, img_resolution=64, img_channels=3, architecture="resnet", channel_base=16384,
             block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=8)),
        "training.networks.Discriminator")
    assert isinstance(d, DiscriminatorConfig)
    assert (d.num_fp16_res, d.conv_clamp, d.mbstd_group_size, d.channel_base) == (0, None, 8, 16384)


def test_nvidia_kwargs_errors():
    with pytest.raises(StyleGANError, match="not supported"):
        generator_config_from_nvidia_kwargs(dict(z_dim=8, w_dim=8, c_dim=0, img_resolution=32, img_channels=3,
                                                 channel_base=1024, frobnicate=1), "training.networks_stylegan2")
    with pytest.raises(StyleGANError, match="lack img_resolution"):
        generator_config_from_nvidia_kwargs(dict(z_dim=8, w_dim=8, c_dim=0, img_channels=3))
    with pytest.raises(StyleGANError, match="is not supported"):
        generator_config_from_nvidia_kwargs({}, "training.networks_stylegan9.Generator")
