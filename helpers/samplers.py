"""Samplers of the discrete models: DDPM ancestral sampling (with optional respacing).

Langevin samplers are in `langevin.py`; SDE and ODE integrators of the continuous models in `sde.py`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .schedules import DDPMSchedule


def respaced_steps(T: int, steps: int) -> list[int]:
    """`steps` increasing DDPM steps from 1..T ending at T, evenly spaced (Nichol & Dhariwal 2021, sec. 4)."""
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer in 1..{T}, got {steps!r}")
    return sorted({max(1, round(k * T / steps)) for k in range(1, steps + 1)})


@torch.no_grad()
def ddpm_ancestral(eps_model: Callable[[Tensor, Tensor], Tensor], schedule: DDPMSchedule, shape: tuple,
                   generator: torch.Generator, device: torch.device | str = "cpu", steps: int | None = None,
                   keep: int = 0, progress: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Ancestral sampling x_T ~ N(0, I) -> x_0 (Ho et al. 2020, Algorithm 2). Chapters 1 and 6.

    x_{k-1} = (x_k - beta_k / sqrt(1 - alpha_bar_k) eps_theta(x_k, t_k)) / sqrt(alpha_k) + sqrt(beta_k) z,
    with z ~ N(0, I) on every step but the last (z = 0 there), so the output is the predicted mean.
    steps: use that many of the T steps (respaced: beta'_k = 1 - alpha_bar_{tau_k} / alpha_bar_{tau_{k-1}});
    None means all T. keep: also return that many intermediate states, evenly spaced (each (shape)).
    Returns (x_0 of `shape` on `device`, list of kept states on CPU).
    """
    taus = respaced_steps(schedule.T, steps or schedule.T)
    ab = schedule.alpha_bars[torch.tensor(taus) - 1]
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    betas = 1.0 - ab / ab_prev
    x = torch.randn(shape, generator=generator).to(device)
    kept, every = [], max(1, len(taus) // keep) if keep else 0
    for k in tqdm(range(len(taus) - 1, -1, -1), disable=not progress, desc="ancestral sampling"):
        t = torch.full((shape[0],), taus[k] / schedule.T, device=device)
        beta, a_bar = float(betas[k]), float(ab[k])
        eps = eps_model(x, t)
        x = (x - beta / (1.0 - a_bar) ** 0.5 * eps) / (1.0 - beta) ** 0.5
        if k > 0:
            x = x + beta**0.5 * torch.randn(shape, generator=generator).to(device)
        if every and k % every == 0:
            kept.append(x.cpu())
    return x, kept
