"""The multi-scale sliced Wasserstein distance (stylegan.metrics.swd): pyramid, patches, the distance, the metric."""
import json
import sys

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

import stylegan
from stylegan.metrics import METRICS, calc_metric, parse_metric_list, report_metric, swd

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from test_metrics_api import ReplayG, _dataset_order, _folder  # noqa: E402


def _smooth_images(n, res=32, seed=0):
    """Images with structure at every scale: random 4x4 colour fields, bilinearly enlarged, plus mild grain."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 200 + 20
    img = F.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False)
    img = img + torch.randn(n, 3, res, res, generator=g) * 2
    return img.clamp(0, 255).to(torch.uint8)


# ----------------------------------------------------------------------------------------------------------
# The Laplacian pyramid.

def test_pyramid_sizes():
    assert swd.pyramid_resolutions(256, 256) == [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)]
    assert swd.pyramid_resolutions(16, 16) == [(16, 16)]
    assert swd.pyramid_resolutions(8, 8) == [(8, 8)]       # below 16 px: one level
    assert swd.pyramid_resolutions(24, 24) == [(24, 24)]   # 12 px would be too coarse
    assert swd.pyramid_resolutions(64, 32) == [(64, 32), (32, 16)]


def test_pyramid_reconstructs_the_image_and_separates_frequencies():
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 255
    levels = swd.laplacian_pyramid(x)
    assert [tuple(t.shape[2:]) for t in levels] == [(64, 64), (32, 32), (16, 16)]
    torch.testing.assert_close(swd.reconstruct(levels), x, atol=1e-4, rtol=0)

    # A constant image has no detail: every band is 0 and the coarse level is the constant (reflected borders).
    levels = swd.laplacian_pyramid(torch.full([1, 3, 32, 32], 7.0))
    assert levels[0].abs().max() < 1e-5 and (levels[1] - 7).abs().max() < 1e-5

    # A checkerboard is all Nyquist frequency, which the binomial filter removes completely (1-4+6-4+1 = 0):
    # it lives entirely in the finest band.
    checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2.0 - 1
    levels = swd.laplacian_pyramid(checker.expand(1, 3, 32, 32))
    assert levels[1].abs().max() < 1e-5
    torch.testing.assert_close(levels[0], checker.expand(1, 3, 32, 32))


# ----------------------------------------------------------------------------------------------------------
# The sliced Wasserstein distance.

@pytest.mark.parametrize("n, m", [(60, 60), (50, 37)])
def test_sliced_wasserstein_matches_scipy_on_each_direction(n, m):
    g = torch.Generator().manual_seed(1)
    a = torch.randn(n, 6, generator=g, dtype=torch.float64)
    b = torch.randn(m, 6, generator=g, dtype=torch.float64) * 1.5 + 0.3
    dirs = swd.random_directions(6, 20, seed=3).to(torch.float64)
    torch.testing.assert_close(dirs.norm(dim=0), torch.ones(20, dtype=torch.float64))
    expected = np.mean([scipy.stats.wasserstein_distance((a @ d).numpy(), (b @ d).numpy()) for d in dirs.T])
    assert swd.sliced_wasserstein(a, b, dirs, chunk=7) == pytest.approx(expected, rel=1e-9)


def test_directions_are_seeded():
    assert torch.equal(swd.random_directions(147, 300, seed=5), swd.random_directions(147, 300, seed=5))
    assert not torch.equal(swd.random_directions(147, 300, seed=5), swd.random_directions(147, 300, seed=6))


def test_identical_sets_give_zero_and_patches_do_not_depend_on_batching():
    images = _smooth_images(12)
    result = swd.swd_between(images, images, batch_size=5, num_projections=64)
    assert list(result) == ["swd", "swd_32", "swd_16"] and all(v == 0 for v in result.values())
    one = swd.PatchDescriptors(seed=3)(images)
    d = swd.PatchDescriptors(seed=3)
    assert torch.equal(torch.cat([d(images[:5]), d(images[5:])]), one)
    assert one.shape == (12, 2 * 128 * 147)
    assert not torch.equal(swd.PatchDescriptors(seed=4)(images), one)


def test_noise_is_ranked_worse_than_a_clean_sample_of_the_same_distribution():
    reference, clean = _smooth_images(32, seed=0), _smooth_images(32, seed=1)
    noisy = (clean.float() + torch.randn(clean.shape, generator=torch.Generator().manual_seed(2)) * 12)
    noisy = noisy.clamp(0, 255).to(torch.uint8)
    kw = dict(num_projections=128, seed=0)
    d_clean, d_noisy = swd.swd_between(reference, clean, **kw), swd.swd_between(reference, noisy, **kw)
    print(f"SWD x1e3 clean {d_clean}  noisy {d_noisy}")
    assert d_noisy["swd_32"] > 2 * d_clean["swd_32"]  # the grain shows in the finest band
    assert d_noisy["swd"] > d_clean["swd"]


def test_channels_and_float_images_are_handled_generically():
    gray = _smooth_images(6)[:, :1]
    assert swd.swd_between(gray, gray.float() / 255, num_projections=16)["swd"] < 1e-3  # scale-free per set
    with pytest.raises(ValueError, match="differ in shape"):
        swd.swd_between(gray, _smooth_images(6), num_projections=16)


# ----------------------------------------------------------------------------------------------------------
# The registered metric.

def test_swd16k_is_registered_and_accepted_by_training():
    from stylegan.training.metrics_hook import check_metrics
    assert "swd16k" in METRICS and METRICS["swd16k"].needs_data
    assert parse_metric_list("fid50k_full,swd16k") == ["fid50k_full", "swd16k"]
    check_metrics(["swd16k"])


@pytest.fixture
def few_projections(monkeypatch):
    monkeypatch.setattr(swd, "NUM_PROJECTIONS", 64)  # the paper's 512 cost time, not coverage


def _run(name, G, data, tmp_path, **kw):
    return calc_metric(name, G, data, device="cpu", cache_dir=tmp_path / "stats", num_workers=0, progress=False, **kw)


def test_a_generator_replaying_the_dataset_scores_zero_from_the_command_line(tmp_path, monkeypatch, capsys,
                                                                            few_projections):
    from stylegan.cli import main
    from test_metrics_cli import _network_file
    folder = _folder(tmp_path / "data", _smooth_images(12).numpy())
    net = _network_file(tmp_path, ReplayG(_dataset_order(folder)), monkeypatch)
    main(["metrics", "--network", str(net), "--data", str(folder), "--metrics", "swd16k", "--num-gen", "12",
          "--max-real", "12", "--workers", "0", "--device", "cpu", "--cache-dir", str(tmp_path / "stats")])
    assert "swd16k_32" in capsys.readouterr().out
    entry = json.loads((net.parent / "metric-swd16k.jsonl").read_text().splitlines()[-1])
    assert entry["results"] == {"swd16k": 0.0, "swd16k_32": 0.0, "swd16k_16": 0.0}
    assert entry["settings"] == {"num_gen": 12, "max_real": 12}
    assert not (tmp_path / "stats").exists()  # descriptors are not cached


def test_swd16k_end_to_end_on_a_tiny_network(tmp_path, few_projections):
    folder = _folder(tmp_path / "data", _smooth_images(12, res=16).numpy())
    G = stylegan.build_generator("stylegan2", 16, 0, cbase=256, cmax=8, z_dim=8, w_dim=8)
    first = _run("swd16k", G, str(folder), tmp_path, num_gen=8)
    second = _run("swd16k", G, str(folder), tmp_path, num_gen=8)
    assert set(first["results"]) == {"swd16k", "swd16k_16"} and first["results"]["swd16k"] > 0
    assert first["results"] == second["results"]  # seeded: the same number twice
    snapshot = tmp_path / "run" / "network-snapshot-000000.safetensors"
    report_metric(first, run_dir=tmp_path / "run", snapshot_pkl=snapshot)
    entry = json.loads((tmp_path / "run" / "metric-swd16k.jsonl").read_text().splitlines()[-1])
    assert entry["metric"] == "swd16k" and entry["results"] == first["results"]
    assert entry["snapshot_pkl"] == "network-snapshot-000000.safetensors"
