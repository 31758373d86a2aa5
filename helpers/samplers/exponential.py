"""Few-step solvers of the probability-flow ODE: DDIM and DPM-Solver++(2M), exponential integrators. Chapters 6-8.

A VP process has x_t = alpha(t) x_0 + sigma(t) eps. In the log-SNR time lambda = log(alpha / sigma), and with the
network read as a data prediction x0_theta(x, t) = (x + sigma^2 s(x, t)) / alpha = (x - sigma eps_theta) / alpha,
the probability-flow ODE (Song et al. 2021, eq. 13) has the exact solution (Lu et al. 2022b, eq. 9)

    x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0_theta(x_lambda, lambda) dlambda:

the linear part is solved exactly, and only the integral of x0_theta is approximated:
    ddim                x0_theta constant over the step: x_t = alpha_t x0 + sigma_t eps   (first order; with
                        eta > 0 part of eps is replaced by fresh noise, eta = 1 is the DDPM posterior step)
    dpm_solver_pp_2m    x0_theta linear in lambda, its slope from the previous step's x0   (second order;
                        stochastic=True: the same for the reverse SDE, SDE-DPM-Solver++(2M))
Both take a score function and a process with `alpha`, `marginal_std` and `log_snr` (`sde.VPSDE`, or a DDPM's
own steps as `schedules.DiscreteVP`), so one implementation serves mnist-ddpm, mnist-vpsde and guidance (a
guided score is a score). Times come from `timesteps.solver_times`: uniform in t, in lambda or EDM's rho = 7.
Each returns (x, Trajectory) like every sampler of the course, one network call per step.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from ..scores import ScoreFn
from ..sde import EPS
from .kernels import Keeper, Trajectory, full_time, noise_like, step_range
from .timesteps import solver_times


MIN_STEP_RATIO = 0.5  # r = h_prev / h below which DPM-Solver++(2M) takes a first-order step (never on log-SNR steps)


def _coefficients(process, t: float) -> tuple[float, float, float]:
    """(alpha(t), sigma(t), lambda(t)) as Python floats (lambda = +inf where sigma = 0)."""
    tt = torch.tensor(t, dtype=torch.float64)
    a, s = float(process.alpha(tt)), float(process.marginal_std(tt))
    return a, s, (math.log(a) - math.log(s)) if s > 0 else math.inf


def data_prediction(score: ScoreFn, x: Tensor, t: float, alpha: float, sigma: float) -> Tensor:
    """x0_theta(x, t) = (x + sigma^2 s(x, t)) / alpha, the denoised guess E[x_0 | x_t] (Tweedie's formula,
    Efron 2011): the same as (x - sigma eps_theta) / alpha for a noise predictor. x: (B, ...); returns (B, ...)."""
    return (x + sigma**2 * score(x, full_time(t, x))) / alpha


def _check_eta(eta: float) -> float:
    eta = float(eta)
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    return eta


@torch.no_grad()
def ddim(score: ScoreFn, process, x: Tensor, steps: int, generator: torch.Generator | None = None,
         eta: float = 0.0, schedule: str = "time", t_end: float = EPS, denoise: bool = False, keep_every: int = 0,
         progress=False) -> tuple[Tensor, Trajectory]:
    """DDIM (Song, Meng and Ermon 2021, eq. 12) from t = 1 to t_end on `timesteps.solver_times`. Chapters 6-8.

    Each step from s to t (alpha, sigma at each; h = lambda_t - lambda_s > 0), with x0 = x0_theta(x, s) and
    eps = (x - alpha_s x0) / sigma_s:
        c   = eta sigma_t sqrt(1 - e^(-2h))      (their sigma_tau(eta), written with the log-SNR step)
        x_t = alpha_t x0 + sqrt(sigma_t^2 - c^2) eps + c z,   z ~ N(0, I) from `generator`.
    eta = 0 is deterministic, the first-order exponential integrator of the probability-flow ODE (Lu et al.
    2022a, sec. 4.1); eta = 1 draws from q(x_t | x_s, x_0 = x0), the DDPM posterior (Ho et al. 2020, eq. 7),
    i.e. ancestral sampling with its variance beta-tilde. x: (B, ...) at t = 1; steps: network calls;
    denoise: a last step to t = 0 returns x0 (for a DDPM's grid, as the DDIM paper does).
    Returns (x at t_end, or at 0 with denoise, Trajectory). ValueError names a bad steps, eta or schedule.
    """
    eta = _check_eta(eta)
    ts = solver_times(process, steps, schedule, 1.0, t_end, denoise)
    n = len(ts) - 1
    keeper = Keeper(keep_every, n)
    keeper(0, float(ts[0]), x)
    for k in step_range(n, progress, f"DDIM (eta = {eta:g})"):
        s, t = float(ts[k]), float(ts[k + 1])
        a_s, sig_s, lam_s = _coefficients(process, s)
        a_t, sig_t, lam_t = _coefficients(process, t)
        x0 = data_prediction(score, x, s, a_s, sig_s)
        eps = (x - a_s * x0) / sig_s
        c = eta * sig_t * math.sqrt(-math.expm1(-2.0 * (lam_t - lam_s))) if sig_t > 0 else 0.0
        x = a_t * x0 + math.sqrt(max(sig_t**2 - c**2, 0.0)) * eps
        if c > 0:
            x = x + c * noise_like(x, generator)
        keeper.nfev += 1
        keeper(k + 1, t, x)
    return x, keeper.result()


@torch.no_grad()
def dpm_solver_pp_2m(score: ScoreFn, process, x: Tensor, steps: int, generator: torch.Generator | None = None,
                     schedule: str = "logsnr", t_end: float = EPS, denoise: bool = False,
                     lower_order_final: bool = True, stochastic: bool = False, keep_every: int = 0,
                     progress=False) -> tuple[Tensor, Trajectory]:
    """DPM-Solver++(2M) (Lu et al. 2022b, Algorithm 2): multistep, second order, in data prediction. Chapters 6-8.

    From s to t with h = lambda_t - lambda_s, x0_k = x0_theta(x, s) and the previous step's x0_{k-1} and h_{k-1}:
        D   = (1 + 1/(2r)) x0_k - 1/(2r) x0_{k-1},   r = h_{k-1} / h      (D = x0_k on the first step)
        x_t = (sigma_t / sigma_s) x - alpha_t (e^(-h) - 1) D
    i.e. x0_theta extrapolated linearly in lambda to the middle of the step, one network call per step.
    stochastic: the same multistep rule for the reverse SDE instead of the ODE (SDE-DPM-Solver++(2M), Lu et
    al. 2022b, appendix; diffusers' "sde-dpmsolver++"),
        x_t = (sigma_t / sigma_s) e^(-h) x - alpha_t (e^(-2h) - 1) D + sigma_t sqrt(1 - e^(-2h)) z,
    which with D = x0_k is DDIM with eta = 1; z ~ N(0, I) from `generator`. Its samples follow the SDE's
    marginals, whose errors the fresh noise washes out, where the ODE carries every error to the end.
    The last step is first order (D = x0_k) when it ends at sigma = 0 (denoise), or when lower_order_final
    and fewer than 15 steps, as the paper recommends for few-step sampling; so is any step whose log-SNR
    length h is more than 1 / MIN_STEP_RATIO times the previous one's (r < 1/2), where the line through the
    last two guesses would be extrapolated far past them (steps uniform in t end on such a step: from t = 0.05
    to 0.001 in 20 steps, r = 0.23). generator: unused by the ODE,
    taken for the common face. x: (B, ...) at t = 1. Returns (x at t_end or 0, Trajectory).
    """
    ts = solver_times(process, steps, schedule, 1.0, t_end, denoise)
    n = len(ts) - 1
    keeper = Keeper(keep_every, n)
    keeper(0, float(ts[0]), x)
    x0_prev, h_prev = None, None
    for k in step_range(n, progress, "DPM-Solver++(2M)"):
        s, t = float(ts[k]), float(ts[k + 1])
        a_s, sig_s, lam_s = _coefficients(process, s)
        a_t, sig_t, lam_t = _coefficients(process, t)
        x0 = data_prediction(score, x, s, a_s, sig_s)
        last_first_order = k == n - 1 and (sig_t == 0.0 or (lower_order_final and n < 15))
        if sig_t == 0.0:
            x = a_t * x0
        else:
            h = lam_t - lam_s
            d = x0
            if x0_prev is not None and not last_first_order and h_prev / h >= MIN_STEP_RATIO:
                r = h_prev / h
                d = (1.0 + 0.5 / r) * x0 - (0.5 / r) * x0_prev
            if stochastic:
                x = (sig_t / sig_s) * math.exp(-h) * x - a_t * math.expm1(-2.0 * h) * d
                x = x + sig_t * math.sqrt(-math.expm1(-2.0 * h)) * noise_like(x, generator)
            else:
                x = (sig_t / sig_s) * x - a_t * math.expm1(-h) * d
            h_prev = h
        x0_prev = x0
        keeper.nfev += 1
        keeper(k + 1, t, x)
    return x, keeper.result()


FEW_STEP_SOLVERS = {"ddim": ddim, "dpm2m": dpm_solver_pp_2m,
                    "sde-dpm2m": functools.partial(dpm_solver_pp_2m, stochastic=True)}
"""The few-step solvers by the names the MNIST models give them (`--sampler`): DDIM, DPM-Solver++(2M) on the
ODE, and its SDE variant."""
