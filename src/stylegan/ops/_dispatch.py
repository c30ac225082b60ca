"""Choosing between an op's reference path, its pure-torch fast path and its Triton kernel.

`impl` is one of:
  'ref'     always the reference (the ground truth);
  'fast'    the pure-torch fast path (`_<op>_fast.py`), on any device;
  'triton'  the Triton kernel (`_<op>_triton.py`): on CUDA, or on the CPU under Triton's interpreter
            (TRITON_INTERPRET=1, which is how the CPU tests run it);
  'auto'    the Triton kernel on CUDA when `triton` imports, else the fast path.
A path that cannot handle the inputs falls back (triton -> fast -> ref) with one warning per op and reason.
`auto_impl('ref' | 'fast' | 'triton')` makes 'auto' mean that path inside a block (to compare a whole network
against the ground truth, or to run one on the kernels).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from typing import Iterator

import torch

IMPLS = ("auto", "ref", "fast", "triton")
PATHS = ("ref", "fast", "triton")       # what `pick` returns
_auto = "auto"
_warned: set[str] = set()


def check_impl(impl: str) -> None:
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(repr(i) for i in IMPLS)}, got {impl!r}")


_NOT_CHECKED = object()
_triton_error: object = _NOT_CHECKED        # a plain global, not lru_cache: torch.compile traces through it


def triton_import_error() -> str | None:
    """Why `import triton` fails here, or None when it works (checked once per process)."""
    global _triton_error
    if _triton_error is _NOT_CHECKED:
        try:
            import triton  # noqa: F401
            import triton.language  # noqa: F401
            _triton_error = None
        except Exception as e:  # noqa: BLE001 - any import failure means the kernels are unavailable
            _triton_error = f"triton does not import ({type(e).__name__}: {e})"
    return _triton_error  # type: ignore[return-value]


def interpreting() -> bool:
    """Whether Triton kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def triton_unsupported(*tensors: torch.Tensor | None) -> str | None:
    """Why the Triton kernels cannot run on these tensors, or None when they can."""
    error = triton_import_error()
    if error is not None:
        return error
    for t in tensors:
        if t is None:
            continue
        if t.device.type == "cuda" or (t.device.type == "cpu" and interpreting()):
            continue
        return f"tensors on {t.device.type}" + ("" if t.device.type != "cpu" else " (set TRITON_INTERPRET=1)")
    return None


def kernel_unsupported(module: str, impl: str, tensors: tuple, *args) -> str | None:
    """Why the Triton kernel of stylegan.ops.<module> cannot take these inputs, or None when it can: first whether
    `impl` could pick it at all on `tensors`' device, then whether Triton can run on them, then the module's own
    `unsupported(*args)`. The kernel module is imported only when Triton can run, so its @triton.jit functions are
    never defined on a machine that cannot use them; and never on the CPU under 'auto', where importing it (which
    torch.compile cannot trace) would break the graph under TRITON_INTERPRET=1 for a path that is not taken."""
    if impl == "auto":
        impl = _auto
    if impl in ("ref", "fast") or (impl == "auto" and tensors[0].device.type != "cuda"):
        return f"impl {impl!r} on {tensors[0].device.type}"
    reason = triton_unsupported(*tensors)
    if reason is None:
        reason = importlib.import_module(f"stylegan.ops.{module}").unsupported(*args)
    return reason


def _warn(op: str, path: str, reason: str, stacklevel: int) -> None:
    key = f"{op}: {path}: {reason}"
    if key not in _warned:
        _warned.add(key)
        warnings.warn(f"{op}: the {path} path cannot run ({reason}); using a slower path",
                      RuntimeWarning, stacklevel=stacklevel)


def pick(op: str, impl: str, device: torch.device, *, fast: str | None | bool = False,
         triton: str | None | bool = False) -> str:
    """The path `op` should take: 'ref', 'fast' or 'triton'.

    fast/triton: why that path cannot run on these inputs (a reason string), None when it can, or False when the op
    has no such path. device: where the inputs live ('auto' prefers Triton only on CUDA)."""
    check_impl(impl)
    if impl == "auto":
        impl = _auto
    if impl == "ref":
        return "ref"
    if impl == "auto":
        if device.type == "cuda" and triton is None:
            return "triton"
        if device.type == "cuda" and isinstance(triton, str) and triton_import_error() is not None:
            _warn(op, "triton", triton, stacklevel=4)       # on CUDA without triton: say once why it is slower
        impl = "fast"
    if impl == "triton":
        if triton is None:
            return "triton"
        if triton is not False:
            _warn(op, "triton", triton, stacklevel=4)
        impl = "fast"
    if fast is None:
        return "fast"
    if isinstance(fast, str) and impl == "fast":
        _warn(op, "fast", fast, stacklevel=4)
    return "ref"


def use_fast(op: str, impl: str, unsupported: str | None) -> bool:
    """Whether `op` should take its pure-torch fast path (for ops with no Triton kernel)."""
    return pick(op, impl, torch.device("cpu"), fast=unsupported) == "fast"


@contextlib.contextmanager
def auto_impl(impl: str) -> Iterator[None]:
    """Within the block, impl='auto' means `impl` ('ref', 'fast' or 'triton')."""
    global _auto
    if impl not in PATHS:
        raise ValueError(f"auto_impl takes 'ref', 'fast' or 'triton', got {impl!r}")
    previous, _auto = _auto, impl
    try:
        yield
    finally:
        _auto = previous
