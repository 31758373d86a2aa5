"""The VP-SDE, its exact results for Gaussian mixtures, and every SDE/ODE integrator of the course.

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw,   beta(t) = beta_min + (beta_max - beta_min) t,   t in [0, 1]

(Song et al. 2021, "Score-Based Generative Modeling through SDEs", eq. 11 and appendix B). As in the
paper's code, one SDE object answers every question a sampler asks (`marginal`, `drift`, `diffusion`,
`reverse_drift`, `ode_drift`, `prior_sample`), and each integrator below is written once against it.
Tensors are (B, ...) with times t of shape (B,): (B, 1) points in chapter 5, (B, 1, 28, 28) images in 7.

Notation used in the code and in chapter 5:
    B(t)     = int_0^t beta(s) ds = beta_min t + 1/2 (beta_max - beta_min) t^2        `beta_integral`
    alpha(t) = exp(-1/2 B(t))                      mean coefficient of p_t(x_t | x_0)  `alpha`
    sigma(t) = sqrt(1 - alpha(t)^2)                std of p_t(x_t | x_0)             `marginal_std`
    p_t(x_t | x_0) = N(x_t; alpha(t) x_0, sigma(t)^2 I)                    (appendix B of the paper)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .data import GaussianMixture1D
from .schedules import expand_like

ScoreFn = Callable[[Tensor, Tensor], Tensor]  # score(x (B, ...), t (B,)) -> (B, ...)

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


def eps_score(model: Callable[[Tensor, Tensor], Tensor], sde: VPSDE) -> ScoreFn:
    """Score of a noise-prediction network: s_theta(x, t) = -eps_theta(x, t) / sigma(t). Chapters 5 and 7.

    The model sees x (B, ...) and t (B,); valid for t > 0 only (sigma(0) = 0), hence the end time EPS.
    """
    return lambda x, t: -model(x, t) / expand_like(sde.marginal_std(t.to(x)), x)


# ----------------------------------------------------------------------------------------- integrators


@dataclass
class Trajectory:
    """States kept along a run: times (K,) float64 and states (K, B, ...) on the CPU, first and last included."""

    times: Tensor
    states: Tensor


def time_grid(t0: float, t1: float, steps: int) -> Tensor:
    """steps + 1 evenly spaced times from t0 to t1 (float64); decreasing when t1 < t0."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    _as_time(torch.tensor([t0, t1], dtype=torch.float64), "t0 and t1")
    if t0 == t1:
        raise ValueError(f"t0 and t1 must differ, got {t0} and {t1}")
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


class _Keeper:
    def __init__(self, keep_every: int, steps: int):
        if not isinstance(keep_every, int) or keep_every < 0:
            raise ValueError(f"keep_every must be a non-negative integer, got {keep_every!r}")
        self.every, self.steps, self.times, self.states = keep_every, steps, [], []

    def __call__(self, k: int, t: float, x: Tensor) -> None:
        if self.every and (k % self.every == 0 or k == self.steps):
            self.times.append(t)
            self.states.append(x.detach().cpu().clone())

    def result(self) -> Trajectory | None:
        if not self.every:
            return None
        return Trajectory(torch.tensor(self.times, dtype=torch.float64), torch.stack(self.states))


@torch.no_grad()
def euler_maruyama(sde: VPSDE, x: Tensor, t0: float, t1: float, steps: int, generator: torch.Generator,
                   score: ScoreFn | None = None, keep_every: int = 0,
                   progress: bool = False) -> tuple[Tensor, Trajectory | None]:
    """Euler-Maruyama from time t0 to t1 in `steps` equal steps of size h = |t1 - t0| / steps. Chapters 5, 7.

    Forward (t1 > t0, score None):  x <- x + f(x, t) h + g(t) sqrt(h) z                (eq. 5)
    Reverse (t1 < t0, score given): x <- x - [f(x, t) - g(t)^2 score(x, t)] h + g(t) sqrt(h) z   (eq. 6)
    with z ~ N(0, I) drawn from `generator` (CPU) at every step, the last one included.
    x: (B, ...) start at t0 (on any device). keep_every: also return every that many states (and the last).
    Returns (x at t1, Trajectory or None).
    """
    ts = time_grid(t0, t1, steps)
    forward = t1 > t0
    if forward and score is not None:
        raise ValueError("score must be None for the forward SDE (t1 > t0): its drift does not use it")
    if not forward and score is None:
        raise ValueError("score is needed for the reverse SDE (t1 < t0)")
    keeper = _Keeper(keep_every, steps)
    keeper(0, float(ts[0]), x)
    for k in tqdm(range(steps), disable=not progress, desc="Euler-Maruyama", mininterval=1.0):
        t, dt = float(ts[k]), float(ts[k + 1] - ts[k])
        tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        drift = sde.drift(x, tb) if forward else sde.reverse_drift(x, tb, score)
        g = expand_like(sde.diffusion(tb), x)
        z = torch.randn(x.shape, generator=generator).to(x)
        x = x + drift * dt + g * math.sqrt(abs(dt)) * z
        keeper(k + 1, float(ts[k + 1]), x)
    return x, keeper.result()


