"""The metric pipeline end to end on tiny data: registry, datasets, generators, the stats cache, jsonl reports.

The feature networks are replaced by a tiny detector here (they are tested in test_metrics_networks.py), so
each run takes a fraction of a second; what is under test is everything around them.
"""
import json

import numpy as np
import PIL.Image
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stylegan.core.errors import StyleGANError, UsageError
from stylegan.metrics import METRICS, calc_metric, parse_metric_list, read_reports, registry, report_metric
from stylegan.metrics.ppl import ppl_from_distances


class TinyDetector(nn.Module):
    """12 features per image (2x2 average colours) and 5 'class' logits; counts the images it sees."""

    def __init__(self):
        super().__init__()
        self.seen = 0
        self.head = torch.randn(5, 12, generator=torch.Generator().manual_seed(0))

    def forward(self, img):
        self.seen += img.shape[0]
        return F.adaptive_avg_pool2d(img.float() / 255, 2).flatten(1)

    def logits(self, features, bias=True):
        return features @ self.head.T * 10


class ReplayG(nn.Module):
    """A 'generator' that returns the given uint8 images in turn, as [-1, 1] floats (exactly invertible)."""

    def __init__(self, images: np.ndarray, scale: float = 1.0):
        super().__init__()
        self.register_buffer("images", torch.from_numpy(images))
        self.pos = 0
        self.scale = scale
        self.z_dim, self.c_dim, self.w_dim = 4, 0, 4
        self.img_channels, self.img_resolution = images.shape[1], images.shape[2]

    def forward(self, z, c, **kwargs):
        idx = (torch.arange(z.shape[0]) + self.pos) % self.images.shape[0]
        self.pos += z.shape[0]
        return (self.images[idx].float() - 127.5) / 127.5 * self.scale


def _images(n=40, res=16, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(n, 3, 1, 1))
    ramp = np.linspace(0, 1, res)[None, None, :, None] * rng.integers(0, 128, size=(n, 3, 1, 1))
    return np.clip(base * 0.5 + ramp + rng.integers(0, 60, size=(n, 3, res, res)), 0, 255).astype(np.uint8)


def _folder(path, images):
    path.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        PIL.Image.fromarray(img.transpose(1, 2, 0)).save(path / f"img{i:03d}.png")
    return path


@pytest.fixture
def tiny(monkeypatch):
    det = TinyDetector()
    monkeypatch.setattr(registry, "load_inception", lambda *a, **k: (det, "tiny:0"))
    monkeypatch.setattr(registry, "load_vgg16", lambda *a, **k: (det, "tiny:0"))
    return det


def _run(name, G, data, tmp_path, **kw):
    return calc_metric(name, G, data, device="cpu", cache_dir=tmp_path / "stats", num_workers=0, progress=False, **kw)


def _dataset_order(folder):
    from stylegan.data import ImageDataset
    ds = ImageDataset(folder)
    return np.stack([ds[i][0] for i in range(len(ds))])


def test_fid_of_a_dataset_against_itself_is_zero(tiny, tmp_path):
    folder = _folder(tmp_path / "data", _images())
    same = _run("fid50k_full", ReplayG(_dataset_order(folder)), str(folder), tmp_path, num_gen=40)
    other = _run("fid50k_full", ReplayG(_images(seed=5)), str(folder), tmp_path, num_gen=40)
    assert same["metric"] == "fid50k_full" and same["num_gpus"] == 1
    assert abs(same["results"]["fid50k_full"]) < 1e-8
    assert other["results"]["fid50k_full"] > 1e-3
    assert same["settings"] == {"num_gen": 40}


def test_statistics_cache_hits_on_the_second_call(tiny, tmp_path):
    folder = _folder(tmp_path / "data", _images())
    G = ReplayG(_images(seed=1))
    first = _run("fid50k_full", G, str(folder), tmp_path, num_gen=20)
    assert tiny.seen == 40 + 20
    second = _run("fid50k_full", G, str(folder), tmp_path, num_gen=20)
    assert tiny.seen == 40 + 20 + 20  # only the generated images again
    assert first["results"] == second["results"]
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 1
    _run("fid50k_full", G, str(folder), tmp_path, num_gen=20, max_real=30)  # another subset: another entry
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 2
    PIL.Image.fromarray(_images(1, seed=9)[0].transpose(1, 2, 0)).save(folder / "img999.png")  # new content
    _run("fid50k_full", G, str(folder), tmp_path, num_gen=20)
    assert len(list((tmp_path / "stats").glob("*.npz"))) == 3
    assert not list((tmp_path / "stats").glob(".*"))  # no temporary files left behind


def test_mirror_changes_the_real_statistics(tiny, tmp_path):
    folder = _folder(tmp_path / "data", _images())
    G = ReplayG(_images(seed=1))
    plain = _run("fid50k", G, str(folder), tmp_path, num_gen=20)
    mirrored = _run("fid50k", G, str(folder), tmp_path, num_gen=20, mirror=True)
    assert plain["results"]["fid50k"] != mirrored["results"]["fid50k"]
    full = _run("fid50k_full", G, str(folder), tmp_path, num_gen=20, mirror=True)  # _full never mirrors
    assert full["results"]["fid50k_full"] == pytest.approx(plain["results"]["fid50k"])


