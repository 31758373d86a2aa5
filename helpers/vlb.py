"""The DDPM's variational bound on the negative log-likelihood, in bits/dim (Ho et al. 2020, eq. 5). Chapter 6.

For 8-bit images with pixels k in {0..255}^D, scaled to x_0 = 2 k / 255 - 1 (the models' range),

    -log p(x_0) <= L = L_T + sum_{i=2}^T L_{i-1} + L_0,
    L_T     = KL( q(x_T | x_0) || N(0, I) )
    L_{i-1} = E_{x_i ~ q(x_i | x_0)} KL( q(x_{i-1} | x_i, x_0) || p_theta(x_{i-1} | x_i) )
    L_0     = E_{x_1 ~ q(x_1 | x_0)} [ -log p_theta(x_0 | x_1) ]

with the Gaussian posterior q(x_{i-1} | x_i, x_0) = N(mu~_i, beta~_i I) (eqs. 6-7) and the model's step
p_theta(x_{i-1} | x_i) = N(mu_theta, sigma_i^2 I) (Ho et al.'s sigma_i^2, the book's nu_i) with
mu_theta = (x_i - beta_i / sqrt(1 - alpha_bar_i) eps_theta) / sqrt(alpha_i) (eq. 11). For
x_i = sqrt(alpha_bar_i) x_0 + sqrt(1 - alpha_bar_i) eps, mu~_i - mu_theta =
beta_i / (sqrt(alpha_i) sqrt(1 - alpha_bar_i)) (eps - eps_theta), so each KL is, summed over the D pixels,

    1/2 [ D (r - 1 - log r) + beta_i^2 / (alpha_i (1 - alpha_bar_i) sigma_i^2) |eps - eps_theta|^2 ],
    r = beta~_i / sigma_i^2.

sigma_i^2 is beta_i (the course's ancestral sampler, `variance="beta"`) or beta~_i ("beta_tilde"). L_0 is the
discretised Gaussian decoder of eq. 13: the mass of N(mu_theta(x_1, 1), beta_1) on the pixel's bin
[x - 1/255, x + 1/255], the outer bins open to -inf and +inf. L is a bound on the *discrete* model's
-log P(k), as the dequantised bits/dim of chapter 7 (`likelihood.bits_per_dim`) is, so the two compare.

The T - 1 middle terms are estimated without bias by stratified sampling: split 2..T into `terms` strata of
near-equal size, draw one step i and one eps per stratum and image, and weight each term by its stratum's size.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor

from .schedules import DDPMSchedule

VARIANCES = ("beta", "beta_tilde")


def _check_pixels(pixels: Tensor) -> None:
    if pixels.ndim < 2:
        raise ValueError(f"pixels must be a batch (B, ...), got shape {tuple(pixels.shape)}")
    if bool((pixels != pixels.round()).any()) or float(pixels.min()) < 0 or float(pixels.max()) > 255:
        raise ValueError("pixels must be integers in 0..255 (8-bit images, not values in [0, 1] or [-1, 1])")


def _strata(T: int, terms: int) -> list[tuple[int, int]]:
    """`terms` contiguous ranges (lo, hi) covering the steps 2..T, sizes differing by at most one."""
    edges = [2 + round(k * (T - 1) / terms) for k in range(terms + 1)]
    return [(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]


def _discretised_gaussian_log_mass(x0: Tensor, mean: Tensor, std: float) -> Tensor:
    """log N(mean, std^2) mass of each pixel's bin [x0 - 1/255, x0 + 1/255] (outer bins open), summed per image."""
    normal = torch.distributions.Normal(mean.double(), std)
    x = x0.double()
    upper = torch.where(x > 1 - 1e-6, torch.ones_like(x), normal.cdf(x + 1 / 255))
    lower = torch.where(x < -1 + 1e-6, torch.zeros_like(x), normal.cdf(x - 1 / 255))
    return torch.log((upper - lower).clamp_min(1e-300)).flatten(1).sum(1)


