"""Parameter and buffer names and shapes equal NVIDIA's state_dict() for the same configuration, so NVIDIA's
weights map one-to-one by name. The expected lists were produced once by NVIDIA's own code (stylegan3 repository,
training/networks_stylegan2.py and networks_stylegan3.py) for the configurations built below, as
"name shape" lines ('-' for a scalar); the tests never import NVIDIA's code."""
import pytest

import stylegan

# build_generator / build_discriminator arguments for each expected list.
SMALL = dict(resolution=32, c_dim=3, cbase=1024, cmax=64)

EXPECTED_STYLEGAN2 = """
mapping.embed.bias 32
mapping.embed.weight 32x3
mapping.fc0.bias 32
mapping.fc0.weight 32x64
mapping.fc1.bias 32
mapping.fc1.weight 32x32
mapping.fc2.bias 32
mapping.fc2.weight 32x32
mapping.fc3.bias 32
mapping.fc3.weight 32x32
mapping.fc4.bias 32
mapping.fc4.weight 32x32
mapping.fc5.bias 32
mapping.fc5.weight 32x32
mapping.fc6.bias 32
mapping.fc6.weight 32x32
mapping.fc7.bias 32
mapping.fc7.weight 32x32
mapping.w_avg 32
synthesis.b16.conv0.affine.bias 64
synthesis.b16.conv0.affine.weight 64x32
synthesis.b16.conv0.bias 64
synthesis.b16.conv0.noise_const 16x16
synthesis.b16.conv0.noise_strength -
synthesis.b16.conv0.resample_filter 4x4
synthesis.b16.conv0.weight 64x64x3x3
synthesis.b16.conv1.affine.bias 64
synthesis.b16.conv1.affine.weight 64x32
synthesis.b16.conv1.bias 64
synthesis.b16.conv1.noise_const 16x16
synthesis.b16.conv1.noise_strength -
synthesis.b16.conv1.resample_filter 4x4
synthesis.b16.conv1.weight 64x64x3x3
synthesis.b16.resample_filter 4x4
synthesis.b16.torgb.affine.bias 64
synthesis.b16.torgb.affine.weight 64x32
synthesis.b16.torgb.bias 3
synthesis.b16.torgb.weight 3x64x1x1
synthesis.b32.conv0.affine.bias 64
synthesis.b32.conv0.affine.weight 64x32
synthesis.b32.conv0.bias 32
synthesis.b32.conv0.noise_const 32x32
synthesis.b32.conv0.noise_strength -
synthesis.b32.conv0.resample_filter 4x4
synthesis.b32.conv0.weight 32x64x3x3
synthesis.b32.conv1.affine.bias 32
synthesis.b32.conv1.affine.weight 32x32
synthesis.b32.conv1.bias 32
synthesis.b32.conv1.noise_const 32x32
synthesis.b32.conv1.noise_strength -
synthesis.b32.conv1.resample_filter 4x4
synthesis.b32.conv1.weight 32x32x3x3
synthesis.b32.resample_filter 4x4
synthesis.b32.torgb.affine.bias 32
synthesis.b32.torgb.affine.weight 32x32
synthesis.b32.torgb.bias 3
synthesis.b32.torgb.weight 3x32x1x1
synthesis.b4.const 64x4x4
synthesis.b4.conv1.affine.bias 64
synthesis.b4.conv1.affine.weight 64x32
synthesis.b4.conv1.bias 64
synthesis.b4.conv1.noise_const 4x4
synthesis.b4.conv1.noise_strength -
synthesis.b4.conv1.resample_filter 4x4
synthesis.b4.conv1.weight 64x64x3x3
synthesis.b4.resample_filter 4x4
synthesis.b4.torgb.affine.bias 64
synthesis.b4.torgb.affine.weight 64x32
synthesis.b4.torgb.bias 3
synthesis.b4.torgb.weight 3x64x1x1
synthesis.b8.conv0.affine.bias 64
synthesis.b8.conv0.affine.weight 64x32
synthesis.b8.conv0.bias 64
synthesis.b8.conv0.noise_const 8x8
synthesis.b8.conv0.noise_strength -
synthesis.b8.conv0.resample_filter 4x4
synthesis.b8.conv0.weight 64x64x3x3
synthesis.b8.conv1.affine.bias 64
synthesis.b8.conv1.affine.weight 64x32
synthesis.b8.conv1.bias 64
synthesis.b8.conv1.noise_const 8x8
synthesis.b8.conv1.noise_strength -
synthesis.b8.conv1.resample_filter 4x4
synthesis.b8.conv1.weight 64x64x3x3
synthesis.b8.resample_filter 4x4
synthesis.b8.torgb.affine.bias 64
synthesis.b8.torgb.affine.weight 64x32
synthesis.b8.torgb.bias 3
synthesis.b8.torgb.weight 3x64x1x1
"""

EXPECTED_STYLEGAN3_T = """
mapping.embed.bias 32
mapping.embed.weight 32x3
mapping.fc0.bias 32
mapping.fc0.weight 32x64
mapping.fc1.bias 32
mapping.fc1.weight 32x32
mapping.w_avg 32
synthesis.L0_36_64.affine.bias 64
synthesis.L0_36_64.affine.weight 64x32
synthesis.L0_36_64.bias 64
synthesis.L0_36_64.down_filter 12
synthesis.L0_36_64.magnitude_ema -
synthesis.L0_36_64.up_filter 12
synthesis.L0_36_64.weight 64x64x3x3
synthesis.L10_52_45.affine.bias 54
synthesis.L10_52_45.affine.weight 54x32
synthesis.L10_52_45.bias 45
synthesis.L10_52_45.down_filter 12
synthesis.L10_52_45.magnitude_ema -
synthesis.L10_52_45.up_filter 12
synthesis.L10_52_45.weight 45x54x3x3
synthesis.L11_52_38.affine.bias 45
synthesis.L11_52_38.affine.weight 45x32
synthesis.L11_52_38.bias 38
synthesis.L11_52_38.down_filter 12
synthesis.L11_52_38.magnitude_ema -
synthesis.L11_52_38.up_filter 12
synthesis.L11_52_38.weight 38x45x3x3
synthesis.L12_52_32.affine.bias 38
synthesis.L12_52_32.affine.weight 38x32
synthesis.L12_52_32.bias 32
synthesis.L12_52_32.down_filter 12
synthesis.L12_52_32.magnitude_ema -
synthesis.L12_52_32.up_filter 12
synthesis.L12_52_32.weight 32x38x3x3
synthesis.L13_32_32.affine.bias 32
synthesis.L13_32_32.affine.weight 32x32
synthesis.L13_32_32.bias 32
synthesis.L13_32_32.down_filter 12
synthesis.L13_32_32.magnitude_ema -
synthesis.L13_32_32.up_filter 12
synthesis.L13_32_32.weight 32x32x3x3
synthesis.L14_32_3.affine.bias 32
synthesis.L14_32_3.affine.weight 32x32
synthesis.L14_32_3.bias 3
synthesis.L14_32_3.magnitude_ema -
synthesis.L14_32_3.weight 3x32x1x1
synthesis.L1_36_64.affine.bias 64
synthesis.L1_36_64.affine.weight 64x32
synthesis.L1_36_64.bias 64
synthesis.L1_36_64.down_filter 12
synthesis.L1_36_64.magnitude_ema -
synthesis.L1_36_64.up_filter 12
synthesis.L1_36_64.weight 64x64x3x3
synthesis.L2_36_64.affine.bias 64
synthesis.L2_36_64.affine.weight 64x32
synthesis.L2_36_64.bias 64
synthesis.L2_36_64.down_filter 12
synthesis.L2_36_64.magnitude_ema -
synthesis.L2_36_64.up_filter 12
synthesis.L2_36_64.weight 64x64x3x3
synthesis.L3_36_64.affine.bias 64
synthesis.L3_36_64.affine.weight 64x32
synthesis.L3_36_64.bias 64
synthesis.L3_36_64.down_filter 12
synthesis.L3_36_64.magnitude_ema -
synthesis.L3_36_64.up_filter 12
synthesis.L3_36_64.weight 64x64x3x3
synthesis.L4_36_64.affine.bias 64
synthesis.L4_36_64.affine.weight 64x32
synthesis.L4_36_64.bias 64
synthesis.L4_36_64.down_filter 12
synthesis.L4_36_64.magnitude_ema -
synthesis.L4_36_64.up_filter 12
synthesis.L4_36_64.weight 64x64x3x3
synthesis.L5_52_64.affine.bias 64
synthesis.L5_52_64.affine.weight 64x32
synthesis.L5_52_64.bias 64
synthesis.L5_52_64.down_filter 12
synthesis.L5_52_64.magnitude_ema -
synthesis.L5_52_64.up_filter 24
synthesis.L5_52_64.weight 64x64x3x3
synthesis.L6_52_64.affine.bias 64
synthesis.L6_52_64.affine.weight 64x32
synthesis.L6_52_64.bias 64
synthesis.L6_52_64.down_filter 12
synthesis.L6_52_64.magnitude_ema -
synthesis.L6_52_64.up_filter 12
synthesis.L6_52_64.weight 64x64x3x3
synthesis.L7_52_64.affine.bias 64
synthesis.L7_52_64.affine.weight 64x32
synthesis.L7_52_64.bias 64
synthesis.L7_52_64.down_filter 12
synthesis.L7_52_64.magnitude_ema -
synthesis.L7_52_64.up_filter 12
synthesis.L7_52_64.weight 64x64x3x3
synthesis.L8_52_64.affine.bias 64
synthesis.L8_52_64.affine.weight 64x32
synthesis.L8_52_64.bias 64
synthesis.L8_52_64.down_filter 12
synthesis.L8_52_64.magnitude_ema -
synthesis.L8_52_64.up_filter 12
synthesis.L8_52_64.weight 64x64x3x3
synthesis.L9_52_54.affine.bias 64
synthesis.L9_52_54.affine.weight 64x32
synthesis.L9_52_54.bias 54
synthesis.L9_52_54.down_filter 12
synthesis.L9_52_54.magnitude_ema -
synthesis.L9_52_54.up_filter 12
synthesis.L9_52_54.weight 54x64x3x3
synthesis.input.affine.bias 4
synthesis.input.affine.weight 4x32
synthesis.input.freqs 64x2
synthesis.input.phases 64
synthesis.input.transform 3x3
synthesis.input.weight 64x64
"""

EXPECTED_STYLEGAN3_R = """
mapping.embed.bias 32
mapping.embed.weight 32x3
mapping.fc0.bias 32
mapping.fc0.weight 32x64
mapping.fc1.bias 32
mapping.fc1.weight 32x32
mapping.w_avg 32
synthesis.L0_36_128.affine.bias 128
synthesis.L0_36_128.affine.weight 128x32
synthesis.L0_36_128.bias 128
synthesis.L0_36_128.down_filter 12x12
synthesis.L0_36_128.magnitude_ema -
synthesis.L0_36_128.up_filter 12
synthesis.L0_36_128.weight 128x128x1x1
synthesis.L10_52_91.affine.bias 108
synthesis.L10_52_91.affine.weight 108x32
synthesis.L10_52_91.bias 91
synthesis.L10_52_91.down_filter 12x12
synthesis.L10_52_91.magnitude_ema -
synthesis.L10_52_91.up_filter 12
synthesis.L10_52_91.weight 91x108x1x1
synthesis.L11_52_76.affine.bias 91
synthesis.L11_52_76.affine.weight 91x32
synthesis.L11_52_76.bias 76
synthesis.L11_52_76.down_filter 12x12
synthesis.L11_52_76.magnitude_ema -
synthesis.L11_52_76.up_filter 12
synthesis.L11_52_76.weight 76x91x1x1
synthesis.L12_52_64.affine.bias 76
synthesis.L12_52_64.affine.weight 76x32
synthesis.L12_52_64.bias 64
synthesis.L12_52_64.down_filter 12
synthesis.L12_52_64.magnitude_ema -
synthesis.L12_52_64.up_filter 12
synthesis.L12_52_64.weight 64x76x1x1
synthesis.L13_32_64.affine.bias 64
synthesis.L13_32_64.affine.weight 64x32
synthesis.L13_32_64.bias 64
synthesis.L13_32_64.down_filter 12
synthesis.L13_32_64.magnitude_ema -
synthesis.L13_32_64.up_filter 12
synthesis.L13_32_64.weight 64x64x1x1
synthesis.L14_32_3.affine.bias 64
synthesis.L14_32_3.affine.weight 64x32
synthesis.L14_32_3.bias 3
synthesis.L14_32_3.magnitude_ema -
synthesis.L14_32_3.weight 3x64x1x1
synthesis.L1_36_128.affine.bias 128
synthesis.L1_36_128.affine.weight 128x32
synthesis.L1_36_128.bias 128
synthesis.L1_36_128.down_filter 12x12
synthesis.L1_36_128.magnitude_ema -
synthesis.L1_36_128.up_filter 12
synthesis.L1_36_128.weight 128x128x1x1
synthesis.L2_36_128.affine.bias 128
synthesis.L2_36_128.affine.weight 128x32
synthesis.L2_36_128.bias 128
synthesis.L2_36_128.down_filter 12x12
synthesis.L2_36_128.magnitude_ema -
synthesis.L2_36_128.up_filter 12
synthesis.L2_36_128.weight 128x128x1x1
synthesis.L3_36_128.affine.bias 128
synthesis.L3_36_128.affine.weight 128x32
synthesis.L3_36_128.bias 128
synthesis.L3_36_128.down_filter 12x12
synthesis.L3_36_128.magnitude_ema -
synthesis.L3_36_128.up_filter 12
synthesis.L3_36_128.weight 128x128x1x1
synthesis.L4_36_128.affine.bias 128
synthesis.L4_36_128.affine.weight 128x32
synthesis.L4_36_128.bias 128
synthesis.L4_36_128.down_filter 12x12
synthesis.L4_36_128.magnitude_ema -
synthesis.L4_36_128.up_filter 12
synthesis.L4_36_128.weight 128x128x1x1
synthesis.L5_52_128.affine.bias 128
synthesis.L5_52_128.affine.weight 128x32
synthesis.L5_52_128.bias 128
synthesis.L5_52_128.down_filter 12x12
synthesis.L5_52_128.magnitude_ema -
synthesis.L5_52_128.up_filter 24
synthesis.L5_52_128.weight 128x128x1x1
synthesis.L6_52_128.affine.bias 128
synthesis.L6_52_128.affine.weight 128x32
synthesis.L6_52_128.bias 128
synthesis.L6_52_128.down_filter 12x12
synthesis.L6_52_128.magnitude_ema -
synthesis.L6_52_128.up_filter 12
synthesis.L6_52_128.weight 128x128x1x1
synthesis.L7_52_128.affine.bias 128
synthesis.L7_52_128.affine.weight 128x32
synthesis.L7_52_128.bias 128
synthesis.L7_52_128.down_filter 12x12
synthesis.L7_52_128.magnitude_ema -
synthesis.L7_52_128.up_filter 12
synthesis.L7_52_128.weight 128x128x1x1
synthesis.L8_52_128.affine.bias 128
synthesis.L8_52_128.affine.weight 128x32
synthesis.L8_52_128.bias 128
synthesis.L8_52_128.down_filter 12x12
synthesis.L8_52_128.magnitude_ema -
synthesis.L8_52_128.up_filter 12
synthesis.L8_52_128.weight 128x128x1x1
synthesis.L9_52_108.affine.bias 128
synthesis.L9_52_108.affine.weight 128x32
synthesis.L9_52_108.bias 108
synthesis.L9_52_108.down_filter 12x12
synthesis.L9_52_108.magnitude_ema -
synthesis.L9_52_108.up_filter 12
synthesis.L9_52_108.weight 108x128x1x1
synthesis.input.affine.bias 4
synthesis.input.affine.weight 4x32
synthesis.input.freqs 128x2
synthesis.input.phases 128
synthesis.input.transform 3x3
synthesis.input.weight 128x128
"""

