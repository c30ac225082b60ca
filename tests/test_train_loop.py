"""A few real training steps: every cfg learns something, the run directory has every file the docs promise,
fine-tuning freezes what it should, and a run whose losses turn NaN stops with its last good state intact."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stylegan.core.errors import UsageError
from stylegan.data import ImageDataset
from stylegan.training import TrainingDiverged, prepare_config, train
from stylegan.training.loss import StyleGANLoss
from stylegan.training.phases import Trainer
from test_train_common import flags, state_tensors, write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {16: write_dataset(root / "blobs16.zip", count=16), 32: write_dataset(root / "blobs32.zip", count=16,
                                                                                  resolution=32, labels=True)}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data):
    """3 steps of tiny StyleGAN2, a snapshot after the first and at the end."""
    outdir = tmp_path_factory.mktemp("runs")
    return train(prepare_config(flags(outdir, data[16], kimg=0.024, tick=0.016, snap=1, seed=1), quiet=True))


@pytest.mark.slow
@pytest.mark.parametrize("cfg", ["stylegan2", "stylegan3-t", "stylegan3-r"])
def test_each_cfg_trains_at_32px(cfg, tmp_path, data):
    c = prepare_config(flags(tmp_path, data[32], cfg=cfg, batch=4, cbase=512, cmax=16, cond=True), quiet=True)
    with ImageDataset(c.data.path, use_labels=True) as dataset:
        trainer = Trainer(c, dataset, torch.device("cpu"))
        before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
        before_d = {k: v.clone() for k, v in trainer.D.state_dict().items()}
        for _ in range(2):
            trainer.step()
        stats = trainer.collect_stats()
    for key in ("loss/G", "loss/D", "r1_penalty"):
        assert torch.isfinite(torch.tensor(stats[key])), (key, stats)
    if cfg == "stylegan2":
        assert torch.isfinite(torch.tensor(stats["pl_penalty"]))
    changed = [k for k, v in trainer.G.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("synthesis.") for k in changed) and any(k.startswith("mapping.") for k in changed)
    assert any(not torch.equal(v, before_d[k]) for k, v in trainer.D.state_dict().items())
    assert trainer.nimg == 8 and trainer.batch_idx == 2


@pytest.mark.slow
def test_run_directory_holds_everything(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    for name in ("log.txt", "training_options.json", "stats.jsonl", "reals.png", "fakes_init.png", "curves.png",
                 "network-snapshot-000000.safetensors", "fakes000000.png"):
        assert name in names, name
    assert len([n for n in names if n.startswith("training-state-")]) == 2
    assert tiny_run.name.endswith("-stylegan2-blobs16-gpus1-batch8-gamma1")
    options = json.loads((tiny_run / "training_options.json").read_text())
    assert options["network"]["cfg"] == "stylegan2" and options["run"]["batch"] == 8
    rows = [json.loads(line) for line in (tiny_run / "stats.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in rows] == [0, 1]
    for key in ("kimg", "loss/G", "loss/D", "sec_per_tick", "sec_per_kimg", "peak_mem_gb", "augment_p",
                "nonfinite_grads"):
        assert key in rows[-1], key
    log = (tiny_run / "log.txt").read_text()
    assert "tick 1" in log and "sec/kimg" in log and "ETA" in log
    from stylegan.io import load_networks, read_network_file
    nets = load_networks(tiny_run / "network-snapshot-000000.safetensors")
    assert set(nets) == {"G", "D", "G_ema"}
    # The last snapshot (kimg 0.024, also named 000000) records its kimg and ADA's p (checked in
    # test_train_transfer.py, where p is not 0) for fine-tuning from it.
    extra = read_network_file(tiny_run / "network-snapshot-000000.safetensors")[1]["extra"]
    assert extra["kimg"] == rows[-1]["kimg"] and extra["augment_p"] == rows[-1]["augment_p"]


@pytest.mark.slow
def test_transfer_learning_freezes_d_layers_and_mapping(tmp_path, tiny_run, data):
    network = tiny_run / "network-snapshot-000000.safetensors"
    f = flags(tmp_path, data[16], resume=str(network), freezed=2, freeze_mapping=True, kimg=0.016, tick=1, snap=1)
    c = prepare_config(f, quiet=True)
    assert c.optim.ema_rampup is None and c.augment.speed_kimg == 100
    run_dir = train(c)
    start, end = state_tensors(tiny_run), state_tensors(run_dir)
    # D's first two layers (b16.fromrgb, b16.conv0) are frozen; the rest of D trains.
    for key in start:
        if key.startswith(("D.b16.fromrgb.", "D.b16.conv0.", "G.mapping.")) and not key.endswith("w_avg"):
            assert torch.equal(start[key], end[key]), key       # (w_avg is a running average, not a weight)
    assert not torch.equal(start["D.b16.conv1.weight"], end["D.b16.conv1.weight"])
    assert not torch.equal(start["G.synthesis.b16.conv0.weight"], end["G.synthesis.b16.conv0.weight"])
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["kimg"] == pytest.approx(0.016)          # a new run: counting starts at 0


def test_transfer_learning_names_what_does_not_fit(tmp_path, tiny_run, data):
    network = tiny_run / "network-snapshot-000000.safetensors"
    with pytest.raises(UsageError, match=r"channel_base 1024 in the file vs 2048 for this run \(--cbase\)"):
        prepare_config(flags(tmp_path, data[16], resume=str(network), cbase=2048), quiet=True)
    with pytest.raises(UsageError, match=r"img_resolution 16 in the file vs 32 .*--data"):
        prepare_config(flags(tmp_path, data[32], resume=str(network)), quiet=True)


@pytest.mark.slow
def test_nonfinite_losses_stop_the_run_and_keep_the_last_good_state(tmp_path, data, monkeypatch):
    run_D = StyleGANLoss.run_D

    def poisoned_run_D(self, img, c, **kwargs):
        logits = run_D(self, img, c, **kwargs)
        return logits * float("nan") if self.poisoned else logits

    def step(trainer, _step=Trainer.step):
        trainer.loss.poisoned = trainer.nimg >= 16          # from the third step on, D says NaN
        _step(trainer)

    monkeypatch.setattr(StyleGANLoss, "run_D", poisoned_run_D)
    monkeypatch.setattr(Trainer, "step", step)
    c = prepare_config(flags(tmp_path / "runs", data[16], kimg=1, tick=0.016, snap=1), quiet=True)
    with pytest.raises(TrainingDiverged, match="NaN or Inf for 1[0-9] steps in a row"):
        train(c)
    run_dir = next((tmp_path / "runs").iterdir())
    states = sorted(run_dir.glob("training-state-*.safetensors"))
    assert [p.name for p in states] == ["training-state-000000000008.safetensors"]   # tick 0's, from before
    rows = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["nonfinite_grads"] > 0 and rows[-1]["nonfinite_steps"] == 2
    assert "warning: no snapshot" in (run_dir / "log.txt").read_text()


def test_metrics_at_a_snapshot_are_appended_and_plotted(tmp_path, tiny_run, monkeypatch):
    import shutil

    from stylegan.io import load_network
    from stylegan.training import metrics_hook
    from stylegan.training.config import TrainingConfig
    from stylegan.training.plots import plot_curves, read_metrics

    run_dir = Path(shutil.copytree(tiny_run, tmp_path / tiny_run.name))
    snapshot = run_dir / "network-snapshot-000000.safetensors"
    calls = []

    def fake_calc_metric(name, G, data, **kwargs):      # the real one needs Inception weights and 50k fakes
        calls.append((name, data, kwargs["mirror"]))
        return dict(results={name: 42.0}, metric=name, total_time=0.0, total_time_str="0s", num_gpus=1)

    monkeypatch.setattr(metrics_hook, "calc_metric", fake_calc_metric)
    config = TrainingConfig.from_json((run_dir / "training_options.json").read_text())
    config.run.metrics = ["fid50k_full"]
    metrics_hook.evaluate_metrics(config, load_network(snapshot), run_dir, snapshot, 24, torch.device("cpu"))
    assert calls == [("fid50k_full", {"path": config.data.path}, False)]
    line = json.loads((run_dir / "metric-fid50k_full.jsonl").read_text())
    assert line["snapshot_pkl"] == snapshot.name and line["kimg"] == 0.024
    assert read_metrics(run_dir) == {"fid50k_full": [(0.024, 42.0)]}
    assert plot_curves(run_dir) == run_dir / "curves.png"
    with pytest.raises(UsageError, match="--metrics: unknown metric fid1k"):
        metrics_hook.check_metrics(["fid1k"])


@pytest.mark.slow
def test_offline_run_skips_a_metric_that_needs_a_download_and_keeps_training(tmp_path, data, monkeypatch, capsys):
    # NVIDIA's default --metrics fid50k_full needs Inception weights; with none on disk and no network the run
    # must go on to its end, say once which metric it skipped and why, and never try again.
    monkeypatch.setenv("STYLEGAN_OFFLINE", "1")
    from stylegan.training import metrics_hook
    calls = []
    real = metrics_hook.calc_metric
    monkeypatch.setattr(metrics_hook, "calc_metric", lambda name, *a, **k: calls.append(name) or real(name, *a, **k))
    run_dir = train(prepare_config(flags(tmp_path, data[16], kimg=0.016, tick=0.008, snap=1, seed=1,
                                         metrics="fid50k_full"), quiet=True))
    out = capsys.readouterr().out
    newest = sorted(Path(run_dir).glob("network-snapshot-*.safetensors"))[-1]
    assert newest.name == "network-snapshot-000000.safetensors"
    assert out.count("skipped fid50k_full for the rest of this run") == 1 and "--metrics swd16k" in out
    assert "weights not found" in out and "--feature-dir" in out
    assert calls == ["fid50k_full"]                          # later snapshots did not try again
    assert not list(Path(run_dir).glob("metric-*.jsonl"))


def test_tensorboard_receives_every_number_of_a_tick(tmp_path, monkeypatch):
    # The tensorboard package is optional (not installed in CI): a stand-in SummaryWriter records the calls.
    import sys
    import types

    from stylegan.training.stats import TickLog

    calls = []

    class SummaryWriter:
        def __init__(self, logdir):
            calls.append(("open", logdir))

        def add_scalar(self, key, value, global_step):
            calls.append((key, value, global_step))

        def flush(self):
            pass

        def close(self):
            calls.append(("close",))

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = SummaryWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    log = TickLog(tmp_path)
    log.write({"tick": 3, "kimg": 12.0, "loss/G": 0.5, "augment_p": 0.125, "timestamp": 1e9, "note": "text"})
    log.close()
    assert calls == [("open", str(tmp_path)), ("tick", 3, 12), ("loss/G", 0.5, 12), ("augment_p", 0.125, 12),
                     ("close",)]
    assert json.loads((tmp_path / "stats.jsonl").read_text())["loss/G"] == 0.5
