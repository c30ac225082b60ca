"""Importing NVIDIA network snapshots (stylegan3 and stylegan2-ada-pytorch): every generator class and the
discriminator, conditional or not, with and without fp16 layers. The pickles are built from our own modules with
NVIDIA's stream structure (tests/nvidia_pickle_builder.py); parity with NVIDIA's own code is checked outside the
repository, since NVIDIA's pickles embed NVIDIA's source."""
from __future__ import annotations

import pickle

import pytest
import torch

import nvidia_pickle_builder as nb
from stylegan.core.errors import StyleGANError, UsageError
from stylegan.io.nvidia_pickle import (AttrDict, PersistentObject, load_nvidia_network, load_nvidia_snapshot,
                                       read_nvidia_pickle)

BASE = dict(z_dim=16, w_dim=16, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2))


def _sg2(arch: str, c_dim: int, fp16: bool) -> dict:
    return dict(BASE, c_dim=c_dim, channel_base=256, channel_max=16, architecture=arch,
                num_fp16_res=2 if fp16 else 0, conv_clamp=256 if fp16 else None, fused_modconv_default="inference_only")


def _sg3(cfg: str, c_dim: int, fp16: bool) -> dict:
    # Fewer layers, a thin margin and short filters keep the reference filtered_lrelu fast on CPU.
    kw = dict(BASE, c_dim=c_dim, channel_base=512, channel_max=16, magnitude_ema_beta=0.999, num_layers=4,
              margin_size=2, filter_size=4, num_fp16_res=4 if fp16 else 0, conv_clamp=256 if fp16 else None)
    if cfg == "r":
        kw.update(conv_kernel=1, use_radial_filters=True, channel_base=1024, channel_max=32)
    return kw


def _d(c_dim: int, fp16: bool, arch: str = "resnet") -> dict:
    return dict(c_dim=c_dim, img_resolution=16, img_channels=3, channel_base=256, channel_max=16, architecture=arch,
                num_fp16_res=2 if fp16 else 0, conv_clamp=256 if fp16 else None,
                block_kwargs=dict(freeze_layers=0), mapping_kwargs=dict(), epilogue_kwargs=dict(mbstd_group_size=2))


