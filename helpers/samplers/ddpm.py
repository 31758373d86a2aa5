"""The discrete DDPM's own sampler: ancestral sampling, with optional respacing. Chapters 1 and 6."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..schedules import DDPMSchedule
from .kernels import Keeper, Trajectory, ancestral_step, noise_like, step_range


def respaced_steps(T: int, steps: int) -> list[int]:
    """`steps` increasing DDPM steps from 1..T ending at T, evenly spaced (Nichol & Dhariwal 2021, sec. 4).

    Other step counts raise ConfigError (a ValueError): a DDPM cannot take more steps than its T.
    """
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ConfigError(f"steps must be an integer in 1..{T}, got {steps!r}")
    return sorted({max(1, round(k * T / steps)) for k in range(1, steps + 1)})


@torch.no_grad()
def ddpm_ancestral(eps_model: Callable[[Tensor, Tensor], Tensor], schedule: DDPMSchedule, x_T: Tensor,
                   steps: int | None, generator: torch.Generator, keep_every: int = 0,
                   progress=False) -> tuple[Tensor, Trajectory]:
    """Ancestral sampling x_T ~ N(0, I) -> x_0 (Ho et al. 2020, Algorithm 2). Chapters 1 and 6.

    x_{k-1} = (x_k - beta_k / sqrt(1 - alpha_bar_k) eps_theta(x_k, t_k)) / sqrt(alpha_k) + sqrt(beta_k) z,
    with z ~ N(0, I) on every step but the last (z = 0 there), so the output is the predicted mean.
    x_T: (B, ...) the start, on the device to sample on. steps: use that many of the T steps (respaced:
    beta'_k = 1 - alpha_bar_{tau_k} / alpha_bar_{tau_{k-1}}); None means all T.
    Returns (x_0 (B, ...), Trajectory with times tau / T from 1 to 0, every `keep_every` steps).
    """
    taus = respaced_steps(schedule.T, steps or schedule.T)
    ab = schedule.alpha_bars[torch.tensor(taus) - 1]
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    betas = 1.0 - ab / ab_prev
    n = len(taus)
    x, keeper = x_T, Keeper(keep_every, n)
    keeper(0, taus[-1] / schedule.T, x)
    for done in step_range(n, progress, "ancestral sampling"):
        k = n - 1 - done  # index of the step taken now, from the last (tau = T) down to 0
        t = torch.full((x.shape[0],), taus[k] / schedule.T, device=x.device)
        beta, a_bar = float(betas[k]), float(ab[k])
        eps = eps_model(x, t)
        x = ancestral_step(x, -(beta / (1.0 - a_bar) ** 0.5) * eps, beta,
                           noise_like(x, generator) if k > 0 else None)
        keeper.nfev += 1
        keeper(done + 1, taus[k - 1] / schedule.T if k > 0 else 0.0, x)
    return x, keeper.result()
