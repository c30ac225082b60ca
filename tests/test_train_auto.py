"""--cfg auto (StyleGAN2-ADA's automatic config) and NVIDIA's recommended stylegan3 settings for runs that give
no --batch or --gamma: the formulas, NVIDIA's published values, and what `stylegan train` prints."""
from __future__ import annotations

import json

import pytest

from stylegan.cli import main
from stylegan.core.errors import UsageError
from stylegan.training.config import TrainingFlags, auto_flags, new_run_config
from test_train_common import write_dataset

BASE = dict(outdir="/runs", data="/data/d.zip")


def resolved(cfg, resolution, gpus, **given):
    flags, line = auto_flags(TrainingFlags(**BASE, cfg=cfg, gpus=gpus, **given), resolution)
    return new_run_config(flags), line


@pytest.mark.parametrize("resolution", [256, 512, 1024])
@pytest.mark.parametrize("gpus", [1, 8])
def test_auto_follows_stylegan2_ada_formulas(resolution, gpus):
    # StyleGAN2-ADA train.py, --cfg auto, written out here from its stated formulas.
    batch = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    c, _ = resolved("auto", resolution, gpus)
    assert c.network.cfg == "stylegan2" and c.run.batch == batch and c.run.batch_gpu == batch // gpus
    assert c.loss.r1_gamma == pytest.approx(0.0002 * resolution ** 2 / batch, rel=1e-12)
    lr = 0.002 if resolution >= 1024 else 0.0025
    assert (c.optim.glr, c.optim.dlr) == (lr, lr)
    assert c.optim.ema_kimg == batch * 10 / 32 and c.optim.ema_rampup == 0.05
    assert c.network.map_depth == 2 and c.network.mbstd_group == min(batch // gpus, 4)
    assert (c.network.cbase, c.network.cmax) == (int((1 if resolution >= 512 else 0.5) * 32768), 512)
    # The rest is StyleGAN2's: style mixing, path length regularisation.
    assert c.loss.style_mixing_prob == 0.9 and c.loss.pl_weight == 2 and c.loss.pl_interval == 4


@pytest.mark.parametrize("resolution, gpus, batch, gamma, lr, cbase", [
    # NVIDIA stylegan3 docs/configs.md, "Old StyleGAN2-ADA configurations", default configuration (--cfg auto).
    (128, 2, 64, 0.0512, 0.0025, 16384),
    (256, 1, 16, 0.8192, 0.0025, 16384),
    (256, 8, 64, 0.2048, 0.0025, 16384),
    (512, 1, 8, 6.5536, 0.0025, 32768),
    (512, 8, 64, 0.8192, 0.0025, 32768),
    (1024, 1, 4, 52.4288, 0.002, 32768),
    (1024, 8, 32, 6.5536, 0.002, 32768),
])
def test_auto_gives_nvidias_published_values(resolution, gpus, batch, gamma, lr, cbase):
    c, _ = resolved("auto", resolution, gpus)
    assert (c.run.batch, c.optim.glr, c.optim.dlr, c.network.cbase, c.network.map_depth) == (batch, lr, lr, cbase, 2)
    assert c.loss.r1_gamma == pytest.approx(gamma, rel=1e-12)


@pytest.mark.parametrize("cfg, resolution, gpus, gamma, batch_gpu", [
    # NVIDIA stylegan3 docs/configs.md, "Recommended configurations" (all with --batch=32).
    ("stylegan3-t", 128, 1, 0.5, 16),
    ("stylegan3-t", 256, 8, 2, 4),
    ("stylegan3-t", 512, 1, 8, 8),
    ("stylegan3-t", 1024, 2, 32, 4),
    ("stylegan3-r", 256, 2, 2, 8),
    ("stylegan3-r", 512, 4, 8, 4),
    ("stylegan3-r", 1024, 8, 32, 4),
])
def test_stylegan3_without_batch_and_gamma_takes_nvidias_recommended_values(cfg, resolution, gpus, gamma,
                                                                             batch_gpu):
    c, line = resolved(cfg, resolution, gpus)
    assert (c.network.cfg, c.run.batch, c.run.batch_gpu, c.loss.r1_gamma) == (cfg, 32, batch_gpu, gamma)
    assert c.network.map_depth == 2 and c.optim.glr == 0.0025 and c.optim.ema_kimg == 10
    assert f"--gamma {gamma:g}" in line and "--batch 32" in line


def test_given_flags_win_and_the_formulas_follow_the_batch_in_use():
    c, line = resolved("auto", 256, 1, batch=32, glr=0.001)
    assert c.run.batch == 32 and c.loss.r1_gamma == pytest.approx(0.0002 * 256 ** 2 / 32)
    assert c.optim.glr == 0.001 and c.optim.dlr == 0.0025 and c.optim.ema_kimg == 10
    assert "--batch" not in line and "--glr" not in line and "--dlr 0.0025" in line
    c, _ = resolved("stylegan3-r", 512, 1, gamma=16.4)
    assert c.loss.r1_gamma == 16.4 and c.run.batch == 32 and c.run.batch_gpu == 4
    c, _ = resolved("stylegan3-t", 512, 1, batch=16)     # a given batch: NVIDIA's --batch-gpu is not forced on it
    assert c.run.batch == 16 and c.run.batch_gpu == 16 and c.loss.r1_gamma == 8
    with pytest.raises(UsageError, match="--batch 32 does not split across --gpus 3"):
        resolved("stylegan3-t", 512, 3)


def test_new_run_config_needs_the_resolution_for_auto():
    with pytest.raises(UsageError, match="--cfg auto"):
        new_run_config(TrainingFlags(**BASE, cfg="auto", batch=32, gamma=1))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("auto") / "d16.zip", count=8)


