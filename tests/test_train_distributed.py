"""Processes on gloo, each with its share of the batch, train the same networks as one process with the whole batch
(in batch_gpu-sized chunks: the minibatch-stddev groups live inside a chunk, as in NVIDIA's code): two processes
on one node, two torchrun "nodes" of one process each on 127.0.0.1, one process with two chunks, and a run of two
processes resumed by one. All four end with the same bits.

One process equals two because every chunk backpropagates into empty .grads (D's two passes, fakes then reals, add
up within the chunk) and the chunks' gradients are then added in chunk order, as the all-reduce adds the ranks':
(gen0 + real0) + (gen1 + real1); the running statistics likewise; and each sum is divided once by the number of
chunks in the step. Every process runs on one thread: a CPU convolution's gradient sums in an order that depends on
the thread count.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from stylegan.core.dist import free_port
from stylegan.core.errors import UsageError
from stylegan.training import prepare_config
from stylegan.training.config import TrainingFlags
from test_train_common import cli_flags, flag_values, only_run
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


def run_stylegan(args: list[str]) -> None:
    """`stylegan ARGS` in a process of its own, on one thread (train --gpus 2: two processes under torchrun)."""
    r = subprocess.run([sys.executable, "-m", "stylegan", *args], capture_output=True, text=True,
                       timeout=TIMEOUT_S, env=one_thread_env())
    check_finished(r.returncode, r.stdout, r.stderr)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, blobs):
    """One process, the whole batch in two chunks of batch_gpu 4 (what each of two processes has)."""
    outdir = tmp_path_factory.mktemp("one")
    run_stylegan(train_args(outdir, blobs, batch_gpu=4, **RUN))
    return only_run(outdir)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory, blobs):
    outdir = tmp_path_factory.mktemp("two")
    run_stylegan([*train_args(outdir, blobs, **RUN), "--gpus", "2"])
    return only_run(outdir)


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(two_processes, one_process):
    assert "gpus2" in two_processes.name and "Done" in (two_processes / "log.txt").read_text()
    assert_same_state(two_processes, one_process)


@pytest.mark.slow
def test_two_nodes_equal_two_processes_on_one_node(tmp_path, blobs, two_processes):
    # What docs/training.md tells people to run on each of two machines, with both "machines" on 127.0.0.1: the
    # c10d rendezvous hands out the ranks, each node runs one process, and LOCAL_RANK is 0 on both.
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank",
         str(node), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two-nodes",
         "--local-addr", "127.0.0.1", "-m", "stylegan", *train_args(tmp_path / "nodes", blobs, **RUN)],
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
def test_two_processes_resumed_by_one_equal_one_process(tmp_path, blobs, one_process):
    # The resumed run keeps the saved batch and batch_gpu, so one process takes the two processes' chunks in turn
    # with the same seeds: the same training, bit for bit.
    outdir = tmp_path / "runs"
    run_stylegan([*train_args(outdir, blobs, **{**RUN, "kimg": RUN["kimg"] / 2}), "--gpus", "2"])
    run_stylegan(["train", *cli_flags(dict(outdir=outdir, resume="latest", kimg=RUN["kimg"], gpus=1))])
    resumed = only_run(outdir)
    assert (resumed / "log.txt").read_text().count("Resuming") == 1
    assert_same_state(resumed, one_process)


@pytest.mark.slow
def test_resume_on_processes_that_cannot_keep_the_chunks_says_why(one_process):
    # batch 8 in chunks of 4 cannot be split over 4 processes (2 images each) without changing the chunks.
    with pytest.raises(UsageError, match=r"--gpus 4: .*--batch 8 and --batch-gpu 4 do not divide evenly"):
        prepare_config(TrainingFlags(outdir=str(one_process.parent), resume="latest", gpus=4), quiet=True)
