"""The latent-space energy-based prior model (Pang et al. 2020, "Learning Latent Space Energy-Based Prior
Model"). Chapter 4. Pang et al. name the prior's and the generator's parameters alpha and beta; the book
writes omega and psi (alpha and beta name the diffusion schedules: book/notation.md).

    prior       p_omega(z) = exp(f_omega(z)) p_0(z) / Z(omega),   p_0 = N(0, sigma_0^2 I)        (eq. 1)
    generator   x = g_psi(z) + sigma eps,   eps ~ N(0, I)                                     (eq. 2)
    posterior   p(z | x) ∝ p_psi(x | z) p_omega(z)
The gradients of the log-likelihood of one x (eq. 6-8):
    d/d omega  log p(x) = E_{p(z | x)}[grad_omega f_omega(z)] - E_{p_omega(z)}[grad_omega f_omega(z)]
    d/d psi    log p(x) = E_{p(z | x)}[grad_psi log p_psi(x | z)]
Both expectations are estimated with short-run Langevin chains started from p_0 (Nijkamp et al. 2019;
Pang et al., sec. 3.2), which keeps the chains short (tens of steps) and the learning well defined: the
model learns the chains' own output laws. Every chain step is chapter 3's ULA step
    z <- z + h grad_z log p(z) + sqrt(2 h) xi          (`langevin.ula_step`)
and runs without a graph through the chain: grad_z comes from `torch.autograd.grad` with respect to z
alone, so no parameter gradient is built or kept while sampling.

Step sizes in the three conventions the course meets (one Langevin step, same law):
    this book (ch. 3):      z + h grad log p + sqrt(2 h) xi                                h
    Pang et al.'s code:     z - s^2 / 2 grad E + s xi,  E = -log p (their netE is -f)     h = s^2 / 2
    the logbook:            z + s^2 grad log p + sqrt(2) s xi                             h = s^2
Pang's energy network outputs E = -f, so their prior loss E(z_post).mean() - E(z_prior).mean() is this
module's `learning_loss` prior term f(z_prior).mean() - f(z_post).mean(): the paper's gradient, ascended.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .langevin import ula_step
from .samplers.kernels import Keeper, Trajectory


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _grad_z(fn, z: Tensor) -> Tensor:
    """grad_z sum(fn(z)) (B, d), with respect to z alone: no graph is kept and no parameter gradient is made."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(fn(z).sum(), z)
    return grad


def gaussian_log_likelihood(x: Tensor, mean: Tensor, sigma: float) -> Tensor:
    """log N(x; mean, sigma^2 I) + const = -|x - mean|^2 / (2 sigma^2), summed over all but the batch axis:
    (B,) from x, mean (B, ...). The generator's likelihood (Pang et al. 2020, eq. 2); chapter 4's exercise 4.3
    asks for minus its batch mean as the generator's loss."""
    return -(x - mean).pow(2).flatten(1).sum(1) / (2 * sigma**2)


