"""Chapter 4's anomaly benchmark: the score against a linear-Gaussian model's exact posterior, AUPRC against a
hand computation, the held-out digit kept out of training, and the `anomaly-score` command's refusals."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import config, data, models, nets
from helpers.anomaly import anomaly_scores, auprc, auprc_null, score_parts
from helpers.latent_ebm import LatentEBM
from helpers.models import ebm_anomaly
from test_cli import _run  # cli.main's status, stdout and stderr

SIGMA_0, SIGMA, H = 1.0, 0.5, 0.02
W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -0.6]], dtype=torch.float64)


def _linear_model() -> LatentEBM:
    """f = 0 and g(z) = W z: a linear-Gaussian model whose posterior is exactly N(mu, P^-1)."""
    gen = nn.Linear(2, 3, bias=False).double()
    with torch.no_grad():
        gen.weight.copy_(W)
    return LatentEBM(nets.EBMPrior(2).double(), gen, SIGMA_0, SIGMA)


def _expected_parts(x: torch.Tensor) -> tuple[float, float]:
    """E[reconstruction] and E[prior] terms of -log p(x, z) under ULA's stationary law on the posterior
    N(mu, P^-1): ULA keeps the mean mu and has the covariance C = Q diag(1 / (lambda (1 - h lambda / 2))) Q^T
    in P's eigenbasis, so E|x - W z|^2 = |x - W mu|^2 + tr(W^T W C) and E|z|^2 = |mu|^2 + tr(C)."""
    P = W.T @ W / SIGMA**2 + torch.eye(2, dtype=torch.float64) / SIGMA_0**2
    mu = torch.linalg.solve(P, W.T @ x / SIGMA**2)
    lam, Q = torch.linalg.eigh(P)
    C = Q @ torch.diag(1 / (lam * (1 - H * lam / 2))) @ Q.T
    recon = ((x - W @ mu).pow(2).sum() + torch.trace(W.T @ W @ C)) / (2 * SIGMA**2)
    prior = (mu.pow(2).sum() + torch.trace(C)) / (2 * SIGMA_0**2)
    return float(recon), float(prior)


@pytest.mark.parametrize("x", [[0.7, -0.4, 0.9], [1.0, -0.3, 0.2]])
def test_score_parts_match_the_exact_posterior_expectations_of_a_linear_gaussian_model(x):
    """2000 chains of 200 steps (P's eigenvalues 5.2 and 6.4: (1 - h lambda)^200 < 1e-9, the start is
    forgotten). Each term is a quadratic form of the chain's z, whose sd is measured; 4 standard errors.
    The score is their sum."""
    x = torch.tensor(x, dtype=torch.float64)
    model, xs = _linear_model(), x.expand(2000, 3)
    recon, prior = score_parts(model, xs, steps=200, h=H, generator=config.generator(0))
    assert recon.shape == prior.shape == (2000,) and torch.isfinite(recon + prior).all()
    for got, want in zip((recon.double(), prior.double()), _expected_parts(x)):
        assert abs(float(got.mean()) - want) < 4 * float(got.std()) / math.sqrt(len(got))
    assert torch.equal(anomaly_scores(model, xs, steps=200, h=H, generator=config.generator(0)), recon + prior)


def test_an_input_off_the_generators_range_scores_higher():
    """x = W c lies in g's range; x + r, r orthogonal to W's columns, cannot be reconstructed: its exact
    expected score is higher by |r|^2 / (2 sigma^2) = 2 (|r| = 1)."""
    on = W @ torch.tensor([0.5, -0.5], dtype=torch.float64)
    r = torch.linalg.svd(W.T).Vh[-1]  # the unit vector orthogonal to both columns of W
    x = torch.stack([on, on + r]).repeat_interleave(1000, 0)
    s = anomaly_scores(_linear_model(), x, steps=200, h=H, generator=config.generator(1)).double()
    gap = float(s[1000:].mean() - s[:1000].mean())
    assert abs(gap - 2.0) < 4 * math.sqrt(float(s[:1000].var() + s[1000:].var()) / 1000)


def test_scores_are_seeded_and_do_not_depend_on_the_chunk():
    model, x = _linear_model(), torch.randn(10, 3, generator=config.generator(2), dtype=torch.float64)
    a = anomaly_scores(model, x, 20, H, config.generator(5), chunk=10)
    assert torch.equal(a, anomaly_scores(model, x, 20, H, config.generator(5), chunk=10))
    assert not torch.equal(a, anomaly_scores(model, x, 20, H, config.generator(6), chunk=10))
    with pytest.raises(ValueError, match="chunk"):
        anomaly_scores(model, x, 20, H, config.generator(5), chunk=0)


