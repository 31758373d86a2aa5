import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from helpers import config, metrics


def _gauss(n, d=2, shift=0.0, seed=0):
    return torch.randn(n, d, generator=config.generator(seed), dtype=torch.float64) + shift


def test_mmd2_unbiased_matches_brute_force_definition():
    x, y = _gauss(7, seed=1), _gauss(9, shift=0.3, seed=2)
    k = lambda a, b: math.exp(-float(((a - b) ** 2).sum()) / (2 * 0.5**2))  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(7) for j in range(7) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i in range(9) for j in range(9) if i != j) / (9 * 8)
    xy = sum(k(x[i], y[j]) for i in range(7) for j in range(9)) / (7 * 9)
    assert metrics.mmd2_unbiased(x, y, 0.5) == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


def test_mmd2_separates_identical_from_shifted_distributions():
    same = [metrics.mmd2_unbiased(_gauss(1000, seed=2 * k), _gauss(1000, seed=2 * k + 1), 1.0) for k in range(5)]
    spread = np.std(same)
    assert abs(np.mean(same)) < 3 * spread  # unbiased: centred on 0
    assert metrics.mmd2_unbiased(_gauss(1000, seed=10), _gauss(1000, shift=0.5, seed=11), 1.0) > 20 * spread
    assert metrics.mmd2_unbiased(_gauss(500, seed=3), _gauss(500, seed=4), "median") < 0.01


def test_energy_distance_matches_closed_form_for_shifted_gaussians():
    d = 1.0  # X ~ N(0,1), Y ~ N(d,1): X - Y ~ N(-d, 2), E|X - X'| = 2 / sqrt(pi)
    s = math.sqrt(2)
    e_xy = s * math.sqrt(2 / math.pi) * math.exp(-d**2 / (2 * s**2)) + d * (1 - 2 * norm.cdf(-d / s))
    exact = 2 * e_xy - 2 * (2 / math.sqrt(math.pi))
    est = [metrics.energy_distance(_gauss(2000, 1, seed=k), _gauss(2000, 1, d, seed=100 + k)) for k in range(4)]
    assert abs(np.mean(est) - exact) < 4 * np.std(est) / 2 + 1e-3


def test_wasserstein_of_a_shift_is_the_shift_and_ks_against_a_cdf():
    x = np.random.default_rng(0).normal(size=5000)
    assert metrics.wasserstein_1d(x, x + 0.7) == pytest.approx(0.7, abs=1e-12)
    assert metrics.ks_statistic(x, norm.cdf) < 1.36 / math.sqrt(5000)  # 95 % KS critical value
    assert metrics.ks_statistic(x + 0.5, norm.cdf) > 0.15


def test_with_floor_reports_value_floor_and_spread():
    draw = lambda seed: _gauss(300, seed=seed + 50)  # noqa: E731
    r = metrics.with_floor(lambda a, b: metrics.mmd2_unbiased(a, b, 1.0), _gauss(300, shift=1.0), draw)
    assert set(r) == {"value", "floor", "floor_std"}
    assert r["value"] > r["floor"] + 10 * r["floor_std"]


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="dimension"):
        metrics.mmd2_unbiased(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="bandwidth"):
        metrics.mmd2_unbiased(np.zeros((5, 2)), np.ones((5, 2)), -1.0)


def test_verdict_prints_the_claim(capsys):
    assert metrics.verdict("claim", 1 < 2) is True
    assert capsys.readouterr().out == "claim: True\n"


def test_precision_and_recall_of_a_hand_computed_1d_case():
    # real {0, 1, 2, 3}, k = 1: every real ball has radius 1, so 0.5 is inside and 10 is not: precision 1/2;
    # the fake balls reach the other fake point (radius 9.5), so every real point is covered: recall 1
    precision, recall = metrics.precision_recall([[0.0], [1.0], [2.0], [3.0]], [[0.5], [10.0]], k=1)
    assert precision == 0.5 and recall == 1.0
    assert metrics.knn_radii(torch.tensor([[0.0], [1.0], [3.0], [7.0]], dtype=torch.float64), k=2).tolist() == [3.0, 2.0, 3.0, 6.0]


def test_precision_and_recall_on_gaussians_whose_answer_is_known():
    g = config.generator(0)
    real = torch.randn(2000, 4, generator=g, dtype=torch.float64)
    same = torch.randn(2000, 4, generator=g, dtype=torch.float64)
    p_same, r_same = metrics.precision_recall(real, same)
    assert p_same > 0.9 and r_same > 0.9 and abs(p_same - r_same) < 0.05  # one law: both high, alike
    # real = two modes 20 sd apart; fake = the first mode only: the second mode's real points are covered by no
    # fake ball (recall drops by exactly their share), while every fake point is as typical as before
    two_modes = torch.cat([real[:1000], real[1000:] + 20.0])
    p_drop, r_drop = metrics.precision_recall(two_modes, same[:1000])
    assert p_drop > 0.9 and abs(r_drop - 0.5 * r_same) < 0.05
    # a collapse onto the mode: each fake point sits in a real ball (precision 1), the fake balls are tiny
    p_col, r_col = metrics.precision_recall(real, 0.01 * same)
    assert p_col == 1.0 and r_col < 0.01
    # disjoint supports: nothing of either is in the other's manifold
    assert metrics.precision_recall(real, same + 100.0) == (0.0, 0.0)
    # symmetry: the precision of b against a is the recall of a against b
    assert metrics.precision_recall(same, real) == (r_same, p_same)


def test_precision_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="fake_feats"):
        metrics.precision_recall(np.zeros((5, 2)), np.zeros((5,)))
    with pytest.raises(ValueError, match="same dimension"):
        metrics.precision_recall(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="k must be"):
        metrics.precision_recall(np.zeros((3, 2)), np.zeros((3, 2)), k=3)


def test_metrics_never_import_the_models():
    # the package had one import cycle (metrics loaded mnist-eval itself); the classifier now comes in as an argument
    import subprocess
    import sys
    code = "import sys, helpers.metrics; sys.exit('helpers.models' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
