"""What `stylegan dataset --source` can read: folders, zips, tars, MNIST IDX files, the CIFAR-10 tarball, the bundled
sets.

Every source lists its files as SourceItems in a fixed order, so two passes over it see the same files. The
dataset tool makes two passes: one reads only image headers to decide sizes and channels before anything
is written, the other decodes and writes.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import re
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from stylegan.core.errors import StyleGANError
from stylegan.data.bundled import bundled_dataset_path, is_bundled_dataset
from stylegan.data.layout import MAX_FILE_BYTES, FileTooLarge, normalize_name, read_at_most

# Errors that a damaged archive or compressed stream raises while it is being read.
ARCHIVE_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile)


@dataclass
class SourceItem:
    """One file of a source. Files carry an opener for their bytes; MNIST and CIFAR carry decoded pixels."""
    name: str                                           # '/'-separated path inside the source, as dataset.json names it
    nbytes: int                                         # size of the file; 0 marks an empty file
    open: Callable[[], BinaryIO] | None = None          # a fresh binary stream of the file's bytes
    array: np.ndarray | None = None                     # [H, W] or [H, W, C] uint8 pixels
    label: int | None = None                            # class index that comes with the source itself


@dataclass
class Source:
    kind: str                                           # folder | zip | tar | mnist | cifar10, or a bundled set's name
    path: Path
    items: Callable[[], Iterator[SourceItem]]           # every file in source order; call again for another pass
    class_names: list[str] | None = None                # names that come with the source (CIFAR-10)
    has_builtin_labels: bool = False                    # items carry labels (MNIST, CIFAR-10)
    notes: list[str] = field(default_factory=list)      # what the reader decided that the user should know


def open_source(spec: str | os.PathLike, max_file_bytes: int = MAX_FILE_BYTES) -> Source:
    """Recognize what `spec` is and open it; raise StyleGANError with the accepted kinds when it is none of them.

    An archive member larger than `max_file_bytes` is never read: its item's nbytes says how large it claims to
    be, and opening it raises FileTooLarge, as does one that turns out larger than its header claimed."""
    if is_bundled_dataset(spec):
        return _zip_source(bundled_dataset_path(spec), max_file_bytes, kind=spec)
    path = Path(spec)
    if not path.exists():
        raise StyleGANError(f"--source {spec}: no such file or folder")
    if path.is_dir():
        idx_files = sorted(p for p in path.iterdir() if p.is_file() and _IDX_IMAGES.match(p.name))
        if idx_files:
            return _mnist_source(_pick_idx_file(path, idx_files), folder=path)
        return _folder_source(path)
    if _IDX_IMAGES.match(path.name):
        return _mnist_source(path)
    if zipfile.is_zipfile(path):
        return _zip_source(path, max_file_bytes)
    if _is_tar(path):
        return _tar_or_cifar_source(path, max_file_bytes)
    raise StyleGANError(
        f"--source {spec}: cannot read this kind of file; give a folder, a .zip, a .tar/.tar.gz, "
        "MNIST files (*-images-idx3-ubyte.gz) or the CIFAR-10 python tarball")


# ---------------------------------------------------------------------------------------------------------------
# Folders, zips and tars: files with names.

def _folder_source(root: Path) -> Source:
    def items() -> Iterator[SourceItem]:
        paths = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
        for p in paths:
            yield SourceItem(name=p.relative_to(root).as_posix(), nbytes=p.stat().st_size,
                             open=lambda p=p: open(p, "rb"))
    return Source(kind="folder", path=root, items=items)


def _zip_source(path: Path, max_file_bytes: int, kind: str = "zip") -> Source:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = sorted((i for i in zf.infolist() if not i.is_dir()), key=lambda i: normalize_name(i.filename))
    except ARCHIVE_ERRORS as exc:
        raise StyleGANError(f"--source {path}: the zip cannot be read ({exc}); "
                            "check the file or re-create it") from None

    def read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
        # The member is read whole: image decoders seek, and seeking in a compressed member is slow. So its size
        # is checked first, and counted while reading (zipfile stops at the declared size and checks the CRC).
        if info.file_size > max_file_bytes:
            raise FileTooLarge(f"unpacks to {info.file_size:,} bytes")
        with zf.open(info) as member:
            return io.BytesIO(read_at_most(member, max_file_bytes))

    def items() -> Iterator[SourceItem]:
        with zipfile.ZipFile(path) as zf:
            for info in infos:
                yield SourceItem(name=normalize_name(info.filename), nbytes=info.file_size,
                                 open=lambda info=info: read(zf, info))
    return Source(kind=kind, path=path, items=items)


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except ARCHIVE_ERRORS:
        return False


def _tar_or_cifar_source(path: Path, max_file_bytes: int) -> Source:
    try:
        with tarfile.open(path, "r:*") as tar:
            first = tar.next()
    except ARCHIVE_ERRORS as exc:
        raise StyleGANError(f"--source {path}: the tar cannot be read ({exc}); "
                            "check the file or re-create it") from None
    if first is not None and normalize_name(first.name).startswith(_CIFAR_DIR):
        return _cifar10_source(path, max_file_bytes)

    def items() -> Iterator[SourceItem]:
        # Members come in the order they are stored: a compressed tar can only be read front to back.
        with _reading(path, "tar"), tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.size > max_file_bytes:            # left unread: the next member starts after it
                    yield SourceItem(name=normalize_name(member.name), nbytes=member.size,
                                     open=lambda size=member.size: _too_large(size))
                    continue
                data = read_at_most(tar.extractfile(member), max_file_bytes)
                yield SourceItem(name=normalize_name(member.name), nbytes=len(data),
                                 open=lambda data=data: io.BytesIO(data))
    return Source(kind="tar", path=path, items=items)


def _too_large(size: int) -> BinaryIO:
    raise FileTooLarge(f"holds {size:,} bytes")


@contextlib.contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Turn a damaged-archive error raised mid-read into a one-line StyleGANError."""
    try:
        yield
    except ARCHIVE_ERRORS as exc:
        raise StyleGANError(f"--source {path}: the {what} is damaged ({exc}); check the file or re-create it") from None