def test_auprc_against_a_hand_computation_and_chance():
    # ranked: 0.8 (anomaly), 0.4 (normal), 0.35 (anomaly), 0.1 (normal): precision 1 at recall 1/2, 2/3 at 1
    assert auprc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert auprc([3.0, 2.0, 1.0], [1, 0, 0]) == 1.0
    rng = np.random.default_rng(0)  # random scores: AUPRC is about the anomalies' share, 0.1
    labels = rng.random(20_000) < 0.1
    assert abs(auprc(rng.random(20_000), labels) - labels.mean()) < 0.01
    assert auprc_null(labels, draws=50) == auprc_null(labels, draws=50)  # seeded
    assert abs(auprc_null(labels, draws=50)[0] - labels.mean()) < 0.01
    with pytest.raises(ValueError, match="both"):
        auprc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="finite"):
        auprc([0.1, float("nan")], [0, 1])


def test_training_batches_never_hold_the_held_out_digit(monkeypatch):
    """Fake data whose every pixel is label / 10: no batch pixel may equal the held-out digit's value."""
    labels = torch.arange(10).repeat(20)
    images = (labels.float() / 10).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).contiguous()
    monkeypatch.setattr(data, "mnist_tensors_cached", lambda train=True: (images, labels))
    cfg = models.get("ebm-anomaly-7").budget("fast")
    draw = ebm_anomaly.normal_batches(cfg)
    pixels = torch.cat([draw(config.generator(k)) for k in range(20)]).unique()
    assert len(pixels) == 9 and not torch.isclose(pixels, torch.tensor(2 * 0.7 - 1)).any()


def test_the_protocol_test_set_has_kumar_et_al_s_share_and_only_unseen_digits(monkeypatch):
    """Fake splits whose pixels say label and split (training: label / 20, test: 0.5 + label / 20): the
    normal digits are exactly the test split's other nine, every anomaly is a D from either split, and D's
    share is Kumar et al.'s n_D / (n_D + 0.2 n_normal) over both splits, to one digit's rounding."""
    def fake(train=True):
        labels = torch.arange(10).repeat(60 if train else 10)
        return (labels.float() / 20 + (0 if train else 0.5)).view(-1, 1, 1, 1).expand(-1, 1, 28, 28), labels

    monkeypatch.setattr(data, "mnist_tensors_cached", fake)
    images, is_out = ebm_anomaly.protocol_test_set(7)
    code = (images[:, 0, 0, 0] * 20).round().long()  # label, plus 10 for the test split
    assert set(code[is_out].tolist()) == {7, 17}  # D, from both splits
    assert sorted(code[~is_out].tolist()) == sorted([10 + d for d in range(10) if d != 7] * 10)  # the test split's others
    n_out, n_normal = 70, 630  # over both splits
    share = n_out / (n_out + 0.2 * n_normal)
    assert abs(is_out.float().mean() - share) < 1 / len(is_out)
    again, again_out = ebm_anomaly.protocol_test_set(7)
    assert torch.equal(again, images) and torch.equal(again_out, is_out)  # seeded
    assert not torch.equal(ebm_anomaly.protocol_test_set(7, seed=1)[1], is_out)


@pytest.mark.parametrize("array, model, message", [
    (np.zeros((4, 28, 28), np.float32), "ebm-mnist", "not an anomaly model"),
    (np.zeros((4, 784), np.float32), "ebm-anomaly-1", "expected MNIST digits (N, 28, 28)"),
    (np.full((4, 28, 28), 255.0, np.float32), "ebm-anomaly-1", "expected pixels in [0, 1]"),
    (np.zeros((0, 28, 28), np.float32), "ebm-anomaly-1", "holds no digits"),
])
def test_anomaly_score_refuses_bad_input_in_one_line(capsys, tmp_path, array, model, message):
    np.save(tmp_path / "x.npy", array)
    code, _, err = _run(capsys, "anomaly-score", model, "--images", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "s.npy"))
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.usefixtures("mnist")
def test_anomaly_score_writes_one_score_per_digit(capsys, tmp_path):
    images, _ = data.mnist_tensors_cached(train=False)
    np.save(tmp_path / "x.npy", images[:6, 0].numpy())
    code, out, _ = _run(capsys, "anomaly-score", "ebm-anomaly-7", "--images", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "s.npy"))
    scores = np.load(tmp_path / "s.npy")
    assert code == 0 and scores.shape == (6,) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert "6 anomaly scores" in out
