"""The DDPM's variational bound (helpers/vlb.py, chapter 6) against what is known exactly.

A point mass with the exact noise predictor makes every posterior mean exact, so the bound collapses to closed
forms; the stratified estimate of the middle terms is unbiased, checked against the every-step sum within
measured standard errors.
"""

import math

import pytest
import torch
from scipy.stats import norm

from helpers import config
from helpers.schedules import DDPMSchedule
from helpers.vlb import ddpm_bits_per_dim, ddpm_bound_terms

SCHED = DDPMSchedule(50, 1e-3, 0.2)


def exact_eps_for_point(c: float, schedule: DDPMSchedule):
    """E[eps | x_i] for data that are the constant image c: (x_i - sqrt(alpha_bar_i) c) / sqrt(1 - alpha_bar_i)."""
    def eps_model(x, t):
        ab = schedule.alpha_bars[(t * schedule.T).round().long() - 1].reshape(-1, *([1] * (x.ndim - 1)))
        return ((x.double() - ab.sqrt() * c) / (1 - ab).sqrt()).float()
    return eps_model


@pytest.mark.parametrize("k", [0, 100, 255])
def test_point_mass_with_exact_noise_predictor_gives_closed_forms(k):
    """Posterior means are exact, so with sigma_i^2 = beta~_i the middle terms vanish, L_0 is the decoder's mass on
    one bin around x_0 itself, and L_T the KL of N(sqrt(abar_T) c, 1 - abar_T) to N(0, 1), per pixel."""
    c = 2 * k / 255 - 1
    pixels = torch.full((3, 1, 4, 4), float(k))
    parts = ddpm_bound_terms(exact_eps_for_point(c, SCHED), SCHED, pixels, config.generator(0), terms=7,
                             variance="beta_tilde")
    D, ab_T, s1 = 16, float(SCHED.alpha_bars[-1]), math.sqrt(float(SCHED.betas[0]))
    lo = 0.0 if k == 0 else norm.cdf(-1 / 255 / s1)
    hi = 1.0 if k == 255 else norm.cdf(1 / 255 / s1)
    assert torch.allclose(parts["diffusion"], torch.zeros(3, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(parts["decoder"], torch.full((3,), -D * math.log(hi - lo), dtype=torch.float64), rtol=1e-6)
    prior = 0.5 * D * (ab_T * c**2 + (1 - ab_T) - 1 - math.log(1 - ab_T))
    assert torch.allclose(parts["prior"], torch.full((3,), prior, dtype=torch.float64), rtol=1e-9)


def test_variance_beta_adds_the_exact_variance_mismatch():
    """With sigma_i^2 = beta_i and exact means, the middle terms are sum_i D/2 (r_i - 1 - log r_i), r = beta~ / beta,
    whatever the noise drawn: with one stratum per step (terms = T - 1) the estimate is that sum exactly."""
    pixels = torch.full((2, 1, 2, 2), 100.0)
    eps_model = exact_eps_for_point(2 * 100 / 255 - 1, SCHED)
    every = ddpm_bound_terms(eps_model, SCHED, pixels, config.generator(1), terms=SCHED.T - 1)["diffusion"]
    ab = SCHED.alpha_bars
    r = (1 - ab[:-1]) / (1 - ab[1:])  # beta~_i / beta_i for i = 2..T
    exact = 0.5 * 4 * float((r - 1 - torch.log(r)).sum())
    assert torch.allclose(every, torch.full((2,), exact, dtype=torch.float64), rtol=1e-6)


def test_stratified_middle_terms_are_unbiased():
    """5 strata against every step (49), both averaged over 4000 copies of one image with an imperfect eps_model:
    the means agree within 4 standard errors of their difference (the spread measured over the copies)."""
    pixels = torch.randint(0, 256, (1, 1, 3, 3), generator=config.generator(2)).float().repeat(4000, 1, 1, 1)
    eps_model = lambda x, t: 0.8 * x  # noqa: E731  (any fixed function of x: the bound of a poor model)
    few = ddpm_bound_terms(eps_model, SCHED, pixels, config.generator(3), terms=5)["diffusion"]
    every = ddpm_bound_terms(eps_model, SCHED, pixels, config.generator(4), terms=SCHED.T - 1)["diffusion"]
    se = math.sqrt(float(few.var()) / len(few) + float(every.var()) / len(every))
    assert abs(float(few.mean() - every.mean())) < 4 * se
    assert float(few.var()) > float(every.var())  # fewer strata, noisier: the test has power to see a bias


def test_bits_per_dim_of_a_point_mass_and_bad_inputs():
    """Bits/dim of the constant image k = 7 under its exact model: (L_T + L_0) / (D ln 2) from the closed forms."""
    pixels = torch.full((2, 1, 2, 2), 7.0)
    c = 2 * 7 / 255 - 1
    eps_model = exact_eps_for_point(c, SCHED)
    bpd = ddpm_bits_per_dim(eps_model, SCHED, pixels, config.generator(5), terms=3, variance="beta_tilde")
    ab_T, s1 = float(SCHED.alpha_bars[-1]), math.sqrt(float(SCHED.betas[0]))
    decoder = -math.log(norm.cdf(1 / 255 / s1) - norm.cdf(-1 / 255 / s1))
    per_pixel = 0.5 * (ab_T * c**2 - ab_T - math.log(1 - ab_T)) + decoder
    assert torch.allclose(bpd, torch.full((2,), per_pixel / math.log(2), dtype=torch.float64), rtol=1e-6)
    with pytest.raises(ValueError, match="pixels"):
        ddpm_bits_per_dim(eps_model, SCHED, pixels / 255, config.generator(0))
    with pytest.raises(ValueError, match="terms"):
        ddpm_bits_per_dim(eps_model, SCHED, pixels, config.generator(0), terms=SCHED.T)
    with pytest.raises(ValueError, match="variance"):
        ddpm_bits_per_dim(eps_model, SCHED, pixels, config.generator(0), terms=3, variance="learned")
