"""NCSN's sampler: annealed Langevin dynamics over decreasing noise levels (Song & Ermon 2019). Chapter 2."""

from __future__ import annotations

import torch
from torch import Tensor

from ..langevin import ula_step
from ..scores import LevelScoreFn
from .kernels import Keeper, Trajectory, step_range


def level_times(sigmas: Tensor) -> Tensor:
    """The time t_j in [0, 1] of each noise level: log(sigma_j / sigma_L) / log(sigma_1 / sigma_L), float64 (L,).

    For geometric levels t_j = 1 - j / (L - 1): the time of the variance-exploding SDE whose noise scale is
    sigma(t) = sigma_L (sigma_1 / sigma_L)^t (Song et al. 2021, sec. 3.4: NCSN is its discretisation).
    """
    logs = torch.log(torch.as_tensor(sigmas, dtype=torch.float64))
    return (logs - logs[-1]) / (logs[0] - logs[-1])


@torch.no_grad()
def annealed_langevin(score: LevelScoreFn, sigmas: Tensor, x: Tensor, steps: int, generator: torch.Generator,
                      step_scale: float = 2e-5, denoise: bool = True, keep_every: int = 0,
                      progress=False) -> tuple[Tensor, Trajectory]:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1). Chapter 2.

    score(x, j) -> (B, ...) score at noise level sigmas[j]; sigmas (L,) decreasing; x (B, ...) the start
    (e.g. N(0, sigma_1^2 I)); steps: Langevin steps per level. At level j, `steps` ULA steps
    (`langevin.ula_step`) with the paper's alpha_j = step_scale (sigma_j / sigma_L)^2, i.e. our step size
    h_j = alpha_j / 2 (the paper's epsilon is `step_scale`).
    denoise: finish with one Tweedie step x + sigma_L^2 s(x, L) that removes the last level's noise
    (Song & Ermon 2020, sec. 4). Returns (x, Trajectory of the states every `keep_every` Langevin steps,
    before the denoising step, at the times `level_times`: keep_every = steps keeps the state after each level).
    """
    if not step_scale > 0 or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"need step_scale > 0 and a positive integer steps, got {step_scale}, {steps!r}")
    sigma_L, times = float(sigmas[-1]), level_times(sigmas)
    keeper = Keeper(keep_every, len(sigmas) * steps)
    keeper(0, 1.0, x)
    for k in step_range(len(sigmas) * steps, progress, "annealed Langevin"):
        j = k // steps
        h = 0.5 * step_scale * (float(sigmas[j]) / sigma_L) ** 2
        x = ula_step(x, score(x, j), h, generator)
        keeper.nfev += 1
        keeper(k + 1, float(times[j]), x)
    if denoise:
        x = x + sigma_L**2 * score(x, len(sigmas) - 1)
        keeper.nfev += 1
    return x, keeper.result()
