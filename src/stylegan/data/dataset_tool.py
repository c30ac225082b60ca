"""`stylegan dataset`: turn a folder, archive or classic dataset into a training set, and say what was skipped.

Two passes over the source. The first reads only image headers (sizes, pixel formats) and labels, so every
decision that depends on the whole set (the output size, the channel count, whether the labels match) is made,
and every error raised, before anything is written. The second decodes, converts and writes into a temporary
zip or folder next to the destination, which is renamed into place only when everything has been written.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import PIL.Image
from tqdm import tqdm

try:
    import fcntl
except ImportError:                                # Windows: no flock, so no cleanup of other runs' temporaries
    fcntl = None

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.core.files import atomic_path
from stylegan.data.bundled import is_bundled_dataset
from stylegan.data.layout import (
    LABELS_FILE, MAX_FILE_BYTES, FileTooLarge, Label, LabelFile, archive_name, is_image_name, labels_json, read_at_most)
from stylegan.data.png import encode_unfiltered
from stylegan.data.input_formats import Source, SourceItem, open_source

TRANSFORMS = ("center-crop", "center-crop-wide", "center-crop-tall")
BACKGROUNDS = {"white": 255, "black": 0}
RESIZE_FILTERS = {"lanczos": PIL.Image.Resampling.LANCZOS, "box": PIL.Image.Resampling.BOX}

# Pillow refuses to open images above twice its warning limit; we skip them at the same size, and never decode them.
MAX_PIXELS = 2 * 89_478_485

# Why an input file was left out. The summary counts files under these exact strings.
SKIP_HIDDEN = "hidden or system file"
SKIP_NOT_IMAGE = "not an image file"
SKIP_EMPTY = "empty file (0 bytes)"
SKIP_UNREADABLE = "not a readable image"
SKIP_CORRUPT = "truncated or corrupt image data"
SKIP_BOMB = "too many pixels (decompression-bomb guard)"
SKIP_TOO_LARGE = f"file over {MAX_FILE_BYTES // 2 ** 20} MiB (archive-bomb guard)"
SKIP_FORMAT = "unsupported pixel format"
SKIP_NO_CLASS = "not inside a class subfolder"
SKIP_NOT_SQUARE = "not square (use --transform to crop)"
SKIP_TOO_SMALL = "smaller than --resolution (use --allow-upscale)"

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N"}
_COLOUR_MODES = {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that turns the picture upright (values from the EXIF 2.3 specification).
_UPRIGHT = {2: PIL.Image.Transpose.FLIP_LEFT_RIGHT, 3: PIL.Image.Transpose.ROTATE_180,
            4: PIL.Image.Transpose.FLIP_TOP_BOTTOM, 5: PIL.Image.Transpose.TRANSPOSE,
            6: PIL.Image.Transpose.ROTATE_270, 7: PIL.Image.Transpose.TRANSVERSE, 8: PIL.Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert. Every field is a flag of `stylegan dataset`; validate() names the flag that is wrong."""
    resolution: tuple[int, int] | None = None   # (width, height) of the image content; None keeps the source size
    transform: str | None = None                # None (images must be square) or one of TRANSFORMS
    channels: int | None = None                 # 1 or 3; None = 3 if any source image has colour, else 1
    background: str = "white"                   # behind transparent pixels, and the bands of -wide/-tall crops
    max_images: int | None = None               # stop after writing this many
    labels_from_subfolders: bool = False        # class = first-level subfolder, classes sorted by name
    resize_filter: str = "lanczos"              # lanczos | box
    allow_upscale: bool = False                 # enlarge images smaller than the resolution instead of skipping
    compress_level: int = 0                     # PNG zlib level; 0 decodes fastest in training, 9 is smallest
    max_pixels: int = MAX_PIXELS                # larger images are skipped unread
    max_file_bytes: int = MAX_FILE_BYTES        # larger files (or archive members, unpacked) are skipped unread
    overwrite: bool = False                     # replace an existing destination

    def validate(self) -> None:
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise UsageError(f"--transform: unknown '{self.transform}'; choose one of {', '.join(TRANSFORMS)}")
        if self.channels not in (None, 1, 3):
            raise UsageError(f"--channels: got {self.channels}; use 1 (grayscale) or 3 (RGB)")
        if self.background not in BACKGROUNDS:
            raise UsageError(f"--background: unknown '{self.background}'; choose one of {', '.join(BACKGROUNDS)}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise UsageError(f"--resize-filter: unknown '{self.resize_filter}'; "
                             f"choose one of {', '.join(RESIZE_FILTERS)}")
        if self.max_images is not None and self.max_images < 1:
            raise UsageError(f"--max-images: got {self.max_images}; give a positive number")
        if not 0 <= self.compress_level <= 9:
            raise UsageError(f"--compress-level: got {self.compress_level}; use 0 (fastest to read) to 9 (smallest)")
        if self.resolution is None:
            if self.transform is not None:
                raise UsageError(f"--transform {self.transform} needs --resolution WxH, the size to crop to")
            return
        w, h = self.resolution
        if w < 1 or h < 1:
            raise UsageError(f"--resolution: {w}x{h} is empty; give a size such as 256x256")
        if self.transform in (None, "center-crop") and w != h:
            raise UsageError(f"--resolution {w}x{h} is not square; StyleGAN needs square images "
                             "(use --transform center-crop-wide or center-crop-tall to pad wide or tall content)")
        if self.transform == "center-crop-wide" and w < h:
            raise UsageError(f"--transform center-crop-wide needs width >= height, got --resolution {w}x{h}")
        if self.transform == "center-crop-tall" and h < w:
            raise UsageError(f"--transform center-crop-tall needs height >= width, got --resolution {w}x{h}")
        side = max(w, h)
        if side & (side - 1):
            lo = 1 << (side.bit_length() - 1)
            raise UsageError(f"--resolution {w}x{h}: StyleGAN needs a power-of-two size; try {lo} or {2 * lo}")


