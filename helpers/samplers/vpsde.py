"""Samplers of the VP-SDE (Song et al. 2021), each written against the `sde.VPSDE` object. Chapters 5, 7.

Every sampler takes (score, sde, x, steps, generator) and returns (x, Trajectory):
    euler_maruyama   the reverse SDE (or the forward one), Euler-Maruyama          eq. 6 (eq. 5)
    (euler_maruyama_forward_law: the exact law of its forward chain, to predict its error)
    ode_solve        the probability-flow ODE, Euler or Heun                        eq. 13
    ode_solve_rk45   the probability-flow ODE, scipy's adaptive RK45               eq. 13
    vpsde_ancestral  DDPM-style ancestral sampling on the VP-SDE's own grid        eq. 47
    pc_sample        predictor-corrector: EM predictor, Langevin corrector          Algorithms 2 and 4
    reverse_sample   draw x_1 ~ N(0, I) of a shape, then "sde", "euler" or "heun"
Tensors are (B, ...) with times t of shape (B,): (B, 1) points in chapter 5, (B, 1, 28, 28) images in 7.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..langevin import ula_step
from ..schedules import expand_like
from ..scores import ScoreFn
from ..sde import EPS, VPSDE
from .kernels import (Keeper, Trajectory, ancestral_step, em_step, full_time, heun_step, noise_like, solve_ivp_torch, step_range,
                      time_grid)


@torch.no_grad()
def euler_maruyama(score: ScoreFn | None, sde: VPSDE, x: Tensor, steps: int, generator: torch.Generator,
                   t0: float = 1.0, t1: float = EPS, keep_every: int = 0, progress=False) -> tuple[Tensor, Trajectory]:
    """Euler-Maruyama from time t0 to t1 in `steps` equal steps of size h = |t1 - t0| / steps. Chapters 5, 7.

    Reverse (t1 < t0, score given): x <- x - [f(x, t) - g(t)^2 score(x, t)] h + g(t) sqrt(h) z   (eq. 6)
    Forward (t1 > t0, score None):  x <- x + f(x, t) h + g(t) sqrt(h) z                (eq. 5)
    with z ~ N(0, I) drawn from `generator` (CPU) at every step, the last one included, and f, g, beta
    read at the step's left end t (which makes the forward chain's variance a little low: chapter 7).
    x: (B, ...) the state at t0. Returns (x at t1, Trajectory every `keep_every` steps).
    """
    ts = time_grid(t0, t1, steps)
    forward = t1 > t0
    if forward and score is not None:
        raise ValueError("score must be None for the forward SDE (t1 > t0): its drift does not use it")
    if not forward and score is None:
        raise ValueError("score is needed for the reverse SDE (t1 < t0)")
    keeper = Keeper(keep_every, steps)
    keeper(0, float(ts[0]), x)
    for k in step_range(steps, progress, "Euler-Maruyama"):
        t, dt = float(ts[k]), float(ts[k + 1] - ts[k])
        tb = full_time(t, x)
        drift = sde.drift(x, tb) if forward else sde.reverse_drift(x, tb, score)
        x = em_step(x, drift, expand_like(sde.diffusion(tb), x), dt, noise_like(x, generator))
        keeper.nfev += 0 if forward else 1
        keeper(k + 1, float(ts[k + 1]), x)
    return x, keeper.result()


def euler_maruyama_forward_law(sde: VPSDE, t0: float, t1: float, steps: int) -> tuple[float, float]:
    """The exact law of `euler_maruyama`'s forward chain: x_{t1} = gain x_{t0} + N(0, variance) per coordinate.

    Each step x <- (1 - beta_k h / 2) x + sqrt(beta_k h) z, with beta_k read at the step's left end as the
    sampler does, is linear, so gain = prod_k (1 - beta_k h / 2) and variance_{k+1} = (1 - beta_k h / 2)^2
    variance_k + beta_k h, from variance 0. The SDE itself gives gain = alpha(t1) / alpha(t0) and variance
    1 - gain^2 (chapter 5, section 1); the gap is the discretisation error of the forward run, which chapters 5
    and 7 predict with this and then measure. t0 < t1 in [0, 1]; returns (gain, variance) as floats.
    """
    if not t1 > t0:
        raise ValueError(f"t1 must be later than t0 for the forward chain, got t0 = {t0}, t1 = {t1}")
    ts = time_grid(t0, t1, steps)
    h = (t1 - t0) / steps
    gain, variance = 1.0, 0.0
    for beta in sde.beta(ts[:-1]).double().tolist():
        a = 1.0 - 0.5 * beta * h
        gain, variance = gain * a, a * a * variance + beta * h
    return gain, variance


@torch.no_grad()
def ode_solve(score: ScoreFn, sde: VPSDE, x: Tensor, steps: int, generator: torch.Generator | None = None,
              method: str = "heun", t0: float = 1.0, t1: float = EPS, keep_every: int = 0,
              progress=False) -> tuple[Tensor, Trajectory]:
    """Probability-flow ODE dx/dt = f(x, t) - 1/2 g(t)^2 score(x, t) (eq. 13) from t0 to t1, either way.

    method "euler": x <- x + d(x, t) dt (one score call per step); "heun": `kernels.heun_step`, the
    trapezoid predictor-corrector (two calls, second order; Karras et al. 2022, Algorithm 1).
    dt = (t1 - t0) / steps is negative for the reverse direction. generator: unused (the ODE is
    deterministic), taken so that every sampler has the same face. x: (B, ...) at t0.
    Returns (x at t1, Trajectory), as `euler_maruyama`.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    ts = time_grid(t0, t1, steps)
    keeper = Keeper(keep_every, steps)
    keeper(0, float(ts[0]), x)

    def d(x_, t_):
        return (sde.ode_drift(x_, full_time(t_, x_), score),)

    for k in step_range(steps, progress, f"ODE ({method})"):
        t, t_next = float(ts[k]), float(ts[k + 1])
        if method == "euler":
            x = x + d(x, t)[0] * (t_next - t)
        else:
            (x,) = heun_step(d, x, t, t_next)
        keeper.nfev += 1 if method == "euler" else 2
        keeper(k + 1, t_next, x)
    return x, keeper.result()


