"""A pickle reader that runs no code from the file.

A pickle is a small program: its GLOBAL opcodes name any importable object (``os.system``, ``builtins.exec``) and
its REDUCE/NEWOBJ/BUILD opcodes call them. ``pickle.load`` therefore runs whatever the file asks for.
`RestrictedUnpickler` answers every such lookup from an explicit allowlist that maps ``"module.name"`` to the object
the stream gets instead. Anything not on the list is refused before it is called, with an error that names it.
Persistent ids (the hook torch.save uses) are refused unless the caller resolves them, and a caller may answer
names off the list with inert placeholders instead of refusing them (metrics/safe_pickle.py does both).

The building blocks are meant to be combined per format:

    TORCH_GLOBALS   tensors, parameters and their storages (storage bytes read by our own checked reader)
    STORAGE_GLOBALS torch.FloatStorage etc., as the dtype markers of persistent storage ids
    NUMPY_GLOBALS   numpy arrays, dtypes and scalars (object arrays hold only what the stream itself built)
    BASIC_GLOBALS   collections.OrderedDict, set, frozenset, and the latin-1 bytes/bytearray shims of protocol-2
                    pickles

Example, reading a pickle of tensors plus one stand-in class of your own::

    allow = {**BASIC_GLOBALS, **TORCH_GLOBALS, "mylib.Thing": MyThingStandIn}
    obj = restricted_load(open(path, "rb"), allow)

Each stand-in must be safe to call with arguments chosen by the file: a plain data holder, never something that
imports, evaluates or executes what it is given.

Before unpickling, `check_pickle` walks the stream's opcodes once without building anything, so that a file of a
few bytes cannot make the loader allocate what it merely claims (see io/limits.py).
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import pickletools
import struct
from typing import Any, BinaryIO, Callable, Mapping

import numpy as np
import torch

from stylegan.core.errors import StyleGANError
from stylegan.io.limits import MAX_DEPTH, MAX_OBJECTS, FileLimitError


class UnsafePickleError(StyleGANError):
    """The pickle asks for something outside the allowlist; nothing it named was imported or called."""


# --- tensors ---------------------------------------------------------------------------------------------------------
# A plain pickle of a CPU tensor reads: _rebuild_parameter(_rebuild_tensor_v2(_load_from_bytes(b'...'), offset, size,
# stride, requires_grad, hooks)). The bytes are a legacy torch.save of one storage: three small pickles (magic number,
# protocol, sys_info), the storage as a persistent id, the list of storage keys, then per storage an int64 element
# count and the raw bytes. We read that layout ourselves, so that the count a file claims is checked against the
# bytes it has before anything is allocated. A storage is a flat tensor of its dtype, here and in TorchScript
# archives (metrics/safe_pickle.py), and the one _rebuild_tensor below views it.

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C      # torch.serialization.MAGIC_NUMBER

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class StorageType:
    """What a stream's torch.FloatStorage (etc.) becomes: only the dtype that a persistent storage id carries."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype


STORAGE_GLOBALS: dict[str, Any] = {
    **{f"torch.{name}": StorageType(dtype) for name, dtype in STORAGE_DTYPES.items()},
    "torch.storage.UntypedStorage": StorageType(torch.uint8),
    "torch.UntypedStorage": StorageType(torch.uint8),
}


