"""Shared test settings: small thread counts keep the suite fast and stable on 2-core CI machines."""
import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Nothing a test does may touch the user's cache or reach the network through it.
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path_factory.mktemp("stylegan-cache")))
