"""A density on a 2D latent plane handled exactly on a grid: its normaliser, its maximum-likelihood fit and exact
draws. Chapter 4: how good a 2D latent prior of a given family can get (its ceiling).

In two dimensions nothing about p(z) = exp(u(z)) / Z needs a Markov chain. With u the log of an unnormalised
density (for chapter 4's prior, u(z) = f_omega(z) - |z|^2 / (2 sigma_0^2): `LatentEBM.log_prior`) and cells of
side `spacing` covering the square [-lim, lim]^2:

    Z ~= sum_cells exp(u(c)) spacing^2                       (midpoint rule; `log_partition`)
    NLL(data) = -mean_i u(z_i) + log Z                        (`nll`)
    a draw: a cell with probability exp(u(c)) / sum, then a point uniform in the cell       (`sample`)

`fit_max_likelihood` minimises the NLL over the parameters of u with Adam. Each step shifts the grid by a
uniform random offset within one cell (stratified quadrature), so the estimate of Z is unbiased whatever the
shape of u, and a u that grows spikes between the nodes of a fixed grid gains nothing from it. The square must
hold the density's mass: for chapter 4's priors, whose base p_0 = N(0, sigma_0^2 I) has sigma_0 = 1, and whose
aggregate posterior lies within |z_i| < 5.4, lim = 6 does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

LogDensity = Callable[[Tensor], Tensor]  # u: (B, 2) -> (B,), log of an unnormalised density


def _check(lim: float, spacing: float) -> int:
    """The number of cells per side; ValueError naming a bad lim or spacing."""
    for name, value in (("lim", lim), ("spacing", spacing)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    cells = round(2 * lim / spacing)
    if abs(cells * spacing - 2 * lim) > 1e-9 * lim:
        raise ValueError(f"spacing must divide 2 lim = {2 * lim:g} into whole cells, got spacing {spacing:g}")
    return cells


def grid_points(lim: float, spacing: float, offset: Tensor | None = None) -> Tensor:
    """The cells' points (m^2, 2), m = 2 lim / spacing, at -lim + offset + spacing * (i, j): the cell centres for
    offset None (spacing / 2 in each axis), or the points shifted by `offset` (2,) in [0, spacing)^2."""
    m = _check(lim, spacing)
    offset = torch.full((2,), spacing / 2) if offset is None else offset
    axis = torch.arange(m, dtype=torch.float32, device=offset.device) * spacing - lim  # on offset's device
    return torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2) + offset


def _values(u: LogDensity, points: Tensor, chunk: int) -> Tensor:
    return torch.cat([u(c) for c in points.split(chunk)])


def log_partition(u: LogDensity, lim: float, spacing: float, offset: Tensor | None = None,
                  chunk: int = 65_536) -> Tensor:
    """log Z = log int exp(u(z)) dz by the midpoint rule on the grid (offset: `grid_points`), as a scalar that
    keeps u's graph (so its gradient is the grid's estimate of E_p[grad u]). A Gaussian's log Z comes out to
    about 1e-9 at spacing 0.1 (the midpoint rule is spectrally accurate on smooth, decaying integrands)."""
    points = grid_points(lim, spacing, offset)
    return torch.logsumexp(_values(u, points, chunk), 0) + 2 * math.log(spacing)


def nll(u: LogDensity, z: Tensor, lim: float, spacing: float) -> float:
    """Mean negative log-likelihood of the points z (n, 2) under exp(u) / Z, Z by `log_partition` (nats)."""
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (n, 2), got {tuple(z.shape)}")
    with torch.no_grad():
        return float(log_partition(u, lim, spacing) - u(z).mean())


def sample(u: LogDensity, n: int, lim: float, spacing: float, generator: torch.Generator,
           device: torch.device | str = "cpu") -> Tensor:
    """n exact draws (n, 2) of exp(u) / Z up to the grid: a cell with probability proportional to exp(u) at its
    centre, then a point uniform in it (the density's variation within one cell is the only error). u is
    evaluated on `device`; the draws come from `generator` on the CPU (the same for a seed on any device)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    centres = grid_points(lim, spacing)
    with torch.no_grad():
        weights = torch.softmax(_values(u, centres.to(device), 65_536).float().cpu(), 0)
    pick = torch.multinomial(weights, n, replacement=True, generator=generator)
    return (centres[pick] + (torch.rand(n, 2, generator=generator) - 0.5) * spacing).to(device)


def nll_loss(u: LogDensity, z: Tensor, lim: float, spacing: float, generator: torch.Generator) -> Tensor:
    """-mean u(z) + log Z (a scalar with u's graph), Z on the grid shifted by a uniform random offset within one
    cell drawn from `generator`: an unbiased estimate of Z, so the loss is a stochastic estimate of the NLL of
    the points z (B, 2) whose gradient is the maximum-likelihood gradient E_p[grad u] - mean grad u(z)."""
    offset = torch.rand(2, generator=generator) * spacing
    return log_partition(u, lim, spacing, offset.to(z)) - u(z).mean()


def fit_max_likelihood(u: LogDensity, params: list[nn.Parameter], z: Tensor, steps: int, lim: float,
                       spacing: float, generator: torch.Generator, lr: float = 1e-3, batch: int = 1024,
                       progress: bool = False) -> list[float]:
    """Fit the parameters `params` of u to the points z (n, 2) by maximum likelihood: `steps` Adam steps (lr on a
    cosine schedule to 0) on -mean u(z_batch) + log Z, Z on a grid shifted by a uniform random offset each step
    (the module's docstring). z_batch: `batch` points drawn with replacement from `generator`. Returns the
    loss of each step (nats; an unbiased Z makes them noisy estimates of the NLL, slightly low)."""
    if z.ndim != 2 or z.shape[1] != 2:
        raise ValueError(f"z must have shape (n, 2), got {tuple(z.shape)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    _check(lim, spacing)
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5 * (1 + math.cos(math.pi * k / steps)))
    losses = []
    for _ in tqdm(range(steps), desc="maximum likelihood on the grid", disable=not progress):
        idx = torch.randint(0, len(z), (batch,), generator=generator)
        loss = nll_loss(u, z[idx], lim, spacing, generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses
