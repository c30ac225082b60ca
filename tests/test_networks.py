"""Generators and discriminator: shapes, determinism, truncation, noise, EMAs, gradients, W+ synthesis."""
import pytest
import torch

import stylegan
from stylegan.core.errors import StyleGANError

PRESETS = ["stylegan2", "stylegan3-t", "stylegan3-r"]
TINY = dict(cbase=512, cmax=16, z_dim=32, w_dim=32)          # a few thousand parameters per network


def _labels(n: int, c_dim: int) -> torch.Tensor | None:
    return torch.eye(c_dim)[torch.arange(n) % c_dim] if c_dim else None


def _pair(cfg: str, resolution: int, c_dim: int, seed: int = 0):
    torch.manual_seed(seed)
    G = stylegan.build_generator(cfg, resolution, c_dim, **TINY).eval()
    D = stylegan.build_discriminator(cfg, resolution, c_dim, cbase=TINY["cbase"], cmax=TINY["cmax"])
    return G, D


@pytest.mark.parametrize("cfg", PRESETS)
@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("c_dim", [0, 4])
def test_output_shapes(cfg, resolution, c_dim):
    G, D = _pair(cfg, resolution, c_dim)
    z = torch.randn(2, G.z_dim)
    c = _labels(2, c_dim)
    with torch.no_grad():
        ws = G.mapping(z, c)
        img = G.synthesis(ws)
        logits = D(img, c)
    assert ws.shape == (2, G.num_ws, G.w_dim) and G.synthesis.num_ws == G.num_ws
    assert img.shape == (2, 3, resolution, resolution) and img.dtype == torch.float32
    assert torch.isfinite(img).all()
    assert logits.shape == (2, 1) and torch.isfinite(logits).all()
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_resolution, G.img_channels) == (32, c_dim, 32, resolution, 3)
    assert (D.c_dim, D.img_resolution, D.img_channels) == (c_dim, resolution, 3)
    assert G.config.cfg == cfg and G.config.family == ("stylegan2" if cfg == "stylegan2" else "stylegan3")


def test_num_ws_and_synthesis_attributes():
    G2 = stylegan.build_generator("stylegan2", 64, **TINY)
    G3 = stylegan.build_generator("stylegan3-t", 64, **TINY)
    assert G2.num_ws == 10 and G2.synthesis.block_resolutions == [4, 8, 16, 32, 64]
    assert G3.num_ws == 16 and len(G3.synthesis.layer_names) == 15
    assert G2.synthesis.b64.conv0.noise_const.shape == (64, 64)
    assert G2.synthesis.b64.conv1.noise_strength.shape == ()
    assert G3.synthesis.input.transform.shape == (3, 3)
    assert G2.mapping.w_avg.shape == (32,) and G3.mapping.w_avg.shape == (32,)


@pytest.mark.parametrize("cfg", PRESETS)
def test_same_seed_same_output(cfg):
    outs = []
    for _ in range(2):
        G, _ = _pair(cfg, 32, 3, seed=7)
        z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.manual_seed(5)
            outs.append((G(z, _labels(2, 3), noise_mode="random"), G(z, _labels(2, 3), truncation_psi=0.5)))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    G, _ = _pair(cfg, 32, 3, seed=8)   # another seed builds another network
    with torch.no_grad():
        assert not torch.equal(G(z, _labels(2, 3), truncation_psi=0.5), outs[0][1])


@pytest.mark.parametrize("cfg", PRESETS)
def test_truncation_psi_zero_gives_one_image(cfg):
    G, _ = _pair(cfg, 32, 0)
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    with torch.no_grad():
        img = G(torch.randn(3, G.z_dim), None, truncation_psi=0)
        other = G(torch.randn(3, G.z_dim) * 3, None, truncation_psi=0)
        free = G(torch.randn(3, G.z_dim), None)
    assert torch.allclose(img, img[:1].expand_as(img), atol=1e-6)
    assert torch.allclose(img, other, atol=1e-6)
    assert not torch.allclose(free, free[:1].expand_as(free), atol=1e-3)


def test_truncation_cutoff_only_touches_the_first_ws():
    G, _ = _pair("stylegan2", 32, 0)
    G.mapping.w_avg.copy_(torch.randn(G.w_dim))
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        free = G.mapping(z, None)
        cut = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.equal(cut[:, 3:], free[:, 3:])
    assert torch.allclose(cut[:, :3], G.mapping.w_avg.lerp(free[:, :3], 0.5))