def _inputs(net, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.nn.functional.one_hot(torch.arange(n) % net.c_dim, net.c_dim).float() if net.c_dim else None
    return g, c


def _same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa = {**dict(a.named_parameters()), **dict(a.named_buffers())}
    sb = {**dict(b.named_parameters()), **dict(b.named_buffers())}
    assert sa.keys() == sb.keys()
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _check_generator(ours, ref):
    _same_state(ours, ref)
    g, c = _inputs(ref)
    z = torch.randn([2, ref.z_dim], generator=g)
    with torch.no_grad():
        a = ref(z, c, truncation_psi=0.7, noise_mode="const", force_fp32=True)
        b = ours(z, c, truncation_psi=0.7, noise_mode="const", force_fp32=True)
    assert (a - b).abs().max() <= 1e-6


def _check_discriminator(ours, ref):
    _same_state(ours, ref)
    g, c = _inputs(ref)
    img = torch.randn([2, ref.img_channels, ref.img_resolution, ref.img_resolution], generator=g)
    with torch.no_grad():
        assert (ref(img, c, force_fp32=True) - ours(img, c, force_fp32=True)).abs().max() <= 1e-6


CASES = [(f"sg2-{arch}-c{c}-fp{int(fp16)}", "stylegan2", _sg2(arch, c, fp16), _d(c, fp16, d_arch))
         for arch, d_arch in (("orig", "orig"), ("skip", "resnet"), ("resnet", "skip"))
         for c, fp16 in ((0, False), (4, True))]
CASES += [(f"sg3{cfg}-c{c}-fp{int(fp16)}", "stylegan3", _sg3(cfg, c, fp16), _d(c, fp16))
          for cfg in ("t", "r") for c, fp16 in ((0, False), (3, True))]


@pytest.mark.parametrize("name,family,G_kwargs,D_kwargs", CASES, ids=[c[0] for c in CASES])
def test_snapshot_round_trip(tmp_path, name, family, G_kwargs, D_kwargs):
    path = tmp_path / f"{name}.pkl"
    refs = nb.write_snapshot(path, G_kwargs=G_kwargs, D_kwargs=D_kwargs, family=family, augment_p=0.3)
    snap = load_nvidia_snapshot(path)
    assert snap.format == "snapshot"
    _same_state(snap.G, refs["G"])
    _check_generator(snap.G_ema, refs["G_ema"])
    assert snap.G.config.family == snap.G_ema.config.family == family
    _check_discriminator(snap.D, refs["D"])
    assert not any(p.requires_grad for p in snap.G_ema.parameters()) and not snap.G_ema.training
    assert snap.extras.augment_p == pytest.approx(0.3)
    assert snap.extras.augment_kwargs["xflip"] == 1
    assert snap.extras.resolution == 16 and snap.extras.xflip is True and snap.extras.use_labels is True


def test_recorded_precision_and_cfg(tmp_path):
    # fp16 layers and conv_clamp come through to the config; StyleGAN3-R is recognised as such.
    nb.write_snapshot(tmp_path / "r.pkl", G_kwargs=_sg3("r", 0, True), D_kwargs=_d(0, True), family="stylegan3")
    G = load_nvidia_network(tmp_path / "r.pkl")
    assert G.config.cfg == "stylegan3-r"
    assert G.config.synthesis.num_fp16_res == 4 and G.config.synthesis.conv_clamp == 256
    nb.write_snapshot(tmp_path / "2.pkl", G_kwargs=_sg2("skip", 0, True), D_kwargs=_d(0, True), family="stylegan2")
    D = load_nvidia_network(tmp_path / "2.pkl", what="d")
    assert D.config.num_fp16_res == 2 and D.config.conv_clamp == 256


def test_stylegan2_ada_pytorch_layout(tmp_path):
    # stylegan2-ada-pytorch nests synthesis_kwargs, and its defaults differ (no fp16, no clamp, w_avg_beta 0.995).
    G_kwargs = dict(BASE, c_dim=0, synthesis_kwargs=dict(channel_base=256, channel_max=16, architecture="skip"))
    D_kwargs = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=256, channel_max=16,
                    block_kwargs={}, mapping_kwargs={}, epilogue_kwargs=dict(mbstd_group_size=2))
    refs = nb.write_snapshot(tmp_path / "ada.pkl", G_kwargs=G_kwargs, D_kwargs=D_kwargs, family="stylegan2",
                             origin="stylegan2-ada-pytorch")
    data = read_nvidia_pickle(tmp_path / "ada.pkl")
    assert {r.origin for r in data.networks.values()} == {"stylegan2-ada-pytorch"}
    snap = load_nvidia_snapshot(tmp_path / "ada.pkl")
    _check_generator(snap.G_ema, refs["G_ema"])
    _check_discriminator(snap.D, refs["D"])
    syn = snap.G_ema.config.synthesis
    assert (syn.num_fp16_res, syn.conv_clamp, snap.G_ema.config.mapping.w_avg_beta) == (0, None, 0.995)
    assert (snap.D.config.num_fp16_res, snap.D.config.conv_clamp) == (0, None)


@pytest.mark.parametrize("protocol", [2, 3, 5])
def test_other_pickle_protocols(tmp_path, protocol):
    refs = nb.write_snapshot(tmp_path / "p.pkl", G_kwargs=_sg2("skip", 0, False), D_kwargs=_d(0, False),
                             family="stylegan2", protocol=protocol)
    _check_generator(load_nvidia_network(tmp_path / "p.pkl"), refs["G_ema"])


