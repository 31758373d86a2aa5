"""Langevin samplers, all in one step-size convention.

    x_{k+1} = x_k + h grad log p(x_k) + sqrt(2 h) z_k,   z_k ~ N(0, I)            (ULA)

h is the step size everywhere in the course. Song & Ermon (2019) write the same update with
alpha = 2h: x + (alpha / 2) s + sqrt(alpha) z; `samplers.annealed_langevin` takes their alpha_i and converts.
`ula` and `mala` run many independent chains in parallel on any grad-log-density; chapter 3 validates
them on N(0, 1), where ULA's bias is known exactly (`ula_stationary_variance`). Chapters 3 and 4.
They are MCMC chains, not generative samplers: they return the whole history (n_kept, C, ...) that the
chain diagnostics of `metrics.mcmc` read, with no time running from 1 to 0. The generative samplers
(annealed Langevin, the PC corrector) are in `samplers/` and call this module's `ula_step`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm


def ula_step(x: Tensor, grad_log_p: Tensor, h: float, generator: torch.Generator | None = None,
             z: Tensor | None = None) -> Tensor:
    """One unadjusted Langevin step x + h grad + sqrt(2h) z; x and grad_log_p (B, ...), h > 0.

    z ~ N(0, I) is drawn from `generator` unless given (the PC corrector draws it first: its step size
    depends on |z|). The one Langevin update of the course: chapters 2, 3, 4 and 7 call it.
    """
    if not h > 0:
        raise ValueError(f"step size h must be positive, got {h}")
    if z is None:
        z = torch.randn(x.shape, generator=generator).to(x)
    return x + h * grad_log_p + (2.0 * h) ** 0.5 * z


# ------------------------------------------------------------------ many parallel chains (chapters 3, 4)


def _check_run(h: float, n_steps: int, keep_every: int, burn_in: int, x0: Tensor) -> int:
    """Validate a sampler's arguments; return the number of kept states n_steps // keep_every."""
    if not h > 0:
        raise ValueError(f"step size h must be positive, got {h}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
    if int(keep_every) != keep_every or not 1 <= keep_every <= n_steps:
        raise ValueError(f"keep_every must be an integer in [1, n_steps={n_steps}], got {keep_every}")
    if int(burn_in) != burn_in or burn_in < 0:
        raise ValueError(f"burn_in must be a non-negative integer, got {burn_in}")
    if x0.dim() < 1:
        raise ValueError(f"x0 must have shape (C,) or (C, d), got a scalar of shape {tuple(x0.shape)}")
    return int(n_steps) // int(keep_every)


def ula(grad_log_p: Callable[[Tensor], Tensor], x0: Tensor, h: float, n_steps: int,
        generator: torch.Generator, keep_every: int = 1, burn_in: int = 0,
        progress: bool = False) -> Tensor:
    """Unadjusted Langevin algorithm (ULA) on C independent chains in parallel. Chapters 3 and 4.

        x_{k+1} = x_k + h grad log p(x_k) + sqrt(2 h) z_k,   z_k ~ N(0, I)

    (Roberts & Tweedie 1996 write the drift as h/2, so their h is our 2h, like Song & Ermon's alpha).
    Without a Metropolis correction the chain is biased: its stationary law is not p but a neighbour of it,
    at distance O(h) (for p = N(0, 1) see `ula_stationary_variance`).

    grad_log_p(x) -> tensor of x's shape: any score (an exact one, a network, the gradient of an EBM).
        It is called on plain tensors; a callable that needs autograd sets requires_grad itself.
        Its output is detached, so no graph grows along the chain.
    x0: (C,) or (C, d) (or (C, ...)): one start per chain.
    burn_in: steps run first and not kept. Then n_steps steps, keeping the state after every
        `keep_every`-th one.
    Returns the history (n_steps // keep_every, C, ...): the states x_{burn_in + keep_every},
    x_{burn_in + 2 keep_every}, ..., x_{burn_in + n_kept keep_every}.
    """
    n_kept = _check_run(h, n_steps, keep_every, burn_in, x0)
    x = x0.detach().clone()
    history = torch.empty((n_kept,) + tuple(x.shape), dtype=x.dtype, device=x.device)
    for k in tqdm(range(burn_in + n_steps), disable=not progress, desc=f"ULA h={h:g}"):
        x = ula_step(x, grad_log_p(x).detach(), h, generator)
        j = k - burn_in + 1                                  # steps since the burn-in ended
        if j > 0 and j % keep_every == 0:
            history[j // keep_every - 1] = x
    return history


def mala(log_p: Callable[[Tensor], Tensor], grad_log_p: Callable[[Tensor], Tensor], x0: Tensor, h: float,
         n_steps: int, generator: torch.Generator, keep_every: int = 1, burn_in: int = 0,
         progress: bool = False) -> tuple[Tensor, float]:
    """Metropolis-adjusted Langevin algorithm (MALA) on C parallel chains (Roberts & Tweedie 1996). Ch. 3, 4.

    Proposal: one ULA step x' = x + h grad log p(x) + sqrt(2 h) z,
    i.e. q(x' | x) = N(x + h grad log p(x), 2h I).
    Accept x' with probability min(1, a), where

        log a = log p(x') - log p(x) + log q(x | x') - log q(x' | x),
        log q(x' | x) = -|x' - x - h grad log p(x)|^2 / (4 h) + const,

    otherwise stay at x. The accept/reject step makes p exactly stationary, so the bias of ULA is gone for
    every h; a large h costs acceptances instead.

    log_p(x) -> (C,) log density up to a constant (summed over the event dimensions);
    grad_log_p(x) -> tensor of x's shape. x0: (C,) or (C, d). burn_in, keep_every: as in `ula`.
    Returns (history (n_steps // keep_every, C, ...), acceptance rate), the rate averaged over chains and
    over the n_steps steps after the burn-in.
    """
    n_kept = _check_run(h, n_steps, keep_every, burn_in, x0)
    x = x0.detach().clone()
    n_chains = x.shape[0]
    lp, grad = log_p(x).detach(), grad_log_p(x).detach()
    if lp.shape != (n_chains,):
        raise ValueError(f"log_p must return shape (C,) = ({n_chains},), got {tuple(lp.shape)}")

    def log_q(to: Tensor, frm: Tensor, grad_frm: Tensor) -> Tensor:     # log N(to; frm + h grad, 2h I)
        return -(to - frm - h * grad_frm).reshape(n_chains, -1).pow(2).sum(1) / (4.0 * h)

    history = torch.empty((n_kept,) + tuple(x.shape), dtype=x.dtype, device=x.device)
    accepted = torch.zeros((), dtype=torch.float64, device=x.device)    # no host sync per step
    event = (n_chains,) + (1,) * (x.dim() - 1)
    for k in tqdm(range(burn_in + n_steps), disable=not progress, desc=f"MALA h={h:g}"):
        y = ula_step(x, grad, h, generator)
        lp_y, grad_y = log_p(y).detach(), grad_log_p(y).detach()
        log_a = lp_y - lp + log_q(x, y, grad_y) - log_q(y, x, grad)
        u = torch.rand(n_chains, generator=generator).to(x)
        accept = torch.log(u) < log_a                           # u = 0 gives -inf: always accepted
        x = torch.where(accept.reshape(event), y, x)
        grad = torch.where(accept.reshape(event), grad_y, grad)
        lp = torch.where(accept, lp_y, lp)
        j = k - burn_in + 1
        if j > 0:
            accepted += accept.sum()
            if j % keep_every == 0:
                history[j // keep_every - 1] = x
    return history, float(accepted) / (n_steps * n_chains)


def ula_stationary_variance(h: float) -> float:
    """Variance of ULA's stationary law when the target is N(0, 1): 1 / (1 - h/2). Chapter 3.

    With grad log p(x) = -x the ULA step is x' = (1 - h) x + sqrt(2h) z, an AR(1) chain with coefficient
    1 - h. Its stationary law is Gaussian with mean 0 and a variance v that solves v = (1 - h)^2 v + 2h:
    v = 2h / (1 - (1 - h)^2) = 1 / (1 - h/2). It exists for |1 - h| < 1, i.e. 0 < h < 2; at h >= 2 the
    chain diverges, and `ValueError` is raised. Example: h = 1 gives N(0, 2), twice the target's variance.
    """
    if not 0 < h < 2:
        raise ValueError(f"step size h must lie in (0, 2) for ULA on N(0, 1) to be stable, got {h}")
    return 1.0 / (1.0 - h / 2.0)
