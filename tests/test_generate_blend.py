"""stylegan blend: layer swapping takes exactly the layers it says from each network, for StyleGAN2 and StyleGAN3;
smooth blends lie between the two; mismatched networks are refused in one line; the file loads back."""
from __future__ import annotations

import dataclasses

import numpy as np
import PIL.Image
import pytest
import torch

import stylegan
from stylegan.generate.blend import (
    BlendOptions, blend_networks, blend_weights, check_blendable, config_difference, synthesis_layers)
from stylegan.io import read_network_file
from test_generate_support import run_cli, tiny_generator

pytestmark = pytest.mark.usefixtures("one_thread")

# StyleGAN3 at 32 px: input and L0-L1 run at sampling rate 16, L2-L4 at 32 (at 16 px every layer runs at 16).
FAMILIES = {"sg2": ("stylegan2", 16, 16), "sg3": ("stylegan3-t", 32, 32)}     # name: (cfg, resolution, a swap_res)
_pairs: dict[str, tuple] = {}


def pair(family: str):
    """Networks A and B of one tiny architecture with different weights (built once per session)."""
    if family not in _pairs:
        cfg, res, _ = FAMILIES[family]
        _pairs[family] = (tiny_generator(cfg, res, seed=0), tiny_generator(cfg, res, seed=1))
    return _pairs[family]


def some_ws(G, n: int = 2) -> torch.Tensor:
    torch.manual_seed(5)
    return G.mapping(torch.randn(n, G.z_dim), None)                        # [n, num_ws, w_dim]


def outputs_of(G, names: list[str], ws: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """What each named synthesis submodule returns for ws (constant noise), caught with forward hooks."""
    seen: dict[str, list[torch.Tensor]] = {}
    hooks = [G.synthesis.get_submodule(name).register_forward_hook(
        lambda module, args, out, name=name: seen.__setitem__(
            name, [t.clone() for t in (out if isinstance(out, tuple) else (out,)) if t is not None]))
        for name in names]
    try:
        G.synthesis(ws, noise_mode="const")
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def state_of(G, layer: str) -> dict[str, torch.Tensor]:
    prefix = f"synthesis.{layer}."
    return {k: v for k, v in G.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("family", FAMILIES)
def test_swap_at_the_lowest_resolution_gives_b_and_above_the_highest_gives_a(family):
    A, B = pair(family)
    ws = some_ws(A)
    lowest = synthesis_layers(A)[0].resolution
    all_b = blend_networks(A, B, BlendOptions(swap_res=lowest))
    all_a = blend_networks(A, B, BlendOptions(swap_res=2 * A.img_resolution))
    assert torch.equal(all_b.synthesis(ws), B.synthesis(ws))
    assert torch.equal(all_a.synthesis(ws), A.synthesis(ws))
    assert not torch.equal(A.synthesis(ws), B.synthesis(ws))                # the test can tell them apart
    # The latent space is A's unless asked otherwise: its mapping network and w_avg.
    z = torch.randn(3, A.z_dim)
    assert torch.equal(all_b.mapping(z, None), A.mapping(z, None))
    assert torch.equal(all_b.mapping.w_avg, A.mapping.w_avg)
    from_b = blend_networks(A, B, BlendOptions(swap_res=lowest, mapping_from="b"))
    assert torch.equal(from_b.mapping(z, None), B.mapping(z, None)) and torch.equal(from_b.mapping.w_avg,
                                                                                     B.mapping.w_avg)


@pytest.mark.parametrize("family", FAMILIES)
def test_in_between_the_coarse_layers_act_as_a_and_the_fine_layers_are_b(family):
    A, B = pair(family)
    swap_res = FAMILIES[family][2]
    G = blend_networks(A, B, BlendOptions(swap_res=swap_res))
    layers = synthesis_layers(A)
    coarse = [layer.name for layer in layers if layer.resolution < swap_res]
    fine = [layer.name for layer in layers if layer.resolution >= swap_res]
    assert coarse and fine
    # Hooks on the coarse modules (whole StyleGAN2 blocks, e.g. b4 and b8; StyleGAN3 input, L0, L1).
    modules = list(dict.fromkeys(name.split(".")[0] for name in coarse))
    ws = some_ws(A)
    ours, theirs, b_s = outputs_of(G, modules, ws), outputs_of(A, modules, ws), outputs_of(B, modules, ws)
    for name in modules:
        assert all(torch.equal(x, y) for x, y in zip(ours[name], theirs[name])), name
        assert not torch.equal(ours[name][0], b_s[name][0]), name
    for name in fine:
        mine, b_state, a_state = state_of(G, name), state_of(B, name), state_of(A, name)
        assert mine and all(torch.equal(v, b_state[k]) for k, v in mine.items()), name
        assert any(not torch.equal(v, a_state[k]) for k, v in mine.items()), name
    image = G.synthesis(ws)
    assert not torch.equal(image, A.synthesis(ws)) and not torch.equal(image, B.synthesis(ws))


@pytest.mark.parametrize("family", FAMILIES)
def test_smooth_blends_interpolate_the_parameters_near_the_swap_point(family):
    A, B = pair(family)
    options = BlendOptions(swap_res=FAMILIES[family][2], smooth=2)
    G = blend_networks(A, B, options)
    weights = blend_weights(A, options)
    names = list(weights)
    first_b = next(i for i, layer in enumerate(synthesis_layers(A)) if layer.resolution >= options.swap_res)
    assert 0 < weights[names[first_b - 1]] < 0.5 < weights[names[first_b]] < 1
    assert list(weights.values()) == sorted(weights.values())                # A to B, never back
    learned = {k for k, _ in A.named_parameters()}
    for name in names[first_b - 1:first_b + 1]:
        mine, a_state, b_state = state_of(G, name), state_of(A, name), state_of(B, name)
        checked = 0
        for k in mine.keys() & learned:
            lo, hi = torch.minimum(a_state[k], b_state[k]), torch.maximum(a_state[k], b_state[k])
            differ = a_state[k] != b_state[k]
            assert bool(((mine[k] > lo) & (mine[k] < hi))[differ].all()), k
            checked += int(differ.sum())
        assert checked > 0, name
        for k in mine.keys() - learned:                                      # buffers: whole, from the nearer side
            assert torch.equal(mine[k], (b_state if weights[name] >= 0.5 else a_state)[k]), k
    linear = blend_weights(A, dataclasses.replace(options, ramp="linear"))
    assert [linear[n] for n in names[first_b - 2:first_b + 2]] == [0.0, 0.25, 0.75, 1.0]


def test_swap_layer_by_name_or_index_matches_the_resolution_swap():
    A, _ = pair("sg2")
    by_res = blend_weights(A, BlendOptions(swap_res=8))
    assert by_res == blend_weights(A, BlendOptions(swap_layer="b8")) == blend_weights(A, BlendOptions(swap_layer="3"))
    assert blend_weights(A, BlendOptions(swap_layer="b8.conv1"))["b8.conv0"] == 0.0
    A3, _ = pair("sg3")
    assert blend_weights(A3, BlendOptions(swap_layer="L2")) == blend_weights(A3, BlendOptions(swap_res=32))
    with pytest.raises(stylegan.StyleGANError, match="--swap-layer: 'b7' is not a layer of this network; .*b8.conv0"):
        blend_weights(A, BlendOptions(swap_layer="b7"))


def test_networks_of_different_architectures_are_refused_naming_the_field():
    A, _ = pair("sg2")
    wider = stylegan.build_generator("stylegan2", 16, cbase=2048, cmax=64, z_dim=64, w_dim=64)
    with pytest.raises(stylegan.StyleGANError, match=r"differ in synthesis.channel_base \(A: 1024, B: 2048\)"):
        check_blendable(A, wider)
    assert "family" in config_difference(A.config, pair("sg3")[0].config)
    # Settings that only steer averages during training may differ (fine-tuning with another batch changes them).
    config = pair("sg3")[0].config
    retrained = dataclasses.replace(config, cfg=None, synthesis=dataclasses.replace(config.synthesis,
                                                                                   magnitude_ema_beta=0.9))
    assert config_difference(config, retrained) is None
    # So may the mixed-precision settings: a network fine-tuned on a CPU is fp32 throughout, its parent was not.
    on_cpu = dataclasses.replace(config, synthesis=dataclasses.replace(config.synthesis, num_fp16_res=0,
                                                                      conv_clamp=None))
    assert config_difference(config, on_cpu) is None


def test_blend_command_writes_a_network_that_loads_back(nets, tmp_path, capsys):
    b_path = stylegan.save_network(tiny_generator("stylegan2", 16, seed=1), tmp_path / "b.safetensors")
    out = tmp_path / "blend.safetensors"
    args = ["blend", "--network-a", nets["sg2"], "--network-b", b_path, "--swap-res", "8", "--smooth", "1.5",
            "--preview-seeds", "0-3", "--out", out, "--device", "cpu"]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "blended: swap at 8 px: layers from b8.conv0 (8 px) on from B" in stdout and "sigmoid ramp 1.5" in stdout
    G = stylegan.io.load_network(out)
    A, B = stylegan.io.load_network(nets["sg2"]), stylegan.io.load_network(b_path)
    expected = blend_networks(A, B, BlendOptions(swap_res=8, smooth=1.5))
    assert G.config == A.config
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in G.state_dict().items())
    extra = read_network_file(out)[1]["extra"]
    assert extra["blended"].startswith("swap at 8 px") and extra["blend"]["smooth"] == 1.5
    preview = np.asarray(PIL.Image.open(tmp_path / "blend-preview.png"))
    assert preview.shape == (3 * 16, 4 * 16, 3)                              # rows A, blend, B; a column a seed
    # An existing file is kept unless --overwrite.
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "exists; pass --overwrite" in err
    assert run_cli(args + ["--overwrite"], capsys)[0] == 0


def test_blend_command_gives_one_line_errors(nets, tmp_path, capsys):
    base = ["blend", "--network-a", nets["sg2"], "--out", tmp_path / "x.safetensors"]
    cases = [
        (["--network-b", nets["sg2_32"], "--swap-res", "8"], "differ in img_resolution (A: 16, B: 32)"),
        (["--network-b", nets["sg2"]], "give either --swap-res or --swap-layer"),
        (["--network-b", nets["sg2"], "--swap-res", "12"], "--swap-res: 12 is not allowed"),
        (["--network-b", nets["sg2"], "--swap-layer", "b9"], "--swap-layer: 'b9' is not a layer"),
        (["--network-b", tmp_path / "gone.safetensors", "--swap-res", "8"], "--network-b: "),
        (["--network-b", nets["sg2"], "--swap-res", "8", "--smooth", "-1"], "--smooth: -1.0 is not allowed"),
    ]
    for args, message in cases:
        code, _, err = run_cli(base + args, capsys)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "x.safetensors").exists()
