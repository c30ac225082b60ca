"""Shared test settings: small thread counts keep the suite fast and stable on 2-core CI machines."""
import os

# Triton kernels run in Triton's CPU interpreter in the tests (there is no GPU in CI). The flag is read when a
# kernel module is first imported, so it is set before anything can import one.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

import stylegan  # noqa: E402
from test_generate_support import SPECS, tiny_generator  # noqa: E402
from test_train_common import write_dataset  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Nothing a test does may touch the user's cache or reach the network through it.
    monkeypatch.setenv("STYLEGAN_CACHE", str(tmp_path_factory.mktemp("stylegan-cache")))


@pytest.fixture(scope="session")
def nets(tmp_path_factory):
    """Paths of the saved tiny networks by name (see SPECS)."""
    folder = tmp_path_factory.mktemp("generate-nets")
    return {name: stylegan.save_network(tiny_generator(cfg, res, c_dim), folder / f"{name}.safetensors")
            for name, (cfg, res, c_dim) in SPECS.items()}


@pytest.fixture
def one_thread():
    """Run a test on one torch thread. The tiny networks' ops are too small to split across threads, and on a
    busy 2-core machine the second thread mostly waits for a core: projections ran 10x slower with two here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def blobs(tmp_path_factory):
    """A 32-image 16x16 dataset of colour blobs (test_train_common.write_dataset), made once per test module."""
    return write_dataset(tmp_path_factory.mktemp("data") / "blobs.zip", count=32)
