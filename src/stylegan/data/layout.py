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
import posixpath
from typing import Any

import PIL.Image

from stylegan.core.errors import StyleGANError

LABELS_FILE = "dataset.json"
IMAGES_PER_FOLDER = 1000


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
            meta = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StyleGANError(f"{where} is not valid JSON ({exc}); {fix}") from None
        if not isinstance(meta, dict) or "labels" not in meta:
            raise StyleGANError(f'{where} has no "labels" entry; {fix}')
        class_names = meta.get("class_names")
        if class_names is not None and not (isinstance(class_names, list) and all(isinstance(c, str) for c in class_names)):
            raise StyleGANError(f'{where}: "class_names" must be a list of strings; {fix}')
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
            raise StyleGANError(f"{where} mixes class indices and label vectors, or vectors of different lengths; {fix}")
        if class_names is not None and kinds == {int} and labels and max(labels.values()) >= len(class_names):
            raise StyleGANError(f"{where} has class index {max(labels.values())} but only {len(class_names)} class names; {fix}")
        return cls(labels, class_names)


def _check_label(value: Any, name: str, where: str, fix: str) -> Label:
    # bool is an int in Python, but true/false in a label file is a mistake, not a class index.
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise StyleGANError(f"{where}: label of '{name}' is {value}; class indices start at 0; {fix}")
        return value
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return tuple(float(v) for v in value)
    raise StyleGANError(f"{where}: label of '{name}' is {_short(value)}; use a class index or a list of numbers; {fix}")


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def labels_json(labels: list[tuple[str, Label]] | None, class_names: list[str] | None) -> bytes:
    """Serialize dataset.json; `labels` None writes "labels": null (an unlabeled dataset)."""
    meta: dict[str, Any] = {"labels": None if labels is None else [[n, list(v) if isinstance(v, tuple) else v] for n, v in labels]}
    if class_names is not None:
        meta["class_names"] = list(class_names)
    return json.dumps(meta).encode()
