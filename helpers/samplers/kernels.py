"""The pieces every sampler is built from, each written once: the time grid, the kept trajectory, the
progress bar, and the four update rules of the course.

    em_step         x + f dt + g sqrt(|dt|) z                       Euler-Maruyama (Kloeden & Platen 9.1)
    heun_step       x + (d(x, t) + d(x + d dt, t + dt)) dt / 2       Heun / trapezoid (Karras et al. 2022, Alg. 1)
    ancestral_step  (x + beta s) / sqrt(1 - beta) + sqrt(beta) z     Ho et al. 2020, Algorithm 2, with eps = -sigma s
    solve_ivp_torch scipy's adaptive solvers on a batch of tensors    (official score-SDE `get_ode_sampler`)

The Langevin step x + h s + sqrt(2 h) z is `langevin.ula_step` (chapter 3's convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm


@dataclass
class Trajectory:
    """What every sampler returns beside its result (chapters 1, 2, 5-7).

    times: (K,) float64, decreasing from the start time (1 for every generative sampler) to the end;
    states: (K, B, ...) on the CPU, the first (x_T) and the last state always included;
    nfev: the number of score (network) evaluations the run made.
    """

    times: Tensor
    states: Tensor
    nfev: int = 0


class Keeper:
    """Collects the states of a run every `keep_every` steps, the first and the last always included.

    keep_every 0 keeps only the first and the last state. Call it with (steps done k, time t, state x).
    """

    def __init__(self, keep_every: int, steps: int):
        if not isinstance(keep_every, int) or keep_every < 0:
            raise ValueError(f"keep_every must be a non-negative integer, got {keep_every!r}")
        self.every, self.steps, self.times, self.states, self.nfev = keep_every, steps, [], [], 0

    def __call__(self, k: int, t: float, x: Tensor) -> None:
        if k == 0 or k == self.steps or (self.every and k % self.every == 0):
            self.times.append(t)
            self.states.append(x.detach().cpu().clone())

    def result(self) -> Trajectory:
        return Trajectory(torch.tensor(self.times, dtype=torch.float64), torch.stack(self.states), self.nfev)


def time_grid(t0: float, t1: float, steps: int) -> Tensor:
    """steps + 1 evenly spaced times from t0 to t1 (float64); decreasing when t1 < t0. Both in [0, 1]."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not (0.0 <= t0 <= 1.0 and 0.0 <= t1 <= 1.0):
        raise ValueError(f"t0 and t1 must lie in [0, 1], got {t0} and {t1}")
    if t0 == t1:
        raise ValueError(f"t0 and t1 must differ, got {t0} and {t1}")
    return torch.linspace(t0, t1, steps + 1, dtype=torch.float64)


def step_range(steps: int, progress, desc: str) -> Iterator[int]:
    """range(steps) behind a progress bar: progress False (none), True (a bar of its own, on stderr), or an
    open tqdm bar that counts these steps too (the command line's one bar over several batches: a bar
    without a total gets steps times its `batches` attribute, the number of batches it will see)."""
    if hasattr(progress, "update"):
        if progress.total is None:
            progress.total = steps * getattr(progress, "batches", 1)
            progress.refresh()
        for k in range(steps):
            yield k
            progress.update(1)
    else:
        yield from tqdm(range(steps), disable=not progress, desc=desc, mininterval=1.0)


def full_time(t: float, x: Tensor) -> Tensor:
    """The time t as a (B,) tensor in x's dtype and device, what a score function takes."""
    return torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)


def noise_like(x: Tensor, generator: torch.Generator) -> Tensor:
    """z ~ N(0, I) of x's shape, drawn on the CPU from `generator` (so results do not depend on the device)."""
    return torch.randn(x.shape, generator=generator).to(x)


def em_step(x: Tensor, drift: Tensor, diffusion: Tensor, dt: float, z: Tensor | None) -> Tensor:
    """One Euler-Maruyama step x + drift dt + diffusion sqrt(|dt|) z (z None: no noise, the mean).

    x, drift, z: (B, ...); diffusion broadcastable to x; dt < 0 runs an SDE backwards in time (eq. 6 of
    Song et al. 2021 with the reverse drift). Used by the EM sampler and the PC predictor.
    """
    x = x + drift * dt
    return x if z is None else x + diffusion * math.sqrt(abs(dt)) * z


def heun_step(fn: Callable[[Tensor, float], tuple], x: Tensor, t: float, t_next: float) -> tuple:
    """One Heun (trapezoid predictor-corrector) step of dx/dt = fn(x, t)[0] from t to t_next.

    fn returns (dx/dt, *rates): rates are derivatives of quantities that are accumulated along the path
    but do not feed back (the log-density's divergence integral). Returns (x at t_next, *increments of the
    rates over the step), each increment (r(x, t) + r(x', t_next)) dt / 2. Two calls of fn.
    """
    dt = t_next - t
    first = fn(x, t)
    second = fn(x + first[0] * dt, t_next)
    x_next = x + 0.5 * (first[0] + second[0]) * dt
    return (x_next,) + tuple(0.5 * (a + b) * dt for a, b in zip(first[1:], second[1:]))


def ancestral_step(x: Tensor, beta_score: Tensor, beta: float | Tensor, z: Tensor | None) -> Tensor:
    """x_{k-1} = (x_k + beta_k s(x_k)) / sqrt(1 - beta_k) + sqrt(beta_k) z (Ho et al. 2020, Algorithm 2).

    beta_score: beta_k times the score at x_k (for a noise predictor, -beta_k eps / sqrt(1 - alpha_bar_k));
    beta: one number, or a tensor that broadcasts against x (B, 1, ...; chapter 7's exercise 7.2);
    z None on the last step, so the output is the predicted mean. Shapes (B, ...).
    """
    root = torch.sqrt if isinstance(beta, Tensor) else math.sqrt
    x = (x + beta_score) / root(1.0 - beta)
    return x if z is None else x + root(beta) * z


def solve_ivp_torch(fn: Callable[[Tensor, float], tuple], x: Tensor, t0: float, t1: float, accumulate: bool = False,
                    method: str = "RK45", rtol: float = 1e-5, atol: float = 1e-5) -> tuple[Tensor, Tensor | None, int]:
    """scipy.integrate.solve_ivp on a batch x (B, ...): dx/dt = fn(x, t)[0], from t0 to t1 (adaptive).

    The batch is one float64 state vector for scipy, evaluated in x's dtype and device, as in the official
    code's ODE sampler. accumulate: fn also returns a rate (B,) integrated along (the likelihood's
    divergence). Returns (x at t1, the accumulated integral (B,) or None, the number of fn calls).
    """
    from scipy.integrate import solve_ivp

    shape, n = x.shape, x.numel()

    def fun(t, y):
        xt = torch.as_tensor(y[:n].reshape(shape), dtype=x.dtype, device=x.device)
        out = fn(xt, float(t))
        parts = [out[0].double().cpu().numpy().ravel()]
        if accumulate:
            parts.append(out[1].double().cpu().numpy())
        return np.concatenate(parts)

    y0 = x.detach().double().cpu().numpy().ravel()
    if accumulate:
        y0 = np.concatenate([y0, np.zeros(shape[0])])
    sol = solve_ivp(fun, (t0, t1), y0, method=method, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp ({method}) failed: {sol.message}")
    x_end = torch.as_tensor(sol.y[:n, -1].reshape(shape)).to(x)
    integral = torch.as_tensor(sol.y[n:, -1]).to(x) if accumulate else None
    return x_end, integral, int(sol.nfev)