@torch.no_grad()
def ode_solve_rk45(score: ScoreFn, sde: VPSDE, x: Tensor, generator: torch.Generator | None = None,
                   t0: float = 1.0, t1: float = EPS, rtol: float = 1e-5, atol: float = 1e-5) -> tuple[Tensor, Trajectory]:
    """The probability-flow ODE (eq. 13) from t0 to t1 with scipy's adaptive RK45 (`kernels.solve_ivp_torch`).

    As the official code's `get_ode_sampler` (rtol = atol = 1e-5); the step count is the solver's, and
    Trajectory.nfev says how many score calls it made. x: (B, ...) at t0. Chapter 7.
    """
    time_grid(t0, t1, 1)  # checks t0 and t1
    x_end, _, nfev = solve_ivp_torch(lambda x_, t_: (sde.ode_drift(x_, full_time(t_, x_), score),), x, t0, t1,
                                     rtol=rtol, atol=atol)
    states = torch.stack([x.detach().cpu().clone(), x_end.detach().cpu().clone()])
    return x_end, Trajectory(torch.tensor([t0, t1], dtype=torch.float64), states, nfev)


def reverse_sample(score: ScoreFn, sde: VPSDE, shape: tuple, steps: int, generator: torch.Generator | None,
                   method: str = "sde", eps: float = EPS, device: torch.device | str = "cpu",
                   x1: Tensor | None = None, keep_every: int = 0, progress=False) -> tuple[Tensor, Trajectory]:
    """Draw x_1 ~ N(0, I) of `shape` (or take `x1`) and integrate back to t = eps. Chapters 5 and 7.

    method: "sde" (reverse Euler-Maruyama), "euler" or "heun" (probability-flow ODE). Unlike
    `vpsde_ancestral` and `pc_sample`, "sde" adds noise on its last step too (std g(eps) sqrt(h)).
    Returns (x_eps of `shape` on `device`, Trajectory).
    """
    if method not in ("sde", "euler", "heun"):
        raise ValueError(f"method must be 'sde', 'euler' or 'heun', got {method!r}")
    if not 0.0 <= eps < 1.0:
        raise ValueError(f"eps must be in [0, 1), got {eps}")
    x = sde.prior_sample(shape, generator, device) if x1 is None else x1.to(device)
    if method == "sde":
        return euler_maruyama(score, sde, x, steps, generator, 1.0, eps, keep_every, progress)
    return ode_solve(score, sde, x, steps, generator, method, 1.0, eps, keep_every, progress)


