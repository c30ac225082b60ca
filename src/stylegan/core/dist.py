"""Distributed helpers for torchrun. A plain `python -m stylegan ...` is a world of one.

`--gpus N` without torchrun relaunches the same command under torchrun on this machine (`run_under_torchrun`):

    stylegan train --gpus 2 ...     is the same as
    python -m torch.distributed.run --nnodes 1 --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT \\
        -m stylegan train ...

with PORT a free port picked when launching (never a fixed one). The processes learn the world size from
torchrun, exactly as under a torchrun started by hand, on one machine or several.
"""
from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from typing import Sequence

import torch
import torch.distributed as torch_dist

from stylegan.core.device import resolve_device
from stylegan.core.errors import UsageError


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def get_rank() -> int:
    return torch_dist.get_rank() if is_initialized() else 0


def get_world_size() -> int:
    return torch_dist.get_world_size() if is_initialized() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def torchrun_world(gpus: int | None) -> int | None:
    """The number of processes: under torchrun its world size, which --gpus (when given) must agree with;
    otherwise --gpus as given."""
    if not launched_by_torchrun():
        return gpus
    world = int(os.environ["WORLD_SIZE"])
    if gpus is not None and int(gpus) != world:
        raise UsageError(f"--gpus {gpus}: torchrun started {world} processes; leave --gpus out under torchrun, "
                         "the world size comes from it")
    return world


def process_device(name: str | torch.device | None = "auto") -> torch.device:
    """The device of this process: --device, with CUDA's index taken from torchrun's LOCAL_RANK (one GPU per
    process, counted on each machine from 0, so the same rule holds on every node)."""
    device = resolve_device(name)
    if device.type == "cuda" and launched_by_torchrun():
        device = torch.device("cuda", get_local_rank())
    return device


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# torch.distributed.run's main, except that a failed process ends the launcher with that process's exit status and
# nothing more: the process has already printed its one-line error, and torchrun would add a Python traceback and
# a failure table to it.
_QUIET_TORCHRUN = """
import logging, os, sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
if "LOGLEVEL" not in os.environ:
    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
try:
    main(sys.argv[1:])
except ChildFailedError as exc:
    code = exc.get_first_failure()[1].exitcode
    sys.exit(code if code > 0 else 1)
"""


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """torchrun (torch.distributed.run) `... -m stylegan ARGS` for nproc processes on this machine."""
    return [sys.executable, "-c", _QUIET_TORCHRUN, "--nnodes", "1", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "stylegan", *args]


def run_under_torchrun(nproc: int, args: Sequence[str]) -> int:
    """Run `stylegan ARGS` (a command and its flags) in nproc processes; returns the launcher's exit status.
    torchrun's own log lines are left out unless LOGLEVEL asks for them."""
    return subprocess.call(torchrun_command(nproc, args))


def init(device_type: str = "cpu") -> None:
    """Join the process group that torchrun set up (env:// rendezvous). NCCL on CUDA, gloo otherwise."""
    if not launched_by_torchrun() or is_initialized():
        return
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(get_local_rank())
    torch_dist.init_process_group(backend=backend, init_method="env://", timeout=datetime.timedelta(minutes=30))


def shutdown() -> None:
    if is_initialized():
        torch_dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        torch_dist.barrier()


def print0(*args, **kwargs) -> None:
    """Print on rank 0 only."""
    if get_rank() == 0:
        print(*args, **kwargs, flush=True)


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Average `tensor` across ranks in place; a no-op in a world of one."""
    if is_initialized() and get_world_size() > 1:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
        tensor.div_(get_world_size())
    return tensor


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    if is_initialized() and get_world_size() > 1:
        torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    if is_initialized() and get_world_size() > 1:
        torch_dist.broadcast(tensor, src=src)
    return tensor
