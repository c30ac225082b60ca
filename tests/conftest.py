"""Shared test settings: small thread counts keep the suite fast and stable on 2-core CI machines."""
import os

# Triton kernels run in Triton's CPU interpreter in the tests (there is no GPU in CI). The flag is read when a
# kernel module is first imported, so it is set before anything can import one.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Nothing a test does may touch the user's cache or reach the network through it.
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path_factory.mktemp("stylegan-cache")))
