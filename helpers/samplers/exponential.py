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
    dpm_solver_pp_3m    x0_theta quadratic in lambda, through the last three steps' x0     (third order; and
                        its SDE variant)
All take a score function and a process with `alpha`, `marginal_std` and `log_snr` (`sde.VPSDE`, or a DDPM's
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


def taylor_weights(h: float, stochastic: bool = False) -> tuple[float, float, float]:
    """(w_0, w_1, w_2), w_k = int_0^h kernel(u) u^k / k! du: what the k-th lambda-derivative of x0_theta at the
    step's start contributes to one exponential-integrator step of log-SNR length h > 0 (times alpha_t).

    ODE: kernel e^-(h - u) (the exact solution in the module's docstring, with x0_theta expanded in Taylor
    terms around lambda_s; Lu et al. 2022b, eq. 10):
        w_0 = 1 - e^-h,   w_1 = h - 1 + e^-h,   w_2 = h^2 / 2 - h + 1 - e^-h.
    SDE (the reverse SDE's exact solution, Lu et al. 2022b, appendix; Gonzalez et al. 2023): kernel
    2 e^-2(h - u), which is the ODE's at 2h scaled: w_k(h) = w_k^ODE(2h) / 2^k.
    For small h, w_k ~ h^(k+1) / (k+1)!; expm1 keeps them accurate there. Used by `dpm_solver_pp_3m`.
    """
    if stochastic:
        return tuple(w / 2**k for k, w in enumerate(taylor_weights(2.0 * h)))
    em = math.expm1(-h)
    return -em, h + em, 0.5 * h * h - h - em


@torch.no_grad()
def dpm_solver_pp_3m(score: ScoreFn, process, x: Tensor, steps: int, generator: torch.Generator | None = None,
                     schedule: str = "logsnr", t_end: float = EPS, denoise: bool = False,
                     lower_order_final: bool = True, stochastic: bool = False, keep_every: int = 0,
                     progress=False) -> tuple[Tensor, Trajectory]:
    """DPM-Solver++(3M) (Lu et al. 2022b, appendix: the multistep third-order solver) in data prediction, for
    the probability-flow ODE or (stochastic=True) the reverse SDE. Chapter 7.

    x0_theta is extrapolated by the quadratic in lambda through the guesses of this step and the two before
    (at lambda_s, lambda_s - h1, lambda_s - h1 - h2): with divided differences d_a = (x0_k - x0_{k-1}) / h1,
    d_b = (x0_{k-1} - x0_{k-2}) / h2 and c = (d_a - d_b) / (h1 + h2), its derivatives at lambda_s are
    D1 = d_a + c h1 and D2 = 2 c, and the step is (`taylor_weights`)
        ODE: x_t = (sigma_t / sigma_s) x + alpha_t (w_0 x0_k + w_1 D1 + w_2 D2)
        SDE: x_t = (sigma_t / sigma_s) e^-h x + alpha_t (w_0 x0_k + w_1 D1 + w_2 D2) + sigma_t sqrt(1 - e^-2h) z.
    The first step is first order, the second uses the line through two guesses (D1 = d_a, D2 = 0). A step
    falls back to the line, or to first order, when an older step is under MIN_STEP_RATIO of this one's
    length (h1 / h, h2 / h), where the polynomial would be extrapolated far past its points; with
    lower_order_final and fewer than 15 steps, the last step is first order and the one before at most second
    (as the paper does for few-step sampling); a last step to sigma = 0 (denoise) returns x0_k.
    z ~ N(0, I) from `generator` (unused by the ODE). x: (B, ...) at t = 1. Returns (x at t_end or 0, Trajectory).
    """
    ts = solver_times(process, steps, schedule, 1.0, t_end, denoise)
    n = len(ts) - 1
    keeper = Keeper(keep_every, n)
    keeper(0, float(ts[0]), x)
    guesses, lengths = [], []  # the last two steps' x0 and log-SNR step lengths, newest first
    for k in step_range(n, progress, f"{'SDE-' if stochastic else ''}DPM-Solver++(3M)"):
        s, t = float(ts[k]), float(ts[k + 1])
        a_s, sig_s, lam_s = _coefficients(process, s)
        a_t, sig_t, lam_t = _coefficients(process, t)
        x0 = data_prediction(score, x, s, a_s, sig_s)
        if sig_t == 0.0:
            x = a_t * x0
        else:
            h = lam_t - lam_s
            order = 1 + sum(1 for _ in zip(guesses, lengths))
            if lower_order_final and n < 15:
                order = min(order, n - k)
            for j, h_old in enumerate(lengths[:order - 1]):
                if h_old / h < MIN_STEP_RATIO:
                    order = min(order, j + 1)
            w0, w1, w2 = taylor_weights(h, stochastic)
            update = w0 * x0
            if order >= 2:
                d_a = (x0 - guesses[0]) / lengths[0]
                if order == 3:
                    c = (d_a - (guesses[0] - guesses[1]) / lengths[1]) / (lengths[0] + lengths[1])
                    update = update + w1 * (d_a + c * lengths[0]) + w2 * (2.0 * c)
                else:
                    update = update + w1 * d_a
            if stochastic:
                x = (sig_t / sig_s) * math.exp(-h) * x + a_t * update
                x = x + sig_t * math.sqrt(-math.expm1(-2.0 * h)) * noise_like(x, generator)
            else:
                x = (sig_t / sig_s) * x + a_t * update
            lengths = [h] + lengths[:1]
        guesses = [x0] + guesses[:1]
        keeper.nfev += 1
        keeper(k + 1, t, x)
    return x, keeper.result()


FEW_STEP_SOLVERS = {"ddim": ddim, "dpm2m": dpm_solver_pp_2m,
                    "sde-dpm2m": functools.partial(dpm_solver_pp_2m, stochastic=True),
                    "dpm3m": dpm_solver_pp_3m, "sde-dpm3m": functools.partial(dpm_solver_pp_3m, stochastic=True)}
"""The few-step solvers by the names the MNIST models give them (`--sampler`): DDIM, DPM-Solver++(2M) on the
ODE, its SDE variant, and the third-order DPM-Solver++(3M) on each."""
