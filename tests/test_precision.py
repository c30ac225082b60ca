"""--precision: what each setting builds and switches on, and a bf16 training step on the CPU.

What the CPU checks here: the network configs (fp16 = 4 fp16 resolutions with conv_clamp 256, bf16 and fp32 = no
clamp), the TF32 switches (plain booleans even in a CPU build of torch), that bf16 is accepted on the CPU and
refused on a GPU without bfloat16, and that a bf16 autocast step trains like an fp32 one.
What only a GPU can check: the fp16 layers themselves (the networks run fp16 only on CUDA), TF32's numerics, and
bf16 autocast on CUDA.
"""
from __future__ import annotations

import pytest
import torch

from stylegan.core.errors import UsageError
from stylegan.data import ImageDataset
from stylegan.training import prepare_config, train
from stylegan.training.loop import set_tf32
from stylegan.training.prepare import _check_precision
from stylegan.training.phases import Trainer, network_configs
from test_train_common import flags, write_dataset

TINY8 = dict(cbase=256, cmax=16, map_depth=2, batch=4)      # StyleGAN2 at 8x8


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "blobs8.zip", count=8, resolution=8)


@pytest.fixture
def tf32_restored():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("precision,fp16_res,clamp", [("fp16", 4, 256), ("bf16", 0, None), ("fp32", 0, None)])
def test_only_fp16_clamps_the_convolutions(tmp_path, data, precision, fp16_res, clamp):
    # bf16 has fp32's 8 exponent bits: nothing overflows, so it runs the fp32 networks unclamped under autocast.
    config = prepare_config(flags(tmp_path, data, precision=precision, **TINY8), quiet=True)
    g, d = network_configs(config)
    assert (g.synthesis.num_fp16_res, g.synthesis.conv_clamp) == (fp16_res, clamp)
    assert (d.num_fp16_res, d.conv_clamp) == (fp16_res, clamp)


@pytest.mark.parametrize("precision,on", [("fp16", True), ("bf16", True), ("fp32", False)])
def test_tf32_only_for_reduced_precision(tf32_restored, precision, on):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not on
    set_tf32(precision)
    assert torch.backends.cuda.matmul.allow_tf32 is on and torch.backends.cudnn.allow_tf32 is on


def test_bf16_runs_on_the_cpu_and_is_refused_on_a_gpu_without_it(tmp_path, data, monkeypatch):
    config = prepare_config(flags(tmp_path, data, precision="bf16", **TINY8), quiet=True)
    assert config.network.precision == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a, **k: "Tesla V100")
    with pytest.raises(UsageError, match="--precision bf16: this GPU .*V100.* does not support bfloat16"):
        _check_precision(config, torch.device("cuda"))
    auto = prepare_config(flags(tmp_path, data, **TINY8), quiet=True)
    assert auto.network.precision == "fp32"         # auto = fp16 on CUDA only


@pytest.mark.slow
def test_a_bf16_step_on_the_cpu_trains_like_fp32(tmp_path, data):
    stats = {}
    for precision in ("fp32", "bf16"):
        config = prepare_config(flags(tmp_path, data, precision=precision, **TINY8), quiet=True)
        with ImageDataset(config.data.path) as dataset:
            trainer = Trainer(config, dataset, torch.device("cpu"))
            trainer.step()      # all four phases, R1's double backward included, under autocast for bf16
            # (bf16 is slow on a CPU without bfloat16 instructions: seconds per step here, not a fraction)
            stats[precision] = trainer.collect_stats()
    for key in ("loss/G", "loss/D", "loss/D_reg", "pl_penalty"):
        fp32, bf16 = stats["fp32"][key], stats["bf16"][key]
        assert torch.isfinite(torch.tensor(bf16)), key
        assert bf16 == pytest.approx(fp32, rel=0.1, abs=0.02), key      # bf16 keeps 8 bits of mantissa


@pytest.mark.slow
def test_training_switches_tf32_by_precision(tmp_path, data, tf32_restored):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    run_dir = train(prepare_config(flags(tmp_path, data, precision="bf16", kimg=0.004, **TINY8), quiet=True))
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert '"precision": "bf16"' in (run_dir / "training_options.json").read_text()
