"""Where a few-step solver puts its steps: uniform in t, uniform in log-SNR, or EDM's rho = 7. Chapters 6-8.

With 10-20 steps from t = 1 to t_min the choice of times matters as much as the solver (Karras et al. 2022,
sec. 3). Three schedules, each of `steps` + 1 decreasing times from t_start to t_end:

    "time"    t_k uniform                                   (DDIM's "uniform" respacing; Song, Meng, Ermon 2021)
    "logsnr"  lambda(t_k) uniform, lambda = log(alpha / sigma)               (Lu et al. 2022, DPM-Solver, sec. 3.3)
    "edm"     sigma_k = (s_max^(1/rho) + k/steps (s_min^(1/rho) - s_max^(1/rho)))^rho with s = sigma / alpha
              = e^(-lambda), the noise level of the equivalent variance-exploding process   (Karras et al. eq. 5)

A process answers `log_snr(t)` and `time_of_log_snr(lam)` (`sde.VPSDE`, `schedules.DiscreteVP`); one with
`grid` = T (a DDPM) has its times rounded to i / T, where its network was trained.
"""

from __future__ import annotations

import torch
from torch import Tensor

SCHEDULES = ("time", "logsnr", "edm")


def solver_times(process, steps: int, schedule: str = "logsnr", t_start: float = 1.0, t_end: float = 1e-3,
                 denoise: bool = False, rho: float = 7.0) -> Tensor:
    """Decreasing solver times (float64, CPU): `steps` + 1 from t_start to t_end (see the module's table).

    denoise: the process is evaluated at `steps` times from t_start to t_end, and a last step goes on to t = 0,
    where sigma = 0 and a solver returns its data prediction (the DDIM paper's last step, with alpha_bar_0 = 1).
    A process with a `grid` (a DDPM with T steps) has its times rounded to multiples of 1 / T; times that
    round together are kept once, so it may get fewer steps than asked for. Used by `samplers.exponential`.
    Raises ValueError naming `steps`, `schedule`, `rho`, `t_start` or `t_end` when one cannot be right.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    if not 0.0 < t_end < t_start <= 1.0:
        raise ValueError(f"need 0 < t_end < t_start <= 1, got t_start = {t_start}, t_end = {t_end}")
    points = steps if denoise else steps + 1
    if points == 1:
        times = torch.tensor([t_start], dtype=torch.float64)
    elif schedule == "time":
        times = torch.linspace(t_start, t_end, points, dtype=torch.float64)
    else:
        lam0, lam1 = (float(process.log_snr(torch.tensor(t, dtype=torch.float64))) for t in (t_start, t_end))
        if schedule == "logsnr":
            lam = torch.linspace(lam0, lam1, points, dtype=torch.float64)
        else:
            s_max, s_min = (torch.tensor(-lam, dtype=torch.float64).exp() ** (1 / rho) for lam in (lam0, lam1))
            k = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
            lam = -rho * torch.log(s_max + k * (s_min - s_max))
        times = process.time_of_log_snr(lam).double()
        times[0], times[-1] = t_start, t_end  # exact ends, whatever the inverse's round-off
    if denoise:
        times = torch.cat([times, torch.zeros(1, dtype=torch.float64)])
    grid = getattr(process, "grid", None)
    if grid:
        times = torch.unique(torch.round(times * grid), sorted=True).flip(0) / grid
    return times