def test_noise_modes():
    G, _ = _pair("stylegan2", 32, 0)
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.data.fill_(0.5)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        const = [G(z, None, noise_mode="const") for _ in range(2)]
        rand = [G(z, None, noise_mode="random") for _ in range(2)]
        none = G(z, None, noise_mode="none")
    assert torch.equal(const[0], const[1])
    assert not torch.equal(rand[0], rand[1]) and not torch.equal(const[0], none)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, None, noise_mode="fixed")


def test_synthesis_takes_w_plus():
    G, _ = _pair("stylegan3-t", 32, 0)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        ws = G.mapping(z, None)
        assert torch.equal(G.synthesis(ws), G(z, None))
        mixed = ws.clone()
        mixed[:, 8:] = G.mapping(torch.randn(2, G.z_dim), None)[:, 8:]     # style mixing: W+ differs per layer
        assert G.synthesis(mixed).shape == (2, 3, 32, 32)


def test_fused_and_unfused_modconv_agree():
    # A grouped conv with per-sample weights and a plain conv on the modulated batch compute the same thing.
    G, _ = _pair("stylegan2", 32, 0)
    assert G.synthesis.b32.fused_modconv_default == "inference_only"
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        ws = G.eval().mapping(z, None)
        fused = G.synthesis(ws, fused_modconv=True)
        unfused = G.synthesis(ws, fused_modconv=False)
        default = G.synthesis(ws)
    assert torch.allclose(fused, unfused, atol=1e-5) and not torch.equal(fused, unfused)
    # On a CPU the default is the plain conv (the faster one there), in eval mode as in training mode.
    assert torch.equal(default, unfused)


def test_update_emas_tracks_w_avg_and_input_magnitudes():
    G, _ = _pair("stylegan3-t", 32, 0)
    layer = getattr(G.synthesis, G.synthesis.layer_names[3])
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        G(z, None)
        assert torch.all(G.mapping.w_avg == 0) and layer.magnitude_ema.item() == 1
        G(z, None, update_emas=True)
    assert not torch.all(G.mapping.w_avg == 0) and layer.magnitude_ema.item() != 1


@pytest.mark.parametrize("cfg", PRESETS)
def test_every_parameter_receives_a_gradient(cfg):
    G, D = _pair(cfg, 32, 3)
    G.train()
    c = _labels(4, 3)
    img = G(torch.randn(4, G.z_dim), c, noise_mode="random")
    D(img, c).sum().backward()
    for module in (G, D):
        missing = [n for n, p in module.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
        assert missing == []
        assert all(torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
def test_generator_and_discriminator_architectures(architecture):
    G = stylegan.build_generator("stylegan2", 32, 2, architecture=architecture, **TINY).eval()
    D = stylegan.build_discriminator("stylegan2", 32, 2, architecture=architecture, cbase=512, cmax=16)
    c = _labels(4, 2)
    with torch.no_grad():
        logits = D(G(torch.randn(4, G.z_dim), c), c)
    assert logits.shape == (4, 1)
    assert hasattr(G.synthesis.b16, "torgb") == (architecture == "skip")
    assert hasattr(D.b16, "skip") == (architecture == "resnet")


def test_minibatch_std_group_must_divide_the_batch():
    D = stylegan.build_discriminator("stylegan2", 32, cbase=512, cmax=16, mbstd_group=4)
    assert D(torch.randn(8, 3, 32, 32), None).shape == (8, 1)
    assert D(torch.randn(2, 3, 32, 32), None).shape == (2, 1)       # groups shrink to small batches
    with pytest.raises(StyleGANError, match="mbstd-group"):
        D(torch.randn(6, 3, 32, 32), None)


def test_force_fp32_and_cpu_run_in_float32():
    G = stylegan.build_generator("stylegan2", 32, **TINY)
    assert G.config.synthesis.num_fp16_res == 4 and G.synthesis.b32.use_fp16   # fp16 is configured ...
    with torch.no_grad():
        assert G(torch.randn(1, G.z_dim), None).dtype == torch.float32        # ... but only used on CUDA
        assert G(torch.randn(1, G.z_dim), None, force_fp32=True).dtype == torch.float32
