"""A pickle reader that runs no code from the file.

A pickle is a small program: its GLOBAL opcodes name any importable object (``os.system``, ``builtins.exec``) and
its REDUCE/NEWOBJ/BUILD opcodes call them. ``pickle.load`` therefore runs whatever the file asks for.
`RestrictedUnpickler` answers every such lookup from an explicit allowlist that maps ``"module.name"`` to the object
the stream gets instead. Anything not on the list is refused before it is called, with an error that names it.
Persistent ids (the hook torch.save uses) are refused too.

The building blocks are meant to be combined per format:

    TORCH_GLOBALS   tensors, parameters and their storages (storage bytes go through torch.load(weights_only=True))
    NUMPY_GLOBALS   numpy arrays, dtypes and scalars (object arrays hold only what the stream itself built)
    BASIC_GLOBALS   collections.OrderedDict, set, frozenset, and the latin-1 bytes shim of protocol-2 pickles

Example, reading a pickle of tensors plus one stand-in class of your own::

    allow = {**BASIC_GLOBALS, **TORCH_GLOBALS, "mylib.Thing": MyThingStandIn}
    obj = restricted_load(open(path, "rb"), allow)

Each stand-in must be safe to call with arguments chosen by the file: a plain data holder, never something that
imports, evaluates or executes what it is given.
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any, BinaryIO, Mapping

import numpy as np
import torch

from stylegan.core.errors import StyleGANError


class UnsafePickleError(StyleGANError):
    """The pickle asks for something outside the allowlist; nothing it named was imported or called."""


# --- tensors ---------------------------------------------------------------------------------------------------------
# A plain pickle of a CPU tensor reads: _rebuild_parameter(_rebuild_tensor_v2(_load_from_bytes(b'...'), offset, size,
# stride, requires_grad, hooks)). The bytes are a legacy torch.save of one storage. Our replacements check argument
# types, load the bytes with the weights-only unpickler, and drop hooks and grad flags (callables are never kept).

def _storage_from_bytes(data: bytes) -> torch.TypedStorage:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"a tensor storage must be bytes, got {type(data).__name__}")
    try:
        storage = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch explains at length; keep the line that names what was refused.
        lines = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL" in ln or "global" in ln]
        raise UnsafePickleError(f"a tensor storage in the file is not plain data: "
                                f"{lines[0] if lines else str(exc).splitlines()[0]}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage decoded to {type(storage).__name__}, not a storage")
    return storage


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> torch.Tensor:
    # *_ignored: requires_grad, backward_hooks and metadata of _rebuild_tensor_v2/_v3; none matter for weights.
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor must be rebuilt from a storage, got {type(storage).__name__}")
    if not (isinstance(storage_offset, int) and all(isinstance(v, int) for v in (*size, *stride))):
        raise UnsafePickleError("a tensor's offset, size and stride must be integers")
    return torch._utils._rebuild_tensor(storage, storage_offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_ignored) -> torch.Tensor:
    # A parameter comes back as a plain tensor: callers copy values into modules they built themselves.
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError(f"a parameter must wrap a tensor, got {type(data).__name__}")
    return data


TORCH_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,      # the (empty) backward-hooks dict of every tensor
    "torch.storage._load_from_bytes": _storage_from_bytes,
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
}


# --- numpy -----------------------------------------------------------------------------------------------------------
# numpy pickles an array as _reconstruct(ndarray, (0,), b'b') followed by BUILD with (version, shape, dtype, fortran,
# raw bytes or list); a scalar as scalar(dtype, raw bytes). numpy 2 moved the module from numpy.core to numpy._core;
# files name whichever wrote them, so both spellings map to the functions of the numpy installed here.
_np_reconstruct = np.zeros(1).__reduce__()[0]
_np_scalar = np.float64(0).__reduce__()[0]


def _reconstruct_array(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"only plain numpy arrays are allowed, not {subtype!r}")
    return _np_reconstruct(np.ndarray, shape, dtype)


NUMPY_GLOBALS: dict[str, Any] = {
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    **{f"{mod}.multiarray._reconstruct": _reconstruct_array for mod in ("numpy.core", "numpy._core")},
    **{f"{mod}.multiarray.scalar": _np_scalar for mod in ("numpy.core", "numpy._core")},
}


# --- containers ------------------------------------------------------------------------------------------------------

def _latin1_bytes(text, encoding="latin1"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode is only allowed for latin-1 bytes")
    return text.encode("latin1")


BASIC_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "__builtin__.set": set,
    "_codecs.encode": _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose find_class consults `allow` ("module.name" -> object) and refuses everything else.

    `what` names the file in error messages, e.g. "network.pkl".
    """

    def __init__(self, file: BinaryIO, allow: Mapping[str, Any], *, what: str = "this pickle"):
        super().__init__(file, encoding="latin1")   # latin1: numpy arrays in old pickles carry raw 8-bit strings
        self._allow = dict(allow)
        self._what = what

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in self._allow:
            return self._allow[key]
        raise UnsafePickleError(
            f"refusing to load {self._what}: it asks for {key}, which is not on the allowlist "
            f"(nothing from the file was run)")

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._what}: it uses persistent ids, which no supported format has")


def restricted_load(file: BinaryIO, allow: Mapping[str, Any], *, what: str = "this pickle") -> Any:
    """Unpickle `file` with only the globals in `allow`; raise UnsafePickleError naming the first refused one."""
    try:
        return RestrictedUnpickler(file, allow, what=what).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise StyleGANError(f"{what} is not a readable pickle ({type(exc).__name__}: {exc})") from None