def test_kid_precision_recall_and_is_through_the_registry(tiny, tmp_path):
    folder = _folder(tmp_path / "data", _images())
    replay = ReplayG(_dataset_order(folder))
    kid = _run("kid50k_full", replay, str(folder), tmp_path, num_gen=40)["results"]["kid50k_full"]
    kid_other = _run("kid50k_full", ReplayG(_images(seed=3), scale=0.5), str(folder), tmp_path, num_gen=40)
    # Identical sets: the unbiased estimate is slightly negative (its diagonal terms are left out).
    assert kid <= 0 < kid_other["results"]["kid50k_full"]
    pr = _run("pr50k3_full", replay, str(folder), tmp_path, num_gen=40)["results"]
    assert pr == {"pr50k3_full_precision": 1.0, "pr50k3_full_recall": 1.0}
    inception_score = _run("is50k", replay, None, tmp_path, num_gen=40)["results"]
    assert set(inception_score) == {"is50k_mean", "is50k_std"} and inception_score["is50k_mean"] >= 1


def test_report_appends_one_json_line_per_evaluation(tiny, tmp_path):
    folder = _folder(tmp_path / "data", _images())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = _run("fid50k_full", ReplayG(_images(seed=1)), str(folder), tmp_path, num_gen=8)
    line = report_metric(result, run_dir=run_dir, snapshot_pkl=run_dir / "network-snapshot-000100.pkl")
    report_metric(result, run_dir=run_dir, snapshot_pkl=run_dir / "network-snapshot-000200.pkl")
    lines = (run_dir / "metric-fid50k_full.jsonl").read_text().splitlines()
    assert lines[0] == line and len(lines) == 2
    entry = json.loads(lines[1])
    assert entry["snapshot_pkl"] == "network-snapshot-000200.pkl"
    assert set(entry) >= {"results", "metric", "total_time", "total_time_str", "num_gpus", "snapshot_pkl", "timestamp"}
    with open(run_dir / "metric-fid50k_full.jsonl", "a") as f:
        f.write('{"results": {"fid50k_full"')  # a run killed mid-write
    history = read_reports(run_dir, "fid50k_full")
    assert [e["kimg"] for e in history] == [100, 200]
    assert read_reports(run_dir, "kid50k_full") == []


def test_names_and_parsing():
    for name in ("fid50k_full", "kid50k_full", "pr50k3_full", "ppl2_wend", "eqt50k_int", "eqt50k_frac", "eqr50k",
                 "fid50k", "fid10k", "kid50k", "pr50k3", "is50k"):
        assert name in METRICS
    assert parse_metric_list("fid50k_full, kid50k_full") == ["fid50k_full", "kid50k_full"]
    assert parse_metric_list("none") == []
    with pytest.raises(UsageError, match="unknown metric fid1k.*fid50k_full"):
        parse_metric_list("fid1k")


def test_missing_data_and_generator_are_clear_errors(tiny, tmp_path):
    with pytest.raises(StyleGANError, match="--data"):
        _run("fid50k_full", ReplayG(_images(4)), None, tmp_path, num_gen=4)
    with pytest.raises(StyleGANError, match="--network"):
        _run("is50k", None, None, tmp_path, num_gen=4)
    with pytest.raises(UsageError, match="unknown metric"):
        _run("fid", None, None, tmp_path)


def test_ppl_trims_percentiles():
    d = np.concatenate([np.full(996, 2.0), [1e6, 1e6, -1e6, -1e6]])  # 1000 samples: the 1% tails are 10 values
    assert ppl_from_distances(d) == pytest.approx(2.0)


class LinearG(nn.Module):
    """mapping: w = z (broadcast to num_ws); synthesis: a fixed linear image of w, scaled by `gain`."""

    def __init__(self, gain=1.0, res=8):
        super().__init__()
        self.z_dim = self.w_dim = 6
        self.c_dim, self.num_ws, self.img_channels, self.img_resolution = 0, 2, 3, res
        self.gain = gain
        self.register_buffer("basis", torch.randn(6, 3 * res * res, generator=torch.Generator().manual_seed(0)) * 0.05)

    def mapping(self, z, c, **kwargs):
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const", **kwargs):
        return (ws[:, 0] @ self.basis * self.gain).view(-1, 3, self.img_resolution, self.img_resolution)


class FlatEmbedding(nn.Module):
    def lpips_embedding(self, img):
        return img.flatten(1) / 255


def test_ppl_scales_with_the_square_of_the_generator(monkeypatch, tmp_path):
    monkeypatch.setattr("stylegan.metrics.ppl.load_vgg16", lambda *a, **k: (FlatEmbedding(), "flat"))
    one = _run("ppl2_wend", LinearG(1.0), None, tmp_path, num_gen=24)["results"]["ppl2_wend"]
    two = _run("ppl2_wend", LinearG(2.0), None, tmp_path, num_gen=24)["results"]["ppl2_wend"]
    flat = _run("ppl2_wend", LinearG(0.0), None, tmp_path, num_gen=24)["results"]["ppl2_wend"]
    assert one > 0 and flat == 0
    assert two == pytest.approx(4 * one, rel=1e-3)  # same latents (same seed), distances are quadratic


def test_generation_leaves_the_callers_random_state_alone(tiny, tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _run("is50k", ReplayG(_images(8)), None, tmp_path, num_gen=8)
    assert torch.equal(torch.rand(3), expected)
