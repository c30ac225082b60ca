"""`--gpus N` without torchrun: launch the same command under torch.distributed.run on this machine.

    stylegan train --gpus 2 ...     is the same as
    python -m torch.distributed.run --nnodes 1 --nproc_per_node 2 --master_addr 127.0.0.1 --master_port PORT \\
        -m stylegan train ...
with PORT a free port picked when launching (never a fixed one). The processes learn the world size from
torchrun, exactly as under a torchrun started by hand.
"""
from __future__ import annotations

import socket
import subprocess
import sys


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(nproc: int, args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "stylegan", "train", *args]


def launch_local(nproc: int, args: list[str]) -> int:
    """Run `stylegan train ARGS` in nproc processes; returns the exit status of the launcher."""
    return subprocess.call(torchrun_command(nproc, args))
