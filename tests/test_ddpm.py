"""DDPM schedule, losses and ancestral sampler against closed forms on Gaussian data."""

import math

import pytest
import torch
from torch import nn

from helpers import config, losses, samplers
from helpers.schedules import DDPMSchedule, geometric_sigmas


def test_q_moments_match_simulating_the_forward_markov_chain():
    # x_i = sqrt(1 - beta_i) x_{i-1} + sqrt(beta_i) z is the definition; q(x_i | x_0) is its closed form.
    sched, n, x0 = DDPMSchedule(1000), 100_000, 1.5
    g = config.generator(0)
    x = torch.full((n,), x0, dtype=torch.float64)
    for i in range(1, 1001):
        x = (1 - sched.betas[i - 1]).sqrt() * x + sched.betas[i - 1].sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
        if i in (10, 300, 1000):
            mean, std = sched.q_moments(torch.full((1,), x0, dtype=torch.float64), torch.tensor([i]))
            assert abs(x.mean() - mean.item()) < 5 * std.item() / math.sqrt(n)
            assert abs(x.std() / std.item() - 1) < 5 / math.sqrt(2 * n)


def test_alpha_bar_is_the_product_of_alphas_and_schedule_checks_its_inputs():
    s = DDPMSchedule(50, 1e-3, 0.05)
    assert s.alpha_bars[-1].item() == pytest.approx(math.prod(1 - b for b in s.betas.tolist()), rel=1e-12)
    with pytest.raises(ValueError, match="beta_1"):
        DDPMSchedule(10, 0.5, 0.1)
    with pytest.raises(ValueError, match="steps i"):
        s.q_moments(torch.zeros(2), torch.tensor([0, 3]))


class ExactGaussianEps(nn.Module):
    """E[eps | x_t] for data N(mu, s^2): sqrt(1 - ab) (x - sqrt(ab) mu) / (ab s^2 + 1 - ab)."""

    def __init__(self, sched, mu, s):
        super().__init__()
        self.sched, self.mu, self.s = sched, mu, s

    def forward(self, x, t):
        ab = self.sched.alpha_bars[(t * self.sched.T).round().long() - 1].to(x).reshape(-1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * self.mu) / (ab * self.s**2 + 1 - ab)


def test_ddpm_loss_of_the_exact_predictor_is_its_closed_form_minimum():
    # E|eps - E[eps|x_t]|^2 = Var(eps | x_t) = ab s^2 / (ab s^2 + 1 - ab), averaged over i ~ U{1..T}
    sched, mu, s = DDPMSchedule(1000), 0.7, 0.4
    x0 = mu + s * torch.randn(400_000, 1, generator=config.generator(1))
    loss = losses.ddpm_loss(ExactGaussianEps(sched, mu, s), x0, sched, config.generator(2)).item()
    ab = sched.alpha_bars
    assert loss == pytest.approx((ab * s**2 / (ab * s**2 + 1 - ab)).mean().item(), abs=3e-3)


@pytest.mark.parametrize("steps", [None, 100])
def test_ancestral_sampling_with_the_exact_predictor_recovers_the_gaussian(steps):
    sched, mu, s = DDPMSchedule(1000), 0.7, 0.4
    g = config.generator(3)
    n_steps = steps or sched.T
    x, traj = samplers.ddpm_ancestral(ExactGaussianEps(sched, mu, s), sched, torch.randn(50_000, 1, generator=g),
                                      steps, g, keep_every=n_steps // 4)
    assert abs(x.mean().item() - mu) < 0.01 and abs(x.std().item() - s) < 0.01
    assert traj.states.shape == (5, 50_000, 1) and torch.equal(traj.states[-1], x)
    assert float(traj.times[0]) == 1.0 and float(traj.times[-1]) == 0.0 and traj.nfev == n_steps


def test_ancestral_sampling_is_seeded():
    sched = DDPMSchedule(100)
    model = ExactGaussianEps(sched, 0.0, 1.0)
    run = lambda seed: samplers.ddpm_ancestral(model, sched, torch.zeros(10, 1), None, config.generator(seed))[0]  # noqa: E731
    assert torch.equal(run(5), run(5)) and not torch.equal(run(5), run(6))


def test_respaced_steps_end_at_T_and_cover_all_when_asked():
    assert samplers.respaced_steps(1000, 1000) == list(range(1, 1001))
    r = samplers.respaced_steps(1000, 50)
    assert len(r) == 50 and r[-1] == 1000 and r == sorted(r)
    with pytest.raises(ValueError):
        samplers.respaced_steps(10, 11)


def test_ncsn_loss_of_the_exact_score_is_its_closed_form_minimum():
    # data N(0, s^2 I) in d dims, x~ = x + sigma z: sigma s*(x~) = -sigma x~ / (s^2 + sigma^2) and
    # 1/2 E|sigma s* + z|^2 = d/2 * s^2 / (s^2 + sigma^2), averaged over the levels.
    sigmas, s, d = geometric_sigmas(3.0, 0.05, 6), 0.8, 2

    class Exact(nn.Module):
        def forward(self, x, code):  # net output = sigma * score
            sigma = sigmas[(code * (len(sigmas) - 1)).round().long()].reshape(-1, 1)
            return -sigma * x / (s**2 + sigma**2)

    x0 = s * torch.randn(400_000, d, generator=config.generator(4))
    loss = losses.ncsn_loss(Exact(), x0, sigmas, config.generator(5)).item()
    assert loss == pytest.approx((d / 2 * s**2 / (s**2 + sigmas**2)).mean().item(), abs=3e-3)


def test_geometric_sigmas_are_geometric_and_decreasing():
    s = geometric_sigmas(1.0, 0.01, 5)
    assert s[0].item() == pytest.approx(1.0) and s[-1].item() == pytest.approx(0.01)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)


def test_annealed_langevin_with_the_exact_score_ends_at_ulas_law_of_the_last_level():
    """Data N(0, s^2): the level-j score is exactly -x / (s^2 + sigma_j^2). After 200 ULA steps at the last
    level, the chains have the stationary std of ULA on N(0, v), v = s^2 + sigma_L^2 (chapter 3's
    1 / (1 - h / (2v)) inflation). Spread: sd of a std over n = 50,000 is std / sqrt(2n) = 0.0025; the
    memory of the level before adds at most 0.001 (its variance excess times (1 - h / v)^400)."""
    sigmas, s, n = geometric_sigmas(3.0, 0.05, 6), 0.8, 50_000
    score = lambda x, j: -x / (s**2 + float(sigmas[j]) ** 2)  # noqa: E731
    g = config.generator(6)
    x, traj = samplers.annealed_langevin(score, sigmas, 3.0 * torch.randn(n, 1, generator=g), 200, g,
                                         step_scale=0.01, denoise=False, keep_every=200)
    v, h = s**2 + 0.05**2, 0.5 * 0.01
    expected = math.sqrt(v / (1 - h / (2 * v)))
    assert abs(x.std().item() - expected) < 4 * expected / math.sqrt(2 * n) + 0.001
    assert traj.states.shape == (7, n, 1) and traj.nfev == 6 * 200
    assert torch.allclose(traj.times, torch.tensor([1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0], dtype=torch.float64))
    # the Tweedie step maps N(0, v) to N(0, s^4 / v): the std shrinks by s^2 / v
    y, _ = samplers.annealed_langevin(score, sigmas, 3.0 * torch.randn(n, 1, generator=config.generator(6)), 200,
                                      config.generator(6), step_scale=0.01)
    assert abs(y.std().item() / x.std().item() - s**2 / v) < 1e-3
