"""The on-disk dataset layout, shared by the reader (ImageDataset) and the writer (convert_dataset).

It is the layout of NVIDIA's dataset_tool, so datasets move freely between their tools and ours:

    00000/img00000000.png      1000 images per folder, numbered from 0 in source order
    00000/img00000001.png
    ...
    dataset.json               {"labels": [["00000/img00000000.png", 3], ...]} or {"labels": null}

A label is a class index (int) or a vector of numbers. We may add "class_names": [...] to dataset.json;
readers that only look at "labels" ignore it.
"""
from __future__ import annotations

import functools
import json
import math
import posixpath
from typing import IO, Any

import PIL.Image

from stylegan.core.errors import StyleGANError

LABELS_FILE = "dataset.json"
IMAGES_PER_FOLDER = 1000
# Conditioning embeds one input per class (or per number of a label vector), and training builds one-hot vectors of
# this length, so a label file claiming class 10^12 would ask for petabytes. ImageNet-21k has 21,841 classes.
MAX_LABEL_DIM = 65_536
# The largest image file or dataset.json read into memory. A small archive can hold a huge member (a 3 MB zip can
# inflate to gigabytes), so sizes are checked before reading and counted while reading, never trusted.
MAX_FILE_BYTES = 256 * 2 ** 20


class FileTooLarge(OSError):
    """A file or archive member holds more than the bytes we are willing to read into memory."""


def read_at_most(stream: IO[bytes], limit: int = MAX_FILE_BYTES) -> bytes:
    """The rest of `stream`, or FileTooLarge once it yields more than `limit` bytes (whatever its header said)."""
    chunks, size = [], 0
    while size <= limit:
        # In pieces: asking a plain file for limit + 1 bytes at once would allocate them all up front.
        chunk = stream.read(min(2 ** 20, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise FileTooLarge(f"holds more than {limit / 2 ** 20:g} MiB")
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def archive_name(index: int) -> str:
    """Name of the `index`-th image: 00000/img00000000.png, ..., 00001/img00001000.png, ..."""
    return f"{index // IMAGES_PER_FOLDER:05d}/img{index:08d}.png"


@functools.lru_cache(maxsize=None)
def image_extensions() -> frozenset[str]:
    """File extensions (lower case, with the dot) of the formats Pillow can open here."""
    PIL.Image.init()
    return frozenset(ext for ext, fmt in PIL.Image.registered_extensions().items() if fmt in PIL.Image.OPEN)


def is_image_name(name: str) -> bool:
    return posixpath.splitext(name)[1].lower() in image_extensions()


def normalize_name(name: str) -> str:
    """A member name as a '/'-separated relative path ('./a\\b.png' -> 'a/b.png'), the form dataset.json uses."""
    name = name.replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


Label = int | tuple[float, ...]


class LabelFile:
    """The parsed contents of a dataset.json: name -> label (or None when the file says "labels": null)."""

    def __init__(self, labels: dict[str, Label] | None, class_names: list[str] | None):
        self.labels = labels
        self.class_names = class_names

    @property
    def is_onehot(self) -> bool:
        return bool(self.labels) and isinstance(next(iter(self.labels.values())), int)

    @classmethod
    def parse(cls, data: bytes, where: str) -> "LabelFile":
        """Read and check a dataset.json; `where` names it in error messages."""
        fix = f"fix {where} or remove it to go without labels"
        try:
            meta = json.loads(data, parse_constant=_refuse_constant)
        except _NonFinite as exc:
            raise StyleGANError(f"{where} holds {exc}, which is not a number a label can have; {fix}") from None
        except RecursionError:
            raise StyleGANError(f"{where} is nested too deeply to be a label file; {fix}") from None
        except (UnicodeDecodeError, ValueError) as exc:   # ValueError also covers integers of over 4,300 digits
            raise StyleGANError(f"{where} is not valid JSON ({exc}); {fix}") from None
        if not isinstance(meta, dict) or "labels" not in meta:
            raise StyleGANError(f'{where} has no "labels" entry; {fix}')
        class_names = meta.get("class_names")
        if class_names is not None and not (isinstance(class_names, list)
                                            and all(isinstance(c, str) for c in class_names)):
            raise StyleGANError(f'{where}: "class_names" must be a list of strings; {fix}')
        if class_names is not None and len(class_names) > MAX_LABEL_DIM:
            raise StyleGANError(f'{where}: "class_names" lists {len(class_names):,} classes, more than the '
                                f"{MAX_LABEL_DIM:,} StyleGAN can condition on; {fix}")
        raw = meta["labels"]
        if raw is None:
            return cls(None, class_names)
        if not isinstance(raw, list):
            raise StyleGANError(f'{where}: "labels" must be a list of [name, label] pairs or null; {fix}')
        labels: dict[str, Label] = {}
        for pair in raw:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise StyleGANError(f"{where}: each label entry must be [name, label], got {_short(pair)}; {fix}")
            labels[normalize_name(pair[0])] = _check_label(pair[1], pair[0], where, fix)
        kinds = {type(v) for v in labels.values()}
        widths = {len(v) for v in labels.values() if isinstance(v, tuple)}
        if len(kinds) > 1 or len(widths) > 1:
            raise StyleGANError(f"{where} mixes class indices and label vectors, or vectors of different lengths; "
                                f"{fix}")
        if class_names is not None and kinds == {int} and labels and max(labels.values()) >= len(class_names):
            raise StyleGANError(f"{where} has class index {max(labels.values())} but only {len(class_names)} "
                                f"class names; {fix}")
        return cls(labels, class_names)


class _NonFinite(ValueError):
    pass


def _refuse_constant(text: str) -> float:
    # Python's json reads NaN, Infinity and -Infinity, which are not JSON; a label with them poisons training.
    raise _NonFinite(text)


def _check_label(value: Any, name: str, where: str, fix: str) -> Label:
    # bool is an int in Python, but true/false in a label file is a mistake, not a class index.
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise StyleGANError(f"{where}: label of '{name}' is {value}; class indices start at 0; {fix}")
        if value >= MAX_LABEL_DIM:
            raise StyleGANError(f"{where}: label of '{name}' is class {_short(value)}; StyleGAN conditions on at "
                                f"most {MAX_LABEL_DIM:,} classes (indices 0 to {MAX_LABEL_DIM - 1:,}); {fix}")
        return value
    numbers = isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if value and numbers:
        if len(value) > MAX_LABEL_DIM:
            raise StyleGANError(f"{where}: label of '{name}' is a vector of {len(value):,} numbers; StyleGAN "
                                f"conditions on at most {MAX_LABEL_DIM:,}; {fix}")
        # 1e999 parses as infinity, and float() of a 400-digit integer overflows: neither is a usable label.
        try:
            vector = tuple(float(v) for v in value)
        except OverflowError:
            vector = (math.inf,)
        if not all(math.isfinite(v) for v in vector):
            raise StyleGANError(f"{where}: label of '{name}' holds a number too large to be a label; {fix}")
        return vector
    raise StyleGANError(f"{where}: label of '{name}' is {_short(value)}; use a class index or a list of numbers; {fix}")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def labels_json(labels: list[tuple[str, Label]] | None, class_names: list[str] | None) -> bytes:
    """Serialize dataset.json; `labels` None writes "labels": null (an unlabeled dataset)."""
    pairs = None if labels is None else [[n, list(v) if isinstance(v, tuple) else v] for n, v in labels]
    meta: dict[str, Any] = {"labels": pairs}
    if class_names is not None:
        meta["class_names"] = list(class_names)
    return json.dumps(meta).encode()
