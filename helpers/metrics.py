"""Sample-quality metrics, each meant to be read next to its floor.

A metric between model samples and data is only meaningful beside the same metric between two
independent data samples of the same size (the *floor*): even a perfect sampler scores the floor, not 0.
`with_floor` computes both.
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


def with_floor(metric: Callable, samples, draw_reference: Callable[[int], object],
               repeats: int = 5) -> dict:
    """A metric of `samples` against fresh data, beside the same metric between two data samples.

    draw_reference(seed) returns a fresh data sample of the same size as `samples`.
    Returns {"value", "floor", "floor_std"}: value = metric(samples, ref(0)); floor = the mean over
    `repeats` pairs of metric(ref(2k + 1), ref(2k + 2)), and floor_std their standard deviation.
    """
    value = metric(samples, draw_reference(0))
    floors = [metric(draw_reference(2 * k + 1), draw_reference(2 * k + 2)) for k in range(repeats)]
    return {"value": float(value), "floor": float(np.mean(floors)), "floor_std": float(np.std(floors))}


def verdict(label: str, ok: bool) -> bool:
    """Print `label: True/False` for a chapter's check cell (nbval compares the line) and return ok.

    The label states the claim and its threshold, e.g. "MMD^2 within 3e-4 of its floor", so the printed
    line reads the same in fast and full mode whenever the claim holds.
    """
    ok = bool(ok)
    print(f"{label}: {ok}")
    return ok


# ------------------------------------------------------------------------------ MCMC diagnostics (ch. 3)


def _as_chains(chain) -> np.ndarray:
    """A chain (n,) or (n, C) (array or tensor) as a float64 array (n, C)."""
    x = chain.detach().cpu().numpy() if isinstance(chain, Tensor) else np.asarray(chain)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"chain must have shape (n,) or (n, C) with n >= 2, got {x.shape}")
    return x


def _pooled_autocovariance(x: np.ndarray) -> np.ndarray:
    """gamma(t) = mean_c (1/n) sum_{i < n - t} (x_ic - m)(x_{i+t,c} - m), t = 0..n-1, m the pooled mean.

    x: (n, C). Computed by FFT with zero padding (no wrap-around). Returns (n,).
    """
    n = x.shape[0]
    centred = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(centred, n=size, axis=0)
    return np.fft.irfft(f * np.conj(f), n=size, axis=0)[:n].mean(axis=1) / n


def autocorrelation(chain, max_lag: int) -> np.ndarray:
    """Autocorrelation rho_t = gamma(t) / gamma(0), t = 0..max_lag, of C parallel chains. Chapter 3.

    chain: (n,) or (n, C), time first. gamma(t) = mean_c (1/n) sum_{i < n - t} (x_ic - m)(x_{i+t,c} - m),
    averaged over the chains, computed by FFT. Returns (max_lag + 1,), rho_0 = 1.
    m is the mean of all n C draws, not each chain's own: centring each short chain on its own mean
    biases rho_t by about -tau / n, while with the pooled mean chains that disagree (not yet mixed) show
    up as lasting positive correlation. The 1/n (not 1/(n - t)) estimator keeps the sequence positive
    definite, as Geyer's truncation in `effective_sample_size` needs.
    """
    x = _as_chains(chain)
    if int(max_lag) != max_lag or not 0 <= max_lag < x.shape[0]:
        raise ValueError(f"max_lag must be an integer in [0, n - 1 = {x.shape[0] - 1}], got {max_lag}")
    gamma = _pooled_autocovariance(x)
    if gamma[0] <= 0:
        raise ValueError("the chain is constant: its autocorrelation is undefined")
    return gamma[: int(max_lag) + 1] / gamma[0]


def effective_sample_size(chain) -> float:
    """Effective sample size of the n C draws of C parallel chains, (n,) or (n, C). Chapter 3.

    ESS = n C / tau with the integrated autocorrelation time tau = 1 + 2 sum_{t >= 1} rho_t (rho_t from
    `autocorrelation`); for i.i.d. draws tau = 1, for an AR(1) chain with coefficient r,
    tau = (1 + r) / (1 - r). The noisy tail of rho_t is cut with Geyer's (1992) initial monotone
    sequence: the pair sums P_k = rho_{2k} + rho_{2k+1} are added while they are positive, each capped
    by the previous one, and tau = -1 + 2 sum_k P_k. For antithetic chains tau < 1 and the ESS exceeds
    n C; as in Stan, tau is kept >= 1 / log10(n C).
    The chains should be past their burn-in. With short chains (n of ten or so tau) the 1/n estimator
    shrinks rho_t by (1 - t / n), and the ESS comes out a few per cent high.
    """
    x = _as_chains(chain)
    n, n_chains = x.shape
    gamma = _pooled_autocovariance(x)
    if gamma[0] <= 0:
        raise ValueError("the chain is constant: its effective sample size is undefined")
    rho = gamma / gamma[0]
    tau, previous = -1.0, np.inf
    for k in range(n // 2):
        pair = rho[2 * k] + rho[2 * k + 1]
        if pair <= 0:
            break
        previous = min(previous, pair)
        tau += 2.0 * previous
    tau = max(tau, 1.0 / np.log10(n * n_chains))
    return float(n * n_chains / tau)


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


# ---------------------------------------------------------------------------- MNIST sample quality (ch. 6-8)


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


# The evaluation classifier (models.py, "mnist-eval") trains on the first 50,000 MNIST training images;
# the last 10,000 (indices 50,000..59,999) it never sees are the real sample of the FD floor.
MNIST_HELD_OUT = (50_000, 60_000)

_FEATURE_CACHE = None  # weakref.WeakKeyDictionary: classifier -> {(split, seed, n): (features, predictions)}


def _classifier_outputs(classifier, images01: Tensor, batch: int = 200) -> tuple[Tensor, Tensor]:
    """Features (n, d) float64 and predicted classes (n,) of images (n, 1, 28, 28) in [0, 1]."""
    device = next(classifier.parameters()).device
    was_training = classifier.training
    classifier.eval()
    feats, preds = [], []
    try:
        with torch.no_grad():
            for chunk in images01.split(batch):
                f = classifier.features(chunk.to(device))
                feats.append(f.double().cpu())
                preds.append(classifier.head(f).argmax(1).cpu())
    finally:
        classifier.train(was_training)
    return torch.cat(feats), torch.cat(preds)


def _reference_outputs(classifier, split: str, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """Classifier outputs on the real reference images, cached per classifier instance.

    split "test": n MNIST test images, the first n of torch.randperm(10000) seeded `seed`;
    split "held_out": n of the held-out training images MNIST_HELD_OUT, the first n of their
    torch.randperm seeded `seed + 1`. The classifier must not change after its first use here.
    """
    global _FEATURE_CACHE
    import weakref

    from . import config, data

    if _FEATURE_CACHE is None:
        _FEATURE_CACHE = weakref.WeakKeyDictionary()
    cache = _FEATURE_CACHE.setdefault(classifier, {})
    key = (split, int(seed), int(n))
    if key not in cache:
        if split == "test":
            images = data.mnist_tensors_cached(train=False)[0]
            idx = torch.randperm(len(images), generator=config.generator(seed))[:n]
        else:
            lo, hi = MNIST_HELD_OUT
            images = data.mnist_tensors_cached(train=True)[0]
            idx = lo + torch.randperm(hi - lo, generator=config.generator(seed + 1))[:n]
        cache[key] = _classifier_outputs(classifier, images[idx])
    return cache[key]


def _class_tv(predictions: Tensor, label_freq: Tensor) -> float:
    """Total variation between the histogram of predicted classes and the frequencies `label_freq` (10,)."""
    hist = torch.bincount(predictions, minlength=10).double() / len(predictions)
    return float(0.5 * (hist - label_freq).abs().sum())


def mnist_fd_floor(classifier, n: int, n_reference_seed: int = 0) -> float:
    """FD between n held-out real training images and n test images (both as in `mnist_quality`).

    What a perfect sampler scores at this n, in the features of `classifier` (a `nets.MNISTClassifier`).
    """
    _check_mnist_n(n)
    test_feats, _ = _reference_outputs(classifier, "test", n, n_reference_seed)
    held_feats, _ = _reference_outputs(classifier, "held_out", n, n_reference_seed)
    return frechet_distance(held_feats, test_feats)


def _check_mnist_n(n: int) -> None:
    lo, hi = MNIST_HELD_OUT
    if not 2 <= n <= min(10_000, hi - lo):
        raise ValueError(f"mnist_quality needs between 2 and 10000 images, got n={n}")


def mnist_quality(images01, classifier, n_reference_seed: int = 0) -> dict:
    """Sample quality of n generated MNIST digits, beside what n real digits score. Chapters 6, 7 and 8.

    images01: (n, 28, 28) or (n, 1, 28, 28) pixels in [0, 1] (array or tensor), 2 <= n <= 10,000;
    classifier: a trained `nets.MNISTClassifier` (the "mnist-eval" model), whose penultimate features
    are the feature space. Returns a dict:
      fd              FD (`frechet_distance`) between the samples' features and those of n MNIST test
                      images (the first n of torch.randperm(10000) seeded n_reference_seed);
      fd_floor        FD between n real training images the classifier never saw (from MNIST_HELD_OUT,
                      the first n of a randperm seeded n_reference_seed + 1) and the same n test images:
                      what a perfect sampler scores at this n;
      class_histogram how many samples the classifier puts in each class 0..9 (list of 10 ints);
      class_tv        total variation between that histogram (normalised) and the test labels' frequencies,
                      and class_tv_floor the same for the held-out real images' predictions;
      n               the number of samples.
    Features of the real images are cached per classifier instance, so repeated calls are cheap.
    """
    from . import data

    x = torch.as_tensor(np.asarray(images01) if not isinstance(images01, Tensor) else images01).float()
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise ValueError(f"images01 must have shape (n, 28, 28) or (n, 1, 28, 28), got {tuple(x.shape)}")
    n = len(x)
    _check_mnist_n(n)
    lo_px, hi_px = float(x.min()), float(x.max())
    if lo_px < -1e-3 or hi_px > 1 + 1e-3:
        raise ValueError(f"images01 must hold pixels in [0, 1], got values in [{lo_px:.3g}, {hi_px:.3g}] "
                         "(model outputs in [-1, 1] go through data.from_model_range first)")
    feats, preds = _classifier_outputs(classifier, x.clamp(0.0, 1.0))
    test_feats, _ = _reference_outputs(classifier, "test", n, n_reference_seed)
    held_feats, held_preds = _reference_outputs(classifier, "held_out", n, n_reference_seed)
    labels = data.mnist_tensors_cached(train=False)[1]
    label_freq = torch.bincount(labels, minlength=10).double() / len(labels)
    return {"fd": frechet_distance(feats, test_feats), "fd_floor": mnist_fd_floor(classifier, n, n_reference_seed),
            "class_histogram": torch.bincount(preds, minlength=10).tolist(),
            "class_tv": _class_tv(preds, label_freq), "class_tv_floor": _class_tv(held_preds, label_freq),
            "n": n}
