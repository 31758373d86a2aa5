import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import config, data, metrics


def test_sample_moons_moments_match_closed_form():
    x = data.sample_moons(200_000, 0.05, config.generator(0))
    mean, std = data.moons_moments(0.05)
    # standard errors are std / sqrt(n) < 0.002 for the mean; 0.01 is 5 of them
    assert torch.allclose(x.mean(0), mean, atol=0.01)
    assert torch.allclose(x.std(0), std, atol=0.01)


def test_sample_moons_is_seeded_and_matches_make_moons_distribution():
    a = data.sample_moons(1000, 0.05, config.generator(3))
    b = data.sample_moons(1000, 0.05, config.generator(3))
    assert torch.equal(a, b)
    sk = data.make_moons(2000, 0.05, seed=1)
    iid = data.sample_moons(2000, 0.05, config.generator(1))
    assert sk.shape == (2000, 2) and sk.dtype == torch.float32
    # same distribution: |MMD^2| stays within a few floor spreads (~1.5e-4); a 0.1 shift is far outside
    assert abs(metrics.mmd2_unbiased(sk, iid)) < 1e-3
    assert metrics.mmd2_unbiased(sk + torch.tensor([0.1, 0.0]), iid) > 3e-3


def test_sample_moons_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        data.sample_moons(0)
    with pytest.raises(ValueError, match="noise"):
        data.sample_moons(10, -0.1)


def test_mixture_density_integrates_to_one_and_score_is_its_log_derivative():
    mix = data.GaussianMixture1D(weights=[0.3, 0.7], means=[-3.0, 2.0], stds=[0.5, 1.5])
    x = torch.linspace(-12, 14, 20_001, dtype=torch.float64)
    assert abs(torch.trapezoid(mix.pdf(x), x).item() - 1.0) < 1e-8
    h = 1e-5
    fd = (mix.log_prob(x + h) - mix.log_prob(x - h)) / (2 * h)
    assert torch.allclose(mix.score(x), fd, atol=1e-6)


def test_mixture_samples_have_exact_mean_and_variance():
    mix = data.GaussianMixture1D(weights=[0.5, 0.5], means=[-3.0, 3.0], stds=[0.5, 0.5])
    x = mix.sample(100_000, seed=0).double()
    assert mix.mean() == 0.0 and mix.variance() == pytest.approx(9.25)
    assert abs(x.mean().item()) < 4 * math.sqrt(9.25 / 100_000)
    assert abs(x.var().item() - 9.25) < 0.1
    assert metrics.ks_statistic(x.numpy(), mix.cdf) < 0.01


def test_mixture_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sum to 1"):
        data.GaussianMixture1D(weights=[0.5, 0.6], means=[0, 1], stds=[1, 1])
    with pytest.raises(ValueError, match="stds"):
        data.GaussianMixture1D(weights=[1.0], means=[0.0], stds=[0.0])


def test_mnist_missing_gives_a_message_naming_the_variable(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="COURSE_DATA_ROOT"):
        data.mnist_dataset(train=False, root=tmp_path, download=False)


@pytest.mark.usefixtures("mnist")
def test_mnist_test_split_loads_from_the_data_root():
    images, labels = data.mnist_tensors(train=False, download=False)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.float32
    assert 0.0 <= images.min() and images.max() <= 1.0
    counts = torch.bincount(labels, minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]  # shared/datasets/README.md
    assert torch.allclose(data.from_model_range(data.to_model_range(images[:10])), images[:10])
