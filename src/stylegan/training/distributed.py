"""`--gpus N` without torchrun: the launcher lives in stylegan.core.dist (`run_under_torchrun`); this name stays
for callers that still import it from here."""
from __future__ import annotations

from stylegan.core import dist


def launch_local(nproc: int, args: list[str]) -> int:
    """Run `stylegan train ARGS` in nproc processes; returns the exit status of the launcher."""
    return dist.run_under_torchrun(nproc, ["train", *args])
