"""Run directories: numbering, finding the latest training state, and the log file that mirrors stdout.

A run lives in <outdir>/<id>-<description>, e.g. runs/00003-stylegan3-t-demo-gpus1-batch32-gamma2, numbered
one past the highest number already in outdir (NVIDIA's rule). `--resume latest` continues the newest run in
outdir (the highest number), from its newest complete training state, in that same directory. Older runs are
never picked up: a run that died before its first snapshot does not silently continue an unrelated older one.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from stylegan.core.errors import UsageError
from stylegan.training.state import is_training_state

STATE_PREFIX = "training-state-"
STATE_SUFFIX = ".safetensors"
_STATE_RE = re.compile(r"^training-state-(\d+)\.safetensors$")
_RUN_RE = re.compile(r"^(\d+)-")


def state_name(nimg: int) -> str:
    """training-state-<nimg>.safetensors: named by image count, so states order and never collide."""
    return f"{STATE_PREFIX}{nimg:012d}{STATE_SUFFIX}"


def snapshot_name(nimg: int) -> str:
    return f"network-snapshot-{nimg // 1000:06d}.safetensors"


def fakes_name(nimg: int) -> str:
    return f"fakes{nimg // 1000:06d}.png"


def check_outdir_writable(outdir: str | os.PathLike) -> None:
    """Prove that outdir can be written, without creating it (a --dry-run leaves nothing behind).

    An existing folder gets a test file; a missing one needs its nearest existing parent to be writable, and the
    run creates it."""
    outdir = Path(outdir).expanduser()
    try:
        if outdir.is_dir():
            with tempfile.TemporaryFile(dir=outdir):
                pass
            return
        parent = next(p for p in outdir.absolute().parents if p.exists())
        if outdir.exists() or not parent.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, f"{parent} is not writable")
    except OSError as exc:
        raise UsageError(f"--outdir {outdir}: cannot write there ({exc.strerror or exc}); "
                         "choose a folder you can write to") from None


def run_dirs(outdir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Numbered run directories in outdir, highest number first."""
    outdir = Path(outdir).expanduser()
    if not outdir.is_dir():
        return []
    found = []
    for entry in outdir.iterdir():
        m = _RUN_RE.match(entry.name)
        if m and entry.is_dir():
            found.append((int(m.group(1)), entry))
    return sorted(found, reverse=True)


def next_run_dir(outdir: str | os.PathLike, description: str) -> Path:
    runs = run_dirs(outdir)
    next_id = runs[0][0] + 1 if runs else 0
    return Path(outdir).expanduser() / f"{next_id:05d}-{description}"


def states_in(run_dir: str | os.PathLike) -> list[Path]:
    """Training-state files in a run directory (complete ones by name; temporary files start with '.'), newest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted((p for p in run_dir.iterdir() if _STATE_RE.match(p.name)), reverse=True)


def find_latest_state(outdir: str | os.PathLike) -> Path | None:
    """The newest readable training state of the newest run in outdir; None if that run has none."""
    runs = run_dirs(outdir)
    if not runs:
        return None
    for path in states_in(runs[0][1]):
        if is_training_state(path):
            return path
        print(f"warning: skipping {path}: it is not a readable training state", file=sys.stderr)
    return None


def remove_stale_temporaries(run_dir: str | os.PathLike) -> None:
    """Delete temporary files left by writes that a kill interrupted (they start with '.' and end in .tmp*)."""
    for p in Path(run_dir).glob(".*.tmp*"):
        with contextlib.suppress(OSError):
            p.unlink()


def prune_states(run_dir: str | os.PathLike, keep: int = 2) -> None:
    """Keep the newest `keep` training states: each holds both optimizers, so they are large."""
    for path in states_in(run_dir)[keep:]:
        with contextlib.suppress(OSError):
            path.unlink()


class _Tee:
    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text):
        self.stream.write(text)
        self.file.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()
        self.file.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def tee_output(log_path: str | os.PathLike | None) -> Iterator[None]:
    """Copy stdout and stderr to log_path (appending, so a resumed run continues its log); None = no-op."""
    if log_path is None:
        yield
        return
    with open(log_path, "a", buffering=1, encoding="utf-8") as f:
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(old_out, f), _Tee(old_err, f)
        try:
            yield
        finally:
            sys.stdout, sys.stderr = old_out, old_err
