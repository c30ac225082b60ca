"""Processes on gloo, each with its share of the batch, train the same networks as one process with the whole batch
(in batch_gpu-sized chunks: the minibatch-stddev groups live inside a chunk, as in NVIDIA's code): two processes
on one node, two torchrun "nodes" of one process each on 127.0.0.1, and a run of two processes resumed by one.

Two nodes of one process and one node of two processes are bit-identical. One process with the same chunks agrees
to float rounding only: D's loss is backpropagated in two passes per chunk (fakes, reals) into the same .grad, so
one process sums the four chunk-gradients as ((gen0 + real0) + gen1) + real1, while two processes each sum their
own chunk and all-reduce, (gen0 + real0) + (gen1 + real1). Every other step (the chunks, their seeds, the averaging
by powers of two) is the same, so the difference stays at rounding level (measured: 3.4e-5 at most after 2 steps).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from stylegan.core.dist import free_port
from stylegan.core.errors import UsageError
from stylegan.training import prepare_config, train
from stylegan.training.config import TrainingFlags
from test_train_common import cli_flags, flag_values, flags, only_run, state_tensors, write_dataset
from test_train_resume import assert_same_state

RUN = dict(kimg=0.016, tick=0.008, snap=100, seed=5, batch=8)    # 2 steps; Greg and Dreg run in the first
TIMEOUT_S = 600


def train_args(outdir, data, **run) -> list[str]:
    """`stylegan train` and its flags, as a command line."""
    return ["train", *cli_flags(flag_values(outdir, data, **run))]


def one_thread_env() -> dict[str, str]:
    # torchrun gives each of several processes one thread, but a single process (one per node) all cores; a CPU
    # convolution's gradient sums in an order that depends on the thread count, so all get one here.
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def check_finished(code: int, out: str, err: str) -> None:
    assert code == 0, out[-3000:] + err[-3000:]
    assert out.count("Training for") == 1                     # rank 0 alone prints


def run_gpus2(outdir, data, **run) -> None:
    """`stylegan train --gpus 2`: two processes on this machine under torchrun."""
    r = subprocess.run([sys.executable, "-m", "stylegan", *train_args(outdir, data, **run), "--gpus", "2"],
                       capture_output=True, text=True, timeout=TIMEOUT_S, env=one_thread_env())
    check_finished(r.returncode, r.stdout, r.stderr)


def assert_equal_to_rounding(a, b) -> None:
    """The same training state up to float rounding: every counter exact, every float within 1e-4 relative."""
    ta, tb = state_tensors(a), state_tensors(b)
    assert ta.keys() == tb.keys()
    for key in ta:
        if ta[key].is_floating_point():
            torch.testing.assert_close(ta[key], tb[key], rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(ta[key], tb[key]), key


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "blobs.zip", count=32)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, dataset):
    """One process, the whole batch in two chunks of batch_gpu 4 (what each of two processes has)."""
    return train(prepare_config(flags(tmp_path_factory.mktemp("one"), dataset, batch_gpu=4, **RUN), quiet=True))


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, dataset):
    outdir = tmp_path_factory.mktemp("two")
    run_gpus2(outdir, dataset, **RUN)
    return only_run(outdir)


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(two_processes, one_process):
    assert "gpus2" in two_processes.name and "Done" in (two_processes / "log.txt").read_text()
    assert_equal_to_rounding(two_processes, one_process)


@pytest.mark.slow
def test_two_nodes_equal_two_processes_on_one_node(tmp_path, dataset, two_processes):
    # What docs/training.md tells people to run on each of two machines, with both "machines" on 127.0.0.1: the
    # c10d rendezvous hands out the ranks, each node runs one process, and LOCAL_RANK is 0 on both.
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
         str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes",
         "--local-addr", "127.0.0.1", "-m", "stylegan", *train_args(tmp_path / "nodes", dataset, **RUN)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=one_thread_env()) for node in (0, 1)]
    try:
        outputs = [node.communicate(timeout=TIMEOUT_S) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (out, err) in zip(nodes, outputs):
        assert node.returncode == 0, out[-3000:] + err[-3000:]
    check_finished(0, "".join(out for out, _ in outputs), "")
    run = only_run(tmp_path / "nodes")
    assert "gpus2" in run.name
    assert_same_state(run, two_processes)


@pytest.mark.slow
def test_two_processes_resumed_by_one_match_one_process(tmp_path, dataset, one_process):
    # The resumed run keeps the saved batch and batch_gpu, so one process takes the two processes' chunks in turn
    # with the same seeds: the same training, to the rounding explained above.
    outdir = tmp_path / "runs"
    run_gpus2(outdir, dataset, **{**RUN, "kimg": RUN["kimg"] / 2})
    resumed = train(prepare_config(TrainingFlags(outdir=str(outdir), resume="latest", kimg=RUN["kimg"], gpus=1),
                                   quiet=True))
    assert resumed == only_run(outdir) and (resumed / "log.txt").read_text().count("Resuming") == 1
    assert_equal_to_rounding(resumed, one_process)


@pytest.mark.slow
def test_resume_on_processes_that_cannot_keep_the_chunks_says_why(one_process):
    # batch 8 in chunks of 4 cannot be split over 4 processes (2 images each) without changing the chunks.
    with pytest.raises(UsageError, match=r"--gpus 4: .*--batch 8 and --batch-gpu 4 do not divide evenly"):
        prepare_config(TrainingFlags(outdir=str(one_process.parent), resume="latest", gpus=4), quiet=True)
