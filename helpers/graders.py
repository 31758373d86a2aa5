"""Graders of the chapters' exercises: each checks a learner's function against exact results and says what failed.

An exercise is a small function the learner writes in the notebook (the book shows the solution between
nbgrader's `### BEGIN SOLUTION` and `### END SOLUTION`; `python -m helpers student` replaces it by a stub that
raises NotImplementedError). The cell after it calls its grader:

    forward_marginal = graders.grade("forward_marginal", forward_marginal)

which prints one line per check and returns the function the chapter goes on with: the learner's when every
check passed, the course's own otherwise, so a learner who is stuck still sees the rest of the chapter. The
checks are closed forms, not comparisons with `helpers` alone: Gaussian marginals and their moment ODEs, the
exact posterior noise of Gaussian data, the exact classifier of two Gaussian classes. Where a mistake is common
(a variance where a standard deviation belongs, a sign of the score, the step index i in 1..T for the time
t = i / T, a gradient of p for one of log p) its grader recognises it and names it.

    EXERCISES   name -> Exercise(chapter, title, grader, reference)
    grade(name, fn) -> the function to go on with, after printing the verdict
    check(name, fn) -> Verdict (status "passed", "failed" or "not yet implemented", and the messages)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from .langevin import ula_step
from .latent_ebm import gaussian_log_likelihood
from .losses import dsm_loss
from .samplers.kernels import ancestral_step
from .scores import guided_score
from .sde import VPSDE

NOT_IMPLEMENTED = "not yet implemented"


class Wrong(AssertionError):
    """A check that failed; its message says what, and which common mistake it looks like."""


@dataclass
class Verdict:
    """What a grader found: status ("passed", "failed" or NOT_IMPLEMENTED) and one message per check."""

    name: str
    status: str
    messages: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        head = f"{EXERCISES[self.name].label} ({EXERCISES[self.name].title}): {self.status}"
        return "\n".join([head] + [f"  - {m}" for m in self.messages])


def _close(got, want, rtol: float = 1e-5, atol: float = 1e-7) -> bool:
    got, want = torch.as_tensor(got, dtype=torch.float64), torch.as_tensor(want, dtype=torch.float64)
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=rtol, atol=atol))


def _shape(value, want: tuple, what: str) -> Tensor:
    value = torch.as_tensor(value)
    if tuple(value.shape) != tuple(want):
        raise Wrong(f"{what} has shape {tuple(value.shape)}; expected {tuple(want)}")
    return value.double()


def _linear_alpha_bars(T: int = 50) -> Tensor:
    betas = torch.linspace(1e-4, 0.2, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0)


# ---------------------------------------------------------------------------------------------- chapter 1
def _grade_forward_marginal(fn) -> list[str]:
    """forward_marginal(x0 (B, 2), i (B,) steps in 1..T, alpha_bars (T,)) -> mean (B, 2), std (B, 1)."""
    g = torch.Generator().manual_seed(0)
    alpha_bars = _linear_alpha_bars()
    T = len(alpha_bars)
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    for i in (torch.tensor([1, 2, 10, 25, 30, T - 1]), torch.tensor([T, T, 1, 1, 2, 2])):  # the ends of the table last
        try:
            mean, std = fn(x0.clone(), i.clone(), alpha_bars.clone())
        except IndexError as err:
            raise Wrong(f"an index left the table at step i = T ({err}): step i is alpha_bars[i - 1]") from None
        mean, std = _shape(mean, (6, 2), "mean"), _shape(std, (6, 1), "std")
        abar = alpha_bars[i - 1][:, None]
        if not _close(mean, abar.sqrt() * x0):
            if _close(mean, abar * x0):
                raise Wrong("the mean is sqrt(alpha_bar_i) x0, not alpha_bar_i x0 (q(x_i | x_0), Ho et al. eq. 4)")
            if _close(mean, alpha_bars[i][:, None].sqrt() * x0):
                raise Wrong("off by one: step i is alpha_bars[i - 1] (the table starts at step 1)")
            raise Wrong("the mean differs from sqrt(alpha_bar_i) x0")
        if not _close(std, (1 - abar).sqrt()):
            if _close(std, 1 - abar):
                raise Wrong("std holds the variance 1 - alpha_bar_i; the standard deviation is its square root")
            raise Wrong("the standard deviation differs from sqrt(1 - alpha_bar_i)")
    return ["mean sqrt(alpha_bar_i) x0 at steps from 1 to T, both ends included",
            "standard deviation sqrt(1 - alpha_bar_i), shape (B, 1)"]


def _ref_forward_marginal(x0: Tensor, i: Tensor, alpha_bars: Tensor) -> tuple[Tensor, Tensor]:
    abar = alpha_bars[i - 1][:, None]
    return abar.sqrt() * x0, (1 - abar).sqrt()


def _grade_ddpm_loss(fn) -> list[str]:
    """ddpm_loss(eps_model, x0 (B, 2), i (B,), noise (B, 2), alpha_bars (T,)) -> scalar mean |eps - eps_theta|^2."""
    g = torch.Generator().manual_seed(1)
    alpha_bars = _linear_alpha_bars()
    T = len(alpha_bars)
    x0, noise = torch.randn(8, 2, generator=g, dtype=torch.float64), torch.randn(8, 2, generator=g, dtype=torch.float64)
    i = torch.randint(1, T + 1, (8,), generator=g)
    seen = {}

    def eps_model(x, t):  # a fixed "network": linear in x, and it records the time it was given
        seen["t"] = torch.as_tensor(t).double().clone()
        return 0.5 * x + torch.as_tensor(t).double()[:, None]

    loss = fn(eps_model, x0.clone(), i.clone(), noise.clone(), alpha_bars.clone())
    loss = torch.as_tensor(loss).double()
    if loss.ndim != 0:
        raise Wrong(f"the loss must be one number (a mean over the batch and dimensions), got shape {tuple(loss.shape)}")
    if "t" not in seen:
        raise Wrong("the loss never called eps_model(x_i, t)")
    if not _close(seen["t"], i.double() / T):
        if _close(seen["t"], i.double()):
            raise Wrong("the network was given the step i; it takes the time t = i / T in (0, 1]")
        raise Wrong("the network's time input is not i / T")
    abar = alpha_bars[i - 1][:, None]
    want = (noise - eps_model(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, i / T)).pow(2).mean()
    if not _close(loss, want):
        wrong_var = (noise - eps_model(abar.sqrt() * x0 + (1 - abar) * noise, i / T)).pow(2).mean()
        if _close(loss, wrong_var):
            raise Wrong("x_i was built with the variance (1 - alpha_bar_i) times the noise; it takes sqrt(1 - alpha_bar_i)")
        if _close(loss, want * x0.shape[1]):
            raise Wrong("the loss sums over the 2 dimensions; take the mean over batch and dimensions")
        raise Wrong("the loss differs from the mean of |eps - eps_theta(sqrt(abar) x0 + sqrt(1 - abar) eps, i / T)|^2")
    return ["the network sees x_i = sqrt(alpha_bar_i) x0 + sqrt(1 - alpha_bar_i) eps at t = i / T",
            "the loss is the mean squared error of the noise (Ho et al., eq. 14)"]


def _ref_ddpm_loss(eps_model, x0, i, noise, alpha_bars):
    abar = alpha_bars[i - 1][:, None]
    return (noise - eps_model(abar.sqrt() * x0 + (1 - abar).sqrt() * noise, i / len(alpha_bars))).pow(2).mean()


# ---------------------------------------------------------------------------------------------- chapter 2
def _grade_dsm_loss(fn) -> list[str]:
    """dsm_loss(score_fn, x0 (B, D), sigma (B, 1), noise (B, D)) -> 1/2 mean_B sum_D |sigma s(x0 + sigma z) + z|^2."""
    g = torch.Generator().manual_seed(4)
    s2 = 0.5  # data N(0, s2 I): the exact score of the noised data is -x / (s2 + sigma^2)
    x0, noise = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(2))
    x0 = x0 * s2**0.5
    sigma = torch.tensor([[0.01], [0.05], [0.2], [0.5], [1.0], [3.0]], dtype=torch.float64)
    score_fn = lambda x, sig: -x / (s2 + sig**2)  # noqa: E731
    loss = torch.as_tensor(fn(score_fn, x0.clone(), sigma.clone(), noise.clone())).double()
    if loss.ndim != 0:
        raise Wrong(f"the loss must be one number, got shape {tuple(loss.shape)}")
    s = score_fn(x0 + sigma * noise, sigma)
    want = 0.5 * (sigma * s + noise).pow(2).sum(1).mean()
    if not _close(loss, want):
        if _close(loss, 0.5 * (s + noise / sigma).pow(2).sum(1).mean()):
            raise Wrong("the sigma^2 weight is missing: without it the smallest sigma (target -z / sigma) swamp the loss")
        if _close(loss, 0.5 * (sigma * s - noise).pow(2).sum(1).mean()):
            raise Wrong("wrong sign of the target: the score of q(x~ | x0) is -z / sigma, back towards x0")
        if _close(loss, want / x0.shape[1]):
            raise Wrong("the loss averages over the dimensions; Song and Ermon sum them (mean over the batch only)")
        if _close(loss, 2 * want):
            raise Wrong("the factor 1/2 is missing")
        raise Wrong("the loss differs from 1/2 mean |sigma s(x0 + sigma z, sigma) + z|^2")
    return ["1/2 sigma^2 |s + z / sigma|^2, summed over dimensions, averaged over six levels from 0.01 to 3"]


def _ref_dsm_loss(score_fn, x0, sigma, noise):
    return dsm_loss(score_fn, x0, sigma, noise)


def _grade_annealed_step(fn) -> list[str]:
    """annealed_step(x (B, D), score (B, D), sigma, sigma_L, eta, xi (B, D)) -> x + h score + sqrt(2h) xi with
    h = eta / 2 (sigma / sigma_L)^2 (Song and Ermon 2019, Algorithm 1, in the course's Langevin convention)."""
    g = torch.Generator().manual_seed(11)
    s2, sigma_L, eta = 0.5, 0.01, 2e-5  # data N(0, s2 I): the noised data's exact score is -x / (s2 + sigma^2)
    x = torch.randn(4, 2, generator=g, dtype=torch.float64)
    xi = torch.randn(4, 2, generator=g, dtype=torch.float64)
    checked = []
    for sigma in (sigma_L, 0.1, 1.0, 3.0):
        v = s2 + sigma**2
        score = -x / v
        h = 0.5 * eta * (sigma / sigma_L) ** 2
        # with a linear score the step is linear: (1 - h / v) x + sqrt(2h) xi, whose variance map
        # V -> (1 - h / v)^2 V + 2h has the stationary value v / (1 - h / (2v)) (chapter 3)
        drift = _shape(fn(x.clone(), score.clone(), sigma, sigma_L, eta, torch.zeros_like(xi)), (4, 2), "the step")
        noise = _shape(fn(torch.zeros_like(x), torch.zeros_like(x), sigma, sigma_L, eta, xi.clone()), (4, 2), "the step")
        if not _close(drift, (1 - h / v) * x):
            for wrong, why in ((2 * h, "the step is h = eta / 2 (sigma / sigma_L)^2: the paper's step alpha_i is 2h"),
                               (0.5 * eta * (sigma_L / sigma) ** 2, "the ratio is upside down: the step grows with the "
                                                                  "noise, (sigma_i / sigma_L)^2, largest at the first level"),
                               (0.5 * eta * sigma / sigma_L, "the ratio is squared: h = eta / 2 (sigma / sigma_L)^2"),
                               (-h, "wrong sign: the step climbs the score, x + h s")):
                if _close(drift, (1 - wrong / v) * x):
                    raise Wrong(why)
            raise Wrong(f"at sigma = {sigma:g} the drift differs from x + h s with h = eta / 2 (sigma / sigma_L)^2")
        if not _close(noise, (2 * h) ** 0.5 * xi):
            if _close(noise, h**0.5 * xi):
                raise Wrong("the noise is sqrt(2h) xi, so that the step leaves the target's variance in place")
            raise Wrong(f"at sigma = {sigma:g} the noise differs from sqrt(2h) xi")
        checked.append(f"{sigma:g}")
    return [f"x + h s + sqrt(2h) xi with h = eta / 2 (sigma / sigma_L)^2 at sigma = {', '.join(checked)}, on the exact "
            "score of noised Gaussian data"]


def _ref_annealed_step(x, score, sigma, sigma_L, eta, xi):
    return ula_step(x, score, 0.5 * eta * (sigma / sigma_L) ** 2, z=xi)


# ---------------------------------------------------------------------------------------------- chapter 3
def _grade_ula_step(fn) -> list[str]:
    """ula_step(x (C,), grad_log_p, h, xi (C,)) -> x + h grad_log_p(x) + sqrt(2h) xi."""
    g = torch.Generator().manual_seed(7)
    s2, h = 2.0, 0.4  # target N(0, s2); ULA's own stationary law is N(0, s2 / (1 - h / (2 s2)))
    grad = lambda x: -x / s2  # noqa: E731
    x, xi = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    got = _shape(fn(x.clone(), grad, h, xi.clone()), (5,), "the step")
    if not _close(got, x + h * grad(x) + (2 * h) ** 0.5 * xi):
        if _close(got, x + h * grad(x) + h**0.5 * xi):
            raise Wrong("the noise is sqrt(2h) xi in this course's convention (Euler-Maruyama of dX = grad log p dt "
                        "+ sqrt(2) dW); sqrt(h) xi belongs with a drift of h / 2")
        if _close(got, x - h * grad(x) + (2 * h) ** 0.5 * xi):
            raise Wrong("wrong sign: the step climbs log p, x + h grad log p")
        raise Wrong("the step differs from x + h grad log p(x) + sqrt(2h) xi")
    # the exact stationary law of the chain it defines: from N(0, v) it stays N(0, v), v = s2 / (1 - h / (2 s2))
    v = s2 / (1 - h / (2 * s2))
    chains = v**0.5 * torch.randn(20_000, generator=g, dtype=torch.float64)
    for _ in range(100):
        chains = fn(chains, grad, h, torch.randn(20_000, generator=g, dtype=torch.float64))
    var, se = float(chains.var()), v * (2 / 20_000) ** 0.5
    if abs(var - v) > 5 * se:
        raise Wrong(f"after 100 steps from ULA's stationary law N(0, {v:.3f}) the variance is {var:.3f}")
    return ["x + h grad log p(x) + sqrt(2h) xi on a Gaussian target",
            f"100 steps from N(0, {v:.3f}), ULA's exact stationary law at h = {h}, keep its variance "
            f"({var:.3f}, within 5 standard errors of {se:.3f})"]


def _ref_ula_step(x, grad_log_p, h, xi):
    return ula_step(x, grad_log_p(x), h, z=xi)


def _mixture_log_p(x):
    """log of 0.3 N(-1, 0.5^2) + 0.7 N(2, 1), up to a constant: a target that is not Gaussian."""
    a = torch.log(torch.tensor(0.3)) - 0.5 * ((x + 1) / 0.5) ** 2 - math.log(0.5)
    b = torch.log(torch.tensor(0.7)) - 0.5 * (x - 2) ** 2
    return torch.logaddexp(a, b)


def _mixture_grad(x):
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        return torch.autograd.grad(_mixture_log_p(xg).sum(), xg)[0]


def _log_q(y, x, h):
    """log N(y; x + h grad log p(x), 2h), MALA's proposal, up to a constant that cancels in the ratio."""
    return -(y - x - h * _mixture_grad(x)) ** 2 / (4 * h)


def _grade_mala_log_accept(fn) -> list[str]:
    """mala_log_accept(x (C,), y (C,), log_p, grad_log_p, h) -> (C,) log of MALA's acceptance probability."""
    g = torch.Generator().manual_seed(8)
    h = 0.3
    x = 3 * torch.randn(400, generator=g, dtype=torch.float64)
    y = x + h * _mixture_grad(x) + (2 * h) ** 0.5 * torch.randn(400, generator=g, dtype=torch.float64)
    forward = _shape(fn(x.clone(), y.clone(), _mixture_log_p, _mixture_grad, h), (400,), "log alpha")
    backward = _shape(fn(y.clone(), x.clone(), _mixture_log_p, _mixture_grad, h), (400,), "log alpha")
    if bool((forward > 1e-12).any()):
        raise Wrong("log alpha > 0: the acceptance probability is min(1, ratio), so its log is min(0, log ratio)")
    # detailed balance: p(x) q(y | x) alpha(x, y) = p(y) q(x | y) alpha(y, x), for every pair
    lhs = _mixture_log_p(x) + _log_q(y, x, h) + forward
    rhs = _mixture_log_p(y) + _log_q(x, y, h) + backward
    if not _close(lhs, rhs, rtol=1e-6, atol=1e-6):
        rwm = torch.clamp(_mixture_log_p(y) - _mixture_log_p(x), max=0)
        if _close(forward, rwm, rtol=1e-6, atol=1e-6):
            raise Wrong("that is random-walk Metropolis: MALA's proposal is not symmetric, so the ratio needs "
                        "q(x | y) / q(y | x)")
        wrong_var = torch.clamp(_mixture_log_p(y) - _mixture_log_p(x) + 2 * (_log_q(x, y, h) - _log_q(y, x, h)), max=0)
        if _close(forward, wrong_var, rtol=1e-6, atol=1e-6):
            raise Wrong("the proposal's variance is 2h (the step adds sqrt(2h) xi), not h")
        reversed_ = torch.clamp(_mixture_log_p(y) - _mixture_log_p(x) + _log_q(y, x, h) - _log_q(x, y, h), max=0)
        if _close(forward, reversed_, rtol=1e-6, atol=1e-6):
            raise Wrong("the proposal ratio is upside down: it is q(x | y) / q(y | x), the way back over the way there")
        raise Wrong("detailed balance p(x) q(y|x) alpha(x, y) = p(y) q(x|y) alpha(y, x) fails")
    return ["log alpha <= 0 on 400 proposals", "detailed balance p(x) q(y|x) alpha(x, y) = p(y) q(x|y) alpha(y, x) "
            "holds pair by pair on a two-Gaussian mixture"]


def _ref_mala_log_accept(x, y, log_p, grad_log_p, h):
    log_q = lambda b, a: -(b - a - h * grad_log_p(a)) ** 2 / (4 * h)  # noqa: E731
    return torch.clamp(log_p(y) - log_p(x) + log_q(x, y) - log_q(y, x), max=0)


# ---------------------------------------------------------------------------------------------- chapter 4
def _grade_log_joint(fn) -> list[str]:
    """log_joint(z (B, d), x (B, D), f, g, sigma, sigma0) -> (B,) log p_omega(z) + log p_psi(x | z) up to constants.

    Checked through its z-gradient, the posterior's grad-log-density: with f = 0 and a linear generator
    g(z) = A z + b the posterior is Gaussian, N(mu, S) with S = (A^T A / sigma^2 + I / sigma0^2)^-1 and
    mu = S A^T (x - b) / sigma^2, so grad_z log p(z | x) = -S^-1 (z - mu) exactly; a quadratic f = -a |z|^2 / 2
    adds -a z."""
    g = torch.Generator().manual_seed(9)
    d, D, sigma, sigma0 = 2, 3, 0.3, 1.5
    A, b = torch.randn(D, d, generator=g, dtype=torch.float64), torch.randn(D, generator=g, dtype=torch.float64)
    gen = lambda z: z @ A.T + b  # noqa: E731
    z, x = torch.randn(5, d, generator=g, dtype=torch.float64), torch.randn(5, D, generator=g, dtype=torch.float64)
    precision = A.T @ A / sigma**2 + torch.eye(d, dtype=torch.float64) / sigma0**2
    mu = torch.linalg.solve(precision, A.T @ (x - b).T / sigma**2).T
    checked = []
    for a_ in (0.0, 0.7):
        f = lambda zz, a_=a_: -0.5 * a_ * zz.pow(2).sum(1)  # noqa: E731
        with torch.enable_grad():
            zg = z.clone().requires_grad_(True)
            value = torch.as_tensor(fn(zg, x.clone(), f, gen, sigma, sigma0))
            if value.shape != (5,):
                raise Wrong(f"log_joint has shape {tuple(value.shape)}; expected (5,), one value per z")
            grad = torch.autograd.grad(value.sum(), zg)[0].double()
        want = -(z - mu) @ precision.T - a_ * z
        if not _close(grad, want, rtol=1e-6, atol=1e-8):
            def mistaken(noise_var, base=True, f_sign=1.0):  # the gradient of a log-joint written with a mistake
                return (x - gen(z)) @ A / noise_var - f_sign * a_ * z - (z / sigma0**2 if base else 0)

            if _close(grad, mistaken(sigma), rtol=1e-6, atol=1e-8):
                raise Wrong("the likelihood divides |x - g(z)|^2 by 2 sigma: it is 2 sigma^2, sigma the noise's std")
            if _close(grad, mistaken(sigma**2, base=False), rtol=1e-6, atol=1e-8):
                raise Wrong("the Gaussian base p_0 = N(0, sigma0^2 I) is missing from the prior: "
                            "log p_omega = f - |z|^2 / (2 sigma0^2)")
            if a_ != 0 and _close(grad, mistaken(sigma**2, f_sign=-1.0), rtol=1e-6, atol=1e-8):
                raise Wrong("wrong sign of f: the prior is p_0 exp(+f), its log is f - |z|^2 / (2 sigma0^2)")
            raise Wrong("its z-gradient misses the exact posterior's -S^-1 (z - mu) of a linear-Gaussian model")
        checked.append("f = 0" if a_ == 0 else f"f = -{a_} |z|^2 / 2")
    return [f"grad_z equals the exact posterior's of a linear-Gaussian model ({'; '.join(checked)})"]


def _ref_log_joint(z, x, f, g, sigma, sigma0):
    return f(z) - z.pow(2).sum(1) / (2 * sigma0**2) + gaussian_log_likelihood(x, g(z), sigma)


def _grade_prior_loss(fn) -> list[str]:
    """prior_loss(f, z_post (B, d), z_prior (B, d)) -> scalar whose omega-gradient is minus Pang et al.'s eq. 7:
    -(E_post[grad f] - E_prior[grad f]); checked on f_omega(z) = omega . phi(z) with phi fixed, where it is exact."""
    g = torch.Generator().manual_seed(10)
    phi = lambda z: torch.stack([z[:, 0], z[:, 1] ** 2, torch.sin(z[:, 0] * z[:, 1])], 1)  # noqa: E731
    z_post = torch.randn(40, 2, generator=g, dtype=torch.float64)
    z_prior = torch.randn(50, 2, generator=g, dtype=torch.float64) + 0.5
    with torch.enable_grad():
        omega = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
        f = lambda z: phi(z) @ omega  # noqa: E731
        loss = torch.as_tensor(fn(f, z_post.clone(), z_prior.clone()))
        if loss.ndim != 0:
            raise Wrong(f"the loss must be one number, got shape {tuple(loss.shape)}")
        grad = torch.autograd.grad(loss, omega)[0]
    want = -(phi(z_post).mean(0) - phi(z_prior).mean(0))
    if not _close(grad, want):
        if _close(grad, -want):
            raise Wrong("wrong sign: gradient descent on the loss must raise f at posterior latents and lower it at "
                        "prior ones, so the loss is mean f(z_prior) - mean f(z_post)")
        raise Wrong("its gradient is not -(E_post[grad f] - E_prior[grad f]) (Pang et al., eq. 7)")
    return ["its omega-gradient is -(mean grad f(z_post) - mean grad f(z_prior)), exactly, for f linear in omega"]


def _ref_prior_loss(f, z_post, z_prior):
    return f(z_prior).mean() - f(z_post).mean()


def _grade_generator_loss(fn) -> list[str]:
    """generator_loss(g, x (B, D), z_post (B, d), sigma) -> scalar whose generator-gradient is minus Pang et al.'s
    eq. 8: mean over the batch of |x - g(z_post)|^2 / (2 sigma^2), summed over x's dimensions. Checked on a
    linear generator g(z) = A z + b, where the gradient is -mean (x - A z - b) z^T / sigma^2 exactly."""
    g = torch.Generator().manual_seed(12)
    d, D, sigma = 2, 3, 0.3
    x, z = torch.randn(6, D, generator=g, dtype=torch.float64), torch.randn(6, d, generator=g, dtype=torch.float64)
    with torch.enable_grad():
        A = torch.randn(D, d, generator=g, dtype=torch.float64).requires_grad_(True)
        b = torch.randn(D, generator=g, dtype=torch.float64).requires_grad_(True)
        loss = torch.as_tensor(fn(lambda zz: zz @ A.T + b, x.clone(), z.clone(), sigma))
        if loss.ndim != 0:
            raise Wrong(f"the loss must be one number, got shape {tuple(loss.shape)}")
        grad_A, grad_b = torch.autograd.grad(loss, (A, b))
    r = (x - z @ A.detach().T - b.detach()) / sigma**2  # the residual over sigma^2, (B, D)
    want_A, want_b = -(r.T @ z) / len(x), -r.mean(0)
    if not (_close(grad_A, want_A) and _close(grad_b, want_b)):
        for factor, why in ((-1.0, "wrong sign: this is the log-likelihood; the loss is minus it, |x - g(z)|^2 / (2 sigma^2)"),
                            (sigma, "divide by 2 sigma^2, sigma the noise's std, not by 2 sigma"),
                            (1.0 / D, "the loss averages over x's dimensions; the log-likelihood sums them"),
                            (2.0, "the factor 1/2 is missing")):
            if _close(grad_A, factor * want_A) and _close(grad_b, factor * want_b):
                raise Wrong(why)
        raise Wrong("its gradient is not -mean (x - g(z)) dg/dpsi / sigma^2 (Pang et al., eq. 8)")
    return ["its gradient in a linear generator's A and b is -mean (x - A z - b) (z, 1) / sigma^2, exactly"]


def _ref_generator_loss(g, x, z_post, sigma):
    return -gaussian_log_likelihood(x, g(z_post), sigma).mean()


# ---------------------------------------------------------------------------------------------- chapter 5
def _grade_vp_marginal(fn) -> list[str]:
    """vp_marginal(x0 (B,), t (B,), beta_min, beta_max) -> mean (B,), std (B,) of q(x_t | x_0) of the VP-SDE."""
    from scipy.integrate import solve_ivp

    beta_min, beta_max = 0.1, 20.0
    x0 = torch.tensor([-3.0, -1.0, 0.5, 2.0, 3.0, 1.0], dtype=torch.float64)
    t = torch.tensor([0.0, 0.01, 0.1, 0.3, 0.7, 1.0], dtype=torch.float64)
    mean, std = fn(x0.clone(), t.clone(), beta_min, beta_max)
    mean, std = _shape(mean, (6,), "mean"), _shape(std, (6,), "std")
    beta = lambda s: beta_min + (beta_max - beta_min) * s  # noqa: E731
    # the moment ODEs of dx = -beta x / 2 dt + sqrt(beta) dw, solved numerically: dm/dt = -beta m / 2,
    # dv/dt = -beta v + beta (Saerkkae and Solin 2019, eq. 5.51), from m = x0, v = 0
    want_m, want_v = [], []
    for x, tt in zip(x0.tolist(), t.tolist()):
        if tt == 0:
            want_m.append(x), want_v.append(0.0)
            continue
        sol = solve_ivp(lambda s, y: [-0.5 * beta(s) * y[0], -beta(s) * y[1] + beta(s)], (0, tt), [x, 0.0],
                        rtol=1e-10, atol=1e-12)
        want_m.append(sol.y[0, -1]), want_v.append(sol.y[1, -1])
    want_m, want_v = torch.tensor(want_m, dtype=torch.float64), torch.tensor(want_v, dtype=torch.float64)
    if not _close(mean, want_m, rtol=1e-6, atol=1e-8):
        B = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
        if _close(mean, x0 * torch.exp(-B)):
            raise Wrong("the mean is x0 exp(-B(t) / 2) with B(t) = int_0^t beta: the drift is -beta x / 2")
        if _close(mean, x0 * torch.exp(-0.5 * (beta_min * t + (beta_max - beta_min) * t**2))):
            raise Wrong("B(t) = beta_min t + (beta_max - beta_min) t^2 / 2: the integral of the linear beta halves t^2")
        raise Wrong("the mean differs from the solution of dm/dt = -beta(t) m / 2")
    if not _close(std, want_v.sqrt(), rtol=1e-6, atol=1e-8):
        if _close(std, want_v, rtol=1e-6, atol=1e-8):
            raise Wrong("std holds the variance 1 - exp(-B(t)); the standard deviation is its square root")
        raise Wrong("the standard deviation differs from that of dv/dt = -beta v + beta, v(0) = 0")
    return ["mean and standard deviation equal the solution of the moment ODEs at t = 0 ... 1"]


def _ref_vp_marginal(x0, t, beta_min, beta_max):
    sde = VPSDE(beta_min, beta_max)
    return sde.alpha(t) * x0, sde.marginal_std(t)


# ---------------------------------------------------------------------------------------------- chapter 6
def _grade_score_from_eps(fn) -> list[str]:
    """score_from_eps(eps (B, D), sigma (B, 1)) -> score (B, D), from the ideal noise prediction of Gaussian data."""
    g = torch.Generator().manual_seed(2)
    s2 = 0.7  # data N(0, s2 I): x_t = alpha x0 + sigma eps is N(0, alpha^2 s2 + sigma^2), and E[eps | x_t] is linear
    alpha = torch.tensor([[0.99], [0.8], [0.5], [0.1]], dtype=torch.float64)
    sigma = (1 - alpha**2).sqrt()
    x = torch.randn(4, 3, generator=g, dtype=torch.float64)
    var = alpha**2 * s2 + sigma**2
    eps_star = sigma * x / var  # E[eps | x_t = x] (the exact posterior of a linear-Gaussian model)
    score = _shape(fn(eps_star.clone(), sigma.clone()), (4, 3), "the score")
    want = -x / var  # grad log N(x; 0, var)
    if not _close(score, want):
        if _close(score, -want):
            raise Wrong("wrong sign: the score points towards the data, s = -eps / sigma")
        if _close(score, -eps_star / sigma**2):
            raise Wrong("divided by sigma^2: x_t = alpha x0 + sigma eps gives grad log q = -eps / sigma, sigma the std")
        raise Wrong("the score differs from grad log p_t(x) = -x / (alpha^2 s^2 + sigma^2) of Gaussian data")
    return ["-eps*(x) / sigma equals the exact score of Gaussian data at four noise levels"]


def _ref_score_from_eps(eps, sigma):
    return -eps / sigma


# ---------------------------------------------------------------------------------------------- chapter 7
_T = 1000  # the assignment's DDPM_SDE: beta(t) = T beta_{tT}, linear from 0.0800801 to 20 (sde.discrete_beta_range)


def _ddpm_sde_range() -> tuple[float, float]:
    from .sde import discrete_beta_range

    return discrete_beta_range(_T, 1e-4, 0.02)


def _grade_continuous_loss(fn) -> list[str]:
    """continuous_loss(eps_model, x0 (B, D), t (B,), noise (B, D), beta_min, beta_max) -> mean |eps - eps_theta|^2."""
    g = torch.Generator().manual_seed(5)
    beta_min, beta_max = _ddpm_sde_range()
    x0, noise = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(2))
    t = torch.tensor([1e-3, 0.01, 0.1, 0.4, 0.7, 1.0], dtype=torch.float64)
    seen = {}

    def eps_model(x, tt):  # a fixed "network", linear in x, that records the time it was given
        seen["t"] = torch.as_tensor(tt).double().clone()
        return 0.3 * x - torch.as_tensor(tt).double()[:, None]

    loss = torch.as_tensor(fn(eps_model, x0.clone(), t.clone(), noise.clone(), beta_min, beta_max)).double()
    if loss.ndim != 0:
        raise Wrong(f"the loss must be one number, got shape {tuple(loss.shape)}")
    if "t" not in seen:
        raise Wrong("the loss never called eps_model(x_t, t)")
    if not _close(seen["t"], t):
        if _close(seen["t"], t * _T):
            raise Wrong("the network was given t T, a step index; it takes the time t in [t_min, 1]")
        raise Wrong("the network's time input is not t")
    B = (beta_min * t + 0.5 * (beta_max - beta_min) * t**2)[:, None]
    alpha, sigma = torch.exp(-0.5 * B), torch.sqrt(1 - torch.exp(-B))
    want = (noise - eps_model(alpha * x0 + sigma * noise, t)).pow(2).mean()
    if not _close(loss, want):
        if _close(loss, (noise - eps_model(alpha * x0 + sigma**2 * noise, t)).pow(2).mean()):
            raise Wrong("x_t was built with the variance sigma(t)^2 times the noise; it takes the standard deviation")
        if _close(loss, (noise - eps_model(torch.exp(-B) * x0 + sigma * noise, t)).pow(2).mean()):
            raise Wrong("the mean of x_t is exp(-B(t) / 2) x0 = sqrt(alpha_bar(t)) x0, not alpha_bar(t) x0")
        raise Wrong("the loss differs from mean |eps - eps_theta(sqrt(abar(t)) x0 + sigma(t) eps, t)|^2")
    return ["x_t = exp(-B/2) x0 + sqrt(1 - exp(-B)) eps at six times from t_min to 1, the network at t itself"]


