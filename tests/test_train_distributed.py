"""Two CPU processes on gloo, each with half the batch, train the same networks as one process with the whole
batch (in batch_gpu-sized chunks: the minibatch-stddev groups live inside a chunk, as in NVIDIA's code)."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from stylegan.training import prepare_config, train
from test_train_common import flags, only_run, state_tensors, write_dataset

RUN = dict(kimg=0.032, tick=0.016, snap=100, seed=5, batch=8)    # 4 steps; Greg and Dreg run in the first


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(tmp_path):
    data = write_dataset(tmp_path / "blobs.zip", count=32)
    one = train(prepare_config(flags(tmp_path / "one", data, batch_gpu=4, **RUN), quiet=True))

    args = ["train", "--gpus", "2"]
    for k, v in flags(tmp_path / "two", data, **RUN).items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    result = subprocess.run([sys.executable, "-m", "stylegan", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    two = only_run(tmp_path / "two")
    assert "gpus2" in two.name and "Done" in (two / "log.txt").read_text()
    assert result.stdout.count("Training for") == 1                 # rank 0 alone prints

    a, b = state_tensors(one), state_tensors(two)
    assert a.keys() == b.keys()
    for key in a:
        if a[key].is_floating_point():
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(a[key], b[key]), key
