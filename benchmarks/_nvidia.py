"""Importing NVIDIA's stylegan3 checkout from a benchmark, to measure it side by side with ours.

Nothing of NVIDIA's code is copied here: their checkout is put on sys.path at run time. Their dnnlib imports
`requests` and their conv2d_gradfix imports `pkg_resources`; neither is used to build networks or run their CPU
(reference) ops, so empty stand-ins are enough when those packages are not installed.
"""
from __future__ import annotations

import os
import sys
import types

DEFAULT_PATHS = ("../ref/stylegan3", "/work/ref/stylegan3")


def default_path() -> str:
    """$STYLEGAN_NVIDIA_REF, else the first of DEFAULT_PATHS that exists (the last one if none does)."""
    if os.environ.get("STYLEGAN_NVIDIA_REF"):
        return os.environ["STYLEGAN_NVIDIA_REF"]
    return next((p for p in DEFAULT_PATHS if found(p)), DEFAULT_PATHS[-1])


def found(path: str) -> bool:
    """Whether `path` looks like a stylegan3 checkout (their ops and networks are there)."""
    return os.path.isdir(os.path.join(path, "torch_utils", "ops")) and os.path.isdir(os.path.join(path, "training"))


def add_to_path(path: str) -> None:
    """Make NVIDIA's packages (torch_utils, training, dnnlib) importable from `path`."""
    if path not in sys.path:
        sys.path.insert(0, path)
    sys.modules.setdefault("requests", types.ModuleType("requests"))
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            from packaging.version import parse
            sys.modules["pkg_resources"] = types.SimpleNamespace(parse_version=parse)
