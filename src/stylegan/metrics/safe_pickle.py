"""Read the tensors of NVIDIA's feature-detector pickles without running any of their code.

NVIDIA ships its metric networks (`inception-2015-12-05.pkl`, `vgg16.pkl`) as Python pickles that rebuild a
TorchScript module. Unpickling them with `pickle.load` runs whatever callables the stream names. We never do:

1. The outer pickle is replayed by io's `RestrictedUnpickler` (the one every reader of a pickle uses, with its
   checks of every claimed size, depth and object count): the plain-data constructors of its allowlist build
   tensors, OrderedDicts and bytes, and every other global becomes an inert placeholder (`Placeholder`) that only
   records its arguments and state. Embedded source code is never executed.
2. Inside the replayed object graph we look for the TorchScript archive: a zip (bytes starting with 'PK')
   that holds `<name>/data.pkl` and `<name>/data/<key>` storages. Its `data.pkl` is replayed the same way,
   with storages read straight from the zip (each entry's size checked against the archive before it is read),
   so the TorchScript code in it is never compiled or run.
3. Tensors are named by their attribute paths ('layers.conv.weight'), whichever way the pickle wrapped the
   module: a TorchScript archive, or plain `torch.nn.Module` state (`_parameters` / `_buffers` / `_modules`).
"""
from __future__ import annotations

import io
import zipfile
from typing import Any

import torch

from stylegan.core.errors import StyleGANError
from stylegan.io.limits import FileLimitError
from stylegan.io.unpickler import (BASIC_GLOBALS, STORAGE_GLOBALS, TORCH_GLOBALS, flat_storage, restricted_load,
                                   storage_claim)

_MODULE_DICTS = ("_parameters", "_buffers", "_modules")


class Placeholder:
    """Stands in for any object a pickle would have built by calling something we do not trust."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.args, obj.state, obj.items = args, None, []
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __setitem__(self, key, value):
        self.items.append((key, value))

    def __repr__(self):
        return f"<placeholder {self.qualname}>"


def _placeholder_class(module: str, name: str) -> type:
    return type(name, (Placeholder,), {"qualname": f"{module}.{name}"})


_DTYPES = ("float32", "float16", "float64", "bfloat16", "int64", "int32", "uint8", "bool")
_ALLOWED: dict[str, Any] = {
    **BASIC_GLOBALS, **TORCH_GLOBALS, **STORAGE_GLOBALS,
    **{f"torch.{name}": getattr(torch, name) for name in _DTYPES},
}


def _replay(data: bytes, what: str, persistent=None) -> Any:
    return restricted_load(io.BytesIO(data), _ALLOWED, what=what, fallback=_placeholder_class, persistent=persistent)


def _read_torchscript_archive(data: bytes) -> Any:
    """Replay `<root>/data.pkl` of a TorchScript (or torch.save) zip, reading storages from `<root>/data/`."""
    what = "the embedded TorchScript archive"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        roots = [n[: -len("data.pkl")] for n in zf.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not roots:
            raise StyleGANError(f"{what} has no data.pkl")
        root = roots[0]
        # TorchScript stores its entries uncompressed; a compressed one may expand, but not without bound.
        budget = [4 * len(data) + (1 << 20)]

        def read(name: str) -> bytes:
            info = zf.getinfo(name)
            if info.file_size > budget[0]:
                raise FileLimitError(f"{what}: {name} claims {info.file_size:,} bytes, more than the archive "
                                     f"of {len(data):,} bytes can hold")
            budget[0] -= info.file_size
            return zf.read(info)

        cache: dict[str, torch.Tensor] = {}

        def storage(pid: Any) -> torch.Tensor:
            key, dtype, numel = storage_claim(pid)
            if key not in cache:
                cache[key] = flat_storage(read(f"{root}data/{key}"), dtype, numel, f"{what}: storage {key}")
            if cache[key].dtype != dtype or cache[key].numel() < numel:
                raise FileLimitError(f"{what}: storage {key} is claimed twice with different sizes")
            return cache[key]

        return _replay(read(f"{root}data.pkl"), what, storage)


def _is_zip(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray)) and bytes(value[:4]) == b"PK\x03\x04"


def _children(obj: Any) -> list[tuple[str | None, Any]]:
    """(name, child) pairs of an object in the replayed graph; name None keeps the parent's path."""
    if isinstance(obj, dict):
        return [(None if k in _MODULE_DICTS else str(k), v) for k, v in obj.items()]
    if isinstance(obj, (list, tuple)):
        return [(None, v) for v in obj]
    if isinstance(obj, Placeholder):
        if obj.qualname.endswith("_reconstruct_persistent_obj") and obj.args and isinstance(obj.args[0], dict):
            return [(None, obj.args[0].get("state"))]  # NVIDIA's persistence wrapper: only its state is data
        return [(None, obj.state), (None, obj.args), (None, obj.items)]
    return []


def _walk(obj: Any, path: str, tensors: dict[str, torch.Tensor], archives: list[bytes], seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        tensors.setdefault(path, obj)
        return
    if _is_zip(obj):
        archives.append(bytes(obj))
        return
    for name, child in _children(obj):
        _walk(child, path if name is None else (f"{path}.{name}" if path else name), tensors, archives, seen)


def read_pickled_tensors(data: bytes) -> dict[str, torch.Tensor]:
    """All tensors of a pickled network, by attribute path, without executing anything from the file."""
    tensors: dict[str, torch.Tensor] = {}
    archives: list[bytes] = []
    try:
        _walk(_replay(data, "its stream"), "", tensors, archives, set())
        for archive in archives:  # a TorchScript module rides inside as the bytes of its zip
            inner: dict[str, torch.Tensor] = {}
            try:
                _walk(_read_torchscript_archive(archive), "", inner, [], set())
            except (zipfile.BadZipFile, KeyError, ValueError, EOFError, OSError) as exc:
                raise StyleGANError(f"the embedded archive is damaged ({type(exc).__name__}: {exc})") from None
            tensors.update(inner)
    except StyleGANError as exc:        # FileLimitError and UnsafePickleError keep their class
        raise type(exc)(f"cannot read the pickle: {exc}") from None
    return tensors
