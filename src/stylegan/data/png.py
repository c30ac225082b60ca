"""Unfiltered 8-bit PNGs: the fast case for training data.

A PNG row starts with a filter byte. Pillow picks filters (Sub, Up, Paeth) per row even when nothing is
compressed, and undoing Paeth is most of the decode time. With zlib level 0 filters save no space, so the
dataset tool writes every row unfiltered, and the loader reads such files with one zlib call and a reshape.
Anything else (filtered rows, interlacing, palettes, 16-bit) returns None from decode_unfiltered, and the
caller decodes it with Pillow, the reference this fast path is tested against.
"""
from __future__ import annotations

import struct
import zlib

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2}                     # channels -> PNG colour type (0 grayscale, 2 RGB)
_CHANNELS = {0: 1, 2: 3}


def _chunk(tag: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))


def encode_unfiltered(image: np.ndarray, level: int = 0) -> bytes:
    """uint8 [H, W] or [H, W, 1|3] -> PNG bytes, every row with filter type 0 (None)."""
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    height, width, channels = image.shape
    rows = np.zeros([height, 1 + width * channels], dtype=np.uint8)     # column 0: the filter byte, 0 = None
    rows[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    idat = _chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
    return SIGNATURE + _chunk(b"IHDR", header) + idat + _chunk(b"IEND", b"")


def decode_unfiltered(data: bytes) -> np.ndarray | None:
    """PNG bytes -> uint8 [H, W, C] if the file is 8-bit gray or RGB, not interlaced, with only unfiltered rows;
    None otherwise (decode it with Pillow then)."""
    if data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        return None
    channels = _CHANNELS[colour]
    idat = []
    pos = 33                                    # signature (8) + IHDR chunk (4 + 4 + 13 + 4)
    while pos + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        if tag == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        elif tag == b"IEND":
            break
        pos += 12 + length
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error:
        return None
    stride = 1 + width * channels
    if len(raw) != height * stride:
        return None
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, stride)
    if rows[:, 0].any():
        return None
    return rows[:, 1:].reshape(height, width, channels)
