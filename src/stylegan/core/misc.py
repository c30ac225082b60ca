"""Small helpers shared by every layer: shape assertions, seeds, and list parsing."""
from __future__ import annotations

import hashlib
import random
from typing import Sequence

import numpy as np
import torch

from stylegan.core.errors import UsageError


def assert_shape(tensor: torch.Tensor, ref_shape: Sequence[int | None]) -> None:
    """Raise AssertionError unless `tensor` has `ref_shape`; None in `ref_shape` matches any size."""
    if tensor.ndim != len(ref_shape):
        raise AssertionError(f"Wrong number of dimensions: got {tensor.ndim}, expected {len(ref_shape)}")
    for idx, (size, ref_size) in enumerate(zip(tensor.shape, ref_shape)):
        if ref_size is None:
            continue
        if isinstance(ref_size, torch.Tensor):
            ref_size = int(ref_size)
        if int(size) != int(ref_size):
            raise AssertionError(f"Wrong size for dimension {idx}: got {int(size)}, expected {ref_size}")


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed derived from (seed, rank, nimg, ...) so every rank and every resume point differs reproducibly."""
    digest = hashlib.sha256(repr(tuple(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def parse_range(text: str, flag: str = "--seeds") -> list[int]:
    """Parse '0-7,42' (inclusive ranges and single values) into a list of ints."""
    if isinstance(text, (list, tuple)):
        return [int(v) for v in text]
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (None, None)
                if lo is None:
                    raise ValueError
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise UsageError(f"{flag}: range '{part}' runs backwards; write it as {hi_i}-{lo_i}")
                out.extend(range(lo_i, hi_i + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise UsageError(f"{flag}: cannot read '{part}' in '{text}'; "
                             "use a comma list of numbers and ranges such as 0-7,42") from None
    if not out:
        raise UsageError(f"{flag}: the list '{text}' is empty; give numbers and ranges such as 0-7,42")
    return out


def parse_int_list(text: str, flag: str) -> list[int]:
    """Alias of parse_range for lists that are not seeds (layers, styles)."""
    return parse_range(text, flag=flag)
