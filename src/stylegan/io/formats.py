"""What kind of file a network path holds, judged from its first bytes (never by running anything).

`sniff_format(path)` returns 'safetensors' or 'pickle' for the two formats we load, and another short name for
everything else; `describe_format(name)` turns that into the words an error message needs.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

from stylegan.io.safetensors_format import is_safetensors_file

_DESCRIPTIONS = {
    "safetensors": "a safetensors file",
    "safetensors-cut": "a safetensors file cut short: its header claims more bytes than the file has "
                       "(an interrupted download or copy?)",
    "pickle": "a Python pickle",
    "empty": "an empty file (an interrupted download?)",
    "torch-zip": "a torch.save checkpoint (zip archive), not an NVIDIA network pickle; "
                 "load it with the code that saved it and save the networks with stylegan.save_network",
    "torchscript": "a TorchScript archive, not a network pickle",
    "zip": "a zip archive (a dataset?), not a network file",
    "html": "an HTML page (a download link that returned a web page instead of the file?)",
    "git-lfs": "a Git LFS pointer, not the file itself (fetch it with git lfs pull)",
    "gzip": "a gzip-compressed file; decompress it first",
    "npy": "a NumPy .npy array",
    "npz": "a NumPy .npz archive",
    "hdf5": "an HDF5 file (Keras/TensorFlow weights?)",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "text": "a text file",
    "unknown": "a file of unknown type",
}


def sniff_format(path: str | os.PathLike) -> str:
    """A short name for what `path` holds: 'safetensors', 'pickle', or one of the keys of _DESCRIPTIONS."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "empty"
    if is_safetensors_file(path):
        return "safetensors"
    if head[8:9] == b"{":                   # a header length, then JSON, but the length runs past the end
        return "safetensors-cut"
    # Pickle protocols 2-5 open with PROTO (0x80) and the protocol number; NVIDIA's files use 2-4. A lone 0x80 is
    # a pickle cut short, which the pickle reader then says.
    if head[0] == 0x80 and (len(head) == 1 or 2 <= head[1] <= 5):
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF"):
        return "hdf5"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")):
        return "html"
    if text.startswith(b"version https://git-lfs"):
        return "git-lfs"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "text"
    return "unknown"


def describe_format(name: str) -> str:
    return _DESCRIPTIONS.get(name, _DESCRIPTIONS["unknown"])


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except zipfile.BadZipFile:
        return "zip"
    if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
        return "torchscript"
    if any(n.endswith("/data.pkl") for n in names):
        return "torch-zip"
    if any(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"
