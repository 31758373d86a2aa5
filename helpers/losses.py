"""Training losses. Each takes (model, x0, ..., generator) and returns a scalar tensor."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from .schedules import DDPMSchedule, expand_like
from .scores import ncsn_score


def _randn_like(x: Tensor, generator: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=generator).to(x)


def ddpm_loss(model: nn.Module, x0: Tensor, schedule: DDPMSchedule, generator: torch.Generator) -> Tensor:
    """Noise-prediction loss E_{i, x0, eps} |eps - eps_theta(x_i, i/T)|^2 (Ho et al. 2020, eq. 14, Alg. 1).

    x0: (B, ...) clean data; i ~ U{1..T}; mean over batch and dimensions. Chapters 1 and 6.
    """
    i = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator)
    noise = _randn_like(x0, generator)
    x_i = schedule.q_sample(x0, i, noise)
    return (model(x_i, schedule.time(i).to(x0.device)) - noise).pow(2).mean()


def ncsn_loss(model: nn.Module, x0: Tensor, sigmas: Tensor, generator: torch.Generator) -> Tensor:
    """Denoising score matching over noise levels with lambda(sigma) = sigma^2 (Song & Ermon 2019, eq. 5-6).

    For x~ = x0 + sigma z the target score is grad log q_sigma(x~ | x0) = -z / sigma, so
    1/2 sigma^2 |s_theta(x~, sigma) + z / sigma|^2 = 1/2 |sigma s_theta + z|^2, which is O(1) at every level.
    Mean over the batch of the sum over dimensions. Chapter 2.
    """
    level = torch.randint(0, len(sigmas), (x0.shape[0],), generator=generator)
    z = _randn_like(x0, generator)
    sigma = expand_like(sigmas[level].to(x0), x0)
    return dsm_loss(lambda x, _: ncsn_score(model, x, level, sigmas), x0, sigma, z)


def dsm_loss(score: Callable[[Tensor, Tensor], Tensor], x0: Tensor, sigma: Tensor, z: Tensor) -> Tensor:
    """1/2 mean_B sum_D |sigma s(x0 + sigma z, sigma) + z|^2, the sigma^2-weighted DSM loss at given noise.

    x0, z: (B, ...); sigma: (B, 1, ...) broadcasting against x0; score(x~, sigma) -> (B, ...). The core of
    `ncsn_loss` once the levels and the noise are drawn; chapter 2's exercise 2.1 asks for it.
    """
    s = score(x0 + sigma * z, sigma)
    return 0.5 * (sigma * s + z).pow(2).flatten(1).sum(1).mean()


def vpsde_loss(model: nn.Module, x0: Tensor, sde, generator: torch.Generator, eps: float = 1e-3,
               target: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Noise-prediction loss E_{t, x0, z} |eps_theta(x_t, t) - z|^2 for the VP-SDE. Chapters 5 and 7.

    t ~ U(eps, 1), z ~ N(0, I), x_t = alpha(t) x0 + sigma(t) z (`sde`: a `sde.VPSDE`); mean over batch and
    dimensions. With s_theta = -eps_theta / sigma this is denoising score matching with lambda(t) =
    sigma(t)^2 (Song et al. 2021, eq. 7): sigma^2 |s_theta + z / sigma|^2 = |eps_theta - z|^2, whose target
    z is O(1) at every t, where the score target -z / sigma grows like 1 / sigma as t -> 0.
    target(x_t, t, z) -> (B, ...) replaces the target z (default). The loss with z is minimised by E[z | x_t],
    and so is any target with that conditional mean; a trained model's eps(x_t, t) as the target (its estimate
    of that mean, with no draw's noise) makes that model the minimiser: mnist-cfg's null rows, chapter 8.
    """
    t = eps + (1.0 - eps) * torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    t = t.to(x0)
    z = _randn_like(x0, generator)
    x_t = sde.perturb(x0, t, z)
    return (model(x_t, t) - (z if target is None else target(x_t, t, z))).pow(2).mean()
