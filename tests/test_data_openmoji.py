"""The bundled OpenMoji set (assets/openmoji.zip): opens by name through the same table as 'demo', is paired
with the demo set image for image, and looks measurably different (black outlines)."""
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stylegan.core.errors import StyleGANError
from stylegan.data import (BUNDLED_DATASETS, ConvertOptions, ImageDataset, bundled_dataset_path, convert_dataset,
                           is_bundled_dataset)
from stylegan.data.layout import archive_name
from stylegan.data.input_formats import open_source

COUNT = 1382                            # the demo set's code points; OpenMoji 17.0.0 draws every one
EVERY = 4                               # the pixel statistics read every 4th pair: 346 of each, about 2 s


def pixels(name: str) -> np.ndarray:
    ds = ImageDataset(name)
    return np.stack([ds[i][0] for i in range(0, len(ds), EVERY)])      # [N, 3, 64, 64] uint8


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    return pixels("demo"), pixels("openmoji")


def test_openmoji_opens_by_name():
    ds = ImageDataset("openmoji")
    assert ds.path == bundled_dataset_path("openmoji") and ds.name == "openmoji"
    assert (len(ds), ds.resolution, ds.num_channels, ds.label_dim) == (COUNT, 64, 3, 0)
    image, _ = ds[0]
    assert image.shape == (3, 64, 64) and image.min() < 40 and image.max() == 255       # outlines on white


def test_openmoji_zip_is_small_and_in_our_layout():
    path = bundled_dataset_path("openmoji")
    assert path.stat().st_size <= 4.5 * 1024 * 1024
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        assert json.loads(zf.read("dataset.json")) == {"labels": None}
    assert [n for n in names if n != "dataset.json"] == [archive_name(i) for i in range(COUNT)]


def test_every_bundled_name_resolves_through_one_table(tmp_path):
    assert set(BUNDLED_DATASETS) == {"demo", "openmoji"}
    for name in BUNDLED_DATASETS:
        assert is_bundled_dataset(name) and not is_bundled_dataset(Path(name))
        assert ImageDataset(name).path == bundled_dataset_path(name)
        assert open_source(name).kind == name
    summary = convert_dataset("openmoji", tmp_path / "o16.zip", ConvertOptions(resolution=(16, 16), max_images=5))
    assert (summary.written, summary.resolution, summary.source_kind) == (5, 16, "openmoji")
    with pytest.raises(StyleGANError, match="demo, openmoji"):
        bundled_dataset_path("noto")


def test_openmoji_is_paired_with_demo_image_for_image(pairs):
    # Both sets hold the same code points in the same order, so image i shows the same emoji in both: the mean
    # colour of its drawn (non-white) pixels correlates across the pair. Measured on these 346 pairs: 0.44-0.54
    # per channel for the true pairs, under 0.04 for a shuffled pairing.
    demo, openmoji = pairs
    assert len(ImageDataset("demo")) == len(ImageDataset("openmoji")) == COUNT

    def drawn_colour(x: np.ndarray) -> np.ndarray:                      # [N, 3] mean RGB of non-white pixels
        drawn = x.min(axis=1) < 230                                     # [N, H, W]
        return (x * drawn[:, None]).sum(axis=(2, 3)) / np.maximum(drawn.sum(axis=(1, 2)), 1)[:, None]

    def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:       # per channel, over images
        a, b = a - a.mean(axis=0), b - b.mean(axis=0)
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))

    a, b = drawn_colour(demo.astype(np.float64)), drawn_colour(openmoji.astype(np.float64))
    paired = correlation(a, b)
    shuffled = correlation(a, b[np.random.default_rng(0).permutation(len(b))])
    assert paired.min() > 0.35 and np.abs(shuffled).max() < 0.15, (paired, shuffled)


def test_openmoji_has_black_outlines_and_noto_does_not(pairs):
    # OpenMoji draws every shape with a black outline; Noto shades without one. Near-black pixels (max channel
    # < 40) measured on these pairs: 6.4% of OpenMoji's pixels and 0.25% of Noto's; 97% of OpenMoji images
    # and 2% of Noto images have more than 3% of them.
    demo, openmoji = pairs
    dark_demo, dark_openmoji = demo.max(axis=1) < 40, openmoji.max(axis=1) < 40       # [N, H, W]
    assert dark_openmoji.mean() > 0.04 and dark_demo.mean() < 0.01
    assert (dark_openmoji.mean(axis=(1, 2)) > 0.03).mean() > 0.9
    assert (dark_demo.mean(axis=(1, 2)) > 0.03).mean() < 0.1
