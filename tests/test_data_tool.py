"""`stylegan dataset`: every source kind round-trips, every kind of bad input has its outcome, crops are exact."""
from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from stylegan.cli import main as cli_main
from stylegan.core.errors import StyleGANError, UsageError
from stylegan.data import ConvertOptions, convert_dataset, demo_dataset_path
from stylegan.data import dataset_tool
from stylegan.data.dataset_tool import (SKIP_BOMB, SKIP_CORRUPT, SKIP_EMPTY, SKIP_HIDDEN, SKIP_NO_CLASS, SKIP_NOT_IMAGE,
                                        SKIP_NOT_SQUARE, SKIP_TOO_SMALL, SKIP_UNREADABLE, center_box, parse_resolution)
from stylegan.data.layout import archive_name


def pixels(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def png_bytes(array: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(array, mode).save(buf, format="png")
    return buf.getvalue()


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def read_dataset(path: Path) -> tuple[list[np.ndarray], dict | None]:
    """Images [H, W, C] in name order, and dataset.json, read without our loader."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.endswith(".png"))
            images = [np.asarray(PIL.Image.open(io.BytesIO(zf.read(n)))) for n in names]
            meta = json.loads(zf.read("dataset.json"))
    else:
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*.png"))
        images = [np.asarray(PIL.Image.open(path / n)) for n in names]
        meta = json.loads((path / "dataset.json").read_text())
    assert names == [archive_name(i) for i in range(len(names))]
    return [im if im.ndim == 3 else im[:, :, None] for im in images], meta


ORIGINALS = {f"{sub}img{i}.png": pixels((8, 8, 3), i) for i, sub in enumerate(["", "", "a/", "a/", "a/b/", "c/"])}


def make_source(kind: str, tmp: Path) -> Path:
    """The ORIGINALS as a folder, zip, tar or tar.gz."""
    files = {name: png_bytes(arr) for name, arr in ORIGINALS.items()}
    folder = write_files(tmp / "src", files)
    if kind == "folder":
        return folder
    if kind == "zip":
        path = tmp / "src.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(files):
                zf.writestr(name, files[name])
        return path
    path = tmp / ("src.tar" if kind == "tar" else "src.tar.gz")
    with tarfile.open(path, "w" if kind == "tar" else "w:gz") as tar:
        for name in sorted(files):
            tar.add(folder / name, arcname=f"./{name}")
    return path


@pytest.mark.parametrize("kind", ["folder", "zip", "tar", "tar.gz"])
@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_file_sources_round_trip(tmp_path, kind, dest_name):
    summary = convert_dataset(make_source(kind, tmp_path), tmp_path / dest_name)
    images, meta = read_dataset(tmp_path / dest_name)
    assert [np.array_equal(a, b) for a, b in zip(images, [ORIGINALS[n] for n in sorted(ORIGINALS)])] == [True] * 6
    assert meta == {"labels": None}
    assert (summary.written, summary.resolution, summary.channels, summary.num_skipped) == (6, 8, 3, 0)
    written = [tmp_path / dest_name] + list((tmp_path / dest_name).rglob("*"))
    assert summary.output_bytes == sum(p.stat().st_size for p in written if p.is_file())


def test_own_dataset_round_trips_and_output_is_byte_identical(tmp_path):
    src = make_source("folder", tmp_path)
    convert_dataset(src, tmp_path / "a.zip", ConvertOptions(labels_from_subfolders=True))
    convert_dataset(src, tmp_path / "b.zip", ConvertOptions(labels_from_subfolders=True))
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    # Our zip as a source: images and labels survive a second conversion unchanged.
    summary = convert_dataset(tmp_path / "a.zip", tmp_path / "again")
    first, meta1 = read_dataset(tmp_path / "a.zip")
    second, meta2 = read_dataset(tmp_path / "again")
    assert all(np.array_equal(a, b) for a, b in zip(first, second)) and len(first) == len(second) == 4
    assert meta1 == meta2 and meta1["class_names"] == ["a", "c"]
    assert summary.num_classes == 2


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def test_mnist_idx_round_trip_pads_to_32_and_keeps_labels(tmp_path):
    digits, labels = pixels((5, 28, 28), 1), np.array([3, 1, 4, 1, 5], np.uint8)
    for stem, n in [("train", 5), ("t10k", 2)]:
        (tmp_path / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(digits[:n])))
        (tmp_path / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(labels[:n])))
    summary = convert_dataset(tmp_path, tmp_path / "mnist.zip")         # a folder of IDX files: the train set
    images, meta = read_dataset(tmp_path / "mnist.zip")
    assert summary.source_kind == "mnist" and summary.channels == 1 and summary.resolution == 32
    assert len(images) == 5 and all(np.array_equal(im[2:30, 2:30, 0], d) for im, d in zip(images, digits))
    assert all(im[:2].max() == 0 and im[:, 30:].max() == 0 for im in images)
    assert [lab for _, lab in meta["labels"]] == [3, 1, 4, 1, 5]
    assert any("t10k-images-idx3-ubyte.gz" in n for n in summary.notes)
    # One file named directly, without its labels file: images only.
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    summary = convert_dataset(tmp_path / "t10k-images-idx3-ubyte.gz", tmp_path / "t10k")
    assert summary.written == 2 and summary.label_dim == 0


def cifar_batch(seed: int, n: int) -> bytes:
    # Protocol 2 with latin1 text, as the real (Python 2 era) batches are.
    return pickle.dumps({"batch_label": "training batch", "labels": [int(v) for v in pixels(n, seed) % 10],
                         "data": pixels((n, 3072), seed), "filenames": [f"f{i}.png" for i in range(n)]}, protocol=2)


def make_cifar(path: Path, batches: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [("cifar-10-batches-py/readme.html", b"x"), *batches.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_cifar10_tarball_round_trip(tmp_path):
    batches = {f"cifar-10-batches-py/data_batch_{i}": cifar_batch(i, 2) for i in range(1, 6)}
    names = [f"c{i}" for i in range(10)]
    batches["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": names}, protocol=2)
    summary = convert_dataset(make_cifar(tmp_path / "cifar-10-python.tar.gz", batches), tmp_path / "cifar.zip")
    images, meta = read_dataset(tmp_path / "cifar.zip")
    first = pickle.loads(batches["cifar-10-batches-py/data_batch_1"])
    # Rows are planar: 1024 red, 1024 green, 1024 blue.
    assert np.array_equal(images[1], first["data"][1].reshape(3, 32, 32).transpose(1, 2, 0))
    assert [lab for _, lab in meta["labels"]][:2] == first["labels"] and meta["class_names"] == names
    assert (summary.written, summary.num_classes, summary.source_kind) == (10, 10, "cifar10")


def test_cifar10_pickle_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    batches = {f"cifar-10-batches-py/data_batch_{i}": pickle.dumps({"data": Evil()}, protocol=2) for i in range(1, 6)}
    with pytest.raises(StyleGANError, match="not a readable CIFAR-10"):
        convert_dataset(make_cifar(tmp_path / "c.tar.gz", batches), tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()


def test_demo_source_converts_to_another_resolution(tmp_path):
    summary = convert_dataset("demo", tmp_path / "d16.zip", ConvertOptions(resolution=(16, 16), max_images=7))
    assert (summary.written, summary.resolution, summary.channels, summary.source_kind) == (7, 16, 3, "demo")
    assert [im.shape for im in read_dataset(tmp_path / "d16.zip")[0]] == [(16, 16, 3)] * 7


# ---------------------------------------------------------------------------------------------------------------
# Labels

def test_labels_from_dataset_json_follow_the_images(tmp_path):
    files = {f"x/{i}.png": png_bytes(pixels((8, 8, 3), i)) for i in range(4)}
    files["dataset.json"] = json.dumps({"labels": [[f"x/{i}.png", 3 - i] for i in range(4)],
                                        "class_names": ["a", "b", "c", "d"]}).encode()
    summary = convert_dataset(write_files(tmp_path / "src", files), tmp_path / "o.zip",
                              ConvertOptions(max_images=3))
    _, meta = read_dataset(tmp_path / "o.zip")
    assert meta["labels"] == [[archive_name(i), 3 - i] for i in range(3)]
    assert meta["class_names"] == ["a", "b", "c", "d"] and summary.num_classes == 4


def test_label_vectors_pass_through(tmp_path):
    files = {f"{i}.png": png_bytes(pixels((8, 8), i)) for i in range(2)}
    files["dataset.json"] = json.dumps({"labels": [["0.png", [0.5, 1]], ["1.png", [2, -1]]]}).encode()
    summary = convert_dataset(write_files(tmp_path / "src", files), tmp_path / "o")
    _, meta = read_dataset(tmp_path / "o")
    assert [lab for _, lab in meta["labels"]] == [[0.5, 1.0], [2.0, -1.0]]
    assert (summary.label_dim, summary.num_classes) == (2, 0)


def test_labels_from_subfolders_are_sorted_class_names(tmp_path):
    files = {f"{cls}/{i}.png": png_bytes(pixels((8, 8, 3), i)) for cls in ["zebra", "ant"] for i in range(2)}
    files["loose.png"] = png_bytes(pixels((8, 8, 3), 9))
    summary = convert_dataset(write_files(tmp_path / "src", files), tmp_path / "o.zip",
                              ConvertOptions(labels_from_subfolders=True))
    _, meta = read_dataset(tmp_path / "o.zip")
    assert meta["class_names"] == ["ant", "zebra"] and [lab for _, lab in meta["labels"]] == [0, 0, 1, 1]
    assert summary.skipped == {SKIP_NO_CLASS: ["loose.png"]}


@pytest.mark.parametrize("labels, match", [
    ({"labels": [["0.png", 1]]}, "no label for 1 of the 2 images"),
    ({"labels": [["0.png", 1], ["1.png", 0], ["gone.png", 0]]}, "not in the source"),
    ({"labels": [["0.png", 1], ["1.png", [1.0]]]}, "mixes class indices"),
    ({"labels": [["0.png", -1], ["1.png", 0]]}, "class indices start at 0"),
    ({"labels": [["0.png", 5], ["1.png", 0]], "class_names": ["a"]}, "only 1 class names"),
    ({"nolabels": 1}, 'no "labels" entry'),
    ("{not json", "not valid JSON"),
])
def test_label_files_that_do_not_match_are_an_error_before_writing(tmp_path, labels, match):
    files = {f"{i}.png": png_bytes(pixels((8, 8, 3), i)) for i in range(2)}
    files["dataset.json"] = (labels if isinstance(labels, str) else json.dumps(labels)).encode()
    with pytest.raises(StyleGANError, match=match):
        convert_dataset(write_files(tmp_path / "src", files), tmp_path / "o.zip")
    assert os.listdir(tmp_path) == ["src"]


# ---------------------------------------------------------------------------------------------------------------
# Crops, resizing, channels

def convert_one(tmp_path: Path, array: np.ndarray, mode: str | None = None, **options) -> np.ndarray:
    src = write_files(tmp_path / "src", {"im.png": png_bytes(array, mode)})
    convert_dataset(src, tmp_path / "o.zip", ConvertOptions(overwrite=True, **options))
    return read_dataset(tmp_path / "o.zip")[0][0]


def test_center_crop_takes_the_middle_square(tmp_path):
    wide = pixels((8, 12, 3), 0)
    assert np.array_equal(convert_one(tmp_path, wide, transform="center-crop", resolution=(8, 8)), wide[:, 2:10])
    tall = pixels((13, 8, 3), 1)
    assert np.array_equal(convert_one(tmp_path, tall, transform="center-crop", resolution=(8, 8)), tall[2:10])


@pytest.mark.parametrize("background, value", [("white", 255), ("black", 0)])
def test_wide_and_tall_crops_pad_with_the_background(tmp_path, background, value):
    image = pixels((16, 16, 3), 2)
    wide = convert_one(tmp_path, image, transform="center-crop-wide", resolution=(16, 8), background=background)
    assert np.array_equal(wide[4:12], image[4:12]) and (wide[:4] == value).all() and (wide[12:] == value).all()
    tall = convert_one(tmp_path, image, transform="center-crop-tall", resolution=(8, 16), background=background)
    assert np.array_equal(tall[:, 4:12], image[:, 4:12])
    assert (tall[:, :4] == value).all() and (tall[:, 12:] == value).all()


def test_center_box_keeps_the_largest_centred_box():
    assert center_box(640, 480, 1, 1) == (80, 0, 480, 480)
    assert center_box(1024, 768, 512, 384) == (0, 0, 1024, 768)
    assert center_box(1000, 1000, 512, 256) == (0, 250, 1000, 500)
    assert center_box(300, 1000, 1, 2) == (0, 200, 300, 600)


def test_box_filter_averages_blocks(tmp_path):
    image = pixels((16, 16), 3)
    out = convert_one(tmp_path, image, resolution=(8, 8), resize_filter="box")[:, :, 0]
    blocks = image.reshape(8, 2, 8, 2).mean(axis=(1, 3))
    assert np.abs(out.astype(float) - blocks).max() <= 1        # Pillow's fixed-point arithmetic rounds by up to 1
    lanczos = convert_one(tmp_path, image, resolution=(8, 8))[:, :, 0]
    assert np.abs(lanczos.astype(float) - blocks).max() > 5     # the flag really picks another filter


def test_rgba_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200                                  # red, alpha 0 / 255 / 128 in three columns
    rgba[:, 0, 3], rgba[:, 1, 3], rgba[:, 2, 3] = 0, 255, 128
    white = convert_one(tmp_path, rgba, "RGBA")
    assert white[0, 0].tolist() == [255, 255, 255] and white[0, 1].tolist() == [200, 0, 0]
    assert abs(int(white[0, 2, 0]) - 227) <= 1 and abs(int(white[0, 2, 1]) - 127) <= 1
    black = convert_one(tmp_path, rgba, "RGBA", background="black")
    assert black[0, 0].tolist() == [0, 0, 0] and black[0, 1].tolist() == [200, 0, 0]


def test_mixed_channel_counts_become_rgb_unless_forced(tmp_path):
    src = write_files(tmp_path / "src", {"gray.png": png_bytes(pixels((8, 8), 0)),
                                         "rgb.png": png_bytes(pixels((8, 8, 3), 1))})
    summary = convert_dataset(src, tmp_path / "rgb.zip")
    images, _ = read_dataset(tmp_path / "rgb.zip")
    assert summary.channels == 3 and images[0].shape == (8, 8, 3)
    assert np.array_equal(images[0][..., 0], images[0][..., 2])           # gray stays gray in RGB
    assert "converted 1 image from grayscale to RGB" in summary.notes
    summary = convert_dataset(src, tmp_path / "gray.zip", ConvertOptions(channels=1))
    assert summary.channels == 1 and read_dataset(tmp_path / "gray.zip")[0][1].shape == (8, 8, 1)


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits(tmp_path):
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    out = convert_one(tmp_path, deep)                  # Pillow stores uint16 as a 16-bit grayscale PNG
    assert np.array_equal(out[..., 0], np.round(deep / 257).astype(np.uint8))


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((16, 8, 3), np.uint8)              # 8 wide, 16 tall; top half black, bottom white
    image[8:] = 255
    exif = PIL.Image.Exif()
    exif[0x0112] = 6                                    # 'rotate 90 clockwise to view'
    buf = io.BytesIO()
    PIL.Image.fromarray(image).save(buf, format="jpeg", exif=exif, quality=95)
    src = write_files(tmp_path / "src", {"photo.jpg": buf.getvalue()})
    summary = convert_dataset(src, tmp_path / "o.zip", ConvertOptions(transform="center-crop-wide", resolution=(16, 8)))
    out = read_dataset(tmp_path / "o.zip")[0][0][4:12]                      # the 16x8 band
    assert out[:, :6].mean() > 200 and out[:, 10:].mean() < 50              # bottom (white) turned to the left
    assert any("EXIF" in n for n in summary.notes)


# ---------------------------------------------------------------------------------------------------------------
# Bad input: each kind is skipped and counted, or an error before anything is written

def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def bomb_png(side: int = 100_000) -> bytes:
    """A few hundred bytes that claim side x side pixels."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + png_chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + png_chunk(b"IEND", b"")


def test_bad_files_are_skipped_with_their_reason(tmp_path):
    good = png_bytes(pixels((8, 8, 3), 0))
    files = {
        "good.png": good,
        "notes/readme.txt": b"hello",
        ".DS_Store": b"\0\1",
        "__MACOSX/._good.png": b"\0\5\x16\7",
        "empty.png": b"",
        "text.jpg": b"this is not a jpeg",
        "truncated.png": png_bytes(pixels((8, 8, 3), 1))[:60],
        "bomb.png": bomb_png(),
        "wide.png": png_bytes(pixels((8, 12, 3), 2)),
    }
    summary = convert_dataset(write_files(tmp_path / "src", files), tmp_path / "o.zip")
    assert summary.written == 1
    assert summary.skipped == {
        SKIP_NOT_IMAGE: ["notes/readme.txt"], SKIP_HIDDEN: [".DS_Store", "__MACOSX/._good.png"],
        SKIP_EMPTY: ["empty.png"], SKIP_UNREADABLE: ["text.jpg"], SKIP_CORRUPT: ["truncated.png"],
        SKIP_BOMB: ["bomb.png"], SKIP_NOT_SQUARE: ["wide.png"]}
    text = summary.format()
    assert "skipped 8" in text and "truncated.png" in text


def test_pixel_limit_is_checked_before_decoding(tmp_path):
    src = write_files(tmp_path / "src", {"a.png": png_bytes(pixels((8, 8), 0)), "b.png": png_bytes(pixels((4, 4), 0))})
    summary = convert_dataset(src, tmp_path / "o.zip", ConvertOptions(max_pixels=50, resolution=(4, 4)))
    assert summary.skipped == {SKIP_BOMB: ["a.png"]} and summary.written == 1


def test_images_smaller_than_the_target_are_skipped_unless_upscaling(tmp_path):
    src = write_files(tmp_path / "src", {"big.png": png_bytes(pixels((16, 16, 3), 0)),
                                         "small.png": png_bytes(pixels((4, 4, 3), 1))})
    summary = convert_dataset(src, tmp_path / "a.zip", ConvertOptions(resolution=(8, 8)))
    assert summary.written == 1 and summary.skipped == {SKIP_TOO_SMALL: ["small.png"]}
    summary = convert_dataset(src, tmp_path / "b.zip", ConvertOptions(resolution=(8, 8), allow_upscale=True))
    assert summary.written == 2 and not summary.skipped


@pytest.mark.parametrize("files, options, match", [
    ({"a.png": (8, 8), "b.png": (16, 16)}, {}, r"2 different sizes: .*pass --resolution"),
    ({"a.png": (8, 12), "b.png": (12, 8)}, {}, "none of the 2 images is square"),
    ({"a.png": (12, 12)}, {}, "power-of-two size: pass --resolution 8x8 or 16x16"),
    ({"a.png": (4, 4)}, {"resolution": (8, 8)}, "every image is smaller than 8x8"),
    ({"a.txt": b"x", "b.png": b""}, {}, r"no usable images \(looked at: 1 not an image file, 1 empty file"),
    ({}, {}, "found no usable images"),
])
def test_inputs_that_cannot_make_a_dataset_fail_before_writing(tmp_path, files, options, match):
    src = tmp_path / "src"
    src.mkdir()
    write_files(src, {n: (png_bytes(pixels((*s[::-1], 3), 0)) if isinstance(s, tuple) else s)
                      for n, s in files.items()})
    with pytest.raises(StyleGANError, match=match):
        convert_dataset(src, tmp_path / "o.zip", ConvertOptions(**options))
    assert os.listdir(tmp_path) == ["src"]


def test_destination_is_refused_unless_overwrite_and_replaced_whole(tmp_path):
    src = make_source("folder", tmp_path)
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    with pytest.raises(UsageError, match="already exists; pass --overwrite"):
        convert_dataset(src, dest)
    assert (dest / "stale.txt").exists()
    convert_dataset(src, dest, ConvertOptions(overwrite=True))
    assert not (dest / "stale.txt").exists() and (dest / "dataset.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]                   # no temporary or old copy left
    with pytest.raises(UsageError, match="inside the source"):
        convert_dataset(src, src / "sub.zip")
    with pytest.raises(UsageError, match="holds the source"):
        convert_dataset(src, tmp_path, ConvertOptions(overwrite=True))


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
def test_a_failure_midway_leaves_no_destination_and_keeps_the_old_one(tmp_path, monkeypatch, dest_name):
    src = make_source("folder", tmp_path)
    dest = tmp_path / dest_name
    convert_dataset(src, dest, ConvertOptions(max_images=2))
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    calls = []

    def failing_encode(img, level):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt                     # the user presses Ctrl-C halfway through
        return png_bytes(np.asarray(img))
    monkeypatch.setattr(dataset_tool, "_encode_png", failing_encode)
    with pytest.raises(KeyboardInterrupt):
        convert_dataset(src, dest, ConvertOptions(overwrite=True))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        convert_dataset(src, tmp_path / ("new" + Path(dest_name).suffix))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before


def test_damaged_archives_and_idx_files_are_errors(tmp_path):
    good = make_source("tar.gz", tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(StyleGANError, match="damaged|cannot read"):
        convert_dataset(cut, tmp_path / "o.zip")
    (tmp_path / "x-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(pixels((3, 4, 4), 0))))
    (tmp_path / "x-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(2, np.uint8))))
    with pytest.raises(StyleGANError, match="2 labels for 3 images"):
        convert_dataset(tmp_path / "x-images-idx3-ubyte.gz", tmp_path / "o.zip")
    (tmp_path / "x-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(pixels((3, 4, 4), 0))[:-5]))
    with pytest.raises(StyleGANError, match="truncated"):
        convert_dataset(tmp_path / "x-images-idx3-ubyte.gz", tmp_path / "o.zip")
    (tmp_path / "photo.bmpx").write_bytes(b"??")
    with pytest.raises(StyleGANError, match="cannot read this kind of file"):
        convert_dataset(tmp_path / "photo.bmpx", tmp_path / "o.zip")
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.parametrize("options, match", [
    ({"transform": "center-crop"}, "needs --resolution"),
    ({"resolution": (16, 8)}, "not square"),
    ({"resolution": (8, 16), "transform": "center-crop-wide"}, "width >= height"),
    ({"resolution": (16, 8), "transform": "center-crop-tall"}, "height >= width"),
    ({"resolution": (96, 96)}, "power-of-two size; try 64 or 128"),
    ({"channels": 4}, "--channels"),
    ({"background": "pink"}, "--background"),
    ({"max_images": 0}, "--max-images"),
])
def test_bad_options_name_the_flag(tmp_path, options, match):
    with pytest.raises(UsageError, match=match):
        convert_dataset("demo", tmp_path / "o.zip", ConvertOptions(**options))


def test_parse_resolution():
    assert parse_resolution("256") == (256, 256) and parse_resolution("512x384") == (512, 384)
    with pytest.raises(UsageError, match="--resolution"):
        parse_resolution("big")


# ---------------------------------------------------------------------------------------------------------------
# The command

def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def test_cli_prints_the_summary_and_lists_skipped_files(tmp_path, capsys):
    src = write_files(tmp_path / "src", {"a.png": png_bytes(pixels((8, 8, 3), 0)),
                                         **{f"junk{i}.txt": b"x" for i in range(5)}})
    args = ["dataset", "--source", str(src), "--dest", str(tmp_path / "o.zip"), "--list-skipped"]
    code, out, _ = run_cli(args, capsys)
    assert code == 0 and "Wrote 1 image to" in out and "8x8, 3 channels (RGB), no labels" in out
    assert all(f"junk{i}.txt" in out for i in range(5)) and "5  not an image file" in out


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    code, _, err = run_cli(["dataset", "--source", str(tmp_path / "nope"), "--dest", str(tmp_path / "o.zip")], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "no such file or folder" in err and "Traceback" not in err
    args = ["dataset", "--source", "demo", "--dest", str(tmp_path / "o.zip"), "--resolution", "abc"]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--resolution" in err and "Traceback" not in err


def test_demo_zip_is_small_and_in_our_layout():
    path = demo_dataset_path()
    assert path.stat().st_size <= 8 * 1024 * 1024
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    images = [n for n in names if n != "dataset.json"]
    assert 1300 <= len(images) <= 1500 and images == [archive_name(i) for i in range(len(images))]
