"""The VP-SDE and its exact results for Gaussian mixtures (its samplers are in `samplers/vpsde.py`).

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,   beta(t) = beta_min + (beta_max - beta_min) t,   t in [0, 1]

(Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 11 and appendix B). As in the
paper's code, one SDE object answers every question a sampler asks (`marginal`, `drift`, `diffusion`,
`reverse_drift`, `ode_drift`, `prior_sample`), and each sampler in `samplers/` is written once against it.
Tensors are (B, ...) with times t of shape (B,): (B, 1) points in chapter 5, (B, 1, 28, 28) images in 7.

Notation used in the code (the chapters write sqrt(alpha_bar(t)) for alpha(t), and q(x_t | x_0) for the
kernel: book/notation.md):
    B(t)     = int_0^t beta(s) ds = beta_min t + 1/2 (beta_max - beta_min) t^2        `beta_integral`
    alpha(t) = exp(-1/2 B(t)) = sqrt(alpha_bar(t))  mean coefficient of q(x_t | x_0)  `alpha`
    sigma(t) = sqrt(1 - alpha(t)^2)                 std of q(x_t | x_0)              `marginal_std`
    q(x_t | x_0) = N(x_t; alpha(t) x_0, sigma(t)^2 I)                      (appendix B of the paper)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .data import GaussianMixture1D
from .schedules import expand_like
from .scores import ScoreFn


EPS = 1e-3
"""Smallest time of the reverse runs and of training. sigma(0) = 0, so a noise-prediction score
-eps_theta / sigma(t) cannot be evaluated at t = 0; at t = 1e-3, sigma = 0.0105 for the default beta's,
which changes the law of x_eps from that of x_0 by less than a part in 10^3 of a 0.5-wide mode
(the official score-SDE code samples the VP-SDE down to the same `sampling_eps = 1e-3`)."""


def _as_time(t, name: str = "t") -> Tensor:
    """t as a tensor (Python numbers become float64), checked to lie in [0, 1]."""
    t = t if isinstance(t, Tensor) else torch.as_tensor(t, dtype=torch.float64)
    if not t.is_floating_point():
        t = t.double()
    if t.numel() and (bool(t.min() < 0.0) or bool(t.max() > 1.0)):
        raise ValueError(f"{name} must lie in [0, 1], got values in [{float(t.min())}, {float(t.max())}]")
    return t


def _check_batch(x: Tensor, t: Tensor) -> None:
    if t.ndim != 1 or x.ndim < 1 or t.shape[0] != x.shape[0]:
        raise ValueError(f"x must be (B, ...) and t (B,), got x {tuple(x.shape)} and t {tuple(t.shape)}")


class VPSDE:
    """Variance-preserving SDE with a linear beta(t) on t in [0, 1] (Song et al. 2021, eq. 11). Chapters 5, 7.

    beta_min, beta_max: beta(0) and beta(1); the paper's (and this course's) values are 0.1 and 20.
    Methods that take x expect x (B, ...) and t (B,); those that take only t accept a float or any tensor.
    """

    T = 1.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not beta_min > 0:
            raise ValueError(f"beta_min must be positive, got {beta_min}")
        if not beta_max >= beta_min:
            raise ValueError(f"beta_max must be >= beta_min = {beta_min}, got {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def __repr__(self) -> str:
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max})"

    # -- the schedule, functions of t alone
    def beta(self, t) -> Tensor:
        """beta(t) = beta_min + (beta_max - beta_min) t, shaped like t."""
        t = _as_time(t)
        return self.beta_min + (self.beta_max - self.beta_min) * t

    def beta_integral(self, t) -> Tensor:
        """B(t) = int_0^t beta(s) ds = beta_min t + 1/2 (beta_max - beta_min) t^2, shaped like t."""
        t = _as_time(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha(self, t) -> Tensor:
        """Mean coefficient alpha(t) = exp(-1/2 B(t)) of p_t(x_t | x_0), shaped like t."""
        return torch.exp(-0.5 * self.beta_integral(t))

    mean_coeff = alpha

    def marginal_std(self, t) -> Tensor:
        """sigma(t) = sqrt(1 - alpha(t)^2) = sqrt(1 - exp(-B(t))), shaped like t (expm1 keeps small t exact)."""
        return torch.sqrt(-torch.expm1(-self.beta_integral(t)))

    def log_snr(self, t) -> Tensor:
        """lambda(t) = log(alpha(t) / sigma(t)) = -1/2 log(e^B(t) - 1), shaped like t; +inf at t = 0.

        Half the log signal-to-noise ratio, the time variable of DDIM and DPM-Solver (Lu et al. 2022, sec. 3.1):
        it falls from +inf at t = 0 to lambda(1) = -5.0 for the default beta's. Chapter 7.
        """
        return -0.5 * torch.log(torch.expm1(self.beta_integral(t)))

    def time_of_log_snr(self, lam) -> Tensor:
        """The inverse of `log_snr`: t(lambda) in [0, 1], shaped like lam (Lu et al. 2022, appendix).

        alpha^2 + sigma^2 = 1 gives B(t) = log(1 + e^(-2 lambda)) = softplus(-2 lambda); then t solves
        beta_min t + 1/2 (beta_max - beta_min) t^2 = B, written as t = 2B / (beta_min + sqrt(beta_min^2 +
        2 (beta_max - beta_min) B)) so that it holds for a constant beta too. ValueError if some lambda lies below
        lambda(1) (no time of [0, 1] has it).
        """
        lam = lam if isinstance(lam, Tensor) else torch.as_tensor(lam, dtype=torch.float64)
        b = torch.nn.functional.softplus(-2.0 * lam)
        d = self.beta_max - self.beta_min
        t = 2.0 * b / (self.beta_min + torch.sqrt(self.beta_min**2 + 2.0 * d * b))
        if t.numel() and bool(t.max() > 1.0 + 1e-9):
            raise ValueError(f"lam must be >= lambda(1) = {float(self.log_snr(1.0)):.4f}, got {float(lam.min()):.4f}")
        return t.clamp(max=1.0)

    # -- the transition kernel p_t(x_t | x_0)
    def marginal(self, x0: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (B, ...) and std (B, 1, ...) of p_t(x_t | x_0) = N(alpha(t) x0, sigma(t)^2 I) (appendix B).

        x0: (B, ...) data; t: (B,) in [0, 1]. The std broadcasts against x0.
        """
        t = _as_time(t).to(x0)
        _check_batch(x0, t)
        return expand_like(self.alpha(t), x0) * x0, expand_like(self.marginal_std(t), x0)

    marginal_prob = marginal  # the name of the official score-SDE code

    def perturb(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = alpha(t) x0 + sigma(t) noise, a draw of p_t(x_t | x_0) when noise ~ N(0, I); shape of x0."""
        mean, std = self.marginal(x0, t)
        return mean + std * noise

    def transition_log_prob(self, xt: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """log p_t(x_t | x_0) summed over all but the batch dimension: (B,)."""
        mean, std = self.marginal(x0, t)
        z = (xt - mean) / std
        per = -0.5 * z**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)
        return per.flatten(1).sum(1) if per.ndim > 1 else per

    def transition_score(self, xt: Tensor, x0: Tensor, t: Tensor) -> Tensor:
        """grad_{x_t} log p_t(x_t | x_0) = -(x_t - alpha(t) x0) / sigma(t)^2, shape of xt.

        The target of denoising score matching; with x_t = alpha x0 + sigma z it equals -z / sigma.
        """
        mean, std = self.marginal(x0, t)
        return -(xt - mean) / std**2

    # -- the SDE and its reverse
    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        """f(x, t) = -1/2 beta(t) x, shape of x; x (B, ...), t (B,)."""
        t = _as_time(t).to(x)
        _check_batch(x, t)
        return -0.5 * expand_like(self.beta(t), x) * x

    def diffusion(self, t) -> Tensor:
        """g(t) = sqrt(beta(t)), shaped like t."""
        return torch.sqrt(self.beta(t))

    def sde(self, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """(drift (B, ...), diffusion (B,)), as the official code's `sde(x, t)`."""
        return self.drift(x, t), self.diffusion(_as_time(t).to(x))

    def reverse_drift(self, x: Tensor, t: Tensor, score: ScoreFn) -> Tensor:
        """Drift of the reverse-time SDE, f(x, t) - g(t)^2 score(x, t) (Anderson 1982; Song et al. eq. 6).

        Run with dt < 0: dx = [f - g^2 grad log p_t] dt + g dw_bar. Shape of x.
        """
        g2 = expand_like(self.beta(_as_time(t).to(x)), x)
        return self.drift(x, t) - g2 * score(x, t)

    def ode_drift(self, x: Tensor, t: Tensor, score: ScoreFn) -> Tensor:
        """Probability-flow ODE drift f(x, t) - 1/2 g(t)^2 score(x, t) (Song et al. 2021, eq. 13). Shape of x.

        Its solutions carry p_0 to p_1 and back with the same marginals p_t as the SDE, in either direction.
        """
        g2 = expand_like(self.beta(_as_time(t).to(x)), x)
        return self.drift(x, t) - 0.5 * g2 * score(x, t)

    # -- the prior
    def prior_sample(self, shape: tuple, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        """x_1 ~ N(0, I) of `shape` (the limit of p_1 when B(1) is large: alpha(1) = 0.0066 here)."""
        return torch.randn(shape, generator=generator).to(device)

    def prior_log_prob(self, x: Tensor) -> Tensor:
        """log N(x; 0, I) summed over all but the batch dimension: (B,)."""
        per = -0.5 * x**2 - 0.5 * math.log(2 * math.pi)
        return per.flatten(1).sum(1) if per.ndim > 1 else per


# ----------------------------------------------------------------- exact results for 1D Gaussian mixtures


def mixture_marginal(mix: GaussianMixture1D, sde: VPSDE, t: float) -> GaussianMixture1D:
    """p_t(x) for x_0 ~ mix: the mixture sum_k w_k N(alpha mu_k, alpha^2 s_k^2 + 1 - alpha^2). Chapter 5.

    Each component is a Gaussian pushed through the linear-Gaussian kernel p_t(x_t | x_0), so the weights
    stay and means and variances change; its `.pdf` and `.score` are the exact density and score at time t.
    """
    a = float(sde.alpha(float(t)))
    stds = tuple(math.sqrt(a**2 * s**2 + 1.0 - a**2) for s in mix.stds)
    return GaussianMixture1D(mix.weights, tuple(a * m for m in mix.means), stds)


def mixture_log_prob(mix: GaussianMixture1D, sde: VPSDE, x: Tensor, t: Tensor) -> Tensor:
    """log p_t(x) elementwise for x (B, ...) and t (B,): each entry of x is one 1D point at its row's time."""
    return torch.logsumexp(_mixture_components(mix, sde, x, t)[0], dim=0)


def mixture_score(mix: GaussianMixture1D, sde: VPSDE, x: Tensor, t: Tensor) -> Tensor:
    """grad log p_t(x) = sum_k r_k(x, t) (alpha mu_k - x) / v_k(t), elementwise; x (B, ...), t (B,).

    v_k(t) = alpha^2 s_k^2 + 1 - alpha^2 and r_k the responsibilities of the components at time t.
    """
    logp, m, v = _mixture_components(mix, sde, x, t)
    r = torch.exp(logp - torch.logsumexp(logp, dim=0))
    return (r * (m - x) / v).sum(0)


def exact_score(mix: GaussianMixture1D, sde: VPSDE) -> ScoreFn:
    """The exact score of the mixture's marginals as a score function (x (B, ...), t (B,)) -> (B, ...)."""
    return lambda x, t: mixture_score(mix, sde, x, t)


def _mixture_components(mix, sde, x, t):
    """log(w_k N(x; alpha mu_k, v_k)), alpha mu_k and v_k, each (K, B, ...) with the components first."""
    t = _as_time(t).to(x)
    _check_batch(x, t)
    shape = (-1,) + (1,) * x.ndim
    w, mu, s = (torch.tensor(v, dtype=x.dtype, device=x.device).reshape(shape)
                for v in (mix.weights, mix.means, mix.stds))
    a = expand_like(sde.alpha(t), x)  # (B, 1, ..., 1)
    m = a * mu
    v = a**2 * s**2 + 1.0 - a**2
    logp = torch.log(w) - 0.5 * (x - m) ** 2 / v - 0.5 * torch.log(2 * math.pi * v)
    return logp, m, v


# ------------------------------------------------- a VP-SDE matched to a discrete DDPM schedule (ch. 6, 7)


def discrete_beta_range(T: int, beta_1: float, beta_T: float) -> tuple[float, float]:
    """(beta_min, beta_max) of the linear beta(t) with beta(i / T) = T beta_i for a DDPM's linear betas.

    The DDPM's beta_i = beta_1 + (beta_T - beta_1) (i - 1) / (T - 1), i = 1..T (Ho et al. 2020), read at
    i = t T and scaled by T (a step of the chain lasts dt = 1 / T, and beta(t) dt = beta_i), is linear in t:
        beta(t) = T beta_1 + T (beta_T - beta_1) (t T - 1) / (T - 1)
    so, exactly,
        beta_max = beta(1) = T beta_T,
        beta_min = beta(0) = T beta_1 - T (beta_T - beta_1) / (T - 1).
    For T = 1000, beta_1 = 1e-4, beta_T = 0.02: beta_min = 0.1 - 19.9 / 999 = 0.0800801, beta_max = 20.
    Song et al. (2021) instead use beta_min = T beta_1 = 0.1 (their line passes through T beta_i at
    t = (i - 1) / (T - 1)); the two B(t) differ by at most 0.01. Chapters 6 and 7.
    """
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"T must be an integer >= 2, got {T!r}")
    if not 0 < beta_1 <= beta_T < 1:
        raise ValueError(f"need 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
    beta_min = T * beta_1 - T * (beta_T - beta_1) / (T - 1)
    if not beta_min > 0:
        raise ValueError(f"T={T}, beta_1={beta_1}, beta_T={beta_T} give beta(0) = {beta_min} <= 0")
    return beta_min, T * beta_T
