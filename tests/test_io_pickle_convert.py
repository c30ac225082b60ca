"""`stylegan convert`: NVIDIA pickles to our .safetensors format."""
from __future__ import annotations

import pickle

import pytest
import torch

import nvidia_pickle_builder as nb
import stylegan
from stylegan.cli import main
from stylegan.io import read_network_file


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "network-snapshot-000000.pkl"
    return path, nb.tiny_snapshot(path)


def _equal(a, b):
    for name, t in a.state_dict().items():
        assert torch.equal(t, b.state_dict()[name]), name
    assert a.state_dict().keys() == b.state_dict().keys()


def test_convert_g_ema_and_all(snapshot, tmp_path, capsys):
    path, refs = snapshot
    main(["convert", str(path), str(tmp_path / "g.safetensors")])
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'g.safetensors'}" in out and "G_ema" in out
    _equal(stylegan.load_network(tmp_path / "g.safetensors"), refs["G_ema"])

    main(["convert", str(path), str(tmp_path / "all.safetensors"), "--what", "all"])
    configs, meta = read_network_file(tmp_path / "all.safetensors")
    assert sorted(configs) == ["D", "G", "G_ema"]
    assert meta["extra"]["nvidia"]["augment_p"] == pytest.approx(0.4)
    assert meta["extra"]["nvidia"]["training_set_kwargs"]["resolution"] == 8
    assert meta["extra"]["source_format"] == "nvidia-snapshot"
    for key in ("G", "D", "G_ema"):
        _equal(stylegan.load_network(tmp_path / "all.safetensors", what=key.lower()), refs[key])


def test_convert_refuses_to_overwrite_and_checks_dest(snapshot, tmp_path, capsys):
    path, _ = snapshot
    dest = tmp_path / "g.safetensors"
    dest.write_bytes(b"keep me")
    with pytest.raises(SystemExit):
        main(["convert", str(path), str(dest)])
    assert "--overwrite" in capsys.readouterr().err and dest.read_bytes() == b"keep me"
    main(["convert", str(path), str(dest), "--overwrite"])
    assert dest.read_bytes() != b"keep me"
    with pytest.raises(SystemExit):
        main(["convert", str(path), str(tmp_path / "g.pkl")])
    assert ".safetensors" in capsys.readouterr().err


def test_convert_refuses_malicious_pickles(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": nb.SystemCall(f"touch {marker}")}, protocol=4))
    with pytest.raises(SystemExit) as info:
        main(["convert", str(evil), str(tmp_path / "out.safetensors")])
    assert info.value.code == 2 and "not on the allowlist" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
