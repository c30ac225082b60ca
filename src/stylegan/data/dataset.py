"""The dataset that training and metrics read: a zip or folder in NVIDIA's dataset_tool layout (see layout.py).

Images are decoded lazily, one per __getitem__. Everything that would make training fail later (sizes, channel
counts, labels that do not match) is checked when the dataset is opened, from the image headers only.
"""
from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import PIL.Image
import torch

from stylegan.core.errors import StyleGANError
from stylegan.data.bundled import bundled_dataset_path, is_bundled_dataset
from stylegan.data.layout import (
    LABELS_FILE, MAX_FILE_BYTES, FileTooLarge, LabelFile, is_image_name, normalize_name, read_at_most)
from stylegan.data.png import SIGNATURE as _PNG_SIGNATURE, decode_unfiltered

_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}         # IHDR colour type -> channels once decoded (palette -> RGB)
_MODE_CHANNELS = {"1": 1, "L": 1, "P": 3, "RGB": 3, "LA": 2, "PA": 4, "RGBA": 4, "CMYK": 4}


class ImageDataset(torch.utils.data.Dataset):
    """Images as uint8 [C, H, W] arrays and labels as float32 [label_dim] arrays (one-hot for class labels).

    The index runs over a fixed subset of the raw images (`max_size`), then, with `xflip`, over the same
    images again mirrored left to right: item i and item i + len/2 are the same picture.
    """

    def __init__(self,
                 path: str | os.PathLike,           # a .zip or folder; 'demo' or 'openmoji' is a bundled one
                 resolution: int | None = None,     # require this image size; None accepts what the data has
                 use_labels: bool = False,          # read dataset.json; False makes label_dim 0
                 xflip: bool = False,               # double the set with mirrored copies
                 max_size: int | None = None,       # keep a random subset of this many raw images (before xflip)
                 seed: int = 0,                     # picks the max_size subset
                 ):
        if is_bundled_dataset(path):
            self.path, self.name = bundled_dataset_path(path), path
        else:
            self.path = Path(path)
            self.name = self.path.stem if self.path.suffix.lower() == ".zip" else self.path.name
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid = -1
        if self.path.is_dir():
            self._is_zip = False
            names = [normalize_name(os.path.relpath(os.path.join(root, f), self.path))
                     for root, _dirs, files in os.walk(self.path) for f in files]
        elif self.path.is_file() and zipfile.is_zipfile(self.path):
            self._is_zip = True
            names = [normalize_name(i.filename) for i in self._zipfile().infolist() if not i.is_dir()]
        elif self.path.exists():
            raise StyleGANError(f"dataset {path}: not a zip or a folder; make one with "
                                f"`stylegan dataset --source YOUR_IMAGES --dest {self.path.stem}.zip`")
        else:
            raise StyleGANError(f"dataset {path}: no such file or folder")
        # The same rule as NVIDIA's loader (any extension Pillow opens, sorted by name) gives the same order.
        self._image_names = sorted(n for n in names if is_image_name(n))
        if not self._image_names:
            raise StyleGANError(f"dataset {path}: holds no images")
        self._check_sizes([*self._image_names, *([LABELS_FILE] if use_labels and LABELS_FILE in names else [])])
        self._check_images(resolution)
        no_labels = (None, 0, None)
        self._labels, self.label_dim, self.class_names = self._read_labels(set(names)) if use_labels else no_labels

        raw_count = len(self._image_names)
        self._raw_idx = np.arange(raw_count, dtype=np.int64)
        if max_size is not None and max_size < raw_count:
            self._raw_idx = np.sort(np.random.default_rng(seed).permutation(raw_count)[:max_size])
        self._xflip = np.zeros(len(self._raw_idx), dtype=bool)
        if xflip:
            self._raw_idx = np.tile(self._raw_idx, 2)
            self._xflip = np.concatenate([self._xflip, ~self._xflip])

    # ---- what training reads ----------------------------------------------------------------------------------

    @property
    def image_shape(self) -> list[int]:
        return [self.num_channels, self.resolution, self.resolution]

    @property
    def has_labels(self) -> bool:
        return self.label_dim > 0

    def __len__(self) -> int:
        return len(self._raw_idx)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        image = self._load_image(int(self._raw_idx[idx]))          # [C, H, W]
        if self._xflip[idx]:
            image = image[:, :, ::-1]
        return np.ascontiguousarray(image), self.get_label(idx)

    def get_label(self, idx: int) -> np.ndarray:
        """float32 [label_dim]: one-hot for class indices, the stored vector otherwise; empty without labels."""
        if self._labels is None:
            return np.zeros([0], dtype=np.float32)
        label = self._labels[self._raw_idx[idx]]
        if self._labels.ndim == 1:
            onehot = np.zeros([self.label_dim], dtype=np.float32)
            onehot[label] = 1
            return onehot
        return label.copy()

    def raw_name(self, idx: int) -> str:
        """The file behind item `idx` (mirrored when idx >= len/2 with xflip)."""
        return self._image_names[self._raw_idx[idx]]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        self._zip = None

    def __enter__(self) -> "ImageDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # Worker processes open their own zip handle; an open handle cannot be pickled or shared.
        return dict(self.__dict__, _zip=None, _zip_pid=-1)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, {len(self):,} items, shape={self.image_shape}, "
                f"label_dim={self.label_dim})")

    # ---- reading ------------------------------------------------------------------------------------------------

    def _zipfile(self) -> zipfile.ZipFile:
        # A zip handle shares one file offset; a forked DataLoader worker must not use its parent's.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def _read_bytes(self, name: str) -> bytes:
        try:
            with (self._zipfile().open(name) if self._is_zip else open(self.path / name, "rb")) as f:
                return read_at_most(f)
        except FileTooLarge as exc:
            raise StyleGANError(f"dataset {self.path}: '{name}' {exc}, too much for one image or label file; "
                                "re-create the dataset with `stylegan dataset`") from None

    def _load_image(self, raw_idx: int) -> np.ndarray:
        name = self._image_names[raw_idx]
        data = self._read_bytes(name)
        image = decode_unfiltered(data)
        if image is None:
            with PIL.Image.open(io.BytesIO(data)) as img:
                if img.mode == "P":
                    img = img.convert("RGB")
                image = np.asarray(img)
        if image.ndim == 2:
            image = image[:, :, np.newaxis]                         # [H, W] -> [H, W, 1]
        image = image.transpose(2, 0, 1)                            # [H, W, C] -> [C, H, W]
        if list(image.shape) != self.image_shape or image.dtype != np.uint8:
            raise StyleGANError(f"dataset {self.path}: '{name}' decodes to {list(image.shape)} {image.dtype}, "
                                f"not {self.image_shape} uint8; was the dataset changed after it was opened?")
        return image

    def _probe(self, name: str, head: bytes | None) -> tuple[int, int, int, str]:
        """(width, height, channels, what) from the header; `what` names the format for messages."""
        if head is not None:
            # PNG: 8-byte signature, then the IHDR chunk: length, 'IHDR', width, height, bit depth, colour type.
            if len(head) == 26 and head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR":
                width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
                return width, height, _PNG_CHANNELS.get(colour, 0), f"{depth}-bit PNG"
        try:
            with PIL.Image.open(io.BytesIO(self._read_bytes(name))) as img:
                return img.width, img.height, _MODE_CHANNELS.get(img.mode, 0), f"{img.mode} image"
        except Exception as exc:  # Pillow raises many kinds for a bad file
            raise StyleGANError(f"dataset {self.path}: '{name}' is not a readable image ({exc}); "
                                "re-create the dataset with `stylegan dataset`, which skips such files") from None

    def _png_heads(self, n: int) -> dict[str, bytes]:
        """The first `n` bytes of every PNG, read in one pass: opening 70k zip members one by one takes seconds."""
        names = [name for name in self._image_names if name.lower().endswith(".png")]
        heads = {}
        if not self._is_zip:
            for name in names:
                with open(self.path / name, "rb") as f:
                    heads[name] = f.read(n)
            return heads
        infos = {normalize_name(i.filename): i for i in self._zipfile().infolist()}
        with open(self.path, "rb") as f:
            for name in names:
                info = infos[name]
                if info.compress_type == zipfile.ZIP_STORED:
                    # A stored member's bytes follow its local header: 30 fixed bytes (the name and extra-field
                    # lengths at offsets 26 and 28), the name, the extra field (zip APPNOTE, section 4.3.7).
                    f.seek(info.header_offset)
                    local = f.read(30)
                    if local[:4] == b"PK\x03\x04":
                        name_len, extra_len = struct.unpack("<HH", local[26:30])
                        f.seek(info.header_offset + 30 + name_len + extra_len)
                        heads[name] = f.read(n)
                        continue
                with self._zipfile().open(info) as member:
                    heads[name] = member.read(n)
        return heads

    def _check_sizes(self, names: list[str]) -> None:
        """Refuse, at open, a file that training would refuse to read: one over MAX_FILE_BYTES (for a zip member,
        unpacked; a small zip can hold one of gigabytes)."""
        if self._is_zip:
            infos = {normalize_name(i.filename): i for i in self._zipfile().infolist()}
            sizes = ((name, infos[name].file_size) for name in names)
        else:
            sizes = ((name, os.stat(self.path / name).st_size) for name in names)
        for name, size in sizes:
            if size > MAX_FILE_BYTES:
                raise StyleGANError(f"dataset {self.path}: '{name}' unpacks to {size:,} bytes, more than the "
                                    f"{MAX_FILE_BYTES / 2 ** 20:g} MiB an image or label file may have; "
                                    "re-create the dataset with `stylegan dataset`")

    def _check_images(self, resolution: int | None) -> None:
        """Every image must have one square power-of-two size and 1 or 3 channels: what StyleGAN can train on."""
        fix = f"convert it with `stylegan dataset --source {self.path} --dest NEW.zip --resolution WxH`"
        shapes: dict[tuple[int, int, int], list[str]] = {}
        heads = self._png_heads(26)
        for name in self._image_names:
            width, height, channels, what = self._probe(name, heads.get(name))
            if channels not in (1, 3):
                raise StyleGANError(f"dataset {self.path}: '{name}' is a {what} with "
                                    f"{channels or 'an unknown number of'} channels; StyleGAN trains on 1 (grayscale) "
                                    f"or 3 (RGB); {fix}")
            if what.startswith("16-bit"):
                raise StyleGANError(f"dataset {self.path}: '{name}' is a 16-bit PNG; training reads 8-bit images; "
                                    f"{fix}")
            shapes.setdefault((width, height, channels), []).append(name)
        if len(shapes) > 1:
            listed = ", ".join(f"{w}x{h}x{c} ({len(v):,}, e.g. '{v[0]}')" for (w, h, c), v in
                               sorted(shapes.items(), key=lambda kv: -len(kv[1]))[:3])
            raise StyleGANError(f"dataset {self.path}: images differ in size or channels: {listed}; "
                                f"every image must be the same; {fix}")
        (width, height, channels), = shapes
        if width != height:
            raise StyleGANError(f"dataset {self.path}: images are {width}x{height}, not square; "
                                f"StyleGAN needs square images; {fix} --transform center-crop")
        if width & (width - 1):
            raise StyleGANError(f"dataset {self.path}: images are {width}x{height}; StyleGAN needs a power-of-two "
                                f"size; {fix}")
        if resolution is not None and resolution != width:
            raise StyleGANError(f"dataset {self.path}: images are {width}x{height}, not the {resolution}x{resolution} "
                                f"that was asked for; {fix}")
        self.resolution, self.num_channels = width, channels

    def _read_labels(self, all_names: set[str]) -> tuple[np.ndarray | None, int, list[str] | None]:
        """(labels per raw image, label_dim, class names). Class indices are int64 [N]; vectors float32 [N, D]."""
        if LABELS_FILE not in all_names:
            return None, 0, None
        where = f"{LABELS_FILE} in {self.path}"
        parsed = LabelFile.parse(self._read_bytes(LABELS_FILE), where)
        if parsed.labels is None:
            return None, 0, None
        missing = [n for n in self._image_names if n not in parsed.labels]
        if missing:
            raise StyleGANError(f"{where} has no label for {len(missing):,} of {len(self._image_names):,} images "
                                f"(e.g. '{missing[0]}'); re-create the dataset, or train without labels")
        if parsed.is_onehot:
            labels = np.array([parsed.labels[n] for n in self._image_names], dtype=np.int64)
            dim = len(parsed.class_names) if parsed.class_names else int(labels.max()) + 1
            return labels, dim, parsed.class_names
        labels = np.array([parsed.labels[n] for n in self._image_names], dtype=np.float32)
        return labels, labels.shape[1], parsed.class_names


def iterate_batches(dataset: ImageDataset, batch_size: int, *, max_items: int | None = None, rank: int = 0,
                    world_size: int = 1, num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (images uint8 [N, C, H, W], labels float32 [N, label_dim]) in index order, for metrics.

    Covers items 0 .. max_items-1 (all by default); rank r of world_size takes items r, r + world_size, ...,
    so the ranks together see each item exactly once and the result does not depend on num_workers.
    """
    count = len(dataset) if max_items is None else min(max_items, len(dataset))
    indices = list(range(rank, count, world_size))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                                         shuffle=False, num_workers=num_workers)
    yield from loader
