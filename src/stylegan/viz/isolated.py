"""Read a network file that is not our own format in a child process, with a time and a memory limit.

The server reads files it did not write: an NVIDIA pickle in --models-dir may be built to expand until memory runs
out, or to take hours. Python can stop neither a thread nor a runaway allocation, so such files are read here by
`python -m stylegan.viz.isolated`, which converts the network to our safetensors format in a temporary folder;
the server then loads that (a format whose reader allocates only what its header declares). A child that runs
past its time is killed; one that runs past its memory fails alone.

    load_isolated(location, folder, timeout) -> the converted .safetensors, written into `folder`
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Memory the child may take beyond what it holds once torch is imported: a network needs its weights a few times
# over while it is converted (the pickle's arrays, the tensors, the file written).
MIN_BUDGET_BYTES = 4 * 2 ** 30
BUDGET_PER_FILE_BYTE = 8
_NO_MEMORY = 3                      # the child's exit status when it ran out of its memory budget


class LoadFailed(Exception):
    """The child could not read the file; str() is its one-line reason."""


class LoadTimedOut(Exception):
    """The child ran past its time and was killed."""


def load_isolated(location: str, folder: Path, timeout: float, budget_bytes: int | None = None) -> Path:
    """Convert the network at `location` into `folder`/network.safetensors in a child process; return its path.
    `budget_bytes` replaces the memory budget that the file's size gives."""
    out = folder / "network.safetensors"
    argv = [sys.executable, "-m", "stylegan.viz.isolated", location, str(out), str(budget_bytes or 0)]
    try:
        done = subprocess.run(argv,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LoadTimedOut() from None
    reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
    if done.returncode == _NO_MEMORY or done.returncode < 0:        # < 0: killed by a signal (the OOM killer)
        raise LoadFailed("reading it needs more memory than a network of its size can (the file may be built to "
                         "exhaust memory)")
    if done.returncode != 0 or not out.is_file():
        raise LoadFailed(reason[-1] if reason else f"the reader stopped with status {done.returncode}")
    return out


def _limit_memory(budget: int) -> None:
    """Cap the address space at what the process has now plus `budget` bytes (Linux; other systems do not enforce
    RLIMIT_AS and keep only the time limit)."""
    try:
        import resource
        with open("/proc/self/status") as f:
            now = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        limit = now + budget
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, OSError, ValueError, StopIteration):
        pass


def _main(location: str, out: str, budget: int) -> int:
    from stylegan.core.errors import StyleGANError
    from stylegan.io import load_network, save_network

    size = os.path.getsize(location) if os.path.isfile(location) else 0
    _limit_memory(budget or max(MIN_BUDGET_BYTES, BUDGET_PER_FILE_BYTE * size))
    try:
        save_network(load_network(location, what="g_ema", device="cpu"), out)
    except MemoryError:
        return _NO_MEMORY
    except Exception as exc:  # any reader failure is the file's; the server reports it as such
        text = str(exc) if isinstance(exc, StyleGANError) else f"{type(exc).__name__}: {exc}"
        print(" ".join(text.split()), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