def storage_claim(pid: Any) -> tuple[str, torch.dtype, int]:
    """(key, dtype, element count) of a persistent storage id ('storage', type, key, location, numel, ...)."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise UnsafePickleError(f"a persistent id must name a storage, got {str(pid)[:60]}")
    _kind, storage_type, key, _location, numel = pid[:5]
    if not isinstance(storage_type, StorageType):
        raise UnsafePickleError(f"a storage must be one of torch's storage types, got {type(storage_type).__name__}")
    if not isinstance(numel, int) or numel < 0:
        raise FileLimitError(f"a storage claims {numel!r} elements")
    return str(key), storage_type.dtype, numel


def flat_storage(raw: bytes | bytearray, dtype: torch.dtype, numel: int, what: str) -> torch.Tensor:
    """A storage of `numel` elements as a flat tensor, from bytes already read (so their length is real)."""
    if numel * dtype.itemsize > len(raw):
        raise FileLimitError(f"{what} claims {numel:,} elements ({numel * dtype.itemsize:,} bytes) "
                             f"but holds {len(raw):,} bytes")
    if not numel:
        return torch.empty(0, dtype=dtype)
    raw = raw if isinstance(raw, bytearray) else bytearray(raw)     # writable, since the tensor shares it
    return torch.frombuffer(raw, dtype=dtype, count=numel)


def _storage_from_bytes(data: bytes) -> torch.Tensor:
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"a tensor storage must be bytes, got {type(data).__name__}")
    what = "a tensor storage"
    f = io.BytesIO(data)
    magic, _protocol, sys_info = (restricted_load(f, {}, what=what) for _ in range(3))
    if magic != _LEGACY_MAGIC or not isinstance(sys_info, dict) or not sys_info.get("little_endian"):
        raise UnsafePickleError(f"{what} is not in torch's (little-endian) storage format")
    claims: dict[str, tuple[torch.dtype, int]] = {}

    def persistent(pid: Any) -> str:
        key, dtype, numel = storage_claim(pid)
        claims[key] = (dtype, numel)
        return key

    root = restricted_load(f, STORAGE_GLOBALS, what=what, persistent=persistent)
    keys = restricted_load(f, {}, what=what)
    if not isinstance(root, str) or root not in claims or not isinstance(keys, list) or root not in keys:
        raise UnsafePickleError(f"{what}'s bytes do not hold a single storage")
    storages = {}
    for key in keys:                            # the raw data follows in this order
        if key not in claims:
            raise UnsafePickleError(f"{what} holds data for a storage it never declared")
        dtype, numel = claims[key]
        count = int.from_bytes(f.read(8), "little")
        left = len(data) - f.tell()
        if count != numel or numel * dtype.itemsize > left:
            raise FileLimitError(f"{what} claims {numel:,} elements of {dtype} but holds {max(left, 0):,} bytes")
        storages[key] = flat_storage(f.read(numel * dtype.itemsize), dtype, numel, what)
    return storages[root]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored) -> torch.Tensor:
    # *_ignored: requires_grad, backward_hooks and metadata of _rebuild_tensor_v2/_v3; none matter for weights.
    if not isinstance(storage, torch.Tensor) or storage.dim() != 1:
        raise UnsafePickleError(f"a tensor must be rebuilt from a storage, got {type(storage).__name__}")
    if not (isinstance(storage_offset, int) and isinstance(size, (tuple, list)) and isinstance(stride, (tuple, list))
            and len(size) == len(stride) and all(isinstance(v, int) for v in (*size, *stride))):
        raise UnsafePickleError("a tensor's offset, size and stride must be integers, one stride per dimension")
    if storage_offset < 0 or any(v < 0 for v in (*size, *stride)):
        raise FileLimitError(f"a tensor has a negative offset, size or stride "
                             f"({storage_offset}, {list(size)}, {list(stride)})")
    # The last element the view reaches must lie inside the storage, or torch would grow the storage to fit; and
    # a view may not claim more elements than its storage holds (zero or overlapping strides), which no saved
    # weights do and which would multiply memory in whatever copies the tensor.
    if all(size) and storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel():
        raise FileLimitError(f"a tensor of shape {list(size)} reaches past the end of its storage of "
                             f"{storage.numel():,} elements")
    if math.prod(size) > storage.numel():
        raise FileLimitError(f"a tensor of shape {list(size)} claims more elements than its storage of "
                             f"{storage.numel():,} holds")
    return storage.as_strided(tuple(size), tuple(stride), storage_offset)


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


class _CheckedArray(np.ndarray):
    """A numpy array whose pickled state is checked before numpy allocates it. numpy itself compares raw bytes
    with the shape first, but allocates an object array (whose elements come as a list) for whatever shape the
    state claims before it looks at the list."""

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[1], tuple)
                and isinstance(state[2], np.dtype) and all(isinstance(n, int) and n >= 0 for n in state[1])):
            raise UnsafePickleError("a numpy array's state must be (version, shape, dtype, fortran, data)")
        shape, dtype, data = state[1], state[2], state[4]
        if dtype.hasobject and (not isinstance(data, list) or math.prod(shape) > len(data)):
            raise FileLimitError(f"an object array of shape {list(shape)} claims more elements than it holds")
        super().__setstate__(state)


def _reconstruct_array(subtype, shape, dtype):
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"only plain numpy arrays are allowed, not {subtype!r}")
    return _np_reconstruct(_CheckedArray, (0,), dtype)


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


def _bytearray(data=b"", encoding="latin1"):
    # Protocol 2-4 pickle a bytearray as bytearray(str, 'latin-1'). bytearray(n) would allocate n bytes the file
    # only claims, so only the copying forms are allowed.
    if isinstance(data, str):
        return bytearray(_latin1_bytes(data, encoding))
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError(f"bytearray is only allowed from bytes or a latin-1 string, not {type(data).__name__}")
    return bytearray(data)


BASIC_GLOBALS: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.bytearray": _bytearray,
    "__builtin__.set": set,
    "_codecs.encode": _latin1_bytes,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler whose find_class consults `allow` ("module.name" -> object) and refuses everything else.

    `what` names the file in error messages, e.g. "network.pkl". `fallback(module, name)`, when given, answers the
    names not on the list instead of refusing them; it must return something inert, such as a placeholder class
    that only records its arguments. `persistent(pid)` resolves persistent ids; without it they are refused.
    """

    def __init__(self, file: BinaryIO, allow: Mapping[str, Any], *, what: str = "this pickle",
                 fallback: Callable[[str, str], Any] | None = None, persistent: Callable[[Any], Any] | None = None):
        super().__init__(file, encoding="latin1")   # latin1: numpy arrays in old pickles carry raw 8-bit strings
        self._allow = dict(allow)
        self._what = what
        self._fallback = fallback
        self._persistent = persistent

    def find_class(self, module: str, name: str) -> Any:
        key = f"{module}.{name}"
        if key in self._allow:
            return self._allow[key]
        if self._fallback is not None:
            return self._fallback(module, name)
        raise UnsafePickleError(
            f"refusing to load {self._what}: it asks for {key}, which is not on the allowlist "
            f"(nothing from the file was run)")

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafePickleError(f"refusing to load {self._what}: it uses persistent ids, which no supported "
                                    "format has")
        return self._persistent(pid)


