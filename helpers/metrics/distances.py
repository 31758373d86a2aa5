"""Distances between two samples, or a sample and a distribution: each meant to be read beside its floor.

    mmd2_unbiased, energy_distance     2D samples (chapters 1, 2, 4)
    wasserstein_1d, wasserstein_1d_cdf, ks_statistic      1D samples (chapters 3, 5)
    frechet_distance                   feature samples of images (chapters 6-8)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from scipy import stats
from torch import Tensor


def _as_2d(x) -> Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x, dtype=torch.float64)
    return x.reshape(len(x), -1)


def median_bandwidth(x, y) -> float:
    """Median heuristic: the median pairwise Euclidean distance of the pooled sample (at most 2000 points)."""
    z = torch.cat([_as_2d(x), _as_2d(y)])[:2000]
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), diagonal=1)].median())


def mmd2_unbiased(x, y, bandwidth: float | str = 0.1) -> float:
    """Unbiased estimate of MMD^2 with the RBF kernel k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2)).

    x: (n, d), y: (m, d) (arrays or tensors). bandwidth: a positive number or "median" (median_bandwidth).
    MMD^2_u = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)
    (Gretton et al. 2012, eq. 3); it can be slightly negative. Chapters 1, 2 and 4.
    """
    x, y = _as_2d(x), _as_2d(y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y need the same dimension, got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd2_unbiased needs at least 2 points in each sample")
    sigma = median_bandwidth(x, y) if bandwidth == "median" else float(bandwidth)
    if sigma <= 0:
        raise ValueError(f"bandwidth must be positive or 'median', got {bandwidth!r}")

    def mean_k(a, b, drop_diagonal):
        k = torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))
        if drop_diagonal:
            n = len(a)
            return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
        return k.mean()

    return float(mean_k(x, x, True) + mean_k(y, y, True) - 2 * mean_k(x, y, False))


def energy_distance(x, y) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| (Szekely & Rizzo 2013), U-statistics within.

    x: (n, d), y: (m, d). Zero iff the distributions are equal; chapters 1, 2 and 4.
    """
    x, y = _as_2d(x), _as_2d(y)
    n, m = len(x), len(y)
    xy = torch.cdist(x, y).mean()
    xx = torch.cdist(x, x).sum() / (n * (n - 1))
    yy = torch.cdist(y, y).sum() / (m * (m - 1))
    return float(2 * xy - xx - yy)


def wasserstein_1d(x, y) -> float:
    """W1 between two 1D samples (scipy.stats.wasserstein_distance). Chapters 3 and 5."""
    return float(stats.wasserstein_distance(np.ravel(np.asarray(x, dtype=np.float64)),
                                            np.ravel(np.asarray(y, dtype=np.float64))))


def ks_statistic(x, y_or_cdf) -> float:
    """Kolmogorov-Smirnov statistic of a 1D sample against another sample or a CDF callable."""
    x = np.ravel(np.asarray(x, dtype=np.float64))
    if callable(y_or_cdf):
        return float(stats.kstest(x, y_or_cdf).statistic)
    return float(stats.ks_2samp(x, np.ravel(np.asarray(y_or_cdf, dtype=np.float64))).statistic)


def wasserstein_1d_cdf(x, cdf: Callable, lo: float | None = None, hi: float | None = None,
                       grid: int = 2**18) -> float:
    """W1 between a 1D sample and a distribution given by its CDF: int |F_n(u) - F(u)| du. Chapter 5.

    x: (n,) sample; cdf: vectorised numpy CDF (e.g. `GaussianMixture1D.cdf`). The integral runs on `grid`
    points over [lo, hi] (default: the sample's range widened by a quarter on each side; give lo and hi
    wide enough to hold the distribution's mass). Against the exact CDF, a perfect sampler's W1 is the
    one-sample floor, smaller than the two-sample one of `wasserstein_1d` (about 1/sqrt(2) of it).
    """
    x = np.sort(np.ravel(np.asarray(x, dtype=np.float64)))
    if len(x) < 1:
        raise ValueError("wasserstein_1d_cdf needs a non-empty sample")
    pad = 0.25 * (x[-1] - x[0] + 1e-12)
    lo = min(x[0] - pad, lo) if lo is not None else x[0] - pad
    hi = max(x[-1] + pad, hi) if hi is not None else x[-1] + pad
    u = np.linspace(lo, hi, grid)
    f_n = np.searchsorted(x, u, side="right") / len(x)
    return float(np.trapezoid(np.abs(f_n - cdf(u)), u))


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two feature samples (Heusel et al. 2017, "FID").

    feats_a: (n, d), feats_b: (m, d) (arrays or tensors). With means m_a, m_b and covariances C_a, C_b
    (unbiased, n - 1), FD = |m_a - m_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)), the squared 2-Wasserstein
    distance between N(m_a, C_a) and N(m_b, C_b). The square root is scipy.linalg.sqrtm's; the tiny
    imaginary parts round-off gives it are dropped, and when it is not finite (singular covariances, n <= d)
    eps = 1e-6 is added to both diagonals, as in pytorch-fid. Like every FD it is biased upwards at finite
    n: read it next to a floor computed at the same n (`mnist_quality`). Chapters 6, 7 and 8.
    """
    import warnings

    from scipy import linalg

    a = _as_2d(feats_a).numpy()
    b = _as_2d(feats_b).numpy()
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b need the same dimension, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"frechet_distance needs at least 2 points in each sample, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # "matrix is singular" when n <= d or a feature is constant: expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov_a @ cov_b)
        if not np.isfinite(covmean).all():
            offset = 1e-6 * np.eye(len(cov_a))
            covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        scale = max(1.0, float(np.abs(covmean.real).max()))
        if np.abs(np.diagonal(covmean).imag).max() > 1e-3 * scale:
            raise FloatingPointError(f"sqrtm(C_a C_b) has imaginary part {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
