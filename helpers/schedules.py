"""Noise schedules: the discrete DDPM schedule and NCSN's geometric noise levels.

The continuous VP-SDE lives in `sde.py`; this module holds the discrete processes of chapters 1, 2 and 6.
"""

from __future__ import annotations

import torch
from torch import Tensor


def expand_like(v: Tensor, x: Tensor) -> Tensor:
    """Reshape v (B,) to (B, 1, ..., 1) so it broadcasts against x (B, ...)."""
    return v.reshape(-1, *([1] * (x.ndim - 1)))


class DDPMSchedule:
    """Linear-beta DDPM (Ho et al. 2020): beta_i for i = 1..T, alpha_i = 1 - beta_i, alpha_bar_i = prod alpha.

    q(x_i | x_0) = N(sqrt(alpha_bar_i) x_0, (1 - alpha_bar_i) I)   (Ho et al. 2020, eq. 4).
    Tensors are indexed by i - 1 (float64, CPU); step i is fed to networks as the time t = i / T in (0, 1].
    Chapters 1 and 6.
    """

    def __init__(self, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02):
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer, got {T!r}")
        if not 0 < beta_1 <= beta_T < 1:
            raise ValueError(f"need 0 < beta_1 <= beta_T < 1, got beta_1={beta_1}, beta_T={beta_T}")
        self.T, self.beta_1, self.beta_T = T, beta_1, beta_T
        self.betas = torch.linspace(beta_1, beta_T, T, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def _index(self, i: Tensor) -> Tensor:
        i = torch.as_tensor(i)
        if i.dtype.is_floating_point or int(i.min()) < 1 or int(i.max()) > self.T:
            raise ValueError(f"steps i must be integers in 1..{self.T}")
        return i.long() - 1

    def q_moments(self, x0: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (B, ...) and std (B, 1, ...) of q(x_i | x_0); x0 (B, ...), i (B,) integers in 1..T."""
        ab = self.alpha_bars[self._index(i)].to(x0)
        return expand_like(ab.sqrt(), x0) * x0, expand_like((1.0 - ab).sqrt(), x0)

    def q_sample(self, x0: Tensor, i: Tensor, noise: Tensor) -> Tensor:
        """x_i = sqrt(alpha_bar_i) x_0 + sqrt(1 - alpha_bar_i) noise, shape of x0 (eq. 4 reparametrised)."""
        mean, std = self.q_moments(x0, i)
        return mean + std * noise

    def time(self, i: Tensor) -> Tensor:
        """The network's time input t = i / T, float32 (B,)."""
        return torch.as_tensor(i).float() / self.T


class DiscreteVP:
    """A DDPM schedule read as a VP process on t in [0, 1], for the solvers of `samplers.exponential`. Chapter 6.

    At the grid times t_i = i / T it is the DDPM itself, alpha(i / T) = sqrt(alpha_bar_i) and sigma(i / T) =
    sqrt(1 - alpha_bar_i), with alpha(0) = 1; between them log alpha(t) is linear in t (the "discrete" noise
    schedule of Lu et al. 2022's code). It answers what `sde.VPSDE` answers to a solver: `alpha`,
    `marginal_std`, `log_snr` and `time_of_log_snr`, and `grid` = T says that times must lie on i / T (the
    network was trained there only): DDIM on a DDPM's own steps, the setting of Song, Meng and Ermon (2021).
    """

    def __init__(self, schedule: DDPMSchedule):
        self.grid = schedule.T
        zero = torch.zeros(1, dtype=torch.float64)
        self.log_alphas = torch.cat([zero, 0.5 * torch.log(schedule.alpha_bars)])  # (T + 1,), from t = 0 to 1

    def __repr__(self) -> str:
        return f"DiscreteVP(T={self.grid})"

    def _times(self, t) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.numel() and (bool(t.min() < 0.0) or bool(t.max() > 1.0)):
            raise ValueError(f"t must lie in [0, 1], got values in [{float(t.min())}, {float(t.max())}]")
        return t

    def log_alpha(self, t) -> Tensor:
        """log alpha(t), linear between the grid times i / T; float64, shaped like t."""
        u = self._times(t) * self.grid
        i = u.floor().clamp(0, self.grid - 1)
        w = u - i
        i = i.long()
        return (1.0 - w) * self.log_alphas[i] + w * self.log_alphas[i + 1]

    def alpha(self, t) -> Tensor:
        """alpha(t) = sqrt(alpha_bar_i) at t = i / T; float64, shaped like t."""
        return torch.exp(self.log_alpha(t))

    def marginal_std(self, t) -> Tensor:
        """sigma(t) = sqrt(1 - alpha(t)^2); float64, shaped like t."""
        return torch.sqrt(-torch.expm1(2.0 * self.log_alpha(t)))

    def log_snr(self, t) -> Tensor:
        """lambda(t) = log alpha(t) - log sigma(t); +inf at t = 0; float64, shaped like t."""
        la = self.log_alpha(t)
        return la - 0.5 * torch.log(-torch.expm1(2.0 * la))

    def time_of_log_snr(self, lam) -> Tensor:
        """The inverse of `log_snr`: log alpha = -1/2 softplus(-2 lambda), then the piecewise-linear
        log alpha(t) inverted between its grid values; float64, shaped like lam, in [0, 1]."""
        lam = torch.as_tensor(lam, dtype=torch.float64)
        target = -(-0.5 * torch.nn.functional.softplus(-2.0 * lam))  # -log alpha, increasing in t
        grid = -self.log_alphas
        if lam.numel() and bool(target.max() > grid[-1] + 1e-12):
            raise ValueError(f"lam must be >= lambda(1) = {float(self.log_snr(1.0)):.4f}, got {float(lam.min()):.4f}")
        i = (torch.searchsorted(grid, target.reshape(-1)) - 1).clamp(0, self.grid - 1).reshape(target.shape)
        w = (target - grid[i]) / (grid[i + 1] - grid[i])
        return ((i + w.clamp(0.0, 1.0)) / self.grid).clamp(0.0, 1.0)


def geometric_sigmas(sigma_max: float, sigma_min: float, levels: int) -> Tensor:
    """NCSN noise levels sigma_1 > ... > sigma_L, a geometric sequence (Song & Ermon 2019, sec. 4.2).

    Returns float32 (levels,). Chapter 2.
    """
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    if not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    return torch.logspace(torch.log10(torch.tensor(sigma_max)), torch.log10(torch.tensor(sigma_min)), levels)
