"""Fine-tuning from an NVIDIA training snapshot (network-snapshot-*.pkl, written here by the test helper in
NVIDIA's pickle layout; nothing downloaded), or from ours: the weights are loaded, ADA starts at the snapshot's p
unless --p is given, and the run counts kimg from 0 unless --resume-kimg is given (as NVIDIA's does), pointing out the
file's kimg."""
from __future__ import annotations

import json

import pytest
import torch

import nvidia_pickle_builder as nb
from stylegan.core.errors import UsageError
from stylegan.training import TrainingFlags, prepare_config, train
from test_train_common import TINY, flags, state_tensors, write_dataset

AUGMENT_P = 0.375           # exact in float32, so the config holds exactly this value
# NVIDIA's arguments for the networks of test_train_common.TINY (stylegan2, 16 px, cbase 1024, cmax 32, map 2).
G_KWARGS = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=16, img_channels=3, channel_base=TINY["cbase"],
                channel_max=TINY["cmax"], mapping_kwargs=dict(num_layers=TINY["map_depth"]),
                fused_modconv_default="inference_only")
D_KWARGS = dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=TINY["cbase"], channel_max=TINY["cmax"],
                epilogue_kwargs=dict(mbstd_group_size=4))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("pkl")
    path = root / "network-snapshot-001200.pkl"
    refs = nb.write_snapshot(path, G_kwargs=G_KWARGS, D_kwargs=D_KWARGS, family="stylegan2", augment_p=AUGMENT_P)
    return path, refs, write_dataset(root / "blobs.zip", count=16)


def test_ada_starts_at_the_snapshots_p_and_kimg_at_zero(tmp_path, snapshot, capsys):
    pkl, _, data = snapshot
    c = prepare_config(flags(tmp_path, data, resume=str(pkl)))
    assert c.augment.mode == "ada" and c.augment.p == AUGMENT_P and c.augment.speed_kimg == 100
    assert c.run.resume_kimg == 0
    out = capsys.readouterr().out
    assert f"ADA starts at the file's augment p = {AUGMENT_P:.4f}" in out
    assert "give --resume-kimg 1200" in out
    assert json.loads(c.to_json())["augment"]["p"] == AUGMENT_P       # what training_options.json records


def test_a_url_is_downloaded_once_into_the_cache(tmp_path, snapshot, capsys):
    # NVIDIA's docs fine-tune from an https:// URL; a file:// URL takes the same path without a network.
    pkl, _, data = snapshot
    c = prepare_config(flags(tmp_path, data, resume=pkl.as_uri()))
    assert c.run.resume.endswith("-network-snapshot-001200.pkl") and c.augment.p == AUGMENT_P
    assert "give --resume-kimg 1200" in capsys.readouterr().out


def test_our_network_snapshot_carries_its_p_too(tmp_path, snapshot):
    from stylegan.io import load_networks, save_networks
    pkl, _, data = snapshot
    ours = save_networks(load_networks(pkl), tmp_path / "network-snapshot-000040.safetensors",
                         extra_metadata={"kimg": 40.0, "augment_p": 0.0625})
    assert prepare_config(flags(tmp_path, data, resume=str(ours)), quiet=True).augment.p == 0.0625


def test_given_p_and_resume_kimg_win(tmp_path, snapshot, capsys):
    pkl, _, data = snapshot
    c = prepare_config(flags(tmp_path, data, resume=str(pkl), p=0.125, resume_kimg=1200))
    assert c.augment.p == 0.125 and c.run.resume_kimg == 1200
    out = capsys.readouterr().out
    assert "augment p" not in out and "--resume-kimg" not in out
    fixed = prepare_config(flags(tmp_path, data, resume=str(pkl), aug="fixed", p=0.25), quiet=True)
    assert fixed.augment.p == 0.25
    noaug = prepare_config(flags(tmp_path, data, resume=str(pkl), aug="noaug"), quiet=True)
    assert noaug.augment.mode == "noaug"


def test_snapshot_without_augment_pipe_starts_at_zero(tmp_path, snapshot, capsys):
    _, _, data = snapshot
    pkl = tmp_path / "network-snapshot-000000.pkl"
    nb.write_snapshot(pkl, G_kwargs=G_KWARGS, D_kwargs=D_KWARGS, family="stylegan2", augment_p=None)
    assert prepare_config(flags(tmp_path, data, resume=str(pkl))).augment.p == 0
    out = capsys.readouterr().out
    assert "augment p" not in out and "--resume-kimg" not in out      # nothing taken, nothing to point out


