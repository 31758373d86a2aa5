"""The VP-SDE of chapters 5 and 7 against what is known exactly.

Closed forms against Monte-Carlo runs of the forward SDE and against finite differences; exact-score
reverse runs against the true mixture. Tolerances come from measured spreads (noted beside each).
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.stats import norm

from helpers import config, metrics
from helpers.data import GaussianMixture1D
from helpers.samplers import euler_maruyama, euler_maruyama_forward_law, ode_solve, reverse_sample
from helpers.sde import EPS, VPSDE, exact_score, mixture_log_prob, mixture_marginal, mixture_score

MIX = GaussianMixture1D(weights=[0.5, 0.5], means=[-3.0, 3.0], stds=[0.5, 0.5])
SDE = VPSDE(0.1, 20.0)


def w1_to_mix(x) -> float:
    return metrics.wasserstein_1d_cdf(np.asarray(x).ravel(), MIX.cdf, -7.0, 7.0)


def normal_quantiles(n: int) -> torch.Tensor:
    """The n quantiles Phi^-1((i + 1/2) / n) of N(0, 1) as (n, 1): a prior sample with no sampling noise."""
    return torch.tensor(norm.ppf((np.arange(n) + 0.5) / n), dtype=torch.float32).reshape(-1, 1)


# ------------------------------------------------------------------------------------------ closed forms


def test_schedule_closed_forms_match_quadrature():
    for t in (0.0, 1e-3, 0.1, 0.5, 1.0):
        integral, _ = integrate.quad(lambda s: float(SDE.beta(s)), 0.0, t)
        assert float(SDE.beta_integral(t)) == pytest.approx(integral, rel=1e-10, abs=1e-14)
        alpha, sigma = float(SDE.alpha(t)), float(SDE.marginal_std(t))
        assert alpha == pytest.approx(math.exp(-0.5 * integral), rel=1e-10)
        assert alpha**2 + sigma**2 == pytest.approx(1.0, abs=1e-12)
        assert float(SDE.diffusion(t)) ** 2 == pytest.approx(float(SDE.beta(t)), rel=1e-12)
    # sigma stays accurate at small t (expm1): sigma(1e-3)^2 = 1 - exp(-B(1e-3)) to double precision
    assert float(SDE.marginal_std(1e-3)) ** 2 == pytest.approx(-math.expm1(-(1e-4 + 0.5 * 19.9e-6)), rel=1e-9)


def test_transition_kernel_matches_monte_carlo_of_forward_sde():
    """p_t(x_t | x_0) = N(alpha x0, sigma^2) against 40,000 Euler-Maruyama paths from x0 = 2 (steps 1e-3).

    Spread: the sample mean's sd is sigma / 200 <= 0.005, the sample std's about sigma / 283; Euler-Maruyama's
    own bias with h = 1e-3 measured below 0.003 in the std. Tolerances: 4 sd plus 0.004.
    """
    n = 40_000
    x = torch.full((n, 1), 2.0)
    g = config.generator(0)
    t_prev = 0.0
    for t in (0.1, 0.3, 0.6):
        x, _ = euler_maruyama(None, SDE, x, round((t - t_prev) * 1000), g, t0=t_prev, t1=t)
        t_prev = t
        mean, std = SDE.marginal(torch.full((1, 1), 2.0), torch.tensor([t]))
        mean, std = float(mean), float(std)
        assert abs(float(x.mean()) - mean) < 4 * std / n**0.5 + 0.004, t
        assert abs(float(x.std()) - std) < 4 * std / (2 * n) ** 0.5 + 0.004, t


def test_forward_law_of_euler_maruyama_matches_its_runs():
    """euler_maruyama_forward_law against 200,000 runs of the sampler from x0 = 2, 10 coarse steps to t = 0.6.

    Spread: the mean's sd is sqrt(variance / n), the variance's about variance sqrt(2 / n); 5 sd each. The
    coarse steps make the law differ from the SDE's own (gain alpha(0.6), variance 1 - alpha^2) by far more
    than that, so the test also fails if the function returned the SDE's values.
    """
    n = 200_000
    x, _ = euler_maruyama(None, SDE, torch.full((n, 1), 2.0), 10, config.generator(3), t0=0.0, t1=0.6)
    mean, var = float(x.mean()), float(x.double().var())
    gain, variance = euler_maruyama_forward_law(SDE, 0.0, 0.6, 10)
    sd_mean, sd_var = math.sqrt(variance / n), variance * math.sqrt(2.0 / n)
    assert abs(mean - 2.0 * gain) < 5 * sd_mean and abs(var - variance) < 5 * sd_var
    exact_gain = float(SDE.alpha(0.6))
    assert abs(mean - 2.0 * exact_gain) > 10 * sd_mean or abs(var - (1 - exact_gain**2)) > 10 * sd_var


def test_forward_law_of_euler_maruyama_converges_to_the_sde():
    """With 20,000 steps of 4e-5 the chain's law is the SDE's: gain alpha(t1) / alpha(t0), variance 1 - gain^2.

    The error is first order in the step (3e-4 relative here), so the tolerance is 1e-3.
    """
    gain, variance = euler_maruyama_forward_law(SDE, 0.1, 0.9, 20_000)
    exact = float(SDE.alpha(0.9) / SDE.alpha(0.1))
    assert gain == pytest.approx(exact, rel=1e-3)
    assert variance == pytest.approx(1 - exact**2, rel=1e-3)
    with pytest.raises(ValueError, match="t1"):
        euler_maruyama_forward_law(SDE, 0.5, 0.5, 10)


def test_mixture_marginal_matches_monte_carlo_of_forward_sde():
    """KS of 50,000 forward-simulated points against the closed-form p_t at three times.

    KS of an exact sample of 50,000 is below 0.0087 with probability 0.999; measured here <= 0.005.
    """
    n = 50_000
    g = config.generator(1)
    x = MIX.sample(n, generator=g).reshape(-1, 1)
    t_prev = 0.0
    for t in (0.05, 0.2, 0.5):
        x, _ = euler_maruyama(None, SDE, x, round((t - t_prev) * 1000), g, t0=t_prev, t1=t)
        t_prev = t
        assert metrics.ks_statistic(x.numpy(), mixture_marginal(MIX, SDE, t).cdf) < 0.0087, t


def test_forward_sde_ends_at_standard_normal():
    """100,000 points, 1000 Euler-Maruyama steps of 1e-3: KS against N(0, 1) below the 0.999 level 0.0062."""
    g = config.generator(2)
    x = MIX.sample(100_000, generator=g).reshape(-1, 1)
    x, path = euler_maruyama(None, SDE, x, 1000, g, t0=0.0, t1=1.0, keep_every=100)
    assert path.states.shape == (11, 100_000, 1) and float(path.times[-1]) == 1.0
    assert metrics.ks_statistic(x.numpy(), norm.cdf) < 0.0062
    assert abs(float(x.mean())) < 4 / 100_000**0.5 and abs(float(x.std()) - 1) < 4 / 200_000**0.5
    # the exact p_1 is within 0.02 of N(0, 1) in every parameter: alpha(1) = 0.0066
    p1 = mixture_marginal(MIX, SDE, 1.0)
    assert max(abs(m) for m in p1.means) < 0.02 and max(abs(s - 1) for s in p1.stds) < 1e-3


def test_mixture_marginal_at_time_zero_is_the_data():
    p0 = mixture_marginal(MIX, SDE, 0.0)
    assert p0.means == MIX.means and p0.weights == MIX.weights
    assert np.allclose(p0.stds, MIX.stds, rtol=1e-12)


def test_transition_score_matches_finite_differences():
    x0 = torch.tensor([[-3.0], [0.5], [2.0]], dtype=torch.float64)
    xt = torch.tensor([[-1.0], [0.2], [2.5]], dtype=torch.float64)
    h = 1e-5
    for t in (0.01, 0.3, 1.0):
        tb = torch.full((3,), t, dtype=torch.float64)
        fd = (SDE.transition_log_prob(xt + h, x0, tb) - SDE.transition_log_prob(xt - h, x0, tb)) / (2 * h)
        assert torch.allclose(SDE.transition_score(xt, x0, tb).ravel(), fd, rtol=1e-6, atol=1e-6), t


def test_mixture_score_matches_finite_differences_of_log_density():
    x = torch.linspace(-6, 6, 241, dtype=torch.float64).reshape(-1, 1)
    h = 1e-5
    for t in (0.0, 0.01, 0.1, 0.4, 1.0):
        tb = torch.full((len(x),), t, dtype=torch.float64)
        fd = (mixture_log_prob(MIX, SDE, x + h, tb) - mixture_log_prob(MIX, SDE, x - h, tb)) / (2 * h)
        score = mixture_score(MIX, SDE, x, tb)
        assert torch.allclose(score, fd, rtol=1e-6, atol=1e-5), t
        # the same numbers as the mixture object at time t (two routes to one formula)
        p_t = mixture_marginal(MIX, SDE, t)
        assert torch.allclose(score, p_t.score(x), rtol=1e-9, atol=1e-9), t
        assert torch.allclose(mixture_log_prob(MIX, SDE, x, tb), p_t.log_prob(x), rtol=1e-9, atol=1e-9), t


# ----------------------------------------------------------------------- reverse runs with the exact score


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_reverse_ode_with_exact_score_recovers_mixture(method):
    """Probability-flow ODE, 1000 steps from t = 1 to eps, n = 20,000: W1 to the mixture < 0.002.

    In 1D the ODE's flow is monotone, so from the 20,000 quantiles of N(0, 1) it returns the quantiles of
    its own output law: W1 measures the solver alone, with no sampling noise. Measured: 4.7e-4 (Euler),
    3.2e-4 (Heun); a wrong drift sign or factor gives > 0.5. The bound 0.002 leaves 4x.
    """
    x, _ = reverse_sample(exact_score(MIX, SDE), SDE, (20_000, 1), 1000, None, method=method,
                          x1=normal_quantiles(20_000))
    assert w1_to_mix(x) < 0.002


def test_reverse_sde_with_exact_score_recovers_mixture():
    """Reverse Euler-Maruyama, 1000 steps from N(0, 1) to t = eps: W1 to the mixture < 0.02.

    n = 100,000 rather than 20,000: at n = 20,000 the W1 of exact draws of the mixture is itself
    0.017 +- 0.009 (20 draws; mostly the binomial share of each mode times the distance 6), so 0.02 would
    be a coin toss. At 100,000 it is 0.008 +- 0.004 (measured 0.0082 for this run), and 0.02 is 3 sd away.
    """
    x, _ = reverse_sample(exact_score(MIX, SDE), SDE, (100_000, 1), 1000, config.generator(1))
    x = x.numpy().ravel()
    assert w1_to_mix(x) < 0.02
    # the share of each mode: sd 0.0016 at this n
    assert abs((x > 0).mean() - 0.5) < 0.0064


def test_reverse_sde_steps_matter():
    """The test above can fail: 10 reverse steps leave the modes far too wide (W1 measured 0.15)."""
    x, _ = reverse_sample(exact_score(MIX, SDE), SDE, (20_000, 1), 10, config.generator(1))
    assert w1_to_mix(x) > 0.1


# ------------------------------------------------------------------------ shapes, errors, determinism


def test_shapes_for_image_batches():
    B = 3
    x0 = torch.randn(B, 1, 28, 28)
    t = torch.tensor([0.0, 0.5, 1.0])
    mean, std = SDE.marginal(x0, t)
    assert mean.shape == (B, 1, 28, 28) and std.shape == (B, 1, 1, 1)
    assert torch.equal(mean[0], x0[0]) and float(std[0]) == 0.0
    assert SDE.drift(x0, t).shape == (B, 1, 28, 28)
    assert SDE.transition_log_prob(x0, x0, torch.full((B,), 0.5)).shape == (B,)
    score = lambda x, t_: -x  # noqa: E731  (the score of N(0, I))
    assert SDE.reverse_drift(x0, t, score).shape == (B, 1, 28, 28)
    assert SDE.ode_drift(x0, t, score).shape == (B, 1, 28, 28)
    x, path = euler_maruyama(score, SDE, x0, 4, config.generator(0), keep_every=2)
    assert x.shape == (B, 1, 28, 28) and path.states.shape == (3, B, 1, 28, 28) and path.times.shape == (3,)
    x, path = ode_solve(score, SDE, x0, 3, None, method="heun", t0=0.0, t1=1.0)
    assert x.shape == (B, 1, 28, 28) and path.states.shape == (2, B, 1, 28, 28) and path.nfev == 6
    x, _ = reverse_sample(score, SDE, (B, 1, 28, 28), 2, config.generator(0), method="euler")
    assert x.shape == (B, 1, 28, 28)
    assert SDE.prior_sample((B, 1, 28, 28), config.generator(0)).shape == (B, 1, 28, 28)


def test_score_of_standard_normal_is_a_fixed_point_of_the_ode():
    """With the score -x of N(0, I) (= p_t for every t when p_0 = N(0, I)) the ODE drift is 0 exactly."""
    x = torch.randn(5, 1, 28, 28)
    t = torch.rand(5)
    assert torch.allclose(SDE.ode_drift(x, t, lambda x_, t_: -x_), torch.zeros_like(x), atol=1e-6)


def test_invalid_inputs_raise_value_error_naming_the_argument():
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=0.0)
    with pytest.raises(ValueError, match="beta_max"):
        VPSDE(beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="t must lie in"):
        SDE.marginal(torch.zeros(2, 1), torch.tensor([0.5, 1.2]))
    with pytest.raises(ValueError, match="t must lie in"):
        SDE.beta(-0.1)
    with pytest.raises(ValueError, match="t"):
        SDE.marginal(torch.zeros(2, 1), torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ValueError, match="score"):
        euler_maruyama(lambda x, t: x, SDE, torch.zeros(2, 1), 10, config.generator(0), t0=0.0, t1=1.0)
    with pytest.raises(ValueError, match="score"):
        euler_maruyama(None, SDE, torch.zeros(2, 1), 10, config.generator(0), t0=1.0, t1=0.0)
    with pytest.raises(ValueError, match="method"):
        ode_solve(lambda x, t: x, SDE, torch.zeros(2, 1), 10, method="rk4")
    with pytest.raises(ValueError, match="steps"):
        ode_solve(lambda x, t: x, SDE, torch.zeros(2, 1), 0)
    with pytest.raises(ValueError, match="t0 and t1"):
        euler_maruyama(None, SDE, torch.zeros(2, 1), 10, config.generator(0), t0=0.0, t1=1.5)
    with pytest.raises(ValueError, match="method"):
        reverse_sample(lambda x, t: x, SDE, (2, 1), 10, config.generator(0), method="pc")


def test_seeded_runs_are_deterministic():
    score = exact_score(MIX, SDE)
    a, _ = reverse_sample(score, SDE, (500, 1), 50, config.generator(3))
    b, _ = reverse_sample(score, SDE, (500, 1), 50, config.generator(3))
    c, _ = reverse_sample(score, SDE, (500, 1), 50, config.generator(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