def test_what_selects_network(tmp_path):
    refs = nb.write_snapshot(tmp_path / "s.pkl", G_kwargs=_sg2("skip", 0, False), D_kwargs=_d(0, False),
                             family="stylegan2")
    _same_state(load_nvidia_network(tmp_path / "s.pkl", what="g"), refs["G"])
    _same_state(load_nvidia_network(tmp_path / "s.pkl", what="g_ema"), refs["G_ema"])
    _same_state(load_nvidia_network(tmp_path / "s.pkl", what="d"), refs["D"])
    with pytest.raises(UsageError, match="g_ema"):
        load_nvidia_network(tmp_path / "s.pkl", what="generator")


def test_module_source_is_kept_as_text(tmp_path):
    nb.write_snapshot(tmp_path / "s.pkl", G_kwargs=_sg3("t", 0, False), D_kwargs=_d(0, False), family="stylegan3")
    with open(tmp_path / "s.pkl", "rb") as f:
        from stylegan.io.nvidia_pickle import NVIDIA_GLOBALS
        from stylegan.io.unpickler import restricted_load
        data = restricted_load(f, NVIDIA_GLOBALS)
    assert isinstance(data["G_ema"], PersistentObject)
    assert data["G_ema"].module_src == nb.DUMMY_SOURCE and data["G_ema"].class_name == "Generator"
    assert data["G_ema"].child("synthesis").child("input").class_name == "SynthesisInput"


def _tamper(path, fn):
    """Rewrite a snapshot after applying fn to the G_ema record's state (through our own reader)."""
    from stylegan.io.nvidia_pickle import NVIDIA_GLOBALS
    from stylegan.io.unpickler import restricted_load
    with open(path, "rb") as f:
        data = restricted_load(f, NVIDIA_GLOBALS)
    fn(data["G_ema"])

    def back(obj):
        if isinstance(obj, PersistentObject):
            return nb._Persistent(dict(type="class", version=6, module_src=obj.module_src,
                                       class_name=obj.class_name, state=back(obj.state)))
        if isinstance(obj, AttrDict):
            return nb.EasyDict((k, back(v)) for k, v in obj.items())
        if isinstance(obj, dict):
            return type(obj)((k, back(v)) for k, v in obj.items())
        return obj
    nb.dump({k: back(v) for k, v in data.items()}, path)


@pytest.mark.parametrize("change,message", [
    (lambda g: g.child("mapping").child("fc0").state["_parameters"].pop("bias"), "missing from the file"),
    (lambda g: g.child("mapping").state["_buffers"].__setitem__("extra", torch.zeros(3)), "not in our network"),
    (lambda g: g.child("mapping").state["_buffers"].__setitem__("w_avg", torch.zeros(5)), "has shape"),
])
def test_mismatched_tensors_are_refused(tmp_path, change, message):
    path = tmp_path / "s.pkl"
    nb.write_snapshot(path, G_kwargs=_sg2("skip", 0, False), D_kwargs=_d(0, False), family="stylegan2")
    _tamper(path, change)
    with pytest.raises(StyleGANError, match=message):
        load_nvidia_network(path)


def test_pickle_that_is_not_a_snapshot(tmp_path):
    path = tmp_path / "other.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": [1, 2], "epoch": 3}, f, protocol=4)
    with pytest.raises(StyleGANError, match="holds a dict with keys 'model', 'epoch'"):
        read_nvidia_pickle(path)


def test_snapshot_without_discriminator(tmp_path):
    # Some community files keep only G_ema.
    G = nb.build_generator(_sg2("skip", 0, False), "stylegan2")
    path = nb.dump({"G_ema": nb.persistent(G, "generator", _sg2("skip", 0, False))}, tmp_path / "gema.pkl")
    _same_state(load_nvidia_network(path), G)
    with pytest.raises(StyleGANError, match="has no D"):
        load_nvidia_network(path, what="d")