# ---------------------------------------------------------------------------------------------------------------
# MNIST-style IDX files: train-images-idx3-ubyte.gz with train-labels-idx1-ubyte.gz beside it.

MAX_IDX_BYTES = 2 ** 30               # EMNIST's largest file unpacks to 550 MB, MNIST's to 47 MB
_IDX_IMAGES = re.compile(r"^(?P<stem>.+)-images-idx3-ubyte(?P<gz>\.gz)?$")


def _pick_idx_file(folder: Path, files: list[Path]) -> Path:
    if len(files) == 1:
        return files[0]
    train = [f for f in files if f.name.startswith("train-")]
    if len(train) == 1:
        return train[0]
    names = ", ".join(f.name for f in files)
    raise StyleGANError(f"--source {folder}: holds several IDX image files ({names}); "
                        "pass the one you want as --source")


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file (gzipped or not) of unsigned bytes with `ndim` dimensions; see LeCun's MNIST page."""
    not_idx = f"--source: {path} is not an IDX file of {ndim}-D unsigned bytes; check that it is MNIST-style data"
    try:
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as f:
            # Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each size
            # as a big-endian uint32.
            head = f.read(4 + 4 * ndim)
            if len(head) < 4 + 4 * ndim or head[:2] != b"\0\0" or head[2] != 0x08 or head[3] != ndim:
                raise StyleGANError(not_idx)
            shape = struct.unpack(f">{ndim}I", head[4:])
            size = int(np.prod(shape, dtype=np.int64))
            # The header is read before the body, so a small .gz claiming gigabytes is refused without inflating it.
            if size > MAX_IDX_BYTES:
                raise StyleGANError(f"--source: {path} claims {shape} images, {size:,} bytes, more than the "
                                    f"{MAX_IDX_BYTES // 2 ** 30} GiB an IDX file is read up to; check the file")
            body = f.read(size)
            extra = len(f.read(1))
    except ARCHIVE_ERRORS as exc:
        raise StyleGANError(f"--source: {path} cannot be read ({exc}); download it again") from None
    if len(body) != size or extra:
        held = f"{len(body)} bytes" if not extra else "more"
        raise StyleGANError(f"--source: {path} holds {held} of data but its header says {shape}; "
                            "it is truncated or damaged")
    return np.frombuffer(body, np.uint8).reshape(shape)


def _mnist_source(images_path: Path, folder: Path | None = None) -> Source:
    images = read_idx(images_path, 3)                                   # [N, H, W]
    match = _IDX_IMAGES.match(images_path.name)
    labels_path = images_path.with_name(f"{match['stem']}-labels-idx1-ubyte{match['gz'] or ''}")
    notes = [f"read {images_path.name}"]
    if folder is not None:
        others = sorted(p.name for p in folder.iterdir() if _IDX_IMAGES.match(p.name) and p != images_path)
        if others:
            notes.append(f"left out {', '.join(others)} (pass it as --source to convert it)")
    labels = None
    if labels_path.is_file():
        labels = read_idx(labels_path, 1)
        if len(labels) != len(images):
            raise StyleGANError(f"--source: {labels_path.name} has {len(labels)} labels for {len(images)} images in "
                                f"{images_path.name}; the two files must come from the same set")
    else:
        notes.append(f"no {labels_path.name} beside it, so the images are written without labels")
    # MNIST digits are 28x28 on black; like NVIDIA's tool we pad with black to the next power of two (32x32).
    size = max(images.shape[1:])
    side = 1 << (size - 1).bit_length()
    top, left = (side - images.shape[1]) // 2, (side - images.shape[2]) // 2
    if side != images.shape[1] or side != images.shape[2]:
        notes.append(f"padded {images.shape[2]}x{images.shape[1]} to {side}x{side} with black")

    def items() -> Iterator[SourceItem]:
        for i in range(len(images)):
            canvas = np.zeros([side, side], np.uint8)
            canvas[top:top + images.shape[1], left:left + images.shape[2]] = images[i]
            yield SourceItem(name=f"{images_path.name}#{i:05d}", nbytes=canvas.size, array=canvas,
                             label=None if labels is None else int(labels[i]))
    return Source(kind="mnist", path=images_path, items=items, has_builtin_labels=labels is not None, notes=notes)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10, python version: cifar-10-python.tar.gz holding pickled batches.