def dry_run(capsys, *args):
    main(["train", *args, "--dry-run", "--device", "cpu"])
    out = capsys.readouterr().out
    return out, json.loads(out.split("Training options:\n", 1)[1].split("\n\n", 1)[0])


def test_dry_run_shows_what_auto_picked(tmp_path, data, capsys):
    out, options = dry_run(capsys, "--outdir", str(tmp_path / "runs"), "--cfg", "auto", "--data", str(data))
    # 16 px, one GPU: batch max(min(1 * min(256, 32), 64), 1) = 32, gamma 0.0002 * 16^2 / 32 = 0.0016.
    assert "--cfg auto at 16x16 on 1 GPU: StyleGAN2" in out
    assert "--batch 32 --gamma 0.0016 --glr 0.0025 --dlr 0.0025 --map-depth 2 --cbase 16384 --mbstd-group 4" in out
    assert options["network"]["cfg"] == "stylegan2" and options["run"]["batch"] == 32
    assert options["loss"]["r1_gamma"] == pytest.approx(0.0016) and options["network"]["map_depth"] == 2
    assert not (tmp_path / "runs").exists()


def test_stylegan2_still_needs_batch_and_gamma(tmp_path, data, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--outdir", str(tmp_path), "--cfg", "stylegan2", "--data", str(data), "--gamma", "1"])
    assert exc.value.code == 2 and "--batch is required" in capsys.readouterr().err
    out, options = dry_run(capsys, "--outdir", str(tmp_path / "runs"), "--cfg", "stylegan3-t", "--data", str(data),
                           "--gamma", "0.5")
    assert "--batch 32" in out and options["loss"]["r1_gamma"] == 0.5 and options["run"]["batch"] == 32


def test_a_resumed_run_keeps_what_auto_picked_and_a_new_one_needs_less():
    from stylegan.training.config import missing_for_new_run, resumed_run_config
    saved, _ = resolved("auto", 256, 1)
    assert resumed_run_config(saved, TrainingFlags(cfg="auto", kimg=10), "state").run.kimg == 10
    with pytest.raises(UsageError, match="was trained with --cfg stylegan2"):
        resumed_run_config(saved, TrainingFlags(cfg="stylegan3-t"), "state")
    assert missing_for_new_run(TrainingFlags(outdir="o", cfg="auto")) == ["--data"]
    assert missing_for_new_run(TrainingFlags(outdir="o", cfg="stylegan3-r", data="d")) == []
    assert missing_for_new_run(TrainingFlags(outdir="o", cfg="stylegan2", data="d")) == ["--batch", "--gamma"]
