"""Likelihoods of VP-SDE models: log p(x) and bits/dim through the probability-flow ODE. Chapter 7.

Why a module of its own rather than more of `sde.py`: a likelihood is an evaluation of a trained model,
not a sampler; it differentiates through the score (every integrator in `sde.py` runs under no_grad), and
it carries the data-side bookkeeping of dequantisation and units. It asks `sde.py` only for the SDE's
`ode_drift` and `prior_log_prob`, and its integrators are the samplers' own kernels (`heun_step`,
`solve_ivp_torch` in `samplers/kernels.py`), so the maths of the SDE and of the ODE steps stays written once.

Instantaneous change of variables (Chen et al. 2018; Song et al. 2021, eq. 39 and appendix D.2): along a
solution of the probability-flow ODE dx/dt = f~(x, t) = f(x, t) - 1/2 g(t)^2 s(x, t),
    log p_eps(x(eps)) = log p_1(x(1)) + int_eps^1 div f~(x(t), t) dt,        p_1 ~ N(0, I),
integrated forward from the data point x(eps) = x. The divergence is estimated by Hutchinson's trick,
div f~ = E_v[v^T (d f~ / d x) v] for any probe v with E[v v^T] = I (Rademacher +-1 or N(0, I)), one
vector-Jacobian product per evaluation; each sample keeps one probe along its whole path (FFJORD,
Grathwohl et al. 2019), so the estimate of each log-likelihood is unbiased and the spread over samples
includes the probes' noise. `probe="exact"` takes the trace with D backward passes (small D, tests).

Bits/dim of 8-bit images with uniform dequantisation (Theis et al. 2016; Ho et al. 2019): for integer
pixels k in {0..255}^D and u ~ U(0, 1)^D, the model sees z = 2 (k + u) / 256 - 1 in (-1, 1)^D. The map
k + u -> z scales each coordinate by 2 / 256 = 1 / 128, so the density of k + u is p(z) / 128^D, and
Jensen's inequality gives log P(k) >= E_u[log p(z)] - D log 128. Hence, in bits per dimension,
    bpd(k) = -log p(z) / (D ln 2) + log2(128) = -log p(z) / (D ln 2) + 7
for one draw of u: an unbiased estimate of an upper bound on the discrete model's bits/dim (the official
score-SDE code's `offset = 7`). Averaged over a test set it is stated as mean +- standard error
(`mean_and_stderr`), which covers the dequantisation, probe and data sampling noise together.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .samplers.kernels import heun_step, solve_ivp_torch
from .scores import ScoreFn
from .sde import EPS, VPSDE, _as_time

PROBES = ("rademacher", "gaussian", "exact")


def hutchinson_probe(shape: tuple, kind: str, generator: torch.Generator) -> Tensor:
    """A probe v of `shape` with E[v v^T] = I: Rademacher (+-1 with probability 1/2) or N(0, I). CPU float32."""
    if kind == "rademacher":
        return torch.randint(0, 2, shape, generator=generator).float() * 2.0 - 1.0
    if kind == "gaussian":
        return torch.randn(shape, generator=generator)
    raise ValueError(f"probe must be 'rademacher' or 'gaussian', got {kind!r}")


def _drift_and_divergence(sde: VPSDE, score: ScoreFn, x: Tensor, t: float, v: Tensor | None) -> tuple[Tensor, Tensor]:
    """f~(x, t) (B, ...) and its divergence (B,): v^T J v with the probe v, or the exact trace when v is None."""
    tb = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = sde.ode_drift(x, tb, score)
        if v is not None:
            (vjp,) = torch.autograd.grad((f * v).sum(), x)
            div = (vjp * v).flatten(1).sum(1)
        else:
            flat, div = f.flatten(1), torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(flat.shape[1]):
                (row,) = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < flat.shape[1] - 1)
                div = div + row.flatten(1)[:, i]
    return f.detach(), div.detach()


def log_time_grid(t0: float, t1: float, steps: int) -> Tensor:
    """steps + 1 times from t0 to t1 (0 < t0 < t1), evenly spaced in log t (float64): the Heun likelihood grid.

    Why not evenly spaced in t: near t = eps the divergence of the ODE's drift grows like D_eff / (2 t)
    for data that sit on a thin set (MNIST's background pixels are all exactly -1): there sigma(t)^2 ~
    beta(0) t and the score's divergence ~ -D_eff / sigma(t)^2. A trapezoid step on [eps, eps + 0.01]
    gives 5.5 for int dt / t = ln(11) = 2.4, so the log-likelihood gains (5.5 - 2.4) / 2 = 1.5 nats
    (2.2 bits) per such dimension; on MNIST that made bits/dim negative. In log t every step sees the same
    relative change, and 100 Heun steps agree with scipy's adaptive RK45 (rtol = atol = 1e-5) to 0.006
    bits/dim on MNIST test digits (chapter 7 measures it).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < t0 < t1:
        raise ValueError(f"need 0 < t0 < t1, got t0={t0}, t1={t1}")
    return torch.exp(torch.linspace(math.log(t0), math.log(t1), steps + 1, dtype=torch.float64))


def sde_log_likelihood(score: ScoreFn, sde: VPSDE, x: Tensor, generator: torch.Generator | None = None,
                       eps: float = EPS, steps: int = 100, method: str = "heun", probe: str = "rademacher",
                       rtol: float = 1e-5, atol: float = 1e-5) -> tuple[Tensor, dict]:
    """log p(x) in nats (B,) of data x (B, ...) in model coordinates, by the probability-flow ODE from t = eps to 1.

    score: s(x (B, ...), t (B,)) -> (B, ...), differentiable in x (e.g. `scores.eps_score(model, sde)`).
    method: "heun" (`steps` trapezoid steps on `log_time_grid`, 2 drift calls each) or "rk45" (scipy's
    adaptive RK45 with rtol, atol, as the official code). probe: "rademacher", "gaussian" (drawn once per
    sample from `generator`) or "exact" (D backward passes per call). The result is log p_eps(x) ~ log p_0(x) (eps =
    1e-3 changes it by O(sigma(eps)^2) per dimension). Returns (log p (B,), {"nfev": drift evaluations,
    "x1": the end point (B, ...), "prior": log N(x1; 0, I) (B,), "integral": int div (B,)}).
    """
    if method not in ("heun", "rk45"):
        raise ValueError(f"method must be 'heun' or 'rk45', got {method!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    _as_time(eps, "eps")
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    if probe == "exact":
        v = None
    else:
        if generator is None:
            raise ValueError(f"probe={probe!r} needs a generator")
        v = hutchinson_probe(tuple(x.shape), probe, generator).to(x)
    B = x.shape[0]

    def drift_and_div(x_: Tensor, t_: float) -> tuple[Tensor, Tensor]:
        return _drift_and_divergence(sde, score, x_, t_, v)

    if method == "heun":
        ts = log_time_grid(eps, 1.0, steps)
        integral = torch.zeros(B, dtype=x.dtype, device=x.device)
        for k in range(steps):
            x, increment = heun_step(drift_and_div, x, float(ts[k]), float(ts[k + 1]))
            integral = integral + increment
        nfev = 2 * steps
    else:
        x, integral, nfev = solve_ivp_torch(drift_and_div, x.detach(), eps, 1.0, accumulate=True, rtol=rtol, atol=atol)
    prior = sde.prior_log_prob(x)
    return prior + integral, {"nfev": nfev, "x1": x, "prior": prior, "integral": integral}


def dequantize(pixels: Tensor, generator: torch.Generator) -> Tensor:
    """z = 2 (k + u) / 256 - 1 in (-1, 1) for integer pixels k in 0..255 (any integer dtype or integral
    floats) and u ~ U(0, 1) from `generator`: shape of pixels, float32 on pixels' device."""
    k = pixels.float() if pixels.is_floating_point() else pixels.to(torch.float32)
    if k.numel() and (bool(k.min() < 0) or bool(k.max() > 255) or not torch.equal(k, k.round())):
        raise ValueError(f"pixels must be integers in 0..255, got values in [{float(k.min())}, {float(k.max())}]"
                         " (images in [0, 1]: pass (255 * x).round())")
    u = torch.rand(tuple(k.shape), generator=generator).to(k)
    return 2.0 * (k + u) / 256.0 - 1.0


def bits_per_dim(score: ScoreFn, sde: VPSDE, x: Tensor, generator: torch.Generator, dequantize_pixels: bool = True,
                 **kwargs) -> Tensor:
    """Bits per dimension (B,) of x (B, ...) under the model, one estimate per sample. Chapter 7.

    dequantize_pixels True: x holds 8-bit pixels (integers 0..255); they are dequantised (`dequantize`)
    and bpd = -log p(z) / (D ln 2) + 7 (the module docstring derives the 7 = log2 128).
    False: x is continuous data in model coordinates and bpd = -log p(x) / (D ln 2).
    kwargs go to `sde_log_likelihood` (steps, method, probe, eps, rtol, atol); the probes and u come from
    `generator`. Give the mean over a test set with its standard error (`mean_and_stderr`).
    """
    z = dequantize(x, generator) if dequantize_pixels else x
    logp, _ = sde_log_likelihood(score, sde, z, generator, **kwargs)
    dim = z[0].numel()
    return -logp / (dim * math.log(2.0)) + (math.log2(128.0) if dequantize_pixels else 0.0)


def mean_and_stderr(values) -> tuple[float, float]:
    """Mean and its standard error std / sqrt(n) (std with ddof = 1) of per-sample values (n,), n >= 2."""
    v = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values, dtype=np.float64).ravel()
    if v.size < 2:
        raise ValueError(f"need at least 2 values for a standard error, got {v.size}")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size))
