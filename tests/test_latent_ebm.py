"""Chapter 4's latent-space EBM prior model against exact results: gradients, a linear-Gaussian posterior,
the direction of the prior's learning step, and bad inputs."""

import math

import pytest
import torch
from torch import nn

from helpers import config, nets
from helpers.latent_ebm import LatentEBM


def _tiny(seed: int = 0, sigma_0: float = 0.8, sigma: float = 0.5) -> LatentEBM:
    """A float64 model with a non-zero prior (its zero-initialised output layer is redrawn)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        prior, gen = nets.EBMPrior(2, hidden=8, depth=1), nets.MLPGenerator(2, 3, hidden=8, depth=1)
        nn.init.normal_(prior.out.weight)
    return LatentEBM(prior, gen, sigma_0, sigma).double()


def _finite_difference(fn, z: torch.Tensor, step: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(z)
    for j in range(z.shape[1]):
        e = torch.zeros_like(z)
        e[:, j] = step
        grad[:, j] = (fn(z + e) - fn(z - e)) / (2 * step)
    return grad


def test_grad_log_densities_match_finite_differences_and_the_gaussian_closed_form():
    model = _tiny()
    z = torch.randn(5, 2, generator=config.generator(1), dtype=torch.float64)
    x = torch.randn(5, 3, generator=config.generator(2), dtype=torch.float64)
    with torch.no_grad():
        fd_prior = _finite_difference(model.log_prior, z)
        fd_post = _finite_difference(lambda z_: model.log_likelihood(x, z_) + model.log_prior(z_), z)
    assert torch.allclose(model.prior_score(z), fd_prior, atol=1e-7)
    assert torch.allclose(model.posterior_score(z, x), fd_post, atol=1e-7)
    assert all(p.grad is None for p in model.parameters())  # the chains build no parameter gradient
    flat = LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 3), sigma_0=0.8).double()  # f = 0: p_0 itself
    assert torch.allclose(flat.prior_score(z), -z / 0.8**2, atol=1e-12)


def test_posterior_chain_of_a_linear_gaussian_model_matches_ulas_exact_stationary_law():
    """f = 0 and g(z) = W z + b: p(z | x) = N(mu, P^-1), P = W^T W / sigma^2 + I / sigma_0^2,
    mu = P^-1 W^T (x - b) / sigma^2. ULA keeps the mean and has the stationary covariance
    Q diag(1 / (lambda (1 - h lambda / 2))) Q^T (chapter 3's 1 / (1 - h / 2) in P's eigenbasis).
    10,000 chains of 60 steps: P's eigenvalues are 5.2 and 6.4, so (1 - h lambda)^60 < 1e-7 and the start
    is forgotten; 4 standard errors."""
    sigma_0, sigma, h, n = 1.0, 0.5, 0.05, 10_000
    gen = nn.Linear(2, 3).double()
    with torch.no_grad():
        gen.weight.copy_(torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -0.6]]))
        gen.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    model = LatentEBM(nets.EBMPrior(2).double(), gen, sigma_0, sigma)
    x = torch.tensor([[0.7, -0.4, 0.9]], dtype=torch.float64)
    W, b = gen.weight.detach(), gen.bias.detach()
    P = W.T @ W / sigma**2 + torch.eye(2, dtype=torch.float64) / sigma_0**2
    mu = torch.linalg.solve(P, W.T @ (x[0] - b) / sigma**2)
    lam, Q = torch.linalg.eigh(P)
    cov = Q @ torch.diag(1 / (lam * (1 - h * lam / 2))) @ Q.T
    z, traj = model.posterior_chain(x.repeat(n, 1), 60, h, config.generator(3))
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((z.mean(0) - mu).abs() < 4 * se_mean).all(), (z.mean(0), mu)
    emp = torch.cov(z.T)
    se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None, :] + cov**2) / n).sqrt()
    assert ((emp - cov).abs() < 4 * se_cov).all(), (emp, cov)
    assert traj.states.shape == (2, n, 2) and float(traj.times[0]) == 1.0 and float(traj.times[-1]) == 0.0
    # the exact posterior's covariance P^-1 is 13-16 % smaller than ULA's: the test sees the step size
    assert ((emp - torch.linalg.inv(P)).abs() > 4 * se_cov).any()


def test_the_prior_learning_step_raises_f_where_the_posterior_puts_mass():
    """Identity generator, data near m = (1.5, 0): the posterior chains end near m, the prior chains near 0,
    so descending the prior term makes f(m) - f(0) grow (the prior moves towards the aggregate posterior)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LatentEBM(nets.EBMPrior(2, hidden=32), nn.Identity(), sigma_0=1.0, sigma=0.2)
    model.generator.latent_dim = 2
    g = config.generator(4)
    x = torch.tensor([1.5, 0.0]) + 0.1 * torch.randn(512, 2, generator=g)
    opt = torch.optim.Adam(model.prior.parameters(), lr=1e-2)
    probe = torch.tensor([[1.5, 0.0], [0.0, 0.0]])
    gaps = []
    for _ in range(20):
        loss = model.training_loss(x, g, prior_steps=20, prior_h=0.05, post_steps=20, post_h=0.01)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            f = model.prior(probe)
        gaps.append(float(f[0] - f[1]))
    assert gaps[-1] > 0.5 and gaps[-1] > gaps[0]
    assert set(model.last_parts) == {"prior", "generator", "f_prior", "f_post"}