def test_snapshot_that_does_not_fit_names_the_difference(tmp_path, snapshot):
    pkl, _, data = snapshot
    with pytest.raises(UsageError, match=r"channel_base 1024 in the file vs 2048 for this run \(--cbase\)"):
        prepare_config(flags(tmp_path, data, resume=str(pkl), cbase=2048), quiet=True)


@pytest.mark.slow
def test_training_from_a_snapshot_carries_its_weights_p_and_kimg(tmp_path, snapshot, monkeypatch):
    from stylegan.training import transfer
    pkl, refs, data = snapshot
    reads = []
    read = transfer._read_networks
    monkeypatch.setattr(transfer, "_read_once", {})     # not what earlier tests' checks kept of this file
    monkeypatch.setattr(transfer, "_read_networks", lambda path: reads.append(path) or read(path))
    # Two steps of batch 8, counting on from the snapshot's 1200 kimg.
    c = prepare_config(flags(tmp_path, data, resume=str(pkl), resume_kimg=1200, kimg=1200.016, tick=0.008, snap=2),
                       quiet=True)
    run_dir = train(c)
    assert len(reads) == 1          # prepare_config's fit check read the file; the loop took those networks
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in rows] == [pytest.approx(1200.008), pytest.approx(1200.016)]
    # ADA moves p by at most batch * interval / (100 kimg) = 3.2e-4 per adjustment from where it started.
    assert rows[0]["augment_p"] == pytest.approx(AUGMENT_P, abs=1e-3)
    end = state_tensors(run_dir)
    assert float(end["augment_pipe.p"]) == pytest.approx(AUGMENT_P, abs=1e-3)
    # The new run's network snapshot passes the p on, for fine-tuning from it in turn.
    from stylegan.io import read_network_file
    extra = read_network_file(run_dir / "network-snapshot-001200.safetensors")[1]["extra"]
    assert extra["augment_p"] == float(end["augment_pipe.p"]) and extra["kimg"] == pytest.approx(1200.016)
    # G_ema moved by (1 - beta) ~ 0.2% per step towards G: still the snapshot's G_ema, not a fresh network.
    for name, ref in refs["G_ema"].state_dict().items():
        if ref.is_floating_point() and not name.endswith(("w_avg", "noise_const")):
            torch.testing.assert_close(end[f"G_ema.{name}"], ref, atol=0.05, rtol=0, msg=name)


def test_architecture_flags_come_from_our_network_file(tmp_path, capsys):
    # Fine-tuning one of our files needs only --data, --batch and --gamma: --cfg, --cbase, --cmax and --map-depth
    # are read from it. Flags that are given win, and must still fit the file.
    import stylegan
    G = stylegan.build_generator("stylegan2", 16, cbase=512, cmax=16, map_depth=1)
    path = stylegan.save_network(G, tmp_path / "g.safetensors")
    data = write_dataset(tmp_path / "d.zip", count=8)
    run = dict(outdir=str(tmp_path / "runs"), data=str(data), batch=4, gamma=1, device="cpu", metrics="none")
    c = prepare_config(TrainingFlags(**run, resume=str(path)))
    assert (c.network.cfg, c.network.cbase, c.network.cmax, c.network.map_depth) == ("stylegan2", 512, 16, 1)
    assert "--cfg stylegan2 --cbase 512 --cmax 16 --map-depth 1 taken from the file" in capsys.readouterr().out
    with pytest.raises(UsageError, match="channel_max 16 in the file vs 32"):
        prepare_config(TrainingFlags(**run, resume=str(path), cmax=32))


def test_the_shipped_network_is_resumed_by_name(tmp_path):
    data = write_dataset(tmp_path / "d32.zip", count=8, resolution=32)
    c = prepare_config(TrainingFlags(outdir=str(tmp_path / "runs"), data=str(data), batch=4, gamma=1,
                                     resume="emoji", device="cpu", metrics="none"), quiet=True)
    assert c.run.resume.endswith("emoji-stylegan2-32.safetensors") and c.network.cmax == 64
