"""TF-era StyleGAN2 and StyleGAN2-ADA pickles, without TensorFlow: kwargs translation (fmap_base doubling, fp16 and
conv_clamp choices) and the variable-to-parameter correspondence, checked both as a round trip through the test
builder's inverse mapping and element by element against hand-written expectations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nvidia_pickle_builder as nb
from stylegan.core.errors import StyleGANError
from stylegan.io.nvidia_pickle import load_nvidia_snapshot, read_nvidia_pickle

RES = 16


def _torch_kwargs(fmap_base, c_dim=0, arch="skip", d_arch="resnet", fp16=0, clamp=None, mbstd=4, ada=False,
                  mapping_fmaps=None):
    G = dict(z_dim=16, w_dim=16, c_dim=c_dim, img_resolution=RES, img_channels=3, channel_base=2 * fmap_base,
             channel_max=16, num_fp16_res=fp16, conv_clamp=clamp, architecture=arch,
             mapping_kwargs=dict(num_layers=2, w_avg_beta=0.995))
    cmap = mapping_fmaps or min(fmap_base, 16)
    D = dict(c_dim=c_dim, img_resolution=RES, img_channels=3, channel_base=2 * fmap_base, channel_max=16,
             architecture=d_arch, num_fp16_res=fp16, conv_clamp=clamp, cmap_dim=cmap if c_dim else None,
             mapping_kwargs=dict(num_layers=1 if (ada and c_dim) else 0, embed_features=cmap, layer_features=cmap,
                                 lr_multiplier=0.1),
             epilogue_kwargs=dict(mbstd_group_size=mbstd))
    return G, D


def _static(fmap_base, c_dim=0, arch="skip", d_arch="resnet", ada=False, **extra):
    common = dict(num_channels=3, resolution=RES, label_size=c_dim, fmap_base=fmap_base, fmap_max=16)
    G = dict(common, latent_size=16, dlatent_size=16, mapping_layers=2, architecture=arch, truncation_psi=0.5,
             **{k: v for k, v in extra.items() if k in ("num_fp16_res", "conv_clamp")})
    D = dict(common, architecture=d_arch, **extra)
    if ada and c_dim:
        D.update(mapping_layers=1)
    return G, D


def _write(tmp_path, G_torch, D_torch, G_static, D_static, ada, orig_lods=False):
    G = nb.build_generator(G_torch, "stylegan2", seed=3)
    Gs = nb.randomize_(nb.build_generator(G_torch, "stylegan2"), seed=4)
    D = nb.build_discriminator(D_torch, seed=5)
    nets = (nb.tf_generator(G, G_static, ada=ada, orig_lods=orig_lods),
            nb.tf_discriminator(D, D_static, ada=ada, orig_lods=orig_lods),
            nb.tf_generator(Gs, G_static, ada=ada, orig_lods=orig_lods))
    path = nb.dump(nets, tmp_path / "tf.pkl")
    return path, dict(G=G, D=D, G_ema=Gs), nets


def _same(a, b):
    sa = {**dict(a.named_parameters()), **dict(a.named_buffers())}
    sb = {**dict(b.named_parameters()), **dict(b.named_buffers())}
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.allclose(sa[k], sb[k], atol=1e-6, rtol=0), k


# fmap_max is 16 throughout; fmap_base >= 2 * fmap_max, as in every published model, so that TF's 4x4 dense layer
# (nf(0) wide) has the width of PyTorch's (the 4x4 channel count, nf(1)).
CASES = {
    # TF StyleGAN2 (config-f style): skip G, resnet D, grouped mbstd of 4, no fp16, no clamp.
    "stylegan2-skip": (dict(fmap_base=32), dict(fmap_base=32), False),
    "stylegan2-resnet-G-skip-D": (dict(fmap_base=64, arch="resnet", d_arch="skip"),
                                  dict(fmap_base=64, arch="resnet", d_arch="skip"), False),
    # StyleGAN2-ADA (TF): conditional, fp16 layers with conv_clamp, mbstd over the whole batch by default.
    "ada-conditional-fp16": (dict(fmap_base=32, c_dim=3, fp16=2, clamp=256, mbstd=None, ada=True),
                             dict(fmap_base=32, c_dim=3, ada=True, num_fp16_res=2, conv_clamp=256), True),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tf_round_trip(tmp_path, case):
    torch_kw, static_kw, ada = CASES[case]
    G_torch, D_torch = _torch_kwargs(**torch_kw)
    G_static, D_static = _static(**static_kw)
    path, refs, _ = _write(tmp_path, G_torch, D_torch, G_static, D_static, ada)
    snap = load_nvidia_snapshot(path)
    assert snap.format == "tensorflow"
    for key in ("G", "G_ema", "D"):
        _same(getattr(snap, key), refs[key])
    cfg = snap.G_ema.config
    assert cfg.synthesis.channel_base == 2 * static_kw["fmap_base"]
    assert (cfg.synthesis.num_fp16_res, cfg.synthesis.conv_clamp) == (torch_kw.get("fp16", 0), torch_kw.get("clamp"))
    assert snap.D.config.mbstd_group_size == torch_kw.get("mbstd", 4)
    g = torch.Generator().manual_seed(0)
    z = torch.randn([2, 16], generator=g)
    c = torch.eye(3)[:2] if G_torch["c_dim"] else None
    with torch.no_grad():
        assert torch.allclose(snap.G_ema(z, c, noise_mode="const"), refs["G_ema"](z, c, noise_mode="const"), atol=1e-5)


def test_progressive_growing_pickle_maps_to_orig(tmp_path):
    # Configs B-D: ToRGB_lod<n> / FromRGB_lod<n> and lod variables; only the full-resolution RGB layers are used.
    G_torch, D_torch = _torch_kwargs(32, arch="orig", d_arch="orig")
    G_static, D_static = _static(32)
    del G_static["architecture"], D_static["architecture"]
    path, refs, _ = _write(tmp_path, G_torch, D_torch, G_static, D_static, ada=False, orig_lods=True)
    data = read_nvidia_pickle(path)
    assert data.networks["G"].init_kwargs["architecture"] == "orig"
    assert any("ToRGB_lod1" in s for s in data.networks["G"].ignored)
    assert any("FromRGB_lod1" in s for s in data.networks["D"].ignored)
    snap = load_nvidia_snapshot(path)
    _same(snap.G_ema, refs["G_ema"])
    _same(snap.D, refs["D"])


def test_elements_land_where_documented(tmp_path):
    # Hand-written expectations, independent of the builder's inverse mapping.
    G_torch, D_torch = _torch_kwargs(32)
    G_static, D_static = _static(32)
    path, _, (tf_G, tf_D, tf_Gs) = _write(tmp_path, G_torch, D_torch, G_static, D_static, ada=False)
    snap = load_nvidia_snapshot(path)
    G, D = snap.G_ema, snap.D
    syn = tf_Gs._state["components"]["synthesis"]._state["variables"]
    syn = dict(syn)
    mapping = dict(tf_Gs._state["components"]["mapping"]._state["variables"])
    top = dict(tf_Gs._state["variables"])
    d = dict(tf_D._state["variables"])
    t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float32))       # noqa: E731
    o, i = 3, 5
    assert G.mapping.fc1.weight[o, i] == t(mapping["Dense1/weight"][i, o])             # dense: transpose
    assert torch.equal(G.mapping.w_avg, t(top["dlatent_avg"]))
    assert torch.equal(G.synthesis.b4.const, t(syn["4x4/Const/const"][0]))
    w = syn["8x8/Conv0_up/weight"]                                                     # [kh, kw, in, out]
    assert G.synthesis.b8.conv0.weight[o, i, 0, 2] == t(w[2, 0, i, o])                 # upsampling conv: flipped
    assert G.synthesis.b8.conv1.weight[o, i, 0, 2] == t(syn["8x8/Conv1/weight"][0, 2, i, o])   # plain: not flipped
    assert torch.equal(G.synthesis.b8.conv0.affine.bias, t(syn["8x8/Conv0_up/mod_bias"] + 1))
    assert G.synthesis.b8.torgb.affine.weight[o, i] == t(syn["8x8/ToRGB/mod_weight"][i, o])
    assert torch.equal(G.synthesis.b4.conv1.noise_const, t(syn["noise0"][0, 0]))
    assert torch.equal(G.synthesis.b8.conv0.noise_const, t(syn["noise1"][0, 0]))
    assert torch.equal(G.synthesis.b8.conv1.noise_const, t(syn["noise2"][0, 0]))
    assert torch.equal(G.synthesis.b16.conv0.noise_const, t(syn["noise3"][0, 0]))
    assert G.synthesis.b8.conv0.weight.shape[:2] == (32 // 4, 16)                      # nf(2) = fmap_base / 4
    o, i = 6, 2                                                                        # D.b16: 4 -> 8 channels
    assert D.b16.conv1.weight[o, i, 0, 2] == t(d["16x16/Conv1_down/weight"][0, 2, i, o])   # downsampling: no flip
    assert D.b16.skip.weight[o, i, 0, 0] == t(d["16x16/Skip/weight"][0, 0, i, o])
    assert torch.equal(D.b4.fc.weight, t(d["4x4/Dense0/weight"]).T)
    assert torch.equal(D.b4.out.bias, t(d["Output/bias"]))


def _static_pair():
    G_torch, D_torch = _torch_kwargs(32)
    G_static, D_static = _static(32)
    return G_torch, D_torch, G_static, D_static


def test_unfinished_progressive_growing_is_refused(tmp_path):
    G_torch, D_torch, G_static, D_static = _static_pair()
    G = nb.build_generator(G_torch, "stylegan2")
    tf_G = nb.tf_generator(G, G_static, ada=False)
    tf_G._state["variables"] = [(n, np.float32(1.5) if n == "lod" else v) for n, v in tf_G._state["variables"]]
    D = nb.tf_discriminator(nb.build_discriminator(D_torch), D_static, ada=False)
    path = nb.dump((tf_G, D, tf_G), tmp_path / "growing.pkl")
    with pytest.raises(StyleGANError, match="still growing"):
        read_nvidia_pickle(path)


@pytest.mark.parametrize("change,message", [
    (lambda G, D: G["static_kwargs"].update(mystery_knob=3), "unknown TensorFlow kwargs mystery_knob"),
    (lambda G, D: D["static_kwargs"].update(use_pagan=True), "use_pagan"),
    (lambda G, D: G["components"]["mapping"]._state["variables"].append(
        ("LabelConcat/weight", np.zeros((3, 16), np.float32))), "LabelConcat"),
    (lambda G, D: G["components"]["synthesis"]._state["variables"].append(
        ("16x16/Mystery/weight", np.zeros(3, np.float32))), "no PyTorch counterpart: synthesis/16x16/Mystery"),
])
def test_unsupported_tf_networks_are_named(tmp_path, change, message):
    G_torch, D_torch, G_static, D_static = _static_pair()
    tf_G = nb.tf_generator(nb.build_generator(G_torch, "stylegan2"), G_static, ada=False)
    tf_D = nb.tf_discriminator(nb.build_discriminator(D_torch), D_static, ada=False)
    change(tf_G._state, tf_D._state)
    path = nb.dump((tf_G, tf_D, tf_G), tmp_path / "odd.pkl")
    with pytest.raises(StyleGANError, match=message):
        read_nvidia_pickle(path)
