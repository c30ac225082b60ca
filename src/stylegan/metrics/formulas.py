"""The metric formulas on feature arrays, free of networks and data, so each can be checked on its own."""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

from stylegan.core import dist


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID (Heusel et al. 2017, eq. 6): |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The matrix square root is scipy's (as in NVIDIA's and the original TTUR code); its tiny imaginary part,
    from rounding, is dropped.
    """
    m = np.square(mu1 - mu2).sum()
    s = scipy.linalg.sqrtm(np.dot(sigma1, sigma2))
    return float(np.real(m + np.trace(sigma1 + sigma2 - s * 2)))


def kernel_inception_distance(real: np.ndarray, gen: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                              seed: int = 0) -> float:
    """KID (Binkowski et al. 2018): the unbiased MMD^2 estimate with the kernel k(x, y) = (x.y / d + 1)^3,
    averaged over `num_subsets` random subsets of m = min(|real|, |gen|, max_subset_size) items from each set.

    Per subset: sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2.
    """
    d = real.shape[1]
    m = min(real.shape[0], gen.shape[0], max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least 2 items in each set")
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(num_subsets):
        x = gen[rng.choice(gen.shape[0], m, replace=False)].astype(np.float64)
        y = real[rng.choice(real.shape[0], m, replace=False)].astype(np.float64)
        within = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        across = (x @ y.T / d + 1) ** 3
        total += (within.sum() - np.diag(within).sum()) / (m - 1) - across.sum() * 2 / m
    return float(total / num_subsets / m)


def _kth_radii(manifold: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (the point itself excluded)."""
    n = manifold.shape[0]
    radii = torch.zeros(n, dtype=torch.float32, device=manifold.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    for start in range(rank * batch, n, batch * world):  # rows split across ranks, then summed
        rows = manifold[start:start + batch]
        d = _distances(rows, manifold, batch)
        radii[start:start + rows.shape[0]] = d.kthvalue(k + 1, dim=1).values  # +1: the zero distance to itself
    return dist.all_reduce_sum_(radii)


def _distances(rows: torch.Tensor, cols: torch.Tensor, batch: int) -> torch.Tensor:
    return torch.cat([torch.cdist(rows, c) for c in cols.split(batch)], dim=1)  # [rows, cols]


def _coverage(manifold: torch.Tensor, radii: torch.Tensor, probes: torch.Tensor, batch: int) -> float:
    """Fraction of probes that fall inside at least one manifold point's k-NN ball."""
    hits = torch.zeros(1, dtype=torch.float64, device=probes.device)
    rank, world = dist.get_rank(), dist.get_world_size()
    for start in range(rank * batch, probes.shape[0], batch * world):
        d = _distances(probes[start:start + batch], manifold, batch)
        hits += (d <= radii.unsqueeze(0)).any(dim=1).sum()
    return float(dist.all_reduce_sum_(hits).item() / probes.shape[0])


def precision_recall(real: np.ndarray | torch.Tensor, gen: np.ndarray | torch.Tensor, k: int = 3,
                     batch: int = 10000, device: torch.device | str = "cpu") -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    The real manifold is the union of balls around each real feature with radius its distance to its k-th
    nearest real neighbour; precision is the fraction of generated features inside it. Recall swaps roles.
    Distances are computed in float32 in blocks of `batch` rows and columns; under torchrun the rows are split.
    """
    real_t = torch.as_tensor(real, dtype=torch.float32, device=device)
    gen_t = torch.as_tensor(gen, dtype=torch.float32, device=device)
    precision = _coverage(real_t, _kth_radii(real_t, k, batch), gen_t, batch)
    recall = _coverage(gen_t, _kth_radii(gen_t, k, batch), real_t, batch)
    return precision, recall


def inception_score(probs: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """IS (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) on each of `num_splits` consecutive splits.

    Returns the mean and standard deviation over splits.
    """
    n = probs.shape[0]
    num_splits = max(1, min(num_splits, n))  # development runs with fewer samples than splits
    scores = []
    for i in range(num_splits):
        part = probs[i * n // num_splits:(i + 1) * n // num_splits].astype(np.float64)
        kl = part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))
        scores.append(np.exp(kl.sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))
