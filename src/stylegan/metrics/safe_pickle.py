"""Read the tensors of NVIDIA's feature-detector pickles without running any of their code.

NVIDIA ships its metric networks (`inception-2015-12-05.pkl`, `vgg16.pkl`) as Python pickles that rebuild a
TorchScript module. Unpickling them with `pickle.load` runs whatever callables the stream names. We never do:

1. The outer pickle is replayed by `SymbolicUnpickler`: every global it names becomes an inert placeholder
   (`Placeholder`) that only records its arguments and state, except a short allow-list of constructors
   that build plain data (OrderedDict, tensors from storages, bytes). Embedded source code is never executed.
2. Inside the replayed object graph we look for the TorchScript archive: a zip (bytes starting with 'PK')
   that holds `<name>/data.pkl` and `<name>/data/<key>` storages. Its `data.pkl` is replayed the same way,
   with storages read straight from the zip, so the TorchScript code in it is never compiled or run.
3. Tensors are named by their attribute paths ('layers.conv.weight'), whichever way the pickle wrapped the
   module: a TorchScript archive, or plain `torch.nn.Module` state (`_parameters` / `_buffers` / `_modules`).
"""
from __future__ import annotations

import codecs
import collections
import io
import pickle
import zipfile
from typing import Any, Callable

import torch

from stylegan.core.errors import StyleGANError

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}
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


class _StorageType:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


def _rebuild_tensor(storage, offset, size, stride, *_rest) -> torch.Tensor:
    if not isinstance(storage, torch.Tensor):
        raise pickle.UnpicklingError("a tensor refers to a storage that is not in the file")
    return storage.as_strided(tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data, *_rest):
    return data


def _encode(text, encoding="latin1"):
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return codecs.encode(text, encoding)


def _load_torch_bytes(data: bytes):
    # torch.save output embedded as bytes (how plain storages pickle); weights_only refuses anything but data.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


_ALLOWED: dict[tuple[str, str], Callable] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("_codecs", "encode"): _encode,
    ("torch.storage", "_load_from_bytes"): _load_torch_bytes,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
}


class SymbolicUnpickler(pickle.Unpickler):
    """An Unpickler that builds data and placeholders only. `storages` resolves persistent storage ids."""

    def __init__(self, file, storages: Callable[[str, torch.dtype, int], torch.Tensor] | None = None):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name in ("float32", "float16", "float64", "bfloat16", "int64", "int32", "uint8", "bool"):
            return getattr(torch, name)
        return _placeholder_class(module, name)

    def persistent_load(self, pid):
        if self._storages is None or not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]}")
        _kind, storage_type, key, _location, numel = pid[:5]
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else torch.uint8
        return self._storages(str(key), dtype, int(numel))


def _replay(data: bytes, storages=None) -> Any:
    try:
        return SymbolicUnpickler(io.BytesIO(data), storages).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            RuntimeError, zipfile.BadZipFile) as exc:  # RuntimeError: a tensor view outside its storage
        raise StyleGANError(f"cannot read the pickle ({type(exc).__name__}: {exc})") from None


def _read_torchscript_archive(data: bytes) -> Any:
    """Replay `<root>/data.pkl` of a TorchScript (or torch.save) zip, reading storages from `<root>/data/`."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        roots = [n[: -len("data.pkl")] for n in names if n.endswith("data.pkl") and n.count("/") == 1]
        if not roots:
            raise StyleGANError("the embedded archive has no data.pkl")
        root = roots[0]
        cache: dict[str, torch.Tensor] = {}

        def storage(key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
            if key not in cache:
                raw = bytearray(zf.read(f"{root}data/{key}"))
                flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
                if flat.numel() < numel:
                    raise StyleGANError(f"storage {key} in the embedded archive is truncated")
                cache[key] = flat
            return cache[key]

        return _replay(zf.read(f"{root}data.pkl"), storage)


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
    _walk(_replay(data), "", tensors, archives, set())
    for archive in archives:  # a TorchScript module rides inside as the bytes of its zip
        inner: dict[str, torch.Tensor] = {}
        try:
            _walk(_read_torchscript_archive(archive), "", inner, [], set())
        except (zipfile.BadZipFile, KeyError) as exc:
            raise StyleGANError(f"the embedded archive is damaged ({exc})") from None
        tensors.update(inner)
    return tensors
