"""Langevin samplers, all in one step-size convention.

    x_{k+1} = x_k + h grad log p(x_k) + sqrt(2 h) z_k,   z_k ~ N(0, I)            (ULA)

h is the step size everywhere in the course. Song & Ermon (2019) write the same update with
alpha = 2h: x + (alpha / 2) s + sqrt(alpha) z; `annealed_langevin` takes their alpha_i and converts.
Chapters 2, 3 and 4.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm


def ula_step(x: Tensor, grad_log_p: Tensor, h: float, generator: torch.Generator) -> Tensor:
    """One unadjusted Langevin step x + h grad + sqrt(2h) z; x and grad_log_p (B, ...), h > 0."""
    if h <= 0:
        raise ValueError(f"step size h must be positive, got {h}")
    z = torch.randn(x.shape, generator=generator).to(x)
    return x + h * grad_log_p + (2.0 * h) ** 0.5 * z


@torch.no_grad()
def annealed_langevin(score_fn: Callable[[Tensor, int], Tensor], sigmas: Tensor, x: Tensor, eps: float,
                      steps_per_level: int, generator: torch.Generator, denoise: bool = True,
                      keep_levels: bool = False, progress: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1). Chapter 2.

    score_fn(x, j) -> (B, ...) score at noise level sigmas[j]; sigmas (L,) decreasing; x (B, ...) start
    (e.g. uniform or N(0, sigma_1^2 I)). At level j, `steps_per_level` ULA steps with
    alpha_j = eps (sigma_j / sigma_L)^2, i.e. h_j = alpha_j / 2 in this module's convention.
    denoise: finish with one Tweedie step x + sigma_L^2 s(x, L) that removes the last level's noise
    (Song & Ermon 2020, sec. 4). Returns (x, [x after each level] if keep_levels else []).
    """
    if eps <= 0 or steps_per_level < 1:
        raise ValueError(f"need eps > 0 and steps_per_level >= 1, got {eps}, {steps_per_level}")
    sigma_L = float(sigmas[-1])
    kept = []
    for j in tqdm(range(len(sigmas)), disable=not progress, desc="annealed Langevin"):
        h = 0.5 * eps * (float(sigmas[j]) / sigma_L) ** 2
        for _ in range(steps_per_level):
            x = ula_step(x, score_fn(x, j), h, generator)
        if keep_levels:
            kept.append(x.cpu())
    if denoise:
        x = x + sigma_L**2 * score_fn(x, len(sigmas) - 1)
    return x, kept