# --- claims checked before unpickling --------------------------------------------------------------------------------
# pickle allocates what a length prefix claims before it reads the bytes (BINBYTES8, FRAME, ...), and builds whatever
# object graph the stream describes, however deep, and however often a shared object is referenced. So before the
# real unpickler runs, check_pickle walks the opcodes once and builds nothing: every length is compared with the
# bytes left in the file (and then skipped with seek, not read), and a simulated stack and memo, holding per entry
# [depth, objects], give the nesting depth and the count of objects in the graph with every shared reference counted
# as a copy, which is what any code that walks the result pays.

_MODIFIERS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}     # fill the object below them
_MEMO_GET = {"GET", "BINGET", "LONG_BINGET"}
_MEMO_PUT = {"PUT", "BINPUT", "LONG_BINPUT"}
_LENGTH_BYTES = {pickletools.TAKEN_FROM_ARGUMENT1: 1, pickletools.TAKEN_FROM_ARGUMENT4: 4,
                 pickletools.TAKEN_FROM_ARGUMENT4U: 4, pickletools.TAKEN_FROM_ARGUMENT8U: 8}


def _opcode_table() -> dict[int, tuple]:
    """opcode byte -> (name, argument length or kind, argument name, items popped below any mark, pops to a mark)."""
    table = {}
    for op in pickletools.opcodes:
        before = [s.name for s in op.stack_before]
        fixed = before.index("mark") if "mark" in before else len(before)
        table[ord(op.code)] = (op.name, op.arg.n if op.arg else 0, op.arg.name if op.arg else "", fixed,
                               "mark" in before)
    return table


_OPCODES = _opcode_table()
_CUT_SHORT = "ends before its pickle does (cut short: an interrupted download or copy?)"


