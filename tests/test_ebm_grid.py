"""Chapter 4's grid-exact 2D priors: `grid_density.nll_loss` against a Gaussian's closed-form likelihood,
ebm-2d-exact's sampler against a linear-Gaussian model's exact law, and the training of ebm-2d-mle and ebm-2d-ddpm
(the generator frozen, a save/load round trip)."""

import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch

from helpers import config, grid_density, models, nets
from helpers.latent_ebm import LatentEBM


def test_the_grid_nll_loss_is_a_gaussians_exact_nll_and_gradient_at_any_offset():
    # u(z) = -|z - m|^2 / 2: NLL(m) = log(2 pi) + mean |z - m|^2 / 2, gradient m - mean(z), whatever the offset
    z = torch.randn(500, 2, generator=config.generator(0)) * 0.7 + torch.tensor([0.4, -0.3])
    m = torch.tensor([0.1, 0.2], requires_grad=True)
    u = lambda p: -0.5 * (p - m).pow(2).sum(1)  # noqa: E731
    want = math.log(2 * math.pi) + 0.5 * float((z - m.detach()).pow(2).sum(1).mean())
    for seed in range(3):
        loss = grid_density.nll_loss(u, z, 6.0, 0.1, config.generator(seed))
        (grad,) = torch.autograd.grad(loss, m)
        assert float(loss.detach()) == pytest.approx(want, abs=1e-5)
        torch.testing.assert_close(grad, m.detach() - z.mean(0), atol=1e-5, rtol=0)


class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.latent_dim = 2
        self.weight, self.bias = torch.tensor([[1.0, 0.5], [-0.2, 0.8]]), torch.tensor([0.3, -0.1])

    def forward(self, z):
        return z @ self.weight.T + self.bias


def test_the_exact_sampler_of_a_gaussian_prior_and_linear_generator_has_the_exact_law():
    # f = 0 (a fresh EBMPrior) and g(z) = W z + b: x = g(z), z ~ N(0, sigma_0^2 I), so mean b, cov sigma_0^2 W W^T
    from helpers.models.ebm_grid import SAMPLERS

    gen, s0, n = _Linear(), 0.8, 20_000
    model = LatentEBM(nets.EBMPrior(2), gen, sigma_0=s0, sigma=0.1)
    cfg = models.get("ebm-2d-exact").config
    x, traj = SAMPLERS["exact"](model, cfg, (n, 2), None, config.generator(0), torch.device("cpu"))
    cov = s0**2 * gen.weight @ gen.weight.T
    se_mean = (cov.diagonal() / n).sqrt()
    assert bool(((x.mean(0) - gen.bias).abs() < 4 * se_mean).all())
    se_cov = (cov.diagonal()[:, None] * cov.diagonal()[None] / n).sqrt() * math.sqrt(2)
    assert bool(((torch.cov(x.T) - cov).abs() < 4 * se_cov).all())  # the cells' jitter (~1e-4) is far below se
    assert traj.states.shape == (2, n, 2) and traj.nfev == (2 * 6.0 / 0.025) ** 2


@pytest.mark.parametrize("name", ["ebm-2d-mle", "ebm-2d-ddpm"])
def test_a_prior_fitted_after_the_fact_trains_only_itself_from_ebm_2d_and_round_trips(name, monkeypatch,
                                                                                     tmp_checkpoints):
    shipped = config.REPO_ROOT / "checkpoints"
    shutil.copy(shipped / "manifest.json", tmp_checkpoints)
    shutil.copy(shipped / "ebm-2d.pt", tmp_checkpoints)
    spec = models.get(name)
    fast = {"steps": 3, "latents": 300, "batch": 64}
    monkeypatch.setitem(models.REGISTRY, name, dataclasses.replace(spec, fast=fast))
    model, entry, result = models.train_model(name, "fast", "cpu", progress=False, evaluate=False)
    source = models.load("ebm-2d")[0]
    for a, b in zip(model.generator.state_dict().values(), source.generator.state_dict().values()):
        # the generator is ebm-2d's, untouched but for the EMA's float rounding (the DDPM's budget keeps an EMA)
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    trained = model.prior if name == "ebm-2d-mle" else model.denoiser
    before = source.prior if name == "ebm-2d-mle" else spec.build(spec.budget("fast")).denoiser
    assert not torch.equal(trained.out.weight, before.out.weight)  # the prior trained
    loaded = models.load(name)[0]
    a = models.sample(name, model, 40, 20, seed=3)
    assert a.shape == (40, 2) and np.array_equal(a, models.sample(name, loaded, 40, 20, seed=3))
