"""MCMC diagnostics of parallel chains: autocorrelation and effective sample size. Chapter 3."""

from __future__ import annotations

import numpy as np
from torch import Tensor


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