def check_pickle(file: BinaryIO, *, what: str = "this pickle", max_depth: int = MAX_DEPTH,
                 max_objects: int = MAX_OBJECTS) -> None:
    """Walk one pickle in `file` (seekable; left just after its STOP) without building anything. Raise
    FileLimitError for a length past the end of the file, nesting deeper than max_depth, or more than max_objects
    objects; StyleGANError for a stream that is cut short or is not a pickle."""
    start = file.tell()
    size = file.seek(0, io.SEEK_END)
    file.seek(start)
    mark: list = []                     # stands for MARK on the simulated stack (compared by identity)
    stack: list = []
    memo: dict[int, list] = {}

    def fail(reason: str, cls: type = StyleGANError):
        raise cls(f"{what} {reason}")

    def pop() -> list:
        if not stack or stack[-1] is mark:
            fail("is not a readable pickle (its stack runs empty: damaged or forged)")
        return stack.pop()

    while True:
        code = file.read(1)
        if not code:
            fail(_CUT_SHORT)
        if code[0] not in _OPCODES:
            fail(f"is not a readable pickle (unknown opcode 0x{code[0]:02x} at byte {file.tell() - 1})")
        name, n, arg_name, fixed, to_mark = _OPCODES[code[0]]
        value = None
        if n > 0:
            raw = file.read(n)
            if len(raw) < n:
                fail(_CUT_SHORT)
            value = int.from_bytes(raw, "little", signed=arg_name == "int4")
        elif n == pickletools.UP_TO_NEWLINE:
            lines = [file.readline() for _ in range(2 if arg_name == "stringnl_noescape_pair" else 1)]
            if not all(line.endswith(b"\n") for line in lines):
                fail(_CUT_SHORT)
            if name in _MEMO_GET or name in _MEMO_PUT:
                try:
                    value = int(lines[0])
                except ValueError:
                    fail("is not a readable pickle (a memo index is not a number)")
        elif n in _LENGTH_BYTES:
            raw = file.read(_LENGTH_BYTES[n])
            length = int.from_bytes(raw, "little", signed=n == pickletools.TAKEN_FROM_ARGUMENT4)
            left = size - file.tell()
            if len(raw) < _LENGTH_BYTES[n]:
                fail(_CUT_SHORT)
            if length < 0 or length > left:
                fail(f"claims {length:,} bytes at byte {file.tell()} but has only {left:,} left (damaged or forged)",
                     FileLimitError)
            file.seek(length, io.SEEK_CUR)

        if name == "STOP":
            pop()
            return
        if name == "FRAME":
            if value > size - file.tell():
                fail(f"claims a frame of {value:,} bytes but has only {size - file.tell():,} left (damaged or forged)",
                     FileLimitError)
            continue
        if name == "PROTO":
            continue
        if name == "MARK":
            stack.append(mark)
            continue
        if name in ("NEXT_BUFFER", "READONLY_BUFFER"):
            fail("is not a readable pickle (it uses out-of-band buffers)", UnsafePickleError)
        if name in _MEMO_PUT or name == "MEMOIZE":
            if not stack or stack[-1] is mark:
                fail("is not a readable pickle (it memoizes nothing)")
            memo[len(memo) if name == "MEMOIZE" else value] = stack[-1]
            continue
        if name in _MEMO_GET:
            if value not in memo:
                fail(f"is not a readable pickle (it refers to memo entry {value}, which it never stored)")
            stack.append(memo[value])
            continue
        if name == "DUP":
            stack.append(stack[-1] if stack else pop())
            continue
        if name == "POP" and stack and stack[-1] is mark:
            stack.pop()
            continue

        children = []
        if to_mark:
            while stack and stack[-1] is not mark:
                children.append(stack.pop())
            if not stack:
                fail("is not a readable pickle (an opcode needs a MARK that is not there: damaged or forged)")
            stack.pop()
        children += [pop() for _ in range(fixed)]
        if name in ("POP", "POP_MARK"):
            continue
        if name in _MODIFIERS:
            entry = children.pop()              # the deepest one: the list, dict, set or object being filled
            if children:
                entry[0] = max(entry[0], 1 + max(c[0] for c in children))
                entry[1] += sum(c[1] for c in children)
        else:
            entry = [1 + max((c[0] for c in children), default=0), 1 + sum(c[1] for c in children)]
        if entry[0] > max_depth:
            fail(f"nests its objects more than {max_depth} deep (damaged or forged)", FileLimitError)
        if entry[1] > max_objects:
            fail(f"builds more than {max_objects:,} objects once its shared references are counted "
                 "(a 'billion laughs' file: damaged or forged)", FileLimitError)
        stack.append(entry)


def restricted_load(file: BinaryIO, allow: Mapping[str, Any], *, what: str = "this pickle",
                    fallback: Callable[[str, str], Any] | None = None,
                    persistent: Callable[[Any], Any] | None = None) -> Any:
    """Unpickle one pickle from `file` (seekable) with only the globals in `allow`, once check_pickle has passed it.

    Every failure is a StyleGANError in one line that names `what`: UnsafePickleError for a refused global,
    FileLimitError for a claim beyond the file or the limits (io/limits.py)."""
    start = file.tell()
    check_pickle(file, what=what)
    file.seek(start)
    try:
        return RestrictedUnpickler(file, allow, what=what, fallback=fallback, persistent=persistent).load()
    except StyleGANError as exc:
        if what in str(exc):
            raise
        raise type(exc)(f"{what}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, OverflowError, MemoryError, struct.error) as exc:     # RecursionError is a RuntimeError
        raise StyleGANError(f"{what} is not a readable pickle ({type(exc).__name__}: {exc})") from None