def parse_resolution(text: str) -> tuple[int, int]:
    """'256x256' or '256' -> (256, 256); 'WxH' for the wide and tall crops."""
    parts = str(text).lower().replace(",", "x").split("x")
    try:
        if len(parts) == 1:
            return int(parts[0]), int(parts[0])
        if len(parts) == 2:
            return int(parts[0]), int(parts[1])
    except ValueError:
        pass
    raise UsageError(f"--resolution: cannot read '{text}'; write WxH such as 256x256")


@dataclass
class ConversionSummary:
    """What convert_dataset wrote and what it left out, and why."""
    source: str
    source_kind: str
    dest: str
    written: int
    resolution: int                             # side of the stored square images
    content: tuple[int, int]                    # (width, height) of the picture inside them (-wide/-tall pad it)
    channels: int
    label_dim: int                              # number of classes, or the length of label vectors; 0 = no labels
    onehot: bool                                # labels are class indices (True) or vectors of numbers (False)
    class_names: list[str] | None
    output_bytes: int
    skipped: dict[str, list[str]] = field(default_factory=dict)     # reason -> skipped names, in source order
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return self.label_dim if self.onehot else 0

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def format(self, list_all: bool = False, examples: int = 3) -> str:
        """The report the CLI prints; `list_all` lists every skipped file instead of a few examples."""
        mode = {1: "grayscale", 3: "RGB"}[self.channels]
        if self.label_dim == 0:
            labels = "no labels"
        elif self.onehot:
            labels = _plural(self.label_dim, "class", "classes")
        else:
            labels = f"label vectors of {self.label_dim} numbers"
        size = f"{self.resolution}x{self.resolution}"
        if self.content != (self.resolution, self.resolution):
            size += f" ({self.content[0]}x{self.content[1]} content, padded)"
        lines = [f"Wrote {_plural(self.written, 'image')} to {self.dest} ({_human_bytes(self.output_bytes)})",
                 f"  {size}, {self.channels} channel{'s' if self.channels > 1 else ''} ({mode}), {labels}",
                 f"  source: {self.source} ({self.source_kind})"]
        if self.skipped:
            lines.append(f"  skipped {self.num_skipped:,}:")
            for reason, names in sorted(self.skipped.items(), key=lambda kv: -len(kv[1])):
                shown = names if list_all else names[:examples]
                more = "" if len(shown) == len(names) else ", ... (--list-skipped shows all)"
                lines.append(f"    {len(names):>7,}  {reason}: {', '.join(shown)}{more}")
        else:
            lines.append("  skipped nothing")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _Candidate:
    """An image that passed the header checks in the first pass."""
    position: int                               # index in source.items(), to find it again in the second pass
    name: str
    width: int                                  # after EXIF rotation
    height: int
    colour: bool
    orientation: int = 1                        # EXIF orientation; 1 is upright
    label: Label | None = None


