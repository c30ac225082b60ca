"""Our network file: exact round trips, snapshots with several networks, and clear errors for bad files."""
import json
import struct

import pytest
import torch
from safetensors.torch import save_file

import stylegan
from stylegan.core.errors import StyleGANError
from stylegan.io import load_network, load_networks, read_network_file, save_networks

TINY = dict(cbase=512, cmax=16, z_dim=32, w_dim=32)


def _generator(cfg: str, c_dim: int = 0, seed: int = 0):
    torch.manual_seed(seed)
    G = stylegan.build_generator(cfg, 32, c_dim, **TINY)
    with torch.no_grad():   # give the averages and noise non-initial values, so the round trip must carry them
        G.mapping.w_avg.normal_()
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    return G


@pytest.mark.parametrize("cfg", ["stylegan2", "stylegan3-t", "stylegan3-r"])
def test_round_trip_reproduces_outputs_exactly(cfg, tmp_path):
    G = _generator(cfg, c_dim=2).eval()
    path = stylegan.save_network(G, tmp_path / "g.safetensors")
    G2 = stylegan.load_network(path, device="cpu")
    assert type(G2) is type(G) and G2.config == G.config and not G2.training
    assert all(not p.requires_grad for p in G2.parameters())
    z, c = torch.randn(2, G.z_dim), torch.eye(2)
    with torch.no_grad():
        assert torch.equal(G(z, c, truncation_psi=0.7), G2(z, c, truncation_psi=0.7))
    for (k, a), (k2, b) in zip(G.state_dict().items(), G2.state_dict().items()):
        assert k == k2 and torch.equal(a, b)


def test_snapshot_holds_g_d_and_g_ema(tmp_path):
    G, G_ema = _generator("stylegan2", seed=1), _generator("stylegan2", seed=2)
    D = stylegan.build_discriminator("stylegan2", 32, cbase=512, cmax=16)
    path = save_networks({"G": G, "D": D, "G_ema": G_ema}, tmp_path / "snap.safetensors",
                         extra_metadata={"kimg": 12.5, "note": "x"})
    configs, meta = read_network_file(path)
    assert list(configs) == ["G", "D", "G_ema"] and meta["modules"] == ["G", "D", "G_ema"]
    assert meta["extra"] == {"kimg": 12.5, "note": "x"} and meta["format_version"] == 1
    assert configs["D"] == D.config
    assert torch.equal(load_network(path).mapping.w_avg, G_ema.mapping.w_avg)              # default: g_ema
    assert torch.equal(load_network(path, what="g").mapping.w_avg, G.mapping.w_avg)
    assert load_network(path, what="d").config == D.config
    nets = load_networks(path)
    assert set(nets) == {"G", "D", "G_ema"}
    with pytest.raises(StyleGANError, match="choose one of g, d, g_ema"):
        load_network(path, what="generator")


def test_one_generator_answers_to_g_and_g_ema(tmp_path):
    path = stylegan.save_network(_generator("stylegan3-t"), tmp_path / "g.safetensors")
    assert read_network_file(path)[1]["modules"] == ["G"]
    assert load_network(path, what="g").config == load_network(path, what="g_ema").config
    with pytest.raises(StyleGANError, match=r"holds G, not D; use what='g' or 'g_ema'"):
        load_network(path, what="d")
    d_path = stylegan.save_network(stylegan.build_discriminator("stylegan2", 32, cbase=512, cmax=16),
                                   tmp_path / "d.safetensors")
    with pytest.raises(StyleGANError, match=r"holds D, not G_ema; use what='d'"):
        load_network(d_path)


def test_missing_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(StyleGANError, match="no such file"):
        load_network(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a network at all")
    with pytest.raises(StyleGANError, match="not a network file this stylegan can read"):
        load_network(junk)
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(StyleGANError, match="not a stylegan network file"):
        load_network(plain)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(struct.pack("<Q", 10 ** 6) + b"{")
    with pytest.raises(StyleGANError):
        load_network(truncated)


def _rewrite(path, out, tensors=None, metadata=None):
    """Copy a network file with some tensors or metadata changed, as a damaged or edited file would be."""
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        data = {k: f.get_tensor(k) for k in f.keys()}
        meta = dict(f.metadata())
    data.update(tensors or {})
    data = {k: v for k, v in data.items() if v is not None}
    meta.update(metadata or {})
    save_file(data, str(out), metadata=meta)
    return out


def test_tensors_that_do_not_match_the_config_are_clear_errors(tmp_path):
    path = stylegan.save_network(_generator("stylegan2"), tmp_path / "g.safetensors")
    bad_shape = _rewrite(path, tmp_path / "shape.safetensors",
                         tensors={"G.synthesis.b32.conv1.weight": torch.zeros(16, 16, 1, 1)})
    with pytest.raises(StyleGANError, match=r"G.synthesis.b32.conv1.weight has shape \[16, 16, 1, 1\] but the "
                                            r"config needs \[16, 16, 3, 3\]"):
        load_network(bad_shape)
    missing = _rewrite(path, tmp_path / "missing.safetensors", tensors={"G.mapping.fc3.bias": None})
    with pytest.raises(StyleGANError, match=r"missing 1 tensor\(s\) such as 'mapping.fc3.bias'"):
        load_network(missing)
    extra = _rewrite(path, tmp_path / "extra.safetensors", tensors={"G.mapping.fc9.bias": torch.zeros(3)})
    with pytest.raises(StyleGANError, match="unexpected tensor"):
        load_network(extra)
    config = json.loads(_meta(path)["config.G"])
    config["synthesis"]["channel_max"] = 32                        # the config says wider layers than stored
    wider = _rewrite(path, tmp_path / "wider.safetensors", metadata={"config.G": json.dumps(config)})
    with pytest.raises(StyleGANError, match="do not match its config"):
        load_network(wider)
    config["synthesis"]["architecture"] = "unet"
    invalid = _rewrite(path, tmp_path / "invalid.safetensors", metadata={"config.G": json.dumps(config)})
    with pytest.raises(StyleGANError, match="stored config is not valid.*architecture"):
        load_network(invalid)
    newer = _rewrite(path, tmp_path / "newer.safetensors", metadata={"format_version": "99"})
    with pytest.raises(StyleGANError, match="version '99' is not supported"):
        load_network(newer)


def _meta(path):
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return f.metadata()


def test_writes_are_atomic_and_refuse_foreign_modules(tmp_path):
    path = tmp_path / "g.safetensors"
    stylegan.save_network(_generator("stylegan2"), path)
    before = path.read_bytes()
    with pytest.raises(StyleGANError, match="not a stylegan network"):
        stylegan.save_network(torch.nn.Linear(2, 2), path)
    with pytest.raises(StyleGANError, match="JSON"):
        save_networks({"G": _generator("stylegan2")}, path, extra_metadata={"bad": object()})
    assert path.read_bytes() == before                              # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.safetensors"]   # no temporary files left


def test_load_to_device_and_auto(tmp_path):
    path = stylegan.save_network(_generator("stylegan2"), tmp_path / "g.safetensors")
    assert next(stylegan.load_network(path, device=torch.device("cpu")).parameters()).device.type == "cpu"
    assert stylegan.load_network(path, device="auto") is not None


def test_network_files_get_the_usual_umask_permissions(tmp_path):
    # Written through a temporary file, but readable by others as any file the user makes (not mkstemp's 0600).
    import os
    import stat
    old = os.umask(0o022)
    try:
        path = stylegan.save_network(stylegan.build_generator("stylegan2", 8, cbase=64, cmax=4, z_dim=4, w_dim=4),
                                     tmp_path / "g.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
