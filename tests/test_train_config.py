"""Training options: presets, resolution of flags, and a clear one-line message for every kind of bad input."""
from __future__ import annotations

import json

import pytest

from stylegan.cli import main
from stylegan.core.errors import UsageError
from stylegan.networks.presets import PRESETS as NETWORK_PRESETS
from stylegan.training.config import PRESETS, TrainingConfig, TrainingFlags, new_run_config, resumed_run_config
from stylegan.training.prepare import prepare_config
from test_train_common import cli_flags, flag_values, flags, write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {"plain": write_dataset(root / "plain.zip", count=8),
            "labels": write_dataset(root / "labels.zip", count=8, labels=True)}


def run_cli(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *args])
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_presets_follow_nvidia_train_py():
    # stylegan3 train.py: map 8/2, glr 0.002/0.0025, style mixing and pl only for stylegan2, blur only for -r.
    assert (NETWORK_PRESETS["stylegan2"].map_depth, PRESETS["stylegan2"].glr) == (8, 0.002)
    assert (NETWORK_PRESETS["stylegan3-t"].map_depth, PRESETS["stylegan3-t"].glr) == (2, 0.0025)
    assert PRESETS["stylegan2"].style_mixing_prob == 0.9 and PRESETS["stylegan2"].pl_weight == 2
    assert PRESETS["stylegan3-t"].blur_init_sigma == 0 and PRESETS["stylegan3-r"].blur_init_sigma == 10
    c = new_run_config(TrainingFlags(outdir="o", cfg="stylegan3-r", data="d", batch=64, gamma=2))
    assert c.loss.blur_fade_kimg == 400 and c.optim.ema_kimg == 20 and c.optim.ema_rampup == 0.05
    assert c.loss.r1_interval == 16 and c.optim.betas == (0.0, 0.99) and c.optim.eps == 1e-8
    assert c.augment.mode == "ada" and c.augment.p == 0 and c.augment.speed_kimg == 500
    # Fine-tuning from a network file: no EMA rampup, no blur, faster ADA (NVIDIA's --resume).
    t = new_run_config(TrainingFlags(outdir="o", cfg="stylegan3-r", data="d", batch=64, gamma=2,
                                     resume="net.safetensors"))
    assert t.optim.ema_rampup is None and t.loss.blur_init_sigma == 0 and t.augment.speed_kimg == 100


def test_config_round_trips_through_json():
    c = new_run_config(TrainingFlags(outdir="o", cfg="stylegan2", data="d", batch=32, gamma=10, metrics="none",
                                     mirror=True))
    assert TrainingConfig.from_json(c.to_json()) == c


@pytest.mark.parametrize("extra, message", [
    (dict(batch=10, gpus=4), "--batch 10 does not divide evenly across --gpus 4"),
    (dict(batch=32, batch_gpu=12), "--batch-gpu 12 does not divide the per-GPU batch 32"),
    (dict(batch=8, batch_gpu=2), "--batch-gpu 2 must be a multiple of --mbstd-group 4"),
    (dict(gamma=-1), "--gamma"),
    (dict(aug="sometimes"), "--aug: unknown mode"),
    (dict(aug="fixed"), "--aug fixed needs --p"),
])
def test_bad_batch_and_options_name_the_flag(extra, message):
    base = dict(outdir="o", cfg="stylegan2", data="d", batch=32, gamma=1)
    with pytest.raises(UsageError, match=message.replace("-", r"\-")):
        new_run_config(TrainingFlags(**{**base, **extra}))


def test_resumed_run_may_change_only_its_length_and_reporting():
    saved = new_run_config(TrainingFlags(outdir="o", cfg="stylegan2", data="d", batch=32, gamma=10))
    c = resumed_run_config(saved, TrainingFlags(kimg=100, snap=5, gamma=10, cfg="stylegan2"), "state")
    assert (c.run.kimg, c.run.snap) == (100, 5)
    with pytest.raises(UsageError, match="was trained with --gamma 10"):
        resumed_run_config(saved, TrainingFlags(gamma=2), "state")


def test_dry_run_prints_resolved_options_and_creates_nothing(tmp_path, data, capsys):
    args = ["--outdir", str(tmp_path / "runs"), "--cfg", "stylegan3-t", "--data", str(data["plain"]), "--batch", "8",
            "--gamma", "2", "--mirror", "--dry-run", "--device", "cpu"]
    main(["train", *args])
    out = capsys.readouterr().out
    options = json.loads(out.split("Training options:\n", 1)[1].split("\n\n", 1)[0])
    assert options["network"]["map_depth"] == 2 and options["data"]["mirror"] is True
    assert options["data"]["resolution"] == 16 and options["network"]["precision"] == "fp32"
    assert "Dry run" in out
    assert not (tmp_path / "runs").exists()             # nothing is created, not even --outdir