class _Skips:
    def __init__(self):
        self.by_reason: dict[str, list[str]] = {}

    def add(self, reason: str, name: str) -> None:
        self.by_reason.setdefault(reason, []).append(name)

    def describe(self) -> str:
        return ", ".join(f"{len(v):,} {k}" for k, v in sorted(self.by_reason.items(), key=lambda kv: -len(kv[1])))


def convert_dataset(source: str | os.PathLike, dest: str | os.PathLike, options: ConvertOptions | None = None,
                    progress: bool = False) -> ConversionSummary:
    """Convert `source` into a dataset at `dest` (a .zip or a folder) in NVIDIA's dataset_tool layout.

    Raises StyleGANError (UsageError for bad options) before anything is written when the input cannot make a
    dataset; files that cannot be used are skipped and listed in the returned summary.
    """
    opts = options or ConvertOptions()
    opts.validate()
    dest = Path(dest)
    src = open_source(source, opts.max_file_bytes)
    _check_dest(dest, src, opts.overwrite)
    stale = remove_stale_temporaries(dest)
    if opts.labels_from_subfolders and src.has_builtin_labels:
        raise UsageError(f"--labels-from-subfolders: a {src.kind} source carries its own labels; leave the flag out")

    skips = _Skips()
    notes = list(src.notes)
    if stale:
        notes.append(f"removed {_plural(len(stale), 'temporary', 'temporaries')} that an interrupted run left "
                     f"beside --dest: {', '.join(stale[:3])}{', ...' if len(stale) > 3 else ''}")
    cands, all_names, label_bytes = _scan(src, opts, skips, progress)
    if opts.labels_from_subfolders:
        for c in cands:
            if "/" not in c.name:
                skips.add(SKIP_NO_CLASS, c.name)
        cands = [c for c in cands if "/" in c.name]
    if not cands:
        found = f" (looked at: {skips.describe()})" if skips.by_reason else ""
        raise StyleGANError(f"--source {source}: found no usable images{found}")
    content, cands = _plan_size(cands, opts, skips, str(source))
    label_dim, class_names, onehot = _assign_labels(cands, src, opts, label_bytes, all_names, notes)

    channels = opts.channels or (3 if any(c.colour for c in cands) else 1)
    side = max(content)
    stats: Counter[str] = Counter()
    written: list[tuple[str, Label | None]] = []
    wanted = {c.position: c for c in cands}
    total = len(cands) if opts.max_images is None else min(len(cands), opts.max_images)
    with _DatasetWriter(dest) as writer, \
            tqdm(total=total, desc="converting", unit="img", disable=not progress, leave=False) as bar:
        for position, item in enumerate(src.items()):
            cand = wanted.get(position)
            if cand is None:
                continue
            if len(written) == total:
                break
            if item.name != cand.name:
                raise StyleGANError(f"--source {source} changed while it was being converted; run again")
            try:
                img = _convert_image(item, cand, content, channels, opts, stats)
            except _Skip as skip:
                skips.add(skip.reason, cand.name)
                continue
            name = archive_name(len(written))
            writer.write(name, _encode_png(img, opts.compress_level))
            written.append((name, cand.label))
            bar.update(1)
        if not written:
            raise StyleGANError(f"--source {source}: none of the images could be converted ({skips.describe()})")
        writer.write(LABELS_FILE, labels_json(written if label_dim else None, class_names))

    notes += _conversion_notes(stats, opts)
    return ConversionSummary(
        source=str(source), source_kind=src.kind, dest=str(dest), written=len(written), resolution=side,
        content=content, channels=channels, label_dim=label_dim, class_names=class_names,
        onehot=onehot, output_bytes=_size_on_disk(dest), skipped=skips.by_reason, notes=notes)


def _check_dest(dest: Path, src: Source, overwrite: bool) -> None:
    if dest.suffix.lower() in {".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar"}:
        raise UsageError(f"--dest {dest}: write a .zip or a folder; other archive kinds are not written")
    src_path, dest_path = src.path.resolve(), dest.resolve()
    if src_path == dest_path or dest_path in src_path.parents:
        raise UsageError(f"--dest {dest} holds the source; pick a destination outside it")
    if src.kind == "folder" and src_path in dest_path.parents:
        raise UsageError(f"--dest {dest} is inside the source folder; pick a destination outside it")
    if not (dest.exists() or dest.is_symlink()):
        return
    if not overwrite:
        raise UsageError(f"--dest {dest} already exists; pass --overwrite to replace it, or pick another name")
    if dest.is_dir() == (dest.suffix.lower() == ".zip"):
        what = "a folder" if dest.is_dir() else "a file"
        raise UsageError(f"--dest {dest} exists and is {what}, so it cannot be replaced by "
                         f"{'a zip' if dest.is_dir() else 'a folder'}; remove it first")


