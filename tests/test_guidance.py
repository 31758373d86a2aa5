"""Classifier guidance (scores.guided_score, chapter 8) against the closed form of a two-class Gaussian
model, the noise-aware classifier's network, and the guided command line's refusals."""

import math

import numpy as np
import pytest
import torch

from helpers import models, nets, scores
from helpers.errors import ConfigError
from test_cli import _run  # (status, stdout, stderr) of `python -m helpers ARGV`

# Two classes in 2D with priors PI, means MU and a shared isotropic variance S2:
# p(x) = sum_k PI_k N(x; MU_k, S2 I), and the exact classifier p(y | x) = PI_y N(x; MU_y) / p(x).
PI = torch.tensor([0.3, 0.7], dtype=torch.float64)
MU = torch.tensor([[-1.0, 0.5], [1.5, -1.0]], dtype=torch.float64)
S2 = 0.8


def _responsibilities(x):
    logits = PI.log() - ((x[:, None, :] - MU) ** 2).sum(-1) / (2 * S2)  # (B, 2)
    return torch.softmax(logits, dim=1)


def exact_score(x, t):
    """grad log p(x) = sum_k r_k(x) (MU_k - x) / S2."""
    r = _responsibilities(x)
    return (r[:, :, None] * (MU - x[:, None, :])).sum(1) / S2


def exact_logits(x, t):
    """log p(y | x) up to a constant in y: log PI_y - |x - MU_y|^2 / (2 S2)."""
    return PI.log() - ((x[:, None, :] - MU) ** 2).sum(-1) / (2 * S2)


def tilted_score(x, y, gamma):
    """The score of p(x) p(y | x)^gamma, by hand: grad log p(x) + gamma (MU_y - sum_k r_k MU_k) / S2."""
    r = _responsibilities(x)
    return exact_score(x, None) + gamma * (MU[y] - r @ MU) / S2


X = torch.tensor([[0.0, 0.0], [0.25, -0.25], [-2.0, 1.0], [3.0, -2.0], [0.4, 0.9]], dtype=torch.float64)
T = torch.full((len(X),), 0.5, dtype=torch.float64)


@pytest.mark.parametrize("y", [0, 1])
@pytest.mark.parametrize("gamma", [0.5, 1.0, 4.0])
def test_guided_score_is_the_exact_score_of_the_tilted_density(y, gamma):
    guided = scores.guided_score(exact_score, exact_logits, y, gamma)
    torch.testing.assert_close(guided(X, T), tilted_score(X, y, gamma), rtol=1e-10, atol=1e-10)


def test_gamma_one_gives_the_score_of_the_class_conditional_density():
    """At gamma = 1 the tilted density p(x) p(y | x) is PI_y N(x; MU_y, S2 I): its score is (MU_y - x) / S2."""
    guided = scores.guided_score(exact_score, exact_logits, 1, 1.0)
    torch.testing.assert_close(guided(X, T), (MU[1] - X) / S2, rtol=1e-10, atol=1e-10)


def test_guidance_at_scale_zero_is_the_unguided_score_and_works_inside_no_grad():
    torch.testing.assert_close(scores.guided_score(exact_score, exact_logits, 0, 0.0)(X, T), exact_score(X, T))
    guided = scores.guided_score(exact_score, exact_logits, 1, 2.0)
    with torch.no_grad():  # the samplers run without a graph; the classifier's gradient is still taken
        inside = guided(X, T)
    torch.testing.assert_close(inside, guided(X, T))


def test_the_classifier_gradient_points_towards_the_guided_class():
    push = scores.guided_score(exact_score, exact_logits, 1, 3.0)(X, T) - exact_score(X, T)  # gamma grad log p(1 | x)
    assert push.shape == X.shape
    assert bool(((push @ (MU[1] - MU[0])) > 0).all())  # towards class 1's mean, away from class 0's
    pull = scores.guided_score(exact_score, exact_logits, 0, 3.0)(X, T) - exact_score(X, T)
    assert bool(((pull @ (MU[1] - MU[0])) < 0).all())


