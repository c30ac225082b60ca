"""Two ranks (gloo on CPU, as torchrun would start them) split the work and agree with one process."""
import os
import socket
import sys

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ArrayDataset:
    """In-memory images with a content fingerprint (hashing every item is the fallback for such objects)."""

    def __init__(self, images):
        self.images, self.name = images, "arrays"

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], np.zeros(0, np.float32)


def _worker(rank, world, port, tmp, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), STYLEGAN_OFFLINE="1")
    torch.set_num_threads(1)
    from stylegan.core import dist
    from stylegan.metrics import calc_metric, formulas, registry
    from stylegan.metrics.stats import FeatureStats
    from test_metrics_api import ReplayG, TinyDetector, _images

    dist.init("cpu")
    try:
        data = np.random.default_rng(0).normal(size=(30, 5))
        stats = FeatureStats(capture_all=True, capture_mean_cov=True)
        stats.append(torch.from_numpy(data[rank::world]))  # rank r holds rows r, r + W, ...
        stats.gather()
        pr = formulas.precision_recall(data[:20], data[10:], k=3, batch=4)
        registry.load_inception = lambda *a, **k: (TinyDetector(), "tiny:0")
        result = calc_metric("fid50k_full", ReplayG(_images(10, seed=rank)), ArrayDataset(_images(22)), device="cpu",
                             num_gen=10, cache_dir=tmp, num_workers=0, progress=False)
        out[rank] = dict(mean=stats.mean, cov=stats.cov, features=stats.features, pr=pr, fid=result["results"],
                         num_gpus=result["num_gpus"])
    finally:
        dist.shutdown()


@pytest.mark.slow
def test_two_ranks_split_the_work_and_agree(tmp_path):
    from stylegan.metrics import formulas
    manager = mp.Manager()
    out = manager.dict()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "stats"), out), nprocs=2, join=True)
    data = np.random.default_rng(0).normal(size=(30, 5))
    r0, r1 = out[0], out[1]
    np.testing.assert_allclose(r0["mean"], data.mean(0), rtol=1e-10)
    np.testing.assert_allclose(r0["cov"], np.cov(data, rowvar=False, bias=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.sort(r1["features"], axis=0), np.sort(data, axis=0).astype(np.float32), rtol=1e-6)
    assert r0["pr"] == r1["pr"] == formulas.precision_recall(data[:20], data[10:], k=3, batch=4)
    assert r0["fid"] == r1["fid"] and r0["num_gpus"] == 2
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 1  # written once, by rank 0
