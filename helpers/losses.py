"""Training losses. Each takes (model, x0, ..., generator) and returns a scalar tensor."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .schedules import DDPMSchedule, expand_like


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


def ddpm_score(eps_model, sqrt_one_minus_alpha_bar: Tensor):
    """Score of a DDPM noise predictor at times t in [0, 1]: s(x, t) = -eps_theta(x, i / T) / sqrt(1 - alpha_bar_i).

    i = round(t T) clamped to 1..T, with T = len(sqrt_one_minus_alpha_bar) ((T,), entry i - 1 for step i,
    e.g. `(1 - schedule.alpha_bars).sqrt()`); the network sees its training time i / T. Since x_i =
    sqrt(alpha_bar_i) x_0 + sqrt(1 - alpha_bar_i) eps, grad log q(x_i | x_0) = -eps / sqrt(1 - alpha_bar_i),
    and the minimiser of the noise-prediction loss is E[eps | x_i], so this is the score of q(x_i)
    (Vincent 2011; Song et al. 2021, appendix B). Returns score(x (B, ...), t (B,)) -> (B, ...). Chapter 6.
    """
    table = torch.as_tensor(sqrt_one_minus_alpha_bar)
    if table.ndim != 1 or len(table) < 1 or not bool((table > 0).all()):
        raise ValueError(f"sqrt_one_minus_alpha_bar must be a positive (T,) tensor, got shape {tuple(table.shape)}")
    T = len(table)

    def score(x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if t.shape != (x.shape[0],) or bool(t.min() < 0) or bool(t.max() > 1):
            raise ValueError(f"t must be (B,) = ({x.shape[0]},) in [0, 1], got shape {tuple(t.shape)}")
        i = torch.round(t.double().cpu() * T).long().clamp(1, T)
        sigma = table[i - 1].to(x)
        return -eps_model(x, (i.double() / T).to(x)) / expand_like(sigma, x)

    return score


def ncsn_score(model: nn.Module, x: Tensor, level: Tensor, sigmas: Tensor) -> Tensor:
    """Noise-conditional score s_theta(x, sigma_j) = net(x, j / (L - 1)) / sigma_j.

    x: (B, ...); level: (B,) integer indices j in 0..L-1 into sigmas (L,). Dividing by sigma builds in the
    known scale |score| ~ 1/sigma (Song & Ermon 2020, technique 3), so the net's output is O(1). Chapter 2.
    """
    L = len(sigmas)
    sigma = sigmas.to(x.device)[level]
    return model(x, level.float().to(x.device) / (L - 1)) / expand_like(sigma, x)


def ncsn_loss(model: nn.Module, x0: Tensor, sigmas: Tensor, generator: torch.Generator) -> Tensor:
    """Denoising score matching over noise levels with lambda(sigma) = sigma^2 (Song & Ermon 2019, eq. 5-6).

    For x~ = x0 + sigma z the target score is grad log q_sigma(x~ | x0) = -z / sigma, so
    1/2 sigma^2 |s_theta(x~, sigma) + z / sigma|^2 = 1/2 |sigma s_theta + z|^2, which is O(1) at every level.
    Mean over the batch of the sum over dimensions. Chapter 2.
    """
    level = torch.randint(0, len(sigmas), (x0.shape[0],), generator=generator)
    z = _randn_like(x0, generator)
    sigma = expand_like(sigmas[level].to(x0), x0)
    x_noisy = x0 + sigma * z
    s = ncsn_score(model, x_noisy, level, sigmas)
    return 0.5 * (sigma * s + z).pow(2).flatten(1).sum(1).mean()


def vpsde_loss(model: nn.Module, x0: Tensor, sde, generator: torch.Generator, eps: float = 1e-3) -> Tensor:
    """Noise-prediction loss E_{t, x0, z} |eps_theta(x_t, t) - z|^2 for the VP-SDE. Chapters 5 and 7.

    t ~ U(eps, 1), z ~ N(0, I), x_t = alpha(t) x0 + sigma(t) z (`sde`: a `sde.VPSDE`); mean over batch and
    dimensions. With s_theta = -eps_theta / sigma this is denoising score matching with lambda(t) =
    sigma(t)^2 (Song et al. 2021, eq. 7): sigma^2 |s_theta + z / sigma|^2 = |eps_theta - z|^2, whose target
    z is O(1) at every t, where the score target -z / sigma grows like 1 / sigma as t -> 0.
    """
    t = eps + (1.0 - eps) * torch.rand(x0.shape[0], generator=generator, dtype=torch.float64)
    t = t.to(x0)
    z = _randn_like(x0, generator)
    x_t = sde.perturb(x0, t, z)
    return (model(x_t, t) - z).pow(2).mean()