def _scan(src: Source, opts: ConvertOptions, skips: _Skips, progress: bool
          ) -> tuple[list[_Candidate], set[str], bytes | None]:
    """First pass: read headers only. Returns the candidates, every name seen, and the root dataset.json bytes."""
    cands: list[_Candidate] = []
    names: set[str] = set()
    label_bytes = None
    with tqdm(desc="scanning", unit=" files", disable=not progress, leave=False) as bar:
        for position, item in enumerate(src.items()):
            bar.update(1)
            names.add(item.name)
            if item.name == LABELS_FILE and item.array is None:
                try:
                    with item.open() as f:
                        label_bytes = read_at_most(f, opts.max_file_bytes)
                except FileTooLarge as exc:
                    raise StyleGANError(f"--source {src.path}: its {LABELS_FILE} {exc}, too much for a label file; "
                                        "fix it, or remove it to convert without labels") from None
                continue
            try:
                cands.append(_probe(position, item, opts))
            except _Skip as skip:
                skips.add(skip.reason, item.name)
    return cands, names, label_bytes


class _Skip(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _probe(position: int, item: SourceItem, opts: ConvertOptions) -> _Candidate:
    if item.array is not None:
        h, w = item.array.shape[:2]
        return _Candidate(position, item.name, w, h, colour=item.array.ndim == 3, label=item.label)
    base = item.name.rsplit("/", 1)[-1]
    if base.startswith(".") or item.name.startswith("__MACOSX/"):
        raise _Skip(SKIP_HIDDEN)
    if not is_image_name(item.name):
        raise _Skip(SKIP_NOT_IMAGE)
    if item.nbytes == 0:
        raise _Skip(SKIP_EMPTY)
    if item.nbytes > opts.max_file_bytes:
        raise _Skip(SKIP_TOO_LARGE)
    with _open_image(item) as img:
        w, h = img.size
        if w * h > opts.max_pixels:
            raise _Skip(SKIP_BOMB)
        if img.mode not in _GRAY_MODES | _COLOUR_MODES:
            raise _Skip(SKIP_FORMAT)
        orientation = _orientation(img)
        if orientation in (5, 6, 7, 8):                 # these orientations turn the picture by 90 degrees
            w, h = h, w
        return _Candidate(position, item.name, w, h, colour=img.mode in _COLOUR_MODES, orientation=orientation)


def _orientation(img: PIL.Image.Image) -> int:
    """EXIF orientation from the header. Only where it is in the header: for a PNG, Pillow would decode the
    whole image to look for it after the pixels."""
    if "exif" not in img.info and img.format != "TIFF":
        return 1
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block only means no rotation
        return 1
    return value if value in _UPRIGHT else 1


@contextlib.contextmanager
def _open_image(item: SourceItem) -> Iterator[PIL.Image.Image]:
    """Open lazily (header only) and classify failures as skip reasons; Pillow's own warnings are ours to report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            stream = item.open()
        except FileTooLarge:                            # an archive member that unpacks to more than its header said
            raise _Skip(SKIP_TOO_LARGE) from None
        except Exception:
            raise _Skip(SKIP_UNREADABLE) from None
        with stream:
            try:
                img = PIL.Image.open(stream)
            except PIL.Image.DecompressionBombError:
                raise _Skip(SKIP_BOMB) from None
            except Exception:  # Pillow raises many kinds (OSError, SyntaxError, ValueError ...) for bad files
                raise _Skip(SKIP_UNREADABLE) from None
            with img:
                yield img


def _plan_size(cands: list[_Candidate], opts: ConvertOptions, skips: _Skips, source: str
               ) -> tuple[tuple[int, int], list[_Candidate]]:
    """Decide the content size (width, height) and drop the images that cannot be brought to it."""
    kept = []
    for c in cands:
        if opts.transform is None and c.width != c.height:
            skips.add(SKIP_NOT_SQUARE, c.name)
        else:
            kept.append(c)
    if not kept:
        c = cands[0]
        raise StyleGANError(f"none of the {len(cands):,} images is square (e.g. '{c.name}' is {c.width}x{c.height}); "
                            "pass --transform center-crop --resolution WxH to crop them")
    if opts.resolution is None:
        sizes = Counter(c.width for c in kept)
        if len(sizes) > 1:
            listed = ", ".join(f"{s}x{s} ({n:,})" for s, n in sizes.most_common(4))
            raise StyleGANError(f"the images have {len(sizes)} different sizes: {listed}; "
                                "pass --resolution WxH to resize them all to one size")
        side = kept[0].width
        if side & (side - 1):
            lo = 1 << (side.bit_length() - 1)
            raise StyleGANError(f"the images are {side}x{side}; StyleGAN needs a power-of-two size: "
                                f"pass --resolution {lo}x{lo} or {2 * lo}x{2 * lo}")
        return (side, side), kept
    out_w, out_h = opts.resolution
    fitting = []
    for c in kept:
        _, _, bw, bh = center_box(c.width, c.height, out_w, out_h)
        if (bw < out_w or bh < out_h) and not opts.allow_upscale:
            skips.add(SKIP_TOO_SMALL, c.name)
        else:
            fitting.append(c)
    if not fitting:
        raise StyleGANError(f"--source {source}: every image is smaller than {out_w}x{out_h} "
                            f"({skips.describe()}); pass --allow-upscale to enlarge them, or a smaller --resolution")
    return (out_w, out_h), fitting


def center_box(width: int, height: int, aspect_w: int, aspect_h: int) -> tuple[int, int, int, int]:
    """(left, top, box_width, box_height) of the largest centred box with aspect aspect_w:aspect_h."""
    if width * aspect_h > height * aspect_w:            # wider than wanted: keep the full height
        bw, bh = min(width, round(height * aspect_w / aspect_h)), height
    else:
        bw, bh = width, min(height, round(width * aspect_h / aspect_w))
    return (width - bw) // 2, (height - bh) // 2, bw, bh


def _assign_labels(cands: list[_Candidate], src: Source, opts: ConvertOptions, label_bytes: bytes | None,
                   all_names: set[str], notes: list[str]) -> tuple[int, list[str] | None, bool]:
    """Set each candidate's label. Returns (label_dim, class_names, labels are class indices)."""
    if opts.labels_from_subfolders:
        if label_bytes is not None:
            notes.append(f"ignored the source's {LABELS_FILE}: --labels-from-subfolders gives the labels")
        class_names = sorted({c.name.split("/", 1)[0] for c in cands})
        index = {n: i for i, n in enumerate(class_names)}
        for c in cands:
            c.label = index[c.name.split("/", 1)[0]]
        return len(class_names), class_names, True
    if src.has_builtin_labels:
        dim = len(src.class_names) if src.class_names else max(c.label for c in cands) + 1
        return dim, src.class_names, True
    if label_bytes is None:
        return 0, None, True
    where = (f"the {src.kind} dataset's {LABELS_FILE}" if is_bundled_dataset(src.kind)
             else f"{LABELS_FILE} in {src.path}")
    parsed = LabelFile.parse(label_bytes, where)
    if parsed.labels is None:
        return 0, None, True
    missing = [c.name for c in cands if c.name not in parsed.labels]
    if missing:
        raise StyleGANError(f"{where} has no label for {len(missing):,} of the {len(cands):,} images "
                            f"(e.g. '{missing[0]}'); add them, or remove {LABELS_FILE} to convert without labels")
    unknown = sorted(n for n in parsed.labels if n not in all_names)
    if unknown:
        raise StyleGANError(f"{where} labels {len(unknown):,} files that are not in the source (e.g. '{unknown[0]}'); "
                            "the names must be paths relative to the source root, like 'cats/001.jpg'")
    for c in cands:
        c.label = parsed.labels[c.name]
    if parsed.is_onehot:
        dim = len(parsed.class_names) if parsed.class_names else max(c.label for c in cands) + 1
        return dim, parsed.class_names, True
    return len(cands[0].label), parsed.class_names, False


def _convert_image(item: SourceItem, cand: _Candidate, content: tuple[int, int], channels: int,
                   opts: ConvertOptions, stats: Counter) -> PIL.Image.Image:
    """Decode, flatten to `channels`, crop and resize to `content`, pad to a square. Raises _Skip."""
    background = BACKGROUNDS[opts.background]
    if item.array is not None:
        img = PIL.Image.fromarray(item.array)
    else:
        with _open_image(item) as lazy:
            try:
                lazy.load()
                img = lazy.transpose(_UPRIGHT[cand.orientation]) if cand.orientation in _UPRIGHT else lazy.copy()
            except PIL.Image.DecompressionBombError:
                raise _Skip(SKIP_BOMB) from None
            except Exception:
                raise _Skip(SKIP_CORRUPT) from None
    if img.size != (cand.width, cand.height):
        raise _Skip(SKIP_CORRUPT)                       # the pixel data disagrees with the header we planned with
    stats["rotated"] += cand.orientation in _UPRIGHT
    img = _flatten(img, channels, background, stats)
    out_w, out_h = content
    left, top, bw, bh = center_box(img.width, img.height, out_w, out_h)
    stats["cropped"] += (bw, bh) != img.size
    if (bw, bh) == (out_w, out_h):
        img = img.crop((left, top, left + bw, top + bh))
    else:
        stats["upscaled"] += bw < out_w or bh < out_h
        img = img.resize((out_w, out_h), RESIZE_FILTERS[opts.resize_filter], box=(left, top, left + bw, top + bh))
    side = max(out_w, out_h)
    if (out_w, out_h) != (side, side):
        canvas = PIL.Image.new(img.mode, (side, side), (background,) * channels if channels > 1 else background)
        canvas.paste(img, ((side - out_w) // 2, (side - out_h) // 2))
        img = canvas
    return img


def _flatten(img: PIL.Image.Image, channels: int, background: int, stats: Counter) -> PIL.Image.Image:
    """Bring any supported pixel format to 8-bit L (channels=1) or RGB (channels=3)."""
    if img.mode.startswith("I"):
        # 16-bit grayscale (PNG, TIFF) holds 0..65535; 65535 / 257 = 255 maps the range exactly onto 8 bits.
        arr = np.asarray(img).astype(np.float64)
        img = PIL.Image.fromarray(np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8), "L")
    elif img.mode not in _GRAY_MODES | _COLOUR_MODES:
        raise _Skip(SKIP_FORMAT)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = PIL.Image.new("RGBA", rgba.size, (background, background, background, 255))
        canvas.alpha_composite(rgba)
        stats["composited"] += 1
        img = canvas.convert("RGB") if img.mode not in _GRAY_MODES else canvas.convert("L")
    target = "L" if channels == 1 else "RGB"
    if img.mode != target:
        stats["to_gray" if channels == 1 and img.mode not in _GRAY_MODES else
              "to_rgb" if channels == 3 and img.mode in _GRAY_MODES else "mode"] += 1
        img = img.convert(target)
    return img


# What the second pass counted -> the note the summary prints about it.
_NOTES = {
    "composited": "composited {images} with transparency on {background}",
    "to_rgb": "converted {images} from grayscale to RGB",
    "to_gray": "converted {images} from colour to grayscale",
    "rotated": "turned {images} upright by their EXIF orientation",
    "cropped": "center-cropped {images}",
    "upscaled": "enlarged {images} smaller than the resolution (--allow-upscale)",
}


def _conversion_notes(stats: Counter, opts: ConvertOptions) -> list[str]:
    return [text.format(images=_plural(stats[key], "image"), background=opts.background)
            for key, text in _NOTES.items() if stats[key]]


def _plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count:,} {noun if count == 1 else nouns or noun + 's'}"


def _encode_png(img: PIL.Image.Image, compress_level: int) -> bytes:
    if compress_level == 0:
        return encode_unfiltered(np.asarray(img))      # 4x faster to decode in training than Pillow's filtered rows
    buf = io.BytesIO()
    img.save(buf, format="png", compress_level=compress_level)
    return buf.getvalue()


def _size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _make_shareable(path: Path, mode: int) -> None:
    """Temporary files are private (0600/0700); a dataset gets the permissions the user's umask gives new files."""
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def _writing(dest: Path) -> Iterator[None]:
    """Turn a failure to write the destination (full disk, read-only or missing folder) into one line."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):   # EDQUOT: over a disk quota
            raise StyleGANError(f"--dest {dest}: the disk is full ({reason}); free some space or write elsewhere. "
                                "Nothing was written") from None
        raise StyleGANError(f"--dest {dest}: cannot write there ({reason}); pick a writable destination. "
                            "Nothing was written") from None


def _temporary_name(dest: Path) -> re.Pattern:
    """The names of the temporaries a run writing `dest` makes beside it: `.NAME.<8 random>.tmp[.zip]` (the new
    zip or folder) and `.NAME.<8 random>.old` (a replaced folder on its way out); mkstemp's random part is 8 of
    [a-z0-9_]."""
    return re.compile(rf"\.{re.escape(dest.name)}\.[a-z0-9_]{{8}}\.(tmp|old)(\.[^.]*)?")


def _lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `path` (a file or folder), or None if another process holds
    it (or there is no flock). A killed process's locks vanish with it, which is how a later run tells abandoned
    temporaries from live ones."""
    if fcntl is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_stale_temporaries(dest: str | os.PathLike) -> list[str]:
    """Delete the temporaries that a killed run (SIGKILL, power loss) left beside `dest`; a run still writing holds
    a lock on its own, so two runs never delete each other's work. Returns the names removed."""
    dest = Path(dest)
    if fcntl is None:
        return []                                   # without flock a live temporary cannot be told apart; keep all
    try:
        entries = sorted(dest.parent.iterdir())
    except OSError:
        return []
    pattern, removed = _temporary_name(dest), []
    for path in entries:
        if not pattern.fullmatch(path.name):
            continue
        try:
            fd = _lock(path)
        except OSError:
            continue
        if fd is None:
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path.name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


class _DatasetWriter:
    """Writes into a temporary zip or folder beside `dest`; renames it to `dest` on success, removes it on error.

    The temporary is locked while it is written, so that the next run to the same destination can remove it if
    this process is killed (remove_stale_temporaries). Zip entries get a fixed timestamp so the same input always
    gives a byte-identical zip. Every OSError from writing becomes a one-line StyleGANError.
    """

    def __init__(self, dest: Path):
        self.dest = dest
        self.is_zip = dest.suffix.lower() == ".zip"
        self._stack = contextlib.ExitStack()
        self._locks: list[int] = []

    def __enter__(self) -> "_DatasetWriter":
        with _writing(self.dest):
            try:
                self._enter()
            except BaseException as exc:
                self._stack.__exit__(type(exc), exc, exc.__traceback__)     # removes, never renames, the temporary
                self._unlock()
                raise
        return self

    def _enter(self) -> None:
        folder = next(p for p in (self.dest.parent, *self.dest.parent.parents) if p.exists() or p.is_symlink())
        if not folder.is_dir():                         # mkdir would only say "File exists"
            raise StyleGANError(f"--dest {self.dest}: {folder} is a file, not a folder; pick a writable destination")
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if self.is_zip:
            self._stack.callback(self._unlock)          # released only after atomic_path renamed or removed it
            tmp = self._stack.enter_context(atomic_path(self.dest))
            self._hold(tmp)
            self._stack.callback(_make_shareable, tmp, 0o666)
            self._zip = zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED)
            self._stack.callback(self._zip.close)       # closed before atomic_path renames or removes it
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent))
            self._hold(self._tmp)
            _make_shareable(self._tmp, 0o777)

    def _hold(self, path: Path) -> None:
        fd = _lock(path)
        if fd is not None:
            self._locks.append(fd)

    def _unlock(self) -> None:
        while self._locks:
            os.close(self._locks.pop())

    def write(self, name: str, data: bytes) -> None:
        with _writing(self.dest):
            if self.is_zip:
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                self._zip.writestr(info, data, compress_type=zipfile.ZIP_STORED)
            else:
                path = self._tmp / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            with _writing(self.dest):
                if self.is_zip:
                    self._stack.__exit__(exc_type, exc, tb)
                else:
                    self._finish_folder(exc_type is not None)
        finally:
            self._unlock()

    def _finish_folder(self, failed: bool) -> None:
        if failed:
            shutil.rmtree(self._tmp, ignore_errors=True)
            return
        old = None
        if self.dest.exists() or self.dest.is_symlink():
            # Move the old one aside first so `dest` is never a mix of old and new files.
            old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.", suffix=".old", dir=self.dest.parent))
            self._hold(old)
            os.replace(self.dest, old / "x")
        try:
            os.replace(self._tmp, self.dest)
        except OSError:
            shutil.rmtree(self._tmp, ignore_errors=True)
            if old is not None:
                os.replace(old / "x", self.dest)        # put the old one back
            raise
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