def _ref_continuous_loss(eps_model, x0, t, noise, beta_min, beta_max):
    return (noise - eps_model(VPSDE(beta_min, beta_max).perturb(x0, t, noise), t)).pow(2).mean()


def _grade_ancestral_step(fn) -> list[str]:
    """ancestral_step(x (B, D), score (B, D), beta (B, 1), z (B, D)) -> (x + beta s) / sqrt(1 - beta) + sqrt(beta) z."""
    g = torch.Generator().manual_seed(6)
    # a DDPM chain of 40 steps; step i of a point x_i drawn from q(x_i | x_0), with the conditional score of
    # q(x_i | x_0): the noiseless step must land on the exact posterior mean of q(x_{i-1} | x_i, x_0)
    betas = torch.linspace(1e-3, 0.2, 40, dtype=torch.float64)
    abar = torch.cumprod(1 - betas, 0)
    i = torch.tensor([1, 2, 5, 10, 20, 39])  # steps 2..40 (index i is step i + 1), so step i - 1 exists
    x0 = torch.randn(6, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 2, generator=g, dtype=torch.float64)
    a_i, a_prev, beta = abar[i][:, None], abar[i - 1][:, None], betas[i][:, None]
    x_i = a_i.sqrt() * x0 + (1 - a_i).sqrt() * eps
    score = -(x_i - a_i.sqrt() * x0) / (1 - a_i)
    mean = _shape(fn(x_i.clone(), score.clone(), beta.clone(), torch.zeros_like(x_i)), (6, 2), "the step")
    posterior = (a_prev.sqrt() * beta / (1 - a_i)) * x0 + ((1 - beta).sqrt() * (1 - a_prev) / (1 - a_i)) * x_i
    if not _close(mean, posterior):  # Ho et al. eq. 7
        if _close(mean, (x_i - beta * score) / (1 - beta).sqrt()):
            raise Wrong("wrong sign: the step moves along the score, x + beta s")
        if _close(mean, (x_i + beta * score) / (1 - beta)):
            raise Wrong("divide by sqrt(1 - beta): the forward step shrank x by sqrt(1 - beta), not by 1 - beta")
        raise Wrong("with z = 0 the step misses the exact posterior mean of q(x_{i-1} | x_i, x_0) (Ho et al., eq. 7)")
    z = torch.randn(6, 2, generator=g, dtype=torch.float64)
    noisy = _shape(fn(x_i.clone(), score.clone(), beta.clone(), z.clone()), (6, 2), "the step")
    if not _close(noisy - mean, beta.sqrt() * z):
        if _close(noisy - mean, beta * z):
            raise Wrong("the noise is beta z, a variance; the step adds sqrt(beta) z")
        raise Wrong("the noise added is not sqrt(beta) z")
    return ["with z = 0 it lands on the exact posterior mean of q(x_{i-1} | x_i, x_0) (Ho et al., eq. 7)",
            "it adds sqrt(beta) z of noise"]


