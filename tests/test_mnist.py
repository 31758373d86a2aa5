"""MNIST plumbing of chapters 6-8: the U-Net, the evaluation classifier, the Frechet distance, the models."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from scipy import linalg

from helpers import checkpoints, cli, config, metrics, models, nets


def _seeded(build, seed=0):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build()


def test_unet_maps_images_and_times_to_images_with_1_to_3_million_parameters():
    net = nets.UNet()
    assert 1_000_000 <= nets.count_parameters(net) <= 3_000_000
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0.001, 0.5, 1.0])
    out = net(x, t)
    assert out.shape == (3, 1, 28, 28) and torch.equal(out, torch.zeros_like(out))  # zero-initialised output
    with pytest.raises(ValueError, match="t \\(B,\\)"):
        net(x, torch.zeros(2))
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 1, 30, 30), torch.zeros(1))


def test_unet_is_deterministic_given_the_seed_and_depends_on_time():
    def build():
        net = nets.UNet()
        with torch.no_grad():  # leave the zero start (zero last convs), so that every path counts
            for p in net.parameters():
                p.add_(0.05 * torch.randn_like(p))
        return net.eval()

    a, b = _seeded(build), _seeded(build)
    x = torch.randn(2, 1, 28, 28, generator=config.generator(1))
    t = torch.tensor([0.1, 0.9])
    with torch.no_grad():
        ya, yb = a(x, t), b(x, t)
        assert torch.equal(ya, yb)
        assert not torch.allclose(ya, a(x, t.flip(0)))  # the time embedding reaches the output
        assert a(x[:1], t[:1]).shape == (1, 1, 28, 28)


def test_classifier_gives_logits_and_128_features():
    clf = nets.MNISTClassifier().eval()
    assert 50_000 <= nets.count_parameters(clf) <= 500_000
    x = torch.rand(5, 1, 28, 28, generator=config.generator(2))
    assert clf(x).shape == (5, 10) and clf.features(x).shape == (5, 128)
    with pytest.raises(ValueError, match="28, 28"):
        clf(torch.rand(5, 28, 28))


def test_frechet_distance_matches_the_closed_form_between_gaussians():
    # FD(N(m1, C1), N(m2, C2)) = |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)); the estimate's spread over
    # independent repeats sets the tolerance (its bias, O(d / n), is far below that spread here).
    rng, d, n = np.random.default_rng(0), 4, 20_000
    A, B = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    c1, c2 = A @ A.T / d + 0.2 * np.eye(d), B @ B.T / d + 0.2 * np.eye(d)
    m1, m2 = rng.normal(size=d), rng.normal(size=d)
    exact = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real)
    l1, l2 = np.linalg.cholesky(c1), np.linalg.cholesky(c2)
    fds = [metrics.frechet_distance(m1 + rng.normal(size=(n, d)) @ l1.T, m2 + rng.normal(size=(n, d)) @ l2.T)
           for _ in range(8)]
    spread = np.std(fds, ddof=1)
    assert abs(np.mean(fds) - exact) < 4 * spread / np.sqrt(len(fds))
    assert abs(fds[0] - exact) < 4 * spread


def test_frechet_distance_of_a_sample_with_itself_is_zero_and_checks_its_input():
    x = torch.randn(3000, 16, generator=config.generator(3))
    assert abs(metrics.frechet_distance(x, x)) < 1e-8
    y = x + 0.5
    assert metrics.frechet_distance(x, y) == pytest.approx(16 * 0.25, rel=1e-6)  # a shift: |m1 - m2|^2 only
    with pytest.raises(ValueError, match="same dimension"):
        metrics.frechet_distance(x, x[:, :3])


def test_importing_the_models_needs_no_mnist():
    code = ("import helpers.models as m, helpers.data as d; m.get('mnist-ddpm'); m.get('mnist-eval'); "
            "assert not d._MNIST_CACHE")
    env = {"COURSE_DATA_ROOT": "/nonexistent", "COURSE_DOWNLOAD": "0", "OMP_NUM_THREADS": "1", "PATH": ""}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_mnist_eval_has_no_sampler_and_says_so_in_one_line(tmp_checkpoints, capsys):
    spec = models.get("mnist-eval")
    checkpoints.save_model(tmp_checkpoints, "mnist-eval", nets.MNISTClassifier().state_dict(), spec.config,
                           {"mode": "fast"})
    code = cli.main(["sample", "mnist-eval", "--n", "2", "--out", str(tmp_checkpoints / "x.npy")])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: mnist-eval has no sampler (MNIST classifier whose features define the FD of chapters 6-8)\n"


@pytest.mark.usefixtures("mnist")
def test_mnist_quality_scores_real_digits_near_the_floor_and_noise_far_above():
    from helpers import data

    clf = _seeded(nets.MNISTClassifier).eval()  # any fixed feature map: real digits score like the floor
    test_images = data.mnist_tensors_cached(train=False)[0]
    real = test_images[torch.randperm(10_000, generator=config.generator(7))[:300]]
    q = metrics.mnist_quality(real[:, 0].numpy(), clf)
    assert set(q) >= {"fd", "fd_floor", "class_histogram", "class_tv", "class_tv_floor", "n"}
    assert q["n"] == 300 and sum(q["class_histogram"]) == 300
    noise = metrics.mnist_quality(torch.rand(300, 1, 28, 28, generator=config.generator(8)), clf)
    assert noise["fd_floor"] == q["fd_floor"]  # the same reference images, cached
    assert q["fd"] < 3 * q["fd_floor"] < noise["fd"]
    with pytest.raises(ValueError, match="\\[0, 1\\]"):
        metrics.mnist_quality(data.to_model_range(real), clf)


@pytest.mark.usefixtures("mnist")
def test_fd_floor_spread_shrinks_with_n_and_real_digits_fall_inside_it():
    """The floor's mean and sd fall with n (FD's bias and noise are O(1/n)); real test digits that are not the
    reference ones score within floor + 3 sd, uniform noise far outside. Any fixed feature map will do."""
    from helpers import data

    clf = _seeded(nets.MNISTClassifier).eval()
    mean_64, sd_64 = metrics.mnist_fd_floor_spread(clf, 64)
    mean_256, sd_256 = metrics.mnist_fd_floor_spread(clf, 256)
    assert mean_256 < mean_64 and 0 < sd_256 < sd_64
    real = data.mnist_tensors_cached(train=False)[0][torch.randperm(10_000, generator=config.generator(7))[:256]]
    assert metrics.mnist_quality(real, clf, n_reference_seed=9)["fd"] < mean_256 + 3 * sd_256
    noise = torch.rand(256, 1, 28, 28, generator=config.generator(2))
    assert metrics.mnist_quality(noise, clf)["fd"] > mean_256 + 30 * sd_256
    with pytest.raises(ValueError, match="draws"):
        metrics.mnist_fd_floor_spread(clf, 64, draws=1)


@pytest.mark.usefixtures("mnist")
def test_fast_mnist_ddpm_trains_and_the_cli_samples_digits(tmp_checkpoints, tmp_path, capsys):
    model, entry, result = models.train_model("mnist-ddpm", "fast", "cpu", progress=False)
    assert (tmp_checkpoints / "mnist-ddpm.pt").exists() and entry["mode"] == "fast"
    assert np.isfinite(result.losses).all() and entry["metrics"] == {}  # no mnist-eval in this folder
    stored, _ = checkpoints.load_model(tmp_checkpoints, "mnist-ddpm")
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    out = tmp_path / "x.npy"
    code = cli.main(["sample", "mnist-ddpm", "--n", "4", "--steps", "10", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    x = np.load(out)
    assert x.shape == (4, 28, 28) and x.dtype == np.float32
    again = models.sample("mnist-ddpm", models.load("mnist-ddpm")[0], 4, 10, seed=0)
    assert np.array_equal(x, again)  # seeded



@pytest.mark.usefixtures("mnist")
@pytest.mark.parametrize("name, sampler, steps", [("mnist-ddpm", "ancestral", 50), ("mnist-vpsde", "ode", 25)])
def test_shipped_generators_draw_digits(capsys, tmp_path, name, sampler, steps):
    out = tmp_path / "digits.npy"
    assert cli.main(["sample", name, "--n", "64", "--steps", str(steps), "--sampler", sampler, "--seed", "2",
                     "--out", str(out)]) == 0, capsys.readouterr().err
    x = np.load(out)
    assert x.shape == (64, 28, 28) and x.dtype == np.float32
    q = metrics.mnist_quality(x, models.load("mnist-eval")[0])
    # an untrained model's noise scores an FD of several hundred against a floor near 19 at n = 64
    assert q["fd"] < 3 * q["fd_floor"], q
    assert sum(h > 0 for h in q["class_histogram"]) >= 8, q["class_histogram"]


@pytest.mark.usefixtures("mnist")
def test_class_quality_scores_real_digits_of_the_class_near_its_floor_and_another_class_far_above():
    from helpers import data

    images, labels = data.mnist_tensors_cached(train=True)
    fives = images[:50_000][labels[:50_000] == 5][:200]  # training digits: neither reference set holds them
    threes = images[:50_000][labels[:50_000] == 3][:200]
    clf = models.evaluation_classifier()
    q5, q3 = metrics.mnist_class_quality(fives, 5, clf), metrics.mnist_class_quality(threes, 5, clf)
    assert q5["n"] == 200 and q5["fd_floor"] == q3["fd_floor"]  # the same real 5s as reference
    assert q5["accuracy"] > 0.97 and q3["accuracy"] < 0.03
    assert q3["predictions"].shape == (200,) and np.bincount(q3["predictions"]).argmax() == 3
    assert q5["accuracy"] == (q5["predictions"] == 5).mean()
    assert q5["fd"] < 2 * q5["fd_floor"] < q3["fd"]
    with pytest.raises(ValueError, match="more than the"):
        metrics.mnist_class_quality(torch.zeros(2000, 28, 28), 5, clf)
    with pytest.raises(ValueError, match="label must be a digit"):
        metrics.mnist_class_quality(fives, 10, clf)


def test_fd_record_shows_the_seeds_mean_and_sd_or_says_one_draw():
    three = {"eval_steps": 1000, "eval_sampler": "em", "eval_seeds": [123, 124, 125], "n": 1000, "fd": 2.5,
             "fd_sd": 0.2, "fd_seeds": [2.3, 2.5, 2.7], "fd_floor": 1.25, "class_tv": 0.05, "class_tv_floor": 0.04}
    line = models.fd_record(three)
    assert line.startswith("em, n = 1000, 1000 steps: FD 2.50 +- 0.20 over seeds 123, 124, 125 (2.30, 2.50, 2.70)")
    assert "floor 1.25 (ratio 2.00 +- 0.16)" in line
    one = {k: v for k, v in three.items() if k not in ("eval_seeds", "fd_sd", "fd_seeds", "eval_sampler")}
    assert models.fd_record(one).startswith("ancestral, n = 1000, 1000 steps: FD 2.50 (one draw, seed 123), floor")
