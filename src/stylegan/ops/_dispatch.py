"""Choosing between an op's reference path and its fast path.

`impl='ref'` always runs the reference; `impl='fast'` and `impl='auto'` run the fast path when it can handle the
inputs, and otherwise fall back to the reference with one warning per op and reason. `auto_impl('ref')` makes
'auto' mean the reference inside a block (to compare a whole network against the ground truth).
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Iterator

IMPLS = ("auto", "ref", "fast")
_auto = "fast"
_warned: set[str] = set()


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(repr(i) for i in IMPLS)}, got {impl!r}")


def use_fast(op: str, impl: str, unsupported: str | None) -> bool:
    """Whether `op` should take its fast path. unsupported: why the fast path cannot run here, or None."""
    check_impl(impl)
    if impl == "ref" or (impl == "auto" and _auto == "ref"):
        return False
    if unsupported is None:
        return True
    key = f"{op}: {unsupported}"
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"{op}: the fast path cannot run ({unsupported}); using the reference implementation",
                      RuntimeWarning, stacklevel=3)
    return False


@contextlib.contextmanager
def auto_impl(impl: str) -> Iterator[None]:
    """Within the block, impl='auto' means `impl` ('ref' or 'fast')."""
    global _auto
    if impl not in ("ref", "fast"):
        raise ValueError(f"auto_impl takes 'ref' or 'fast', got {impl!r}")
    previous, _auto = _auto, impl
    try:
        yield
    finally:
        _auto = previous