def _ref_ancestral_step(x, score, beta, z):
    return ancestral_step(x, beta * score, beta, z)


# ---------------------------------------------------------------------------------------------- chapter 8
_PI = torch.tensor([0.3, 0.7], dtype=torch.float64)
_MU = torch.tensor([[-1.0, 0.5], [1.5, -1.0]], dtype=torch.float64)


def _gauss_logits(x, t):
    """Logits of the exact classifier of two Gaussian classes N(MU_k, I) with priors PI: log PI_k - |x - MU_k|^2 / 2."""
    return _PI.log() - ((x[:, None, :] - _MU) ** 2).sum(-1) / 2


def _grade_guided_score(fn) -> list[str]:
    """guided_score(score (B, D), classifier, x (B, D), t (B,), y, gamma) -> score + gamma grad_x log p(y | x)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=g, dtype=torch.float64)
    t = torch.full((5,), 0.5, dtype=torch.float64)
    score = torch.randn(5, 2, generator=g, dtype=torch.float64)
    r = torch.softmax(_gauss_logits(x, t), 1)
    checked = []
    for y, gamma in ((0, 1.0), (1, 3.0), (1, 0.0)):
        got = _shape(fn(score.clone(), _gauss_logits, x.clone(), t.clone(), y, gamma), (5, 2), "the guided score")
        grad = _MU[y] - r @ _MU  # grad_x log p(y | x) = MU_y - sum_k r_k MU_k for equal covariances
        want = score + gamma * grad
        if not _close(got, want):
            if _close(got, score - gamma * grad):
                raise Wrong("wrong sign: guidance adds gamma grad log p(y | x), towards the class")
            if _close(got, score + gamma * r[:, y:y + 1] * grad):
                raise Wrong("that is the gradient of p(y | x); guidance takes the gradient of log p(y | x)")
            if _close(got, score + gamma * (_MU[y] - x)):
                raise Wrong("that is the gradient of the logit alone; log p(y | x) needs the log-softmax")
            if gamma != 1 and _close(got, score + grad):
                raise Wrong("the scale gamma is missing")
            raise Wrong(f"at y = {y}, gamma = {gamma:g} the guided score differs from score + gamma grad log p(y | x)")
        checked.append(f"y = {y}, gamma = {gamma:g}")
    return [f"score + gamma grad log p(y | x) of an exact two-Gaussian classifier at {'; '.join(checked)}"]


def _ref_guided_score(score, classifier, x, t, y, gamma):
    return guided_score(lambda x_, t_: score, classifier, y, gamma)(x, t)


# ---------------------------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Exercise:
    chapter: int
    number: int
    title: str
    grader: Callable[[Callable], list[str]]
    reference: Callable

    @property
    def label(self) -> str:
        return f"Exercise {self.chapter}.{self.number}"


EXERCISES: dict[str, Exercise] = {
    "forward_marginal": Exercise(1, 1, "the forward marginal q(x_i | x_0)", _grade_forward_marginal, _ref_forward_marginal),
    "ddpm_loss": Exercise(1, 2, "the DDPM loss", _grade_ddpm_loss, _ref_ddpm_loss),
    "dsm_loss": Exercise(2, 1, "the sigma^2-weighted denoising score matching loss", _grade_dsm_loss, _ref_dsm_loss),
    "annealed_step": Exercise(2, 2, "one step of annealed Langevin dynamics", _grade_annealed_step, _ref_annealed_step),
    "ula_step": Exercise(3, 1, "the ULA step", _grade_ula_step, _ref_ula_step),
    "mala_log_accept": Exercise(3, 2, "MALA's acceptance probability", _grade_mala_log_accept, _ref_mala_log_accept),
    "log_joint": Exercise(4, 1, "the log-joint, whose z-gradient drives the posterior chain", _grade_log_joint,
                          _ref_log_joint),
    "prior_loss": Exercise(4, 2, "the prior's learning gradient as a loss", _grade_prior_loss, _ref_prior_loss),
    "generator_loss": Exercise(4, 3, "the generator's learning gradient as a loss", _grade_generator_loss,
                               _ref_generator_loss),
    "vp_marginal": Exercise(5, 1, "the VP-SDE's marginal mean and standard deviation", _grade_vp_marginal,
                            _ref_vp_marginal),
    "score_from_eps": Exercise(6, 1, "from predicted noise to the score", _grade_score_from_eps, _ref_score_from_eps),
    "continuous_loss": Exercise(7, 1, "the continuous-time noise-matching loss", _grade_continuous_loss,
                                _ref_continuous_loss),
    "ancestral_step": Exercise(7, 2, "one ancestral step", _grade_ancestral_step, _ref_ancestral_step),
    "guided_score": Exercise(8, 1, "the classifier-guided score", _grade_guided_score, _ref_guided_score),
}


def check(name: str, fn: Callable) -> Verdict:
    """Run exercise `name`'s grader on fn: a Verdict, never an exception (a stub's NotImplementedError is
    NOT_IMPLEMENTED, any other error or wrong value is "failed" with the reason)."""
    if name not in EXERCISES:
        raise KeyError(f"unknown exercise {name!r}; there are {', '.join(EXERCISES)}")
    try:
        with torch.no_grad():
            passed = EXERCISES[name].grader(fn)
    except NotImplementedError:
        return Verdict(name, NOT_IMPLEMENTED, ["the function still raises NotImplementedError: the chapter goes on "
                                               "with the course's own"])
    except Wrong as err:
        return Verdict(name, "failed", [str(err)])
    except Exception as err:  # a learner's bug: say what it was, keep the chapter running
        return Verdict(name, "failed", [f"it raised {type(err).__name__}: {err}"])
    return Verdict(name, "passed", passed)


def grade(name: str, fn: Callable) -> Callable:
    """Print exercise `name`'s verdict on fn; return fn when it passed, the course's own function otherwise."""
    verdict = check(name, fn)
    print(verdict)
    return fn if verdict.passed else EXERCISES[name].reference

