"""Lowest layer: errors, shape checks, seeding, device choice, distributed helpers, atomic files, logging."""
from stylegan.core.errors import StyleGANError, UsageError
from stylegan.core.misc import assert_shape, derive_seed, parse_int_list, parse_range, set_seed
from stylegan.core.device import resolve_device
from stylegan.core.files import atomic_write, atomic_save_bytes
from stylegan.core import dist

__all__ = [
    "StyleGANError", "UsageError", "assert_shape", "derive_seed", "parse_int_list", "parse_range", "set_seed",
    "resolve_device", "atomic_write", "atomic_save_bytes", "dist",
]
