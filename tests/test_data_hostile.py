"""`stylegan dataset` and ImageDataset against hostile or unlucky input: full and read-only disks, label files built
to crash a parser or a trainer, archive members that inflate far beyond their archive, and runs that are killed."""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from stylegan.cli import main as cli_main
from stylegan.core.errors import StyleGANError
from stylegan.data import ConvertOptions, ImageDataset, convert_dataset
from stylegan.data import dataset as dataset_module
from stylegan.data import dataset_tool
from stylegan.data.dataset_tool import SKIP_TOO_LARGE, remove_stale_temporaries
from stylegan.data.layout import MAX_LABEL_DIM, FileTooLarge, read_at_most
from test_data_tool import pixels, png_bytes, write_files

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def png(seed: int, side: int = 8) -> bytes:
    return png_bytes(pixels((side, side, 3), seed))


def images(tmp_path: Path, n: int = 3, labels: bytes | None = None) -> Path:
    files = {f"img{i}.png": png(i) for i in range(n)}
    if labels is not None:
        files["dataset.json"] = labels
    return write_files(tmp_path / "src", files)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Exit status and the last line of stderr (the progress bars come before it), checked to be all there is."""
    with pytest.raises(SystemExit) as exit_info:
        cli_main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return exit_info.value.code, err.split("\r")[-1].strip().splitlines()[-1]


def listing(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


# --- the destination cannot be written ---------------------------------------------------------------------------

def test_destination_under_a_regular_file_is_one_line_exit_2(tmp_path, capsys):
    # chmod does not stop root, so "read-only" is a destination that cannot exist: below a regular file.
    src = images(tmp_path)
    (tmp_path / "file").write_bytes(b"x")
    for dest in ("file/out.zip", "file/out"):
        code, err = run_cli(["dataset", "--source", str(src), "--dest", str(tmp_path / dest)], capsys)
        assert code == 2 and err.startswith("error: --dest") and "is a file, not a folder" in err


@pytest.mark.parametrize("dest_name", ["out.zip", "out"])
@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "cannot write there")])
def test_full_or_read_only_disk_midway_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, dest_name,
                                                                      code, says):
    src = images(tmp_path, 4)
    before = listing(tmp_path)
    writes = []
    real_write = dataset_tool._DatasetWriter.write

    def write(self, name, data):
        writes.append(name)
        if len(writes) == 3:
            # Raised where the bytes go (zipfile or the file system), as the real error would be.
            target = zipfile.ZipFile if self.is_zip else Path
            method = "writestr" if self.is_zip else "write_bytes"
            monkeypatch.setattr(target, method, lambda *a, **k: (_ for _ in ()).throw(OSError(code, os.strerror(code))))
        return real_write(self, name, data)

    monkeypatch.setattr(dataset_tool._DatasetWriter, "write", write)
    exit_code, err = run_cli(["dataset", "--source", str(src), "--dest", str(tmp_path / dest_name)], capsys)
    assert exit_code == 2 and err.startswith("error: --dest") and says in err, err
    assert listing(tmp_path) == before                  # no destination, no temporaries
    assert len(writes) == 3


def test_read_only_file_system_when_creating_the_temporary(tmp_path, monkeypatch):
    src = images(tmp_path)

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    for dest in ("out.zip", "out"):
        with pytest.raises(StyleGANError, match="cannot write there .Read-only file system"):
            convert_dataset(src, tmp_path / dest)
        assert not (tmp_path / dest).exists()


# --- label files ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("labels, match", [
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"labels": [["img0.png", 1], ["img1.png", 2], ["img2.png", ' + b"[" * 100_000 + b"]" * 100_000 + b"]]}",
     "nested too deeply"),
    (b'{"labels": [["img0.png", [NaN]], ["img1.png", [1]], ["img2.png", [1]]]}', "holds NaN"),
    (b'{"labels": [["img0.png", [1, Infinity]], ["img1.png", [1, 2]], ["img2.png", [1, 2]]]}', "holds Infinity"),
    (b'{"labels": [["img0.png", [-Infinity]], ["img1.png", [1]], ["img2.png", [1]]]}', "holds -Infinity"),
    (b'{"labels": [["img0.png", [1e999]], ["img1.png", [1]], ["img2.png", [1]]]}', "too large to be a label"),
    (b'{"labels": [["img0.png", [' + b"9" * 400 + b']], ["img1.png", [1]], ["img2.png", [1]]]}',
     "too large to be a label"),
    (b'{"labels": [["img0.png", ' + b"9" * 5000 + b'], ["img1.png", 1], ["img2.png", 1]]}', "not valid JSON"),
    (b'{"labels": [["img0.png", 1000000000000], ["img1.png", 1], ["img2.png", 2]]}', "at most 65,536 classes"),
    (b'{"labels": [["img0.png", 65536], ["img1.png", 1], ["img2.png", 2]]}', "indices 0 to 65,535"),
    (json.dumps({"labels": [[f"img{i}.png", [0.5] * (MAX_LABEL_DIM + 1)] for i in range(3)]}).encode(),
     "vector of 65,537 numbers"),
    (json.dumps({"labels": [[f"img{i}.png", i] for i in range(3)],
                 "class_names": [str(i) for i in range(MAX_LABEL_DIM + 1)]}).encode(), "lists 65,537 classes"),
])
def test_hostile_label_files_are_one_line_errors_in_the_tool_and_the_reader(tmp_path, labels, match):
    src = images(tmp_path, labels=labels)
    with pytest.raises(StyleGANError, match=match):
        convert_dataset(src, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    # A dataset written by other tools reaches training through ImageDataset, which refuses the same file.
    with pytest.raises(StyleGANError, match=match):
        ImageDataset(src, use_labels=True)


def test_the_largest_class_index_allowed_still_loads(tmp_path):
    labels = json.dumps({"labels": [["img0.png", MAX_LABEL_DIM - 1], ["img1.png", 0], ["img2.png", 1]]}).encode()
    ds = ImageDataset(images(tmp_path, labels=labels), use_labels=True)
    assert ds.label_dim == MAX_LABEL_DIM and ds.get_label(0).argmax() == MAX_LABEL_DIM - 1


# --- archive members that inflate ---------------------------------------------------------------------------------

class Endless(io.RawIOBase):
    """A stream of zeros without end, counting what was read: an archive member whose header lies."""

    def __init__(self):
        self.served = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = bytes(len(buffer))
        self.served += len(buffer)
        return len(buffer)


def test_read_at_most_stops_one_byte_past_the_limit():
    stream = Endless()
    with pytest.raises(FileTooLarge):
        read_at_most(stream, 5 * 2 ** 20 + 3)
    assert stream.served == 5 * 2 ** 20 + 4
    assert read_at_most(io.BytesIO(b"abc"), 3) == b"abc"


def test_zip_and_tar_members_over_the_limit_are_skipped_unread(tmp_path):
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    PIL.Image.fromarray(big).save(buf, "bmp")                           # 12 KB that deflates to about as much
    huge = buf.getvalue() + bytes(3_000_000)                            # and 3 MB of zeros that deflate to 3 KB
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png(1))
        zf.writestr("big.bmp", huge)
        zf.writestr("b.png", png(2))
    assert zpath.stat().st_size < 100_000
    tpath = tmp_path / "bomb.tar.gz"
    with tarfile.open(tpath, "w:gz") as tar:
        for name, data in (("a.png", png(1)), ("big.bmp", huge), ("b.png", png(2))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    for source in (zpath, tpath):
        summary = convert_dataset(source, tmp_path / f"{source.name}.out.zip", ConvertOptions(max_file_bytes=1_000_000))
        assert summary.written == 2 and summary.skipped == {SKIP_TOO_LARGE: ["big.bmp"]}


def test_a_zip_member_larger_than_its_header_says_is_not_read_past_it(tmp_path):
    # The central directory and local header claim 100 bytes; the member really holds a 2 KB PNG.
    good = png(3, side=32)
    zpath = tmp_path / "liar.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.png", png(1))
        zf.writestr("liar.png", good)
    data = bytearray(zpath.read_bytes())
    size = struct.pack("<I", len(good))
    for at in (i for i in range(len(data) - 4) if data[i:i + 4] == size):
        data[at:at + 4] = struct.pack("<I", 100)
    zpath.write_bytes(bytes(data))
    with zipfile.ZipFile(zpath) as zf:
        assert zf.getinfo("liar.png").file_size == 100
    summary = convert_dataset(zpath, tmp_path / "out.zip", ConvertOptions(allow_upscale=True, resolution=(8, 8)))
    assert summary.written == 1 and list(summary.skipped.values()) == [["liar.png"]]


def test_an_idx_header_claiming_gigabytes_is_refused_before_inflating(tmp_path):
    path = tmp_path / "x-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\0\0\x08\x03" + struct.pack(">3I", 100_000_000, 28, 28) + bytes(100)))
    with pytest.raises(StyleGANError, match="claims .* more than the 1 GiB"):
        convert_dataset(path, tmp_path / "out.zip")


def test_a_cifar_batch_of_shared_nested_lists_is_refused(tmp_path):
    import pickle
    layer = [0] * 10
    for _ in range(30):                                 # 2^30 ints if expanded, 300 bytes pickled
        layer = [layer, layer]
    batch = pickle.dumps({"data": layer, "labels": [0]}, protocol=2)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(1, 6):
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    with pytest.raises(StyleGANError, match="is not a CIFAR-10 batch"):
        convert_dataset(path, tmp_path / "out.zip")


def test_the_reader_refuses_files_past_the_limit_when_it_opens(tmp_path, monkeypatch):
    zpath = tmp_path / "ds.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("00000/img00000000.png", png(0))
        zf.writestr("dataset.json", '{"labels": null}' + " " * 50_000)
        zf.writestr("notes/big.txt", bytes(50_000))          # never read, so never refused
    monkeypatch.setattr(dataset_module, "MAX_FILE_BYTES", 10_000)
    assert len(ImageDataset(zpath)) == 1
    with pytest.raises(StyleGANError, match="'dataset.json' unpacks to 50,016 bytes, more than the 0.00953674 MiB"):
        ImageDataset(zpath, use_labels=True)
    folder = write_files(tmp_path / "ds", {"a.png": png(0), "b.bmp": bytes(20_000)})
    with pytest.raises(StyleGANError, match="'b.bmp' unpacks to 20,000 bytes"):
        ImageDataset(folder)


# --- interrupted runs ------------------------------------------------------------------------------------------------

def test_temporaries_of_a_killed_run_are_removed_and_live_ones_kept(tmp_path):
    import fcntl
    dest = tmp_path / "out.zip"
    names = (".out.zip.abcd_123.tmp.zip", ".out.zip.zzzzzzzz.tmp", ".out.zip.q1w2e3r4.old")
    stale = [tmp_path / name for name in names]
    stale[0].write_bytes(b"partial")
    stale[1].mkdir()
    (stale[1] / "00000").mkdir()
    stale[2].mkdir()
    live = tmp_path / ".out.zip.livelive.tmp.zip"
    live.write_bytes(b"being written")
    others = [tmp_path / ".out.zip.b.abcdefgh.tmp.zip", tmp_path / ".other.zip.abcdefgh.tmp.zip", tmp_path / "keep.txt"]
    for p in others:
        p.write_bytes(b"not ours")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)                      # as a run still writing holds it
    try:
        summary = convert_dataset(images(tmp_path), dest)
    finally:
        os.close(fd)
    assert not any(p.exists() for p in stale) and live.exists() and all(p.exists() for p in others)
    assert any("removed 3 temporaries that an interrupted run left" in n for n in summary.notes)
    assert remove_stale_temporaries(dest) == [live.name]


SCRIPT = """
import sys, time
from stylegan.cli import main
from stylegan.data import dataset_tool
encode = dataset_tool._encode_png
def slow(img, level):
    print("writing", flush=True)
    time.sleep(60)
    return encode(img, level)