def test_missing_required_flags(tmp_path, capsys):
    code, _, err = run_cli(["--outdir", str(tmp_path)], capsys)
    assert code == 2 and "--cfg is required" in err


@pytest.mark.parametrize("case", ["missing", "not_a_dataset", "cond", "outdir", "device", "corrupt_state",
                                  "corrupt_network", "corrupt_pickle"])
def test_bad_input_is_one_clear_line(case, tmp_path, data, capsys):
    f = flag_values(tmp_path / "runs", data["plain"])
    expected = {
        "missing": "--data: dataset",
        "not_a_dataset": "--data: dataset",
        "cond": "--cond: the dataset",
        "outdir": "--outdir",
        "device": "--device cuda",
        "corrupt_state": "is damaged or incomplete",
        "corrupt_network": "--resume",
        "corrupt_pickle": "--resume",
    }[case]
    if case == "missing":
        f["data"] = str(tmp_path / "nothing.zip")
    elif case == "not_a_dataset":
        (tmp_path / "notes.txt").write_text("hello")
        f["data"] = str(tmp_path / "notes.txt")
    elif case == "cond":
        f["cond"] = True
    elif case == "outdir":
        (tmp_path / "file").write_text("")
        f["outdir"] = str(tmp_path / "file" / "runs")      # a path below a regular file cannot be created
    elif case == "device":
        if __import__("torch").cuda.is_available():
            pytest.skip("a CUDA device is present")
        f["device"] = "cuda"
    elif case == "corrupt_state":
        (tmp_path / "training-state-000000001000.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not")
        f["resume"] = str(tmp_path / "training-state-000000001000.safetensors")
    elif case == "corrupt_network":
        (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
        f["resume"] = str(tmp_path / "broken.safetensors")
    elif case == "corrupt_pickle":                      # an NVIDIA snapshot cut short, as by a failed download
        import nvidia_pickle_builder as nb
        pkl = tmp_path / "network-snapshot-000100.pkl"
        nb.tiny_snapshot(pkl)
        pkl.write_bytes(pkl.read_bytes()[: pkl.stat().st_size // 2])
        f["resume"] = str(pkl)
    code, out, err = run_cli(cli_flags(f), capsys)
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err


def test_cond_with_labels_is_accepted(tmp_path, data):
    c = prepare_config(flags(tmp_path, data["labels"], cond=True), quiet=True)
    assert c.data.label_dim == 3


def test_ema_and_lazy_regularisation_follow_nvidia(tmp_path, data):
    import math

    import torch

    from stylegan.data import ImageDataset
    from stylegan.training.ema import ema_beta
    from stylegan.training.phases import Trainer

    # Half-life batch*10/32 kimg, at most 0.05 * nimg during the rampup (StyleGAN2-ADA's training loop).
    assert ema_beta(10**6, 32, 10, 0.05) == 0.5 ** (32 / 10000)
    assert ema_beta(1000, 32, 10, 0.05) == 0.5 ** (32 / 50)
    assert ema_beta(1000, 32, 10, None) == 0.5 ** (32 / 10000)
    # Lazy regularisation: lr and betas scaled by c = k/(k+1): k=4 for G (stylegan2), k=16 for D.
    c = prepare_config(flags(tmp_path, data["plain"], glr=0.002, dlr=0.002), quiet=True)
    with ImageDataset(c.data.path) as dataset:
        trainer = Trainer(c, dataset, torch.device("cpu"))
    assert [p.name for p in trainer.phases] == ["Gmain", "Greg", "Dmain", "Dreg"]
    g, d = trainer.opt_G.param_groups[0], trainer.opt_D.param_groups[0]
    assert math.isclose(g["lr"], 0.002 * 4 / 5) and math.isclose(g["betas"][1], 0.99 ** (4 / 5))
    assert math.isclose(d["lr"], 0.002 * 16 / 17) and math.isclose(d["betas"][1], 0.99 ** (16 / 17))
    assert g["betas"][0] == 0 and g["eps"] == 1e-8
    assert [p.interval for p in trainer.phases] == [1, 4, 1, 16]


def test_bundled_datasets_are_named_not_resolved_as_paths(tmp_path, capsys):
    # --data openmoji means the bundled set wherever the run is started or resumed from, not ./openmoji.
    main(["train", "--outdir", str(tmp_path / "runs"), "--cfg", "stylegan2", "--data", "openmoji", "--batch", "8",
          "--gamma", "1", "--dry-run", "--device", "cpu"])
    options = json.loads(capsys.readouterr().out.split("Training options:\n", 1)[1].split("\n\n", 1)[0])
    assert options["data"]["path"] == "openmoji" and options["data"]["resolution"] == 64
    assert options["data"]["name"] == "openmoji" and options["data"]["size"] == 1382