@torch.no_grad()
def ddpm_bound_terms(eps_model: Callable[[Tensor, Tensor], Tensor], schedule: DDPMSchedule, pixels: Tensor,
                     generator: torch.Generator, terms: int = 100, variance: str = "beta") -> dict[str, Tensor]:
    """The three parts of the variational bound L (eq. 5) for each image, in nats. Chapter 6.

    eps_model(x_i (B, ...), t (B,)) -> eps_theta (B, ...), with t = i / T; pixels: (B, ...) integers 0..255;
    terms: strata for the T - 1 middle terms (1..T - 1; T - 1 evaluates every step once); variance: sigma_i^2.
    Returns {"prior": L_T, "diffusion": the estimate of sum_{i=2}^T L_{i-1}, "decoder": L_0}, each (B,) float64.
    Uses terms + 1 network calls on the batch, eps drawn from `generator` (CPU).
    """
    _check_pixels(pixels)
    if not isinstance(terms, int) or not 1 <= terms <= schedule.T - 1:
        raise ValueError(f"terms must be an integer in 1..{schedule.T - 1}, got {terms!r}")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    device = next(eps_model.parameters()).device if isinstance(eps_model, torch.nn.Module) else torch.device("cpu")
    x0 = (2.0 * pixels.double() / 255.0 - 1.0)
    B, D = x0.shape[0], x0[0].numel()
    betas, alphas, abar = schedule.betas, schedule.alphas, schedule.alpha_bars  # float64, index i - 1

    def eps_at(i: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x_i, the eps that made it, and eps_theta(x_i, i / T) for steps i (B,)."""
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        ab = abar[i - 1].reshape(-1, *([1] * (x0.ndim - 1)))
        x_i = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        out = eps_model(x_i.float().to(device), (i.float() / schedule.T).to(device))
        return x_i, eps, out.double().cpu()

    ab_T = float(abar[-1])
    prior = 0.5 * (ab_T * x0.pow(2) + (1 - ab_T) - 1 - math.log(1 - ab_T)).flatten(1).sum(1)

    diffusion = torch.zeros(B, dtype=torch.float64)
    for lo, hi in _strata(schedule.T, terms):
        i = torch.randint(lo, hi, (B,), generator=generator)
        _, eps, eps_theta = eps_at(i)
        beta, alpha, ab = betas[i - 1], alphas[i - 1], abar[i - 1]
        beta_tilde = (1 - abar[i - 2]) / (1 - ab) * beta
        sigma2 = beta if variance == "beta" else beta_tilde
        r = beta_tilde / sigma2
        mean_term = beta**2 / (alpha * (1 - ab) * sigma2) * (eps - eps_theta).pow(2).flatten(1).sum(1)
        diffusion += (hi - lo) * 0.5 * (D * (r - 1 - torch.log(r)) + mean_term)

    one = torch.ones(B, dtype=torch.long)
    x_1, _, eps_theta = eps_at(one)
    mean_1 = (x_1 - float(betas[0]) / math.sqrt(1 - float(abar[0])) * eps_theta) / math.sqrt(float(alphas[0]))
    decoder = -_discretised_gaussian_log_mass(x0, mean_1, math.sqrt(float(betas[0])))
    return {"prior": prior, "diffusion": diffusion, "decoder": decoder}


def ddpm_bits_per_dim(eps_model: Callable[[Tensor, Tensor], Tensor], schedule: DDPMSchedule, pixels: Tensor,
                      generator: torch.Generator, terms: int = 100, variance: str = "beta") -> Tensor:
    """The variational bound L (eq. 5) of each image in bits per dimension, L / (D ln 2); (B,) float64. Chapter 6.

    An unbiased estimate (over the stratified steps and the eps draws) of an upper bound on -log2 P(k) / D;
    average it over test images with `likelihood.mean_and_stderr`. Arguments as `ddpm_bound_terms`.
    """
    parts = ddpm_bound_terms(eps_model, schedule, pixels, generator, terms, variance)
    D = pixels[0].numel()
    return (parts["prior"] + parts["diffusion"] + parts["decoder"]) / (D * math.log(2))
