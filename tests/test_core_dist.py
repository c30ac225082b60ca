"""core/dist: the torchrun relaunch, the device of each rank, and the world size (without starting a group)."""
from __future__ import annotations

import socket

import pytest
import torch

from stylegan.core import dist
from stylegan.core.errors import UsageError


def test_relaunch_command_runs_the_same_stylegan_command_on_a_free_local_port():
    cmd = dist.torchrun_command(3, ["metrics", "--network", "G.pkl"])
    assert cmd[1] == "-c" and "from torch.distributed.run import main" in cmd[2]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "3" and cmd[cmd.index("--nnodes") + 1] == "1"
    assert cmd[cmd.index("--master_addr") + 1] == "127.0.0.1"
    assert cmd[-5:] == ["-m", "stylegan", "metrics", "--network", "G.pkl"]
    port = int(cmd[cmd.index("--master_port") + 1])
    with socket.socket() as s:                      # free when picked: something can listen on it
        s.bind(("127.0.0.1", port))


def test_each_rank_takes_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(dist, "resolve_device", lambda name: torch.device(name))   # no GPU needed to check the rule
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_RANK", "1")           # the second process on the second of two 4-GPU nodes
    assert dist.process_device("cuda") == torch.device("cuda", 1)
    assert dist.process_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")           # a world of one keeps what --device said
    assert dist.process_device("cuda") == torch.device("cuda")


def test_the_world_size_is_torchruns_and_gpus_must_agree(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert dist.torchrun_world(None) is None and dist.torchrun_world(3) == 3      # not under torchrun: --gpus
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert dist.torchrun_world(None) == 4 and dist.torchrun_world(4) == 4
    with pytest.raises(UsageError, match="--gpus 2: torchrun started 4 processes"):
        dist.torchrun_world(2)


@pytest.mark.slow
def test_a_failing_process_ends_the_relaunch_with_its_status_and_one_line(tmp_path, capfd):
    # `stylegan info` on a missing file fails in each process with exit status 2 and one line; torchrun's own
    # traceback, failure table and log lines stay out of the way.
    code = dist.run_under_torchrun(2, ["info", str(tmp_path / "missing.pkl")])
    err = capfd.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "ChildFailedError" not in err and "exitcode" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert lines and all("missing.pkl" in line for line in lines), err
