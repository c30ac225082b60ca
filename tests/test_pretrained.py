"""The shipped emoji network (`--network emoji`): the file is the one recorded beside it, small, loads by name, and
draws the recorded images for fixed seeds."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import stylegan
from stylegan.core.errors import StyleGANError
from stylegan.generate.showcase import reference_images
from stylegan.io.bundled import BUNDLED_NETWORKS, bundled_network_path
from stylegan.io.fetch import resolve_source

PATH = bundled_network_path("emoji")
RECORD = json.loads(PATH.with_suffix(".json").read_text())


def test_file_is_the_recorded_one_and_small():
    assert hashlib.sha256(PATH.read_bytes()).hexdigest() == RECORD["sha256"]
    assert PATH.stat().st_size <= 8 * 2 ** 20


def test_carries_a_trained_discriminator_and_adas_p_for_fine_tuning():
    # Freeze-D freezes D's first layers: that needs D's trained weights, not a fresh D.
    from stylegan.io import read_network_file
    configs, meta = read_network_file(PATH)
    assert sorted(configs) == ["D", "G_ema"] and meta["extra"]["augment_p"] >= 0
    D = stylegan.load_network("emoji", what="d")
    assert D.img_resolution == 32


def test_loads_by_name_as_a_32px_stylegan2():
    G = stylegan.load_network("emoji")
    assert (G.config.cfg, G.img_resolution, G.img_channels, G.c_dim) == ("stylegan2", 32, 3, 0)
    assert resolve_source("emoji") == PATH


def test_a_file_of_that_name_wins_over_the_bundled_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "emoji").write_bytes(b"not a network")
    assert resolve_source("emoji").resolve() == tmp_path / "emoji"
    with pytest.raises(StyleGANError, match="no such file .* bundled network: " + ", ".join(BUNDLED_NETWORKS)):
        resolve_source("emojj")


def test_fixed_seeds_draw_the_recorded_images():
    G = stylegan.load_network("emoji")
    seeds, pooled = reference_images(G, tuple(RECORD["reference_seeds"]))
    expected = np.array(RECORD["reference_pooled"]).reshape(pooled.shape)
    np.testing.assert_allclose(pooled, expected, atol=1e-4)
    assert pooled.std() > 0.05                                  # the images are not flat
