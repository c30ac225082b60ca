"""Distributed helpers for torchrun. A plain `python -m stylegan ...` is a world of one."""
from __future__ import annotations

import datetime
import os
from typing import Callable, TypeVar

import torch
import torch.distributed as torch_dist

T = TypeVar("T")


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


def local_leader_first(fn: Callable[[], T]) -> T:
    """fn() on each machine's local rank 0 first, then on its other ranks: a download into the machine's cache
    happens once per machine, and the other ranks find it there. In a world of one, simply fn()."""
    if get_local_rank() == 0:
        result = fn()
        barrier()
    else:
        barrier()
        result = fn()
    return result


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