def test_bad_inputs_raise_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="sigma must be a positive"):
        LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 2), sigma=0.0)
    with pytest.raises(ValueError, match="sigma_0 must be a positive"):
        LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 2), sigma_0=-1.0)
    model = LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 2))
    with pytest.raises(ValueError, match="step size h must be a positive"):
        model.prior_chain(4, 10, -0.1, config.generator(0))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 2\)"):
        model.log_prior(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        model.prior_chain(4, 0, 0.1, config.generator(0))
    with pytest.raises(ValueError, match="expects z of shape"):
        nets.ConvGenerator(latent_dim=8)(torch.zeros(2, 3))
    assert nets.ConvGenerator(latent_dim=8)(torch.zeros(2, 8)).shape == (2, 1, 28, 28)
    with pytest.raises(ValueError, match="expects z of shape"):
        nets.DeconvGenerator(latent_dim=16)(torch.zeros(2, 8))
    deconv = nets.DeconvGenerator(latent_dim=16, ngf=64)
    assert deconv(torch.zeros(2, 16)).shape == (2, 1, 28, 28) and nets.count_parameters(deconv) == 1_837_953
    assert math.isclose(float(model.prior(torch.zeros(1, 2)).detach()), 0.0)  # a fresh prior is p_0


def test_ebm_2d_saves_and_loads_to_the_same_samples_and_records_its_energies(monkeypatch, tmp_checkpoints):
    import dataclasses

    import numpy as np

    from helpers import models

    spec = models.get("ebm-2d")
    monkeypatch.setitem(models.REGISTRY, "ebm-2d", dataclasses.replace(spec, fast={"steps": 5, "batch": 32}))
    model, entry, result = models.train_model("ebm-2d", "fast", "cpu", progress=False, evaluate=False)
    loaded, stored = models.load("ebm-2d")
    a = models.sample("ebm-2d", model, 50, 10, seed=3)
    assert a.shape == (50, 2) and a.dtype == np.float32
    assert np.array_equal(a, models.sample("ebm-2d", loaded, 50, 10, seed=3))
    assert len(result.records) == 5 and set(result.records[0]) == {"prior", "generator", "f_prior", "f_post"}
    assert stored["config"]["train"]["lr_prior"] != stored["config"]["train"]["lr"]  # two learning rates


class _Linear(torch.nn.Module):
    """g(z) = W z + b, a generator whose Jacobian is W everywhere."""

    def __init__(self, latent_dim: int, data_dim: int, seed: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.weight = torch.randn(data_dim, latent_dim, generator=config.generator(seed))
        self.bias = torch.randn(data_dim, generator=config.generator(seed + 1))

    def forward(self, z):
        return z @ self.weight.T + self.bias


def test_posterior_curvature_of_a_linear_generator_is_the_exact_largest_and_smallest_precision():
    # for g(z) = W z + b and f = 0 the posterior is Gaussian with precision W^T W / sigma^2 + I / sigma_0^2
    gen = _Linear(3, 5, seed=0)
    model = LatentEBM(nets.EBMPrior(3), gen, sigma_0=0.7, sigma=0.4)
    precision = gen.weight.T @ gen.weight / 0.4**2 + torch.eye(3) / 0.7**2
    low, *_, high = torch.linalg.eigvalsh(precision).tolist()
    z = torch.randn(6, 3, generator=config.generator(2))
    curv = model.posterior_curvature(z)
    assert curv.shape == (6,)
    assert torch.allclose(curv, torch.full((6,), high), rtol=1e-5)
    assert torch.allclose(model.posterior_curvature(z, smallest=True), torch.full((6,), low), rtol=1e-5)


def test_prior_curvature_is_one_over_sigma0_squared_for_a_fresh_prior_and_adds_a_quadratic_fs():
    model = LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 2), sigma_0=0.5, sigma=0.1)
    z = torch.randn(5, 2, generator=config.generator(0))
    assert torch.allclose(model.prior_curvature(z), torch.full((5,), 4.0))  # f = 0: -log p_omega = |z|^2 / 0.5
    quad = torch.tensor([[3.0, 1.0], [1.0, 2.0]])  # f(z) = -z^T quad z / 2 adds quad to the Hessian of -log p

    class Quadratic(torch.nn.Module):
        def forward(self, z_):
            return -0.5 * ((z_ @ quad) * z_).sum(1)

    model.prior = Quadratic()
    want = float(torch.linalg.eigvalsh(quad + 4.0 * torch.eye(2))[-1])
    assert torch.allclose(model.prior_curvature(z), torch.full((5,), want), rtol=1e-5)


