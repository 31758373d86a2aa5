"""The exercises' graders (helpers/graders.py): the course's own solutions pass, a stub is "not yet implemented",
and each common mistake fails with its own message (issue #27: a variance for a standard deviation, a missing
weight, a sign of the score, the step index for the time)."""

import pytest
import torch

from helpers import graders


def _stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", list(graders.EXERCISES))
def test_the_reference_passes_and_a_stub_is_not_yet_implemented(name, capsys):
    reference = graders.EXERCISES[name].reference
    assert graders.check(name, reference).passed
    verdict = graders.check(name, _stub)
    assert verdict.status == graders.NOT_IMPLEMENTED
    assert graders.grade(name, _stub) is reference  # the chapter goes on with the course's own
    assert "not yet implemented" in capsys.readouterr().out


def _B(t, beta_min, beta_max):
    return (beta_min * t + 0.5 * (beta_max - beta_min) * t**2)[:, None]


def _abar(alpha_bars, i):
    return alpha_bars[i - 1][:, None]


# One wrong solution per common mistake, and the words its message must contain.
WRONG = {
    "forward_marginal": [
        (lambda x0, i, ab: (_abar(ab, i).sqrt() * x0, 1 - _abar(ab, i)), "holds the variance"),
        (lambda x0, i, ab: (_abar(ab, i) * x0, (1 - _abar(ab, i)).sqrt()), "not alpha_bar_i x0"),
        (lambda x0, i, ab: (ab[i][:, None].sqrt() * x0, (1 - ab[i][:, None]).sqrt()), "step i is alpha_bars[i - 1]"),
        (lambda x0, i, ab: (_abar(ab, i).sqrt() * x0, (1 - _abar(ab, i)).sqrt()[:, 0]), "has shape (6,)"),
    ],
    "ddpm_loss": [
        (lambda m, x0, i, n, ab: (n - m(_abar(ab, i).sqrt() * x0 + (1 - _abar(ab, i)).sqrt() * n, i)).pow(2).mean(),
         "the network was given the step i"),
        (lambda m, x0, i, n, ab: (n - m(_abar(ab, i).sqrt() * x0 + (1 - _abar(ab, i)) * n, i / len(ab))).pow(2).mean(),
         "the variance (1 - alpha_bar_i) times the noise"),
        (lambda m, x0, i, n, ab: (n - m(_abar(ab, i).sqrt() * x0 + (1 - _abar(ab, i)).sqrt() * n, i / len(ab)))
         .pow(2).sum(1).mean(), "sums over the 2 dimensions"),
    ],
    "dsm_loss": [
        (lambda f, x0, sig, z: 0.5 * (f(x0 + sig * z, sig) + z / sig).pow(2).sum(1).mean(), "weight is missing"),
        (lambda f, x0, sig, z: 0.5 * (sig * f(x0 + sig * z, sig) - z).pow(2).sum(1).mean(), "wrong sign of the target"),
        (lambda f, x0, sig, z: 0.5 * (sig * f(x0 + sig * z, sig) + z).pow(2).mean(), "averages over the dimensions"),
    ],
    "annealed_step": [
        (lambda x, sc, sig, sL, eta, xi: x + eta * (sig / sL) ** 2 * sc + (2 * eta) ** 0.5 * (sig / sL) * xi,
         "alpha_i is 2h"),
        (lambda x, sc, sig, sL, eta, xi: x + 0.5 * eta * (sL / sig) ** 2 * sc + eta**0.5 * (sL / sig) * xi,
         "upside down"),
        (lambda x, sc, sig, sL, eta, xi: x + 0.5 * eta * (sig / sL) * sc + (eta * sig / sL) ** 0.5 * xi, "is squared"),
        (lambda x, sc, sig, sL, eta, xi: x - 0.5 * eta * (sig / sL) ** 2 * sc + eta**0.5 * (sig / sL) * xi,
         "wrong sign"),
        (lambda x, sc, sig, sL, eta, xi: x + 0.5 * eta * (sig / sL) ** 2 * sc + (0.5 * eta) ** 0.5 * (sig / sL) * xi,
         "sqrt(2h) xi"),
    ],
    "ula_step": [
        (lambda x, gl, h, xi: x + h * gl(x) + h**0.5 * xi, "the noise is sqrt(2h) xi"),
        (lambda x, gl, h, xi: x - h * gl(x) + (2 * h) ** 0.5 * xi, "wrong sign"),
    ],
    "mala_log_accept": [
        (lambda x, y, lp, gl, h: torch.clamp(lp(y) - lp(x), max=0), "random-walk Metropolis"),
        (lambda x, y, lp, gl, h: torch.clamp(lp(y) - lp(x) - (x - y - h * gl(y)) ** 2 / (2 * h)
                                             + (y - x - h * gl(x)) ** 2 / (2 * h), max=0), "variance is 2h"),
        (lambda x, y, lp, gl, h: torch.clamp(lp(y) - lp(x) - (y - x - h * gl(x)) ** 2 / (4 * h)
                                             + (x - y - h * gl(y)) ** 2 / (4 * h), max=0), "upside down"),
        (lambda x, y, lp, gl, h: lp(y) - lp(x) - (x - y - h * gl(y)) ** 2 / (4 * h) + (y - x - h * gl(x)) ** 2 / (4 * h),
         "min(0, log ratio)"),
    ],
    "log_joint": [
        (lambda z, x, f, g, s, s0: f(z) - z.pow(2).sum(1) / (2 * s0**2) - (x - g(z)).pow(2).sum(1) / (2 * s),
         "by 2 sigma"),
        (lambda z, x, f, g, s, s0: f(z) - (x - g(z)).pow(2).sum(1) / (2 * s**2), "base p_0"),
        (lambda z, x, f, g, s, s0: -f(z) - z.pow(2).sum(1) / (2 * s0**2) - (x - g(z)).pow(2).sum(1) / (2 * s**2),
         "wrong sign of f"),
    ],
    "prior_loss": [
        (lambda f, zp, zq: f(zp).mean() - f(zq).mean(), "wrong sign"),
    ],
    "generator_loss": [
        (lambda g, x, z, s: -(x - g(z)).pow(2).sum(1).mean() / (2 * s**2), "wrong sign"),
        (lambda g, x, z, s: (x - g(z)).pow(2).sum(1).mean() / (2 * s), "not by 2 sigma"),
        (lambda g, x, z, s: (x - g(z)).pow(2).mean() / (2 * s**2), "averages over x's dimensions"),
        (lambda g, x, z, s: (x - g(z)).pow(2).sum(1).mean() / s**2, "factor 1/2"),
    ],
    "vp_marginal": [
        (lambda x0, t, b0, b1: (x0 * torch.exp(-0.5 * (b0 * t + 0.5 * (b1 - b0) * t**2)),
                                1 - torch.exp(-(b0 * t + 0.5 * (b1 - b0) * t**2))), "holds the variance"),
        (lambda x0, t, b0, b1: (x0 * torch.exp(-(b0 * t + 0.5 * (b1 - b0) * t**2)),
                                torch.sqrt(1 - torch.exp(-(b0 * t + 0.5 * (b1 - b0) * t**2)))), "the drift is -beta x / 2"),
        (lambda x0, t, b0, b1: (x0 * torch.exp(-0.5 * (b0 * t + (b1 - b0) * t**2)),
                                torch.sqrt(1 - torch.exp(-(b0 * t + (b1 - b0) * t**2)))), "halves t^2"),
    ],
    "continuous_loss": [
        (lambda m, x0, t, n, b0, b1: graders._ref_continuous_loss(lambda x, tt: m(x, tt * 1000), x0, t, n, b0, b1),
         "the network was given t T"),
        (lambda m, x0, t, n, b0, b1: (n - m(torch.exp(-0.5 * _B(t, b0, b1)) * x0 + (1 - torch.exp(-_B(t, b0, b1))) * n,
                                            t)).pow(2).mean(), "the variance sigma(t)^2 times the noise"),
        (lambda m, x0, t, n, b0, b1: (n - m(torch.exp(-_B(t, b0, b1)) * x0
                                            + torch.sqrt(1 - torch.exp(-_B(t, b0, b1))) * n, t)).pow(2).mean(),
         "not alpha_bar(t) x0"),
    ],
    "ancestral_step": [
        (lambda x, s, b, z: (x - b * s) / (1 - b).sqrt() + b.sqrt() * z, "wrong sign"),
        (lambda x, s, b, z: (x + b * s) / (1 - b) + b.sqrt() * z, "divide by sqrt(1 - beta)"),
        (lambda x, s, b, z: (x + b * s) / (1 - b).sqrt() + b * z, "the noise is beta z, a variance"),
    ],
    "score_from_eps": [
        (lambda eps, sigma: eps / sigma, "wrong sign"),
        (lambda eps, sigma: -eps / sigma**2, "divided by sigma^2"),
    ],
    "guided_score": [
        (lambda s, clf, x, t, y, gamma: s - gamma * graders._ref_guided_score(torch.zeros_like(s), clf, x, t, y, 1.0),
         "wrong sign"),
        (lambda s, clf, x, t, y, gamma: s + gamma * torch.softmax(clf(x, t), 1)[:, y:y + 1]
         * graders._ref_guided_score(torch.zeros_like(s), clf, x, t, y, 1.0), "the gradient of p(y | x)"),
        (lambda s, clf, x, t, y, gamma: s + gamma * torch.func.grad(lambda xx: clf(xx, t)[:, y].sum())(x),
         "needs the log-softmax"),
        (lambda s, clf, x, t, y, gamma: graders._ref_guided_score(s, clf, x, t, y, 1.0), "the scale gamma is missing"),
    ],
}
CASES = [(name, k, fn, words) for name, wrongs in WRONG.items() for k, (fn, words) in enumerate(wrongs)]


@pytest.mark.parametrize("name, k, fn, words", CASES, ids=[f"{n}-{k}" for n, k, _, _ in CASES])
def test_each_common_mistake_fails_with_its_own_message(name, k, fn, words):
    verdict = graders.check(name, fn)
    assert verdict.status == "failed" and words in " ".join(verdict.messages), verdict


def test_a_learner_s_error_is_reported_not_raised():
    verdict = graders.check("score_from_eps", lambda eps, sigma: eps.nonexistent)
    assert verdict.status == "failed" and "AttributeError" in verdict.messages[0]
    with pytest.raises(KeyError, match="unknown exercise"):
        graders.check("nope", _stub)