@torch.no_grad()
def ode_solve(sde: VPSDE, x: Tensor, t0: float, t1: float, steps: int, score: ScoreFn,
              method: str = "euler", keep_every: int = 0, progress: bool = False) -> tuple[Tensor, Trajectory | None]:
    """Probability-flow ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (eq. 13) from t0 to t1, either way.

    method "euler": x <- x + d(x, t) dt (one score call per step); "heun": the trapezoid predictor-
    corrector x' = x + d(x, t) dt, x <- x + (d(x, t) + d(x', t + dt)) dt / 2 (two calls, second order;
    Karras et al. 2022, Algorithm 1). dt = (t1 - t0) / steps is negative for the reverse direction.
    x: (B, ...) at t0. Returns (x at t1, Trajectory or None), as `euler_maruyama`.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    ts = time_grid(t0, t1, steps)
    keeper = _Keeper(keep_every, steps)
    keeper(0, float(ts[0]), x)

    def d(x_, t_):
        return sde.ode_drift(x_, torch.full((x_.shape[0],), t_, dtype=x_.dtype, device=x_.device), score)

    for k in tqdm(range(steps), disable=not progress, desc=f"ODE ({method})", mininterval=1.0):
        t, t_next = float(ts[k]), float(ts[k + 1])
        dt = t_next - t
        d1 = d(x, t)
        if method == "euler":
            x = x + d1 * dt
        else:
            x_pred = x + d1 * dt
            x = x + 0.5 * (d1 + d(x_pred, t_next)) * dt
        keeper(k + 1, t_next, x)
    return x, keeper.result()


def reverse_sample(sde: VPSDE, score: ScoreFn, shape: tuple, steps: int, generator: torch.Generator,
                   sampler: str = "sde", eps: float = EPS, device: torch.device | str = "cpu",
                   x1: Tensor | None = None, keep_every: int = 0,
                   progress: bool = False) -> tuple[Tensor, Trajectory | None]:
    """Draw x_1 ~ N(0, I) of `shape` (or take `x1`) and integrate back to t = eps. Chapters 5 and 7.

    sampler: "sde" (reverse Euler-Maruyama), "euler" or "heun" (probability-flow ODE). Unlike
    `ancestral_sample` and `pc_sample`, "sde" adds noise on its last step too (std g(eps) sqrt(h)).
    Returns (x_eps of `shape` on `device`, Trajectory or None).
    """
    if sampler not in ("sde", "euler", "heun"):
        raise ValueError(f"sampler must be 'sde', 'euler' or 'heun', got {sampler!r}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    x = sde.prior_sample(shape, generator, device) if x1 is None else x1.to(device)
    if sampler == "sde":
        return euler_maruyama(sde, x, 1.0, eps, steps, generator, score=score, keep_every=keep_every,
                              progress=progress)
    return ode_solve(sde, x, 1.0, eps, steps, score, method=sampler, keep_every=keep_every, progress=progress)


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


# ------------------------------------------------------------------ more samplers for image models (ch. 7)


def _full(t: float, x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


@torch.no_grad()
def ancestral_sample(sde: VPSDE, score: ScoreFn, x: Tensor, steps: int, generator: torch.Generator,
                     keep_every: int = 0, progress: bool = False) -> tuple[Tensor, Trajectory | None]:
    """DDPM-style ancestral sampling of the VP-SDE on the grid t_k = k / steps, k = steps..0. Chapter 7.

    x_{k-1} = (x_k + beta_k score(x_k, t_k)) / sqrt(1 - beta_k) + sqrt(beta_k) z_k     (Ho et al. 2020, Alg. 2
    with -eps / sigma = score; Song et al. 2021, eq. 47), z_k ~ N(0, I) on every step but the last (k = 1),
    where z = 0 so the output is the predicted mean. beta_k = 1 - alpha(t_k)^2 / alpha(t_{k-1})^2, the
    variance of one step of the forward chain between the grid times, so any `steps` is valid; with
    steps = T of a DDPM-matched SDE (`discrete_beta_range`) beta_k = 1 - exp(-(beta_{k-1} + beta_k) / 2),
    within 2.1e-4 of the DDPM's beta_k. x: (B, ...) at t = 1. Returns (x at t = 0, Trajectory or None).
    """
    ts = time_grid(1.0, 0.0, steps)
    keeper = _Keeper(keep_every, steps)
    keeper(0, 1.0, x)
    for k in tqdm(range(steps), disable=not progress, desc="ancestral sampling", mininterval=1.0):
        t, t_next = float(ts[k]), float(ts[k + 1])
        beta = float(-torch.expm1(sde.beta_integral(t_next) - sde.beta_integral(t)))
        x = (x + beta * score(x, _full(t, x))) / math.sqrt(1.0 - beta)
        if k < steps - 1:
            x = x + math.sqrt(beta) * torch.randn(x.shape, generator=generator).to(x)
        keeper(k + 1, t_next, x)
    return x, keeper.result()


def _mean_norm(v: Tensor) -> float:
    """The batch mean of |v_b|, each norm over all but the batch dimension (as the official `LangevinCorrector`)."""
    return float(v.flatten(1).norm(dim=1).mean())


@torch.no_grad()
def pc_sample(sde: VPSDE, score: ScoreFn, x: Tensor, steps: int, generator: torch.Generator, snr: float = 0.16,
              corrector_steps: int = 1, eps: float = EPS, keep_every: int = 0,
              progress: bool = False) -> tuple[Tensor, Trajectory | None]:
    """Predictor-corrector sampling (Song et al. 2021, Algorithms 2 and 4) from t = 1 to t = eps. Chapter 7.

    On the grid t_0 = 1 > ... > t_steps = eps, at each t_k: `corrector_steps` Langevin steps at time t_k,
    then a reverse Euler-Maruyama predictor step to t_{k+1} (the order of the paper's code, `pc_sampler`;
    Algorithm 2 lists the predictor first, which only moves the first and last corrector). The last
    predictor step adds no noise (the code's `denoise`), so the output is its mean.
    Corrector (Algorithm 4): with g = score(x, t_k) and z ~ N(0, I), the step size is
        h = 2 a (snr |z| / |g|)^2,   a = alpha(t_k)^2 / alpha(t_k - |dt|)^2 (the DDPM alpha_i = 1 - beta_i),
    with |z| and |g| the batch means of the per-image norms, as in the official code, so h is one number
    per step. (Per-image norms would make h depend on x, h ~ 1 / |g(x)|^2, and Langevin dynamics with a
    state-dependent step size leaves p / h invariant rather than p: on a 64-pixel Gaussian that inflated
    the std by 3.8 %.) A consequence: an image's result depends on the rest of its batch. The update is the
    course's Langevin step x <- x + h g + sqrt(2 h) z (`langevin.ula_step`; the paper's epsilon is our h).
    snr: the signal-to-noise ratio r (0.16 in the paper for CIFAR-10's VP-SDE). x: (B, ...) at t = 1.
    Returns (x at t = eps, Trajectory of the states after each predictor step, or None).
    """
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr}")
    if not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative integer, got {corrector_steps!r}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    ts = time_grid(1.0, eps, steps)
    dt_grid = (eps - 1.0) / steps
    keeper = _Keeper(keep_every, steps)
    keeper(0, 1.0, x)
    for k in tqdm(range(steps), disable=not progress, desc="predictor-corrector", mininterval=1.0):
        t, t_next = float(ts[k]), float(ts[k + 1])
        tb = _full(t, x)
        # the DDPM alpha_k = 1 - beta_k of the step that ends at t_k, from t_k - |dt| (clamped to 0)
        a = float(torch.exp(sde.beta_integral(max(t + dt_grid, 0.0)) - sde.beta_integral(t)))
        for _ in range(corrector_steps):  # Langevin corrector at time t_k
            g = score(x, tb)
            z = torch.randn(x.shape, generator=generator).to(x)
            h = 2.0 * a * (snr * _mean_norm(z) / max(_mean_norm(g), 1e-12)) ** 2
            x = x + h * g + math.sqrt(2.0 * h) * z
        dt = t_next - t  # reverse Euler-Maruyama predictor, as in `euler_maruyama`
        x = x + sde.reverse_drift(x, tb, score) * dt
        if k < steps - 1:
            g_t = expand_like(sde.diffusion(tb), x)
            x = x + g_t * math.sqrt(-dt) * torch.randn(x.shape, generator=generator).to(x)
        keeper(k + 1, t_next, x)
    return x, keeper.result()


@torch.no_grad()
def ode_solve_scipy(sde: VPSDE, x: Tensor, t0: float, t1: float, score: ScoreFn, method: str = "RK45",
                    rtol: float = 1e-5, atol: float = 1e-5) -> tuple[Tensor, int]:
    """The probability-flow ODE (eq. 13) from t0 to t1 with scipy.integrate.solve_ivp (adaptive). Chapter 7.

    The whole batch is one state vector (float64 for scipy, evaluated in x's dtype and device), as in the
    official code's `get_ode_sampler` (RK45, rtol = atol = 1e-5). x: (B, ...) at t0.
    Returns (x at t1, shape and dtype of x; the number of drift evaluations, each one score call).
    """
    from scipy.integrate import solve_ivp

    _as_time(torch.tensor([t0, t1], dtype=torch.float64), "t0 and t1")
    shape, like = x.shape, x

    def fun(t, y):
        xt = torch.as_tensor(y.reshape(shape), dtype=like.dtype, device=like.device)
        return sde.ode_drift(xt, _full(float(t), xt), score).double().cpu().numpy().ravel()

    sol = solve_ivp(fun, (t0, t1), x.double().cpu().numpy().ravel(), method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp ({method}) failed: {sol.message}")
    return torch.as_tensor(sol.y[:, -1].reshape(shape)).to(x), int(sol.nfev)
