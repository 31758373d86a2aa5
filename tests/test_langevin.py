"""Langevin samplers and MCMC diagnostics against what is known exactly on the target N(0, 1). Chapter 3.

On N(0, 1), grad log p(x) = -x and ULA is the AR(1) chain x' = (1 - h) x + sqrt(2h) z, whose stationary
law is N(0, 1 / (1 - h/2)); MALA's is N(0, 1) for every h. Tolerances come from the Monte-Carlo spread:
either computed in the test (standard error over independent chains) or measured once over 40 seeds
(numbers in the comments).
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from helpers import config, langevin, metrics


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The chains are vectors of a few thousand numbers: one thread is as fast, and on a loaded machine
    the start-up of OpenMP's parallel regions (milliseconds each) would dominate the run time."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def grad_log_normal(x):
    return -x


def log_normal(x):
    """log N(x; 0, I) up to a constant, summed over the event dimensions: (C, ...) -> (C,)."""
    return -0.5 * x.reshape(len(x), -1).pow(2).sum(1)


def second_moment_and_se(chains):
    """Mean of x^2 over steps and chains, and its standard error from the spread over the C independent
    chains (each chain's time average is one i.i.d. draw). chains: (n, C)."""
    per_chain = chains.double().pow(2).mean(0)
    return float(per_chain.mean()), float(per_chain.std() / math.sqrt(per_chain.numel()))


def ar1(rho, n, n_chains, generator):
    """Stationary AR(1) chains x_k = rho x_{k-1} + sqrt(1 - rho^2) z_k, shape (n, n_chains)."""
    z = torch.randn(n, n_chains, generator=generator, dtype=torch.float64)
    x = torch.empty_like(z)
    x[0] = z[0]
    for k in range(1, n):
        x[k] = rho * x[k - 1] + math.sqrt(1 - rho**2) * z[k]
    return x


# ----------------------------------------------------------------------------------------------- ULA


@pytest.mark.parametrize("h", [0.1, 0.5, 1.0])
def test_ula_stationary_variance_is_one_over_one_minus_half_h(h):
    chains = langevin.ula(grad_log_normal, torch.zeros(20_000), h, n_steps=400, generator=config.generator(1),
                          keep_every=4, burn_in=300)       # (1 - h)^600 < 1e-27: the start is forgotten
    value, se = second_moment_and_se(chains)             # both laws have mean 0
    target = langevin.ula_stationary_variance(h)
    assert 4 * se < 0.01 * target                        # precise enough to see the bias (>= 5 % here)
    assert abs(value - target) < 4 * se, (value, target, se)
    assert abs(value - 1.0) > 10 * se                    # and the bias is really there


def test_ula_with_h_one_samples_n_0_2():
    # at h = 1 the step is x' = sqrt(2) z: one step from anywhere gives N(0, 2) exactly
    last = langevin.ula(grad_log_normal, torch.full((20_000,), 5.0), 1.0, n_steps=3,
                        generator=config.generator(2))[-1].double().numpy()
    assert langevin.ula_stationary_variance(1.0) == 2.0
    assert stats.kstest(last, stats.norm(scale=math.sqrt(2)).cdf).pvalue > 1e-3
    assert stats.kstest(last, stats.norm().cdf).pvalue < 1e-6


def test_ula_history_shapes_keep_every_and_burn_in():
    x0 = torch.zeros(50, 2)
    full = langevin.ula(grad_log_normal, x0, 0.3, 30, config.generator(3))
    assert full.shape == (30, 50, 2)
    thinned = langevin.ula(grad_log_normal, x0, 0.3, 30, config.generator(3), keep_every=5)
    assert thinned.shape == (6, 50, 2)
    assert torch.equal(thinned, full[4::5])              # the state after steps 5, 10, ..., 30
    burnt = langevin.ula(grad_log_normal, x0, 0.3, 20, config.generator(3), burn_in=10)
    assert torch.equal(burnt, full[10:])


def test_samplers_are_deterministic_given_the_seed():
    x0 = torch.zeros(100)
    a = langevin.ula(grad_log_normal, x0, 0.2, 50, config.generator(7))
    b = langevin.ula(grad_log_normal, x0, 0.2, 50, config.generator(7))
    c = langevin.ula(grad_log_normal, x0, 0.2, 50, config.generator(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    (m1, r1), (m2, r2) = (langevin.mala(log_normal, grad_log_normal, x0, 0.8, 50, config.generator(7))
                          for _ in range(2))
    assert torch.equal(m1, m2) and r1 == r2


@pytest.mark.parametrize("h", [0.0, -0.1])
def test_non_positive_step_size_raises(h):
    with pytest.raises(ValueError, match="h"):
        langevin.ula(grad_log_normal, torch.zeros(4), h, 10, config.generator(0))
    with pytest.raises(ValueError, match="h"):
        langevin.mala(log_normal, grad_log_normal, torch.zeros(4), h, 10, config.generator(0))
    with pytest.raises(ValueError, match="h"):
        langevin.ula_stationary_variance(h)


@pytest.mark.parametrize("h", [2.0, 3.0])
def test_stationary_variance_does_not_exist_from_h_two(h):
    with pytest.raises(ValueError, match="h"):
        langevin.ula_stationary_variance(h)


# ---------------------------------------------------------------------------------------------- MALA


@pytest.mark.parametrize("h", [0.5, 1.0])
def test_mala_removes_the_bias(h):
    chains, rate = langevin.mala(log_normal, grad_log_normal, torch.zeros(5_000), h, n_steps=400,
                                 generator=config.generator(4), keep_every=4, burn_in=100)
    value, se = second_moment_and_se(chains)
    assert 0.0 < rate < 1.0
    assert 4 * se < 0.03
    assert abs(value - 1.0) < 4 * se, (value, se)
    assert abs(value - langevin.ula_stationary_variance(h)) > 10 * se   # unlike ULA at the same h


def test_mala_on_two_dimensional_chains():
    chains, rate = langevin.mala(log_normal, grad_log_normal, torch.zeros(2_000, 2), 1.0, n_steps=200,
                                 generator=config.generator(5), keep_every=2, burn_in=50)
    assert chains.shape == (100, 2_000, 2) and 0.0 < rate < 1.0
    per_chain = chains.double().pow(2).mean(0)           # (C, 2)
    se = per_chain.std(0) / math.sqrt(2_000)
    assert torch.all((per_chain.mean(0) - 1.0).abs() < 4 * se)


def test_mala_log_p_must_return_one_value_per_chain():
    with pytest.raises(ValueError, match="log_p"):
        langevin.mala(lambda x: -0.5 * x**2, grad_log_normal, torch.zeros(8, 2), 0.5, 5, config.generator(0))


# ------------------------------------------------------------------------------- autocorrelation, ESS


def test_ess_of_iid_draws_is_n():
    x = torch.randn(5_000, 40, generator=config.generator(6), dtype=torch.float64)
    # ESS / n over 40 seeds: mean 0.998, sd 0.005
    assert abs(metrics.effective_sample_size(x) / x.numel() - 1.0) < 0.025
    assert abs(metrics.autocorrelation(x, 3)[1:]).max() < 0.01    # 1 / sqrt(n) = 0.002


@pytest.mark.parametrize("rho, tolerance", [(0.5, 0.06), (0.9, 0.17)])
def test_ess_of_ar1_chain_is_n_one_minus_rho_over_one_plus_rho(rho, tolerance):
    x = ar1(rho, 5_000, 40, config.generator(7))
    expected = x.numel() * (1 - rho) / (1 + rho)
    # ESS / expected over 40 seeds: sd 0.012 (rho = 0.5), 0.035 (rho = 0.9); tolerance = 5 sd
    assert abs(metrics.effective_sample_size(x) / expected - 1.0) < tolerance
    lags = np.arange(6)
    assert np.abs(metrics.autocorrelation(x, 5) - rho**lags).max() < 0.02


def test_ess_sees_chains_that_have_not_mixed():
    # two groups of chains stuck at different levels: within each chain the draws look i.i.d.
    x = torch.randn(1_000, 20, generator=config.generator(8), dtype=torch.float64)
    x[:, :10] += 3.0
    assert metrics.effective_sample_size(x) < 0.2 * x.numel()
