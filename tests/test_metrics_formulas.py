"""The metric formulas against independent computations: FID closed form, direct KID, hand-made PR, IS."""
import itertools

import numpy as np
import pytest
import scipy.linalg
import torch

from stylegan.metrics import formulas
from stylegan.metrics.stats import FeatureStats


def _closed_form_fid(mu1, s1, mu2, s2):
    # Independent route: Tr((S1^1/2 S2 S1^1/2)^1/2) through symmetric eigendecompositions, not sqrtm(S1 S2).
    w, v = scipy.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = root1 @ s2 @ root1
    w2 = scipy.linalg.eigvalsh((inner + inner.T) / 2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(w2, 0, None))))


def test_fid_of_gaussian_feature_sets_matches_closed_form():
    rng = np.random.default_rng(1)
    d = 16
    a = rng.normal(size=(d, d))
    b = rng.normal(size=(d, d)) * 0.5
    x = rng.normal(size=(3000, d)) @ a + 1.0
    y = rng.normal(size=(2500, d)) @ b - 0.5
    sx, sy = FeatureStats(capture_mean_cov=True), FeatureStats(capture_mean_cov=True)
    for chunk in np.array_split(x, 7):  # accumulated in pieces, as during extraction
        sx.append(torch.from_numpy(chunk))
    for chunk in np.array_split(y, 5):
        sy.append(torch.from_numpy(chunk))
    sx.gather(), sy.gather()
    ours = formulas.frechet_distance(sx.mean, sx.cov, sy.mean, sy.cov)
    expected = _closed_form_fid(x.mean(0), np.cov(x, rowvar=False, bias=True),
                                y.mean(0), np.cov(y, rowvar=False, bias=True))
    assert ours == pytest.approx(expected, rel=1e-6)
    assert ours > 1


def test_fid_of_diagonal_gaussians_is_analytic():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    v1, v2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert formulas.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-9)
    assert formulas.frechet_distance(mu1, np.diag(v1), mu1, np.diag(v1)) == pytest.approx(0, abs=1e-9)


def test_kid_matches_direct_unbiased_estimator():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 8)).astype(np.float32)
    gen = (rng.normal(size=(40, 8)) * 1.3 + 0.4).astype(np.float32)
    d, m = real.shape[1], real.shape[0]

    def k(u, v):
        return (float(np.dot(u.astype(np.float64), v.astype(np.float64))) / d + 1) ** 3

    # Unbiased MMD^2 with explicit sums over i != j; one subset of all items is a permutation, which MMD ignores.
    xx = sum(k(gen[i], gen[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(real[i], real[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(gen[i], real[j]) for i in range(m) for j in range(m)) / (m * m)
    direct = xx + yy - 2 * xy
    ours = formulas.kernel_inception_distance(real, gen, num_subsets=1, max_subset_size=1000)
    assert ours == pytest.approx(direct, rel=1e-9)
    assert ours > 0
    # Two samples of one distribution: the unbiased estimate sits near zero (it may be negative).
    a, b = rng.normal(size=(2, 600, 8)).astype(np.float32)
    same = formulas.kernel_inception_distance(a, b, num_subsets=10, max_subset_size=300)
    shifted = formulas.kernel_inception_distance(a, b * 1.3 + 0.4, num_subsets=10, max_subset_size=300)
    assert abs(same) < 0.05 * shifted


def test_precision_recall_on_sets_with_known_overlap():
    # Reals: 100 points on a line, spacing 1. Gen: copies of the first 50, plus a tight far cluster of 50.
    real = np.stack([np.arange(100.0), np.zeros(100)], axis=1)
    far = np.stack([1000 + np.arange(50) * 1e-3, np.zeros(50)], axis=1)
    gen = np.concatenate([real[:50], far])
    precision, recall = formulas.precision_recall(real, gen, k=3, batch=7)
    assert precision == pytest.approx(0.5)   # the copies lie inside the real balls, the far cluster does not
    # Gen balls around the copies reach 3 past the last copy (x = 49 + 3): reals 0..52 are covered.
    assert recall == pytest.approx(0.53)
    assert formulas.precision_recall(real, real, k=3) == (1.0, 1.0)


def test_inception_score_extremes():
    uniform = np.full((100, 10), 0.1)
    assert formulas.inception_score(uniform, num_splits=10) == pytest.approx((1.0, 0.0))
    onehot = np.eye(10)[np.arange(1000) % 10] * (1 - 1e-12) + 1e-13  # confident and evenly spread: IS = classes
    mean, std = formulas.inception_score(onehot, num_splits=10)
    assert mean == pytest.approx(10, rel=1e-6) and std == pytest.approx(0, abs=1e-6)