_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_TRAIN = [f"{_CIFAR_DIR}/data_batch_{i}" for i in range(1, 6)]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a downloaded pickle must not be able to run code."""
    _reconstruct = np.zeros(1).__reduce__()[0]
    _frombuffer = np.zeros(1).__reduce_ex__(5)[0]
    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.numeric", "_frombuffer"): _frombuffer,
        ("numpy._core.numeric", "_frombuffer"): _frombuffer,
        ("_codecs", "encode"): __import__("codecs").encode,
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return self._ALLOWED[(module, name)]


def _unpickle(data: bytes) -> dict:
    obj = _ArrayUnpickler(io.BytesIO(data), encoding="latin1").load()
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError("expected a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar10_source(path: Path, max_file_bytes: int) -> Source:
    wanted = set(_CIFAR_TRAIN) | {f"{_CIFAR_DIR}/batches.meta"}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = normalize_name(member.name)
                if name in wanted and member.isfile():
                    if member.size > max_file_bytes:        # a real batch is 31 MB
                        raise FileTooLarge(f"{name} holds {member.size:,} bytes")
                    found[name] = _unpickle(read_at_most(tar.extractfile(member), max_file_bytes))
    except (*ARCHIVE_ERRORS, pickle.UnpicklingError, ValueError, KeyError, TypeError) as exc:
        raise StyleGANError(f"--source {path}: not a readable CIFAR-10 python tarball ({exc}); "
                            "download it again") from None
    missing = [n for n in _CIFAR_TRAIN if n not in found]
    if missing:
        raise StyleGANError(f"--source {path}: the CIFAR-10 tarball lacks {', '.join(missing)}; download it again")
    for n in _CIFAR_TRAIN:
        # Only an array and a flat list of ints: nested lists that share parts (a few KB of pickle) would
        # expand into gigabytes when turned into an array.
        data, labels = found[n].get("data"), found[n].get("labels")
        if not (isinstance(data, np.ndarray) and isinstance(labels, list) and all(type(v) is int for v in labels)):
            raise StyleGANError(f"--source {path}: {n} is not a CIFAR-10 batch (an array of pixels and a list of "
                                "labels); download it again")
    try:
        # Rows are 3072 bytes: the red plane, then green, then blue, each 32x32 in row-major order.
        batches = [np.asarray(found[n]["data"], np.uint8).reshape(-1, 3, 32, 32) for n in _CIFAR_TRAIN]
        labels = np.concatenate([np.asarray(found[n]["labels"], np.int64) for n in _CIFAR_TRAIN])
    except (KeyError, ValueError) as exc:
        raise StyleGANError(f"--source {path}: a CIFAR-10 batch has an unexpected layout ({exc}); "
                            "download it again") from None
    if len(labels) != sum(len(b) for b in batches):
        raise StyleGANError(f"--source {path}: the CIFAR-10 batches hold {sum(len(b) for b in batches)} images "
                            f"but {len(labels)} labels")
    images = np.concatenate(batches).transpose(0, 2, 3, 1)              # [N, 32, 32, 3]
    names = [f"{n.rsplit('/', 1)[1]}#{i:05d}" for n, b in zip(_CIFAR_TRAIN, batches) for i in range(len(b))]
    meta = found.get(f"{_CIFAR_DIR}/batches.meta", {})
    class_names = [str(n) for n in meta["label_names"]] if "label_names" in meta else None

    def items() -> Iterator[SourceItem]:
        for i in range(len(images)):
            yield SourceItem(name=names[i], nbytes=images[i].size,
                             array=images[i], label=int(labels[i]))
    return Source(kind="cifar10", path=path, items=items, class_names=class_names, has_builtin_labels=True,
                  notes=[f"read the {len(images):,} training images (test_batch is left out, as in NVIDIA's tool)"])
