"""The unfiltered-PNG fast path agrees with Pillow, the reference, and declines every file it does not handle."""
from __future__ import annotations

import io

import numpy as np
import PIL.Image
import pytest

from stylegan.data.png import decode_unfiltered, encode_unfiltered


def pillow_png(array: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(array).save(buf, format="png", **save)
    return buf.getvalue()


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (16, 16, 1), (3, 9, 3), (64, 64, 3)])
@pytest.mark.parametrize("level", [0, 6])
def test_unfiltered_png_matches_pillow_both_ways(shape, level):
    array = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    data = encode_unfiltered(array, level)
    by_pillow = np.asarray(PIL.Image.open(io.BytesIO(data)))
    expected = array.reshape(shape[0], shape[1], -1)
    assert np.array_equal(by_pillow.reshape(expected.shape), expected)
    assert np.array_equal(decode_unfiltered(data), expected)


def test_files_the_fast_path_does_not_handle_are_declined():
    rng = np.random.default_rng(0)
    smooth = np.tile(np.arange(32, dtype=np.uint8), (32, 1))               # Pillow filters such rows (Sub / Up)
    assert decode_unfiltered(pillow_png(np.stack([smooth] * 3, -1), compress_level=0)) is None
    assert decode_unfiltered(pillow_png(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8))) is None        # RGBA
    assert decode_unfiltered(pillow_png(np.arange(64, dtype=np.uint16).reshape(8, 8))) is None           # 16-bit
    palette = PIL.Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P")
    buf = io.BytesIO()
    palette.save(buf, format="png")
    assert decode_unfiltered(buf.getvalue()) is None
    good = encode_unfiltered(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    assert decode_unfiltered(good[:-30]) is None                                                          # truncated
    assert decode_unfiltered(b"GIF89a" + good[6:]) is None