@torch.no_grad()
def vpsde_ancestral(score: ScoreFn, sde: VPSDE, x: Tensor, steps: int, generator: torch.Generator,
                    keep_every: int = 0, progress=False) -> tuple[Tensor, Trajectory]:
    """DDPM-style ancestral sampling of the VP-SDE on the grid t_k = k / steps, k = steps..0. Chapter 7.

    x_{k-1} = (x_k + beta_k score(x_k, t_k)) / sqrt(1 - beta_k) + sqrt(beta_k) z_k     (`kernels.ancestral_step`:
    Ho et al. 2020, Alg. 2 with -eps / sigma = score; Song et al. 2021, eq. 47), z_k ~ N(0, I) on every step
    but the last, where z = 0 so the output is the predicted mean. beta_k = 1 - alpha(t_k)^2 / alpha(t_{k-1})^2,
    the variance of one step of the forward chain between the grid times, so any `steps` is valid; with
    steps = T of a DDPM-matched SDE (`sde.discrete_beta_range`) beta_k = 1 - exp(-(beta_{k-1} + beta_k) / 2),
    within 2.1e-4 of the DDPM's beta_k. x: (B, ...) at t = 1. Returns (x at t = 0, Trajectory).
    """
    ts = time_grid(1.0, 0.0, steps)
    keeper = Keeper(keep_every, steps)
    keeper(0, 1.0, x)
    for k in step_range(steps, progress, "ancestral sampling"):
        t, t_next = float(ts[k]), float(ts[k + 1])
        beta = float(-torch.expm1(sde.beta_integral(t_next) - sde.beta_integral(t)))
        x = ancestral_step(x, beta * score(x, full_time(t, x)), beta,
                           noise_like(x, generator) if k < steps - 1 else None)
        keeper.nfev += 1
        keeper(k + 1, t_next, x)
    return x, keeper.result()


def _mean_norm(v: Tensor) -> float:
    """The batch mean of |v_b|, each norm over all but the batch dimension (as the official `LangevinCorrector`)."""
    return float(v.flatten(1).norm(dim=1).mean())


@torch.no_grad()
def pc_sample(score: ScoreFn, sde: VPSDE, x: Tensor, steps: int, generator: torch.Generator, snr: float = 0.16,
              corrector_steps: int = 1, eps: float = EPS, keep_every: int = 0,
              progress=False) -> tuple[Tensor, Trajectory]:
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
    Returns (x at t = eps, Trajectory of the states after each predictor step).
    """
    if not snr > 0:
        raise ValueError(f"snr must be positive, got {snr}")
    if not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be a non-negative integer, got {corrector_steps!r}")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    ts = time_grid(1.0, eps, steps)
    dt_grid = (eps - 1.0) / steps
    keeper = Keeper(keep_every, steps)
    keeper(0, 1.0, x)
    for k in step_range(steps, progress, "predictor-corrector"):
        t, t_next = float(ts[k]), float(ts[k + 1])
        tb = full_time(t, x)
        # the DDPM alpha_k = 1 - beta_k of the step that ends at t_k, from t_k - |dt| (clamped to 0)
        a = float(torch.exp(sde.beta_integral(max(t + dt_grid, 0.0)) - sde.beta_integral(t)))
        for _ in range(corrector_steps):  # Langevin corrector at time t_k
            g = score(x, tb)
            z = noise_like(x, generator)
            h = 2.0 * a * (snr * _mean_norm(z) / max(_mean_norm(g), 1e-12)) ** 2
            x = ula_step(x, g, h, z=z)
        noise = noise_like(x, generator) if k < steps - 1 else None  # reverse Euler-Maruyama predictor
        x = em_step(x, sde.reverse_drift(x, tb, score), expand_like(sde.diffusion(tb), x), t_next - t, noise)
        keeper.nfev += corrector_steps + 1
        keeper(k + 1, t_next, x)
    return x, keeper.result()