class LatentEBM(nn.Module):
    """The prior f_omega (an `nets.EBMPrior`) and the generator g_psi, with the two noise scales. Chapter 4.

    sigma_0: std of the base prior p_0 = N(0, sigma_0^2 I); sigma: std of the generator's noise.
    Densities are unnormalised (Z(omega) and the Gaussians' constants are dropped: the chains and the
    gradients never need them). Shapes: z (B, latent_dim), x (B, ...) as the generator outputs.
    """

    def __init__(self, prior: nn.Module, generator: nn.Module, sigma_0: float = 1.0, sigma: float = 0.3):
        super().__init__()
        self.prior, self.generator = prior, generator
        self.sigma_0, self.sigma = _positive("sigma_0", sigma_0), _positive("sigma", sigma)
        self.latent_dim = prior.latent_dim

    def _check_z(self, z: Tensor) -> None:
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")

    def start_from(self, other: "LatentEBM") -> None:
        """Copy another LatentEBM's prior and generator (same shapes): a budget's `init_from`, e.g. ebm-2d-mle
        starting from ebm-2d (chapter 4)."""
        self.load_state_dict(other.state_dict())

    # -- densities and their gradients in z
    def log_prior(self, z: Tensor) -> Tensor:
        """log p_omega(z) + log Z = f_omega(z) - |z|^2 / (2 sigma_0^2): (B,)."""
        self._check_z(z)
        return self.prior(z) - z.pow(2).sum(1) / (2 * self.sigma_0**2)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p_psi(x | z) + const = -|x - g_psi(z)|^2 / (2 sigma^2), summed over x's dimensions: (B,)."""
        self._check_z(z)
        if x.shape[0] != z.shape[0]:
            raise ValueError(f"x and z need the same batch size, got {tuple(x.shape)} and {tuple(z.shape)}")
        return gaussian_log_likelihood(x, self.generator(z), self.sigma)

    def prior_score(self, z: Tensor) -> Tensor:
        """grad_z log p_omega(z) = grad f_omega(z) - z / sigma_0^2: (B, latent_dim), detached."""
        return _grad_z(self.log_prior, z)

    def posterior_score(self, z: Tensor, x: Tensor) -> Tensor:
        """grad_z log p(z | x) = grad_z log p_psi(x | z) + grad_z log p_omega(z): (B, latent_dim), detached."""
        return _grad_z(lambda z_: self.log_likelihood(x, z_) + self.log_prior(z_), z)

    # -- short-run chains from p_0
    def base_sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n draws of p_0 = N(0, sigma_0^2 I): (n, latent_dim) in the model's dtype and on its device, drawn on
        the CPU from `generator` (so a seed gives the same chains on any device)."""
        like = next(self.parameters())
        return self.sigma_0 * torch.randn(n, self.latent_dim, generator=generator).to(like)

    def prior_chain(self, n: int, steps: int, h: float, generator: torch.Generator,
                    keep_every: int = 0) -> tuple[Tensor, Trajectory]:
        """Short-run ULA on p_omega(z) from z_0 ~ p_0: `steps` steps of size h. Returns (z (n, d), Trajectory
        of the z's with times 1 - k / steps, from p_0 at 1 to the chain's end at 0)."""
        return self._chain(self.base_sample(n, generator), self.prior_score, steps, h, generator, keep_every)

    def posterior_chain(self, x: Tensor, steps: int, h: float, generator: torch.Generator, z0: Tensor | None = None,
                        keep_every: int = 0) -> tuple[Tensor, Trajectory]:
        """Short-run ULA on p(z | x) for each row of x, from z0 (default: fresh draws of p_0, as the paper).
        Returns (z (B, d), Trajectory), as `prior_chain`."""
        z = self.base_sample(len(x), generator) if z0 is None else z0
        self._check_z(z)
        return self._chain(z, lambda z_: self.posterior_score(z_, x), steps, h, generator, keep_every)

    def _chain(self, z, score, steps, h, generator, keep_every):
        _positive("step size h", h)
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        keeper = Keeper(keep_every, steps)
        keeper(0, 1.0, z)
        for k in range(steps):
            z = ula_step(z, score(z), h, generator).detach()
            keeper.nfev += 1
            keeper(k + 1, 1.0 - (k + 1) / steps, z)
        return z, keeper.result()

    # -- learning
    def learning_loss(self, x: Tensor, z_prior: Tensor, z_post: Tensor) -> tuple[Tensor, dict]:
        """The loss whose gradient is minus the paper's learning gradients (eq. 6-8), for one batch.

        prior term:     f(z_prior).mean() - f(z_post).mean()      (grad omega: E_prior grad f - E_post grad f)
        generator term: |x - g(z_post)|^2 / (2 sigma^2), summed over x's dimensions, mean over the batch
        z_prior (B', d), z_post (B, d): chain outputs (detached). Returns (scalar loss, {"prior": ...,
        "generator": ..., "f_prior": mean f(z_prior), "f_post": mean f(z_post)} as floats).
        """
        f_prior, f_post = self.prior(z_prior.detach()).mean(), self.prior(z_post.detach()).mean()
        recon = -self.log_likelihood(x, z_post.detach()).mean()
        parts = {k: float(v.detach()) for k, v in (("prior", f_prior - f_post), ("generator", recon),
                                                    ("f_prior", f_prior), ("f_post", f_post))}
        return (f_prior - f_post) + recon, parts

    def training_loss(self, x: Tensor, generator: torch.Generator, prior_steps: int, prior_h: float,
                      post_steps: int, post_h: float) -> Tensor:
        """One batch's loss: a prior chain of len(x) from p_0, a posterior chain per x from p_0, then
        `learning_loss`. Its parts are kept in `self.last_parts` for the chapter's training curves."""
        z_prior, _ = self.prior_chain(len(x), prior_steps, prior_h, generator)
        z_post, _ = self.posterior_chain(x, post_steps, post_h, generator)
        loss, self.last_parts = self.learning_loss(x, z_prior, z_post)
        self._guard(z_prior, self.last_parts)
        return loss

    def _guard(self, z_prior: Tensor, parts: dict, max_energy: float = 1e4) -> None:
        """Raise FloatingPointError when learning has run away: the prior chain leaves every region p_0 could
        reach (|z| > 1000 sigma_0, or not finite) or a mean energy passes max_energy in size. Both happen when
        the prior's learning rate or step is too large (chapter 4): f is pushed down without bound where the
        prior chain goes, while the loss stays finite, so the training loop's own check would not see it."""
        reach = float(z_prior.abs().max())
        if not math.isfinite(reach) or reach > 1e3 * self.sigma_0:
            raise FloatingPointError(f"the prior chain diverged (|z| reached {reach:.3g}); lower the prior's "
                                     "learning rate or its Langevin step")
        worst = max(abs(parts["f_prior"]), abs(parts["f_post"]))
        if not worst <= max_energy:
            raise FloatingPointError(f"the prior energy diverged (|mean f| reached {worst:.3g}); lower the "
                                     "prior's learning rate or its Langevin step")

    def posterior_curvature(self, z: Tensor, smallest: bool = False) -> Tensor:
        """Lambda(z) = lambda_max(J^T J) / sigma^2 + 1 / sigma_0^2 (B,): the largest curvature of -log p(z | x) at
        z when the generator is locally linear, J = dg_psi/dz (D, latent_dim) and f_omega's curvature is left
        out. ULA on a Gaussian of curvature Lambda is stable only for h Lambda < 2 (its update multiplies the
        deviation from the mode by 1 - h Lambda), the posterior's sd along that direction is 1 / sqrt(Lambda).
        smallest: Lambda_min, with lambda_min(J^T J) instead: 1 / sqrt(Lambda_min) is the posterior's sd along
        its widest direction. Chapter 4."""
        self._check_z(z)

        def g_one(z1: Tensor) -> Tensor:
            return self.generator(z1.unsqueeze(0)).flatten()
        with torch.enable_grad():
            jac = torch.func.vmap(torch.func.jacrev(g_one))(z.detach())  # (B, D, latent_dim)
        eig = torch.linalg.eigvalsh(jac.transpose(1, 2) @ jac)[:, 0 if smallest else -1]
        return (eig / self.sigma**2 + 1.0 / self.sigma_0**2).detach()

    def prior_curvature(self, z: Tensor) -> Tensor:
        """Lambda(z) = lambda_max(-Hessian of log p_omega at z) (B,): the largest curvature the prior chain's step
        meets at z (f_omega's curvature plus 1 / sigma_0^2). As for `posterior_curvature`, ULA with step h
        resolves p_omega near z only for h Lambda < 2. Chapter 4, section 7."""
        self._check_z(z)
        with torch.enable_grad():
            hess = torch.func.vmap(torch.func.hessian(lambda z1: self.log_prior(z1.unsqueeze(0))[0]))(z.detach())
        return torch.linalg.eigvalsh(-hess)[:, -1].detach()

    @torch.no_grad()
    def reconstruct(self, x: Tensor, steps: int, h: float, generator: torch.Generator) -> Tensor:
        """g_psi(z) for z from a posterior chain of each x: the model's reconstruction of x (shape of x)."""
        z, _ = self.posterior_chain(x, steps, h, generator)
        return self.generator(z)