EXPECTED_DISCRIMINATOR = """
b16.conv0.bias 64
b16.conv0.resample_filter 4x4
b16.conv0.weight 64x64x3x3
b16.conv1.bias 64
b16.conv1.resample_filter 4x4
b16.conv1.weight 64x64x3x3
b16.resample_filter 4x4
b16.skip.resample_filter 4x4
b16.skip.weight 64x64x1x1
b32.conv0.bias 32
b32.conv0.resample_filter 4x4
b32.conv0.weight 32x32x3x3
b32.conv1.bias 64
b32.conv1.resample_filter 4x4
b32.conv1.weight 64x32x3x3
b32.fromrgb.bias 32
b32.fromrgb.resample_filter 4x4
b32.fromrgb.weight 32x3x1x1
b32.resample_filter 4x4
b32.skip.resample_filter 4x4
b32.skip.weight 64x32x1x1
b4.conv.bias 64
b4.conv.resample_filter 4x4
b4.conv.weight 64x65x3x3
b4.fc.bias 64
b4.fc.weight 64x1024
b4.out.bias 64
b4.out.weight 64x64
b8.conv0.bias 64
b8.conv0.resample_filter 4x4
b8.conv0.weight 64x64x3x3
b8.conv1.bias 64
b8.conv1.resample_filter 4x4
b8.conv1.weight 64x64x3x3
b8.resample_filter 4x4
b8.skip.resample_filter 4x4
b8.skip.weight 64x64x1x1
mapping.embed.bias 64
mapping.embed.weight 64x3
mapping.fc0.bias 64
mapping.fc0.weight 64x64
mapping.fc1.bias 64
mapping.fc1.weight 64x64
mapping.fc2.bias 64
mapping.fc2.weight 64x64
mapping.fc3.bias 64
mapping.fc3.weight 64x64
mapping.fc4.bias 64
mapping.fc4.weight 64x64
mapping.fc5.bias 64
mapping.fc5.weight 64x64
mapping.fc6.bias 64
mapping.fc6.weight 64x64
mapping.fc7.bias 64
mapping.fc7.weight 64x64
"""