dataset_tool._encode_png = slow
main(["dataset", "--source", sys.argv[1], "--dest", sys.argv[2]])
"""


def start_and_signal(src: Path, dest: Path, sig: int) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(src), str(dest)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"     # the temporary output exists now
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


def test_sigterm_removes_the_temporary_and_sigkill_leaves_it_to_the_next_run(tmp_path):
    src, dest_name = images(tmp_path), "out.zip"
    dest = tmp_path / dest_name
    before = listing(tmp_path)
    code, err = start_and_signal(src, dest, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM and "Terminated." in err and "Traceback" not in err
    assert listing(tmp_path) == before
    code, _ = start_and_signal(src, dest, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = [n for n in listing(tmp_path) if n not in before]
    assert left and all(n.startswith(f".{dest_name}.") for n in left)
    summary = convert_dataset(src, dest)
    assert summary.written == 3 and any("interrupted run" in n for n in summary.notes)
    assert set(listing(tmp_path)) - set(before) == {p for p in listing(tmp_path) if p.startswith(dest_name)}


def test_ctrl_c_says_interrupted_and_exits_130(tmp_path, monkeypatch, capsys):
    import stylegan.cli.dataset as cli_dataset

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(cli_dataset, "convert_dataset", interrupted)
    code, err = run_cli(["dataset", "--source", str(images(tmp_path)), "--dest", str(tmp_path / "o.zip")], capsys)
    assert code == 130 and err == "Interrupted."