def test_a_label_per_row_guides_each_row_to_its_own_class():
    y = torch.tensor([0, 1, 1, 0, 1])
    guided = scores.guided_score(exact_score, exact_logits, y, 2.0)(X, T)
    expected = torch.stack([tilted_score(X[i:i + 1], int(y[i]), 2.0)[0] for i in range(len(X))])
    torch.testing.assert_close(guided, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("label, scale, match", [(-1, 1.0, "label"), (1.5, 1.0, "label"), (True, 1.0, "label"),
                                                 (2, 1.0, "below 2"), (0, -1.0, "scale"),
                                                 (0, math.nan, "scale"), (0, math.inf, "scale")])
def test_bad_labels_and_scales_raise_value_error_naming_the_argument(label, scale, match):
    with pytest.raises(ValueError, match=match):
        scores.check_guidance(label, scale, classes=2)
    if match != "below 2":  # the class count is known only once the classifier has answered
        with pytest.raises(ValueError, match=match):
            scores.guided_score(exact_score, exact_logits, label, scale)
    else:
        with pytest.raises(ValueError, match="below the classifier's 2 classes"):
            scores.guided_score(exact_score, exact_logits, label, scale)(X, T)


def test_noisy_classifier_maps_noised_digits_and_times_to_logits():
    torch.manual_seed(0)
    net = nets.NoisyClassifier(channels=(8, 16, 16), time_dim=16)
    for p in net.parameters():  # past its zero-initialised convs, as after training
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(3, 1, 28, 28), torch.rand(3)
    assert net(x, t).shape == (3, 10) and net.classes == 10
    assert not torch.allclose(net(x, t), net(x, 1 - t))  # the time is an input
    with pytest.raises(ValueError, match=r"x \(B, 1, 28, 28\) and t \(B,\)"):
        net(x, torch.rand(2))


def test_one_label_per_sample_follows_the_samples_through_the_chunks():
    torch.manual_seed(0)
    unet = models.get("mnist-vpsde").build(models.get("mnist-vpsde").config)
    clf = nets.NoisyClassifier(channels=(8, 16, 16), time_dim=16)
    for p in clf.parameters():
        torch.nn.init.normal_(p, std=0.2)
    kw = dict(steps=2, seed=3, sampler="ancestral", scale=2.0, classifier=clf, chunk=2)
    mixed = models.sample("mnist-vpsde", unet, 4, label=[3, 3, 7, 7], **kw)
    threes = models.sample("mnist-vpsde", unet, 4, label=3, **kw)
    sevens = models.sample("mnist-vpsde", unet, 4, label=7, **kw)
    assert np.array_equal(mixed[:2], threes[:2]) and np.array_equal(mixed[2:], sevens[2:])
    assert not np.allclose(threes, sevens)
    with pytest.raises(ConfigError, match="n = 4 of them, got 3"):
        models.sample("mnist-vpsde", unet, 4, label=[1, 2, 3], **kw)


@pytest.mark.parametrize("argv, message", [
    (["--scale", "2"], "--scale needs --label"),
    (["--label", "10"], "expected a digit 0-9"),
    (["--label", "3", "--scale", "-1"], "expected a finite number >= 0"),
    (["--label", "3", "--scale", "nan"], "expected a finite number >= 0"),
])
def test_guided_sampling_refuses_bad_arguments_with_one_line(capsys, tmp_path, argv, message):
    code, _, err = _run(capsys, "sample", "mnist-vpsde", "--n", "2", "--out", str(tmp_path / "x.npy"), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npy").exists()


def test_a_model_without_guidance_refuses_a_label(capsys, tmp_path):
    code, _, err = _run(capsys, "sample", "moons-ddpm", "--n", "2", "--out", str(tmp_path / "x.npy"), "--label", "1")
    assert code == 2 and "moons-ddpm has no guided sampling" in err and "mnist-cfg, mnist-vpsde" in err


def test_guided_sampling_from_the_command_line_writes_digits(capsys, tmp_path):
    out = tmp_path / "fives.npy"
    code, _, err = _run(capsys, "sample", "mnist-vpsde", "--label", "5", "--n", "3", "--steps", "5",
                     "--sampler", "ancestral", "--out", str(out), "--no-progress")
    assert code == 0, err
    x = np.load(out)
    assert x.shape == (3, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1