def _actual(module) -> set[str]:
    return {f"{k} {'x'.join(map(str, v.shape)) or '-'}" for k, v in module.state_dict().items()}


def _expected(text: str) -> set[str]:
    return {line for line in text.strip().splitlines()}


@pytest.mark.parametrize("cfg, expected", [
    ("stylegan2", EXPECTED_STYLEGAN2),
    ("stylegan3-t", EXPECTED_STYLEGAN3_T),
    ("stylegan3-r", EXPECTED_STYLEGAN3_R),
])
def test_generator_state_dict_matches_nvidia(cfg, expected):
    G = stylegan.build_generator(cfg, z_dim=32, w_dim=32, **SMALL)
    actual, want = _actual(G), _expected(expected)
    assert sorted(actual - want) == [] and sorted(want - actual) == []


def test_discriminator_state_dict_matches_nvidia():
    D = stylegan.build_discriminator("stylegan3-t", **SMALL)
    actual, want = _actual(D), _expected(EXPECTED_DISCRIMINATOR)
    assert sorted(actual - want) == [] and sorted(want - actual) == []


def test_stylegan3_layer_names_follow_nvidia_pattern():
    G = stylegan.build_generator("stylegan3-t", z_dim=32, w_dim=32, **SMALL)
    assert G.synthesis.layer_names[0] == "L0_36_64" and G.synthesis.layer_names[-1] == "L14_32_3"
    assert len(G.synthesis.layer_names) == 15 and G.num_ws == 16


def test_discriminator_freeze_layers_become_buffers_with_same_names():
    # NVIDIA's Freeze-D turns the first `freeze_layers` layers' weights into buffers, under the same names.
    D = stylegan.build_discriminator("stylegan2", freezed=2, **SMALL)
    params = {k for k, _ in D.named_parameters()}
    buffers = {k for k, _ in D.named_buffers()}
    assert {"b32.fromrgb.weight", "b32.fromrgb.bias", "b32.conv0.weight"} <= buffers - params
    assert {"b32.conv1.weight", "b32.skip.weight", "b16.conv0.weight"} <= params
    assert _actual(D) == _actual(stylegan.build_discriminator("stylegan2", **SMALL))
