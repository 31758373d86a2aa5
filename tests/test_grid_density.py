"""`grid_density` (chapter 4's exact 2D prior) against Gaussians, whose normaliser, maximum-likelihood fit and
moments are known in closed form."""

import math

import pytest
import torch
from torch import nn

from helpers import grid_density

MU = torch.tensor([0.7, -1.2])
COV = torch.tensor([[0.8, 0.3], [0.3, 0.5]])


def gaussian_u(mu: torch.Tensor, cov: torch.Tensor):
    """u(z) = -(z - mu)^T cov^-1 (z - mu) / 2, whose Z is 2 pi sqrt(det cov)."""
    prec = torch.linalg.inv(cov)
    return lambda z: -0.5 * ((z - mu) @ prec * (z - mu)).sum(1)


def test_log_partition_of_a_gaussian_is_exact():
    want = math.log(2 * math.pi * math.sqrt(float(torch.linalg.det(COV))))
    got = grid_density.log_partition(gaussian_u(MU, COV), 6.0, 0.1)
    assert float(got) == pytest.approx(want, abs=1e-6)
    shifted = grid_density.log_partition(gaussian_u(MU, COV), 6.0, 0.1, offset=torch.tensor([0.013, 0.071]))
    assert float(shifted) == pytest.approx(want, abs=1e-6)


class QuadraticLogDensity(nn.Module):
    """u(z) = -(z - m)^T L L^T (z - m) / 2 with m and the lower-triangular L learnt: the Gaussian family, whose
    maximum-likelihood fit to any points is their mean and their covariance (ddof 0)."""

    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.zeros(2))
        self.raw = nn.Parameter(torch.zeros(3))  # log L11, L21, log L22

    def forward(self, z):
        L = torch.stack([torch.stack([self.raw[0].exp(), torch.zeros(())]), torch.stack([self.raw[1], self.raw[2].exp()])])
        return -0.5 * ((z - self.m) @ L).pow(2).sum(1)


def test_maximum_likelihood_on_the_grid_finds_the_sample_mean_and_covariance():
    g = torch.Generator().manual_seed(0)
    z = MU + torch.randn(4000, 2, generator=g) @ torch.linalg.cholesky(COV).T
    u = QuadraticLogDensity()
    losses = grid_density.fit_max_likelihood(u, list(u.parameters()), z, 1500, 6.0, 0.1, g, lr=0.02, batch=4000)
    L = torch.stack([torch.stack([u.raw[0].exp(), torch.zeros(())]), torch.stack([u.raw[1], u.raw[2].exp()])])
    fitted_cov = torch.linalg.inv(L @ L.T).detach()
    sample_cov = torch.cov(z.T, correction=0)
    torch.testing.assert_close(u.m.detach(), z.mean(0), atol=2e-3, rtol=0)
    torch.testing.assert_close(fitted_cov, sample_cov, atol=3e-3, rtol=0)
    # the fitted NLL is the Gaussian's at the sample moments: log(2 pi) + log det(cov) / 2 + 1
    want = math.log(2 * math.pi) + 0.5 * math.log(float(torch.linalg.det(sample_cov))) + 1.0
    assert grid_density.nll(u, z, 6.0, 0.1) == pytest.approx(want, abs=1e-3)
    assert losses[-1] < losses[0]


def test_grid_draws_have_the_gaussians_moments():
    n = 40_000
    z = grid_density.sample(gaussian_u(MU, COV), n, 6.0, 0.05, torch.Generator().manual_seed(1))
    assert z.shape == (n, 2)
    se_mean = (COV.diagonal() / n).sqrt()
    assert bool(((z.mean(0) - MU).abs() < 4 * se_mean).all())
    se_var = COV.diagonal() * math.sqrt(2 / (n - 1))  # the cell's uniform jitter adds spacing^2 / 12 = 2e-4
    assert bool(((z.var(0) - COV.diagonal()).abs() < 4 * se_var + 2.1e-4).all())


def test_draws_are_seeded():
    u = gaussian_u(MU, COV)
    a = grid_density.sample(u, 50, 6.0, 0.1, torch.Generator().manual_seed(3))
    b = grid_density.sample(u, 50, 6.0, 0.1, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kwargs, argument", [({"lim": 0.0}, "lim"), ({"spacing": -0.1}, "spacing"),
                                              ({"spacing": 0.07}, "spacing must divide"), ({"n": 0}, "n must")])
def test_bad_arguments_are_refused_naming_them(kwargs, argument):
    args = {"lim": 6.0, "spacing": 0.1, "n": 5, **kwargs}
    with pytest.raises(ValueError, match=argument):
        grid_density.sample(gaussian_u(MU, COV), args["n"], args["lim"], args["spacing"], torch.Generator())
    with pytest.raises(ValueError, match="z must have shape"):
        grid_density.nll(gaussian_u(MU, COV), torch.zeros(3, 3), 6.0, 0.1)