def test_runaway_prior_energy_or_chain_stops_training_with_floating_point_error():
    model = LatentEBM(nets.EBMPrior(2), nets.MLPGenerator(2, 2), sigma_0=1.0, sigma=0.1)
    x = torch.randn(8, 2, generator=config.generator(0))
    model.training_loss(x, config.generator(1), 5, 0.05, 5, 1e-3)  # a fresh model trains
    with torch.no_grad():
        model.prior.out.bias.fill_(2e4)  # |mean f| = 2e4 > 1e4: the prior energy ran away
    with pytest.raises(FloatingPointError, match="prior energy diverged"):
        model.training_loss(x, config.generator(1), 5, 0.05, 5, 1e-3)
    with torch.no_grad():
        model.prior.out.bias.zero_()
    # f = 0: the prior chain is ULA on N(0, I), whose deviation is multiplied by 1 - h = -4 a step at h = 5
    with pytest.raises(FloatingPointError, match="prior chain diverged"):
        model.training_loss(x, config.generator(1), 10, 5.0, 5, 1e-3)


def test_ebm_2d_experiment_returns_records_and_reports_divergence_instead_of_raising():
    from helpers.models import ebm

    run = ebm.ebm_2d_experiment("blobs", train={"steps": 3, "batch": 16})
    assert run.diverged is None and len(run.records) == 3 and not run.model.training
    bad = ebm.ebm_2d_experiment("moons", process={"prior_h": 5.0, "prior_steps": 10}, train={"steps": 2, "batch": 8})
    assert bad.diverged is not None and "prior chain diverged" in bad.diverged and "step 0" in bad.diverged
    with pytest.raises(ValueError, match="data_name"):
        ebm.ebm_2d_experiment("spirals")


def test_gaussian_prior_ablation_never_trains_the_prior(monkeypatch, tmp_checkpoints):
    import dataclasses

    from helpers import models

    spec = models.get("ebm-2d-gauss")
    monkeypatch.setitem(models.REGISTRY, "ebm-2d-gauss", dataclasses.replace(spec, fast={"steps": 3, "batch": 16}))
    model, entry, result = models.train_model("ebm-2d-gauss", "fast", "cpu", progress=False, evaluate=False)
    assert all(float(p.detach().abs().max()) == 0.0 for p in model.prior.out.parameters())  # f = 0: prior is p_0
    assert all(r["f_prior"] == 0.0 and r["f_post"] == 0.0 for r in result.records)
    assert models.get("ebm-2d-gauss").config["arch"] == models.get("ebm-2d").config["arch"]
