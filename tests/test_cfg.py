"""Classifier-free guidance (scores.cfg_eps, mnist-cfg, chapter 8) against the closed form of a two-class
Gaussian model, its conditional U-Net and label dropout, and its command line."""

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from helpers import config, models, nets, scores
from helpers.errors import CheckpointError, ConfigError
from helpers.sde import VPSDE
from test_cli import _run  # (status, stdout, stderr) of `python -m helpers ARGV`
from test_guidance import MU, S2, exact_score, tilted_score

SDE = VPSDE()


class ExactConditionalEps:
    """eps(x, t, y) = -sigma(t) grad log p(x | y) of test_guidance's two Gaussians (y = 2: no label, p(x)):
    the noise predictor a perfect classifier-free training would reach. Counts its calls."""

    classes = 2

    def __init__(self):
        self.calls = 0

    def __call__(self, x, t, y):
        self.calls += 1
        sigma = SDE.marginal_std(t)[:, None]
        if y is None:
            return -sigma * exact_score(x, t)
        cond = (MU[y.clamp(max=1)] - x) / S2
        return -sigma * torch.where((y == 2)[:, None], exact_score(x, t), cond)


@pytest.mark.parametrize("y, w", [(0, 0.0), (1, 0.0), (0, 1.0), (1, 3.0), (0, 7.0), (1, -0.5)])
def test_cfg_is_classifier_guidance_by_the_implicit_classifier_at_gamma_one_plus_w(y, w):
    # (1 + w) s(x | y) - w s(x) = s(x) + (1 + w) grad log p(y | x): the score of p(x) p(y | x)^(1 + w)
    x, t = torch.randn(16, 2, dtype=torch.float64), torch.rand(16, dtype=torch.float64) * 0.9 + 0.05
    score = scores.eps_score(scores.cfg_eps(ExactConditionalEps(), y, w), SDE)
    torch.testing.assert_close(score(x, t), tilted_score(x, y, 1 + w))


def test_cfg_at_w_minus_one_and_zero_is_one_network_call_and_else_one_call_on_a_double_batch():
    x, t = torch.randn(5, 2, dtype=torch.float64), torch.full((5,), 0.3, dtype=torch.float64)
    for w, want in ((-1.0, exact_score(x, t)), (0.0, (MU[1] - x) / S2)):
        net = ExactConditionalEps()
        torch.testing.assert_close(scores.eps_score(scores.cfg_eps(net, 1, w), SDE)(x, t), want)
        assert net.calls == 1
    net = ExactConditionalEps()
    scores.cfg_eps(net, 1, 2.0)(x, t)
    assert net.calls == 1  # conditional and unconditional predictions in one batch of 2B


@pytest.mark.parametrize("label, w, match", [(2, 1.0, "label must be >= 0 and below 2"), (-1, 1.0, "label"),
                                             (0.5, 1.0, "label must be an integer"), (0, -1.5, "w must be"),
                                             (0, float("nan"), "w must be")])
def test_cfg_refuses_bad_labels_and_scales_naming_the_argument(label, w, match):
    with pytest.raises(ValueError, match=match):
        scores.cfg_eps(ExactConditionalEps(), label, w)


def test_conditional_unet_reads_the_label_and_takes_none_as_the_null_label():
    torch.manual_seed(0)
    net = nets.ConditionalUNet(classes=10, channels=(8, 16), blocks=1, attention=False, time_dim=16)
    for p in net.parameters():  # past the zero-initialised output conv, as after training
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(3, 1, 28, 28), torch.rand(3)
    out = net(x, t, torch.tensor([1, 2, 3]))
    assert out.shape == x.shape
    torch.testing.assert_close(net(x, t), net(x, t, torch.full((3,), 10)))
    assert not torch.allclose(out, net(x, t, torch.tensor([4, 2, 3])))
    with pytest.raises(ValueError, match=r"y \(B,\) = \(3,\) integer labels in 0..10"):
        net(x, t, torch.tensor([1, 2, 11]))
    with pytest.raises(ValueError, match="y"):
        net(x, t, torch.tensor([1.0, 2.0, 3.0]))


def test_start_from_gives_every_label_the_unconditional_unets_prediction_and_refuses_another_shape():
    unet = _scrambled_unet("mnist-vpsde").eval()
    cond = models.get("mnist-cfg").build(models.get("mnist-cfg").config).eval()
    assert cond.start_from(unet) is cond
    x, t = torch.randn(3, 1, 28, 28), torch.rand(3)
    with torch.no_grad():
        want = unet(x, t)
        for y in range(11):  # ten digits and the null label: bit for bit
            assert torch.equal(cond(x, t, torch.full((3,), y)), want)
        assert torch.equal(cond(x, t), want)
    other = nets.UNet(channels=(8, 16), blocks=1, attention=False, time_dim=16)
    with pytest.raises(ValueError, match="start_from needs a UNet built with this network's arguments"):
        cond.start_from(other)


@pytest.mark.usefixtures("mnist")
def test_a_budget_with_init_from_starts_from_that_checkpoint(tmp_checkpoints, monkeypatch):
    """train_model with init_from = mnist-vpsde (its shipped checkpoint), through the null teacher's loss, at
    lr = 1e-12 (a change that float16 storage rounds away): the saved mnist-cfg predicts mnist-vpsde's eps
    for every label, bit for bit."""
    shipped = config.REPO_ROOT / "checkpoints"
    shutil.copy(shipped / "manifest.json", tmp_checkpoints)
    shutil.copy(shipped / "mnist-vpsde.pt", tmp_checkpoints)
    spec = models.get("mnist-cfg")
    fast = {**spec.fast, "steps": 2, "lr": 1e-12, "init_from": "mnist-vpsde", "null_teacher": "mnist-vpsde"}
    monkeypatch.setitem(models.REGISTRY, "mnist-cfg", dataclasses.replace(spec, fast=fast))
    models.train_model("mnist-cfg", "fast", progress=False, evaluate=False)
    cond, source = models.load("mnist-cfg")[0], models.load("mnist-vpsde")[0]
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    with torch.no_grad():
        want = source(x, t)
        for y in (0, 9, 10):
            assert torch.equal(cond(x, t, torch.full((2,), y)), want)


def test_a_budget_with_init_from_names_the_missing_source(tmp_checkpoints, monkeypatch):
    spec = models.get("mnist-cfg")
    monkeypatch.setitem(models.REGISTRY, "mnist-cfg",
                        dataclasses.replace(spec, fast={**spec.fast, "steps": 2, "init_from": "mnist-vpsde"}))
    with pytest.raises(CheckpointError, match="this budget starts from mnist-vpsde"):
        models.train_model("mnist-cfg", "fast", progress=False, evaluate=False)


def test_mnist_cfgs_label_embedding_trains_at_its_own_learning_rate_and_every_weight_once():
    spec = models.get("mnist-cfg")
    net = spec.build(spec.config)
    groups = spec.param_groups(net, spec.config)
    tc = spec.config["train"]
    assert [g["lr"] for g in groups] == [tc["lr"] * tc["label_lr_factor"], tc["lr"]] and tc["label_lr_factor"] > 1
    assert groups[0]["params"] == [net.label_embed.weight]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in net.parameters())


def test_the_null_teacher_target_replaces_the_noise_by_the_posterior_mean_on_null_rows_only():
    """On Gaussian data x0 ~ N(0, s^2), E[z | x_t] = sigma x_t / (alpha^2 s^2 + sigma^2) is exact. With it as the
    model, the plain loss is the mean posterior variance E_t[alpha^2 s^2 / (alpha^2 s^2 + sigma^2)] (within 4
    standard errors). With it as the teacher (same draws), the null rows' errors vanish exactly and the other
    rows keep theirs: the loss is 0 with every row null, and the labelled rows' share of the plain loss with half."""
    from scipy.integrate import quad

    from helpers import losses
    from helpers.models.mnist_cfg import teacher_target

    s2, n, eps = 0.3, 20_000, 1e-3

    def posterior_mean(x_t, t):
        a, sig = SDE.alpha(t)[:, None], SDE.marginal_std(t)[:, None]
        return sig * x_t / (a**2 * s2 + sig**2)

    def var(t):
        a2 = float(SDE.alpha(torch.tensor([t], dtype=torch.float64))) ** 2
        return a2 * s2 / (a2 * s2 + 1 - a2)

    x0 = torch.randn(n, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * s2**0.5
    errors = []  # each row's squared error under the plain target z, recorded by the target hook

    def plain_target(x_t, t, z):
        errors.append((posterior_mean(x_t, t) - z)[:, 0] ** 2)
        return z

    def loss(target):
        return float(losses.vpsde_loss(posterior_mean, x0, SDE, torch.Generator().manual_seed(1), eps, target=target))

    want, plain = quad(var, eps, 1.0)[0] / (1 - eps), loss(plain_target)
    se = float(errors[0].std()) / n**0.5
    assert abs(plain - want) < 4 * se, (plain, want, se)
    assert loss(teacher_target(posterior_mean, torch.ones(n, dtype=torch.bool))) == pytest.approx(0.0, abs=1e-15)
    null = torch.arange(n) % 2 == 0
    assert loss(teacher_target(posterior_mean, null)) == pytest.approx(float(errors[0][~null].sum()) / n, rel=1e-12)


def test_the_null_label_distils_the_teacher_on_every_row_in_one_batch():
    """NullOnEveryRow on a model eps(x, t, y) = (y + 1) x: it returns the labelled rows' eps, and its penalty is
    the null label's (here eps = 11 x) mean squared distance to the teacher: 0 for the teacher 11 x, 81 mean x^2
    for 2 x, with the gradient flowing to the model and not to the teacher."""
    from helpers.models.mnist_cfg import NullOnEveryRow

    scale = torch.ones((), requires_grad=True)
    model = lambda x, t, y: scale * (y + 1).to(x)[:, None] * x  # noqa: E731
    x, t, y = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)), torch.rand(6), torch.arange(6)
    net = NullOnEveryRow(model, y, 10, lambda x_, t_: 11 * x_)
    torch.testing.assert_close(net(x, t), (y + 1)[:, None] * x, rtol=0, atol=0)
    assert float(net.penalty.detach()) == 0.0
    net = NullOnEveryRow(model, y, 10, lambda x_, t_: 2 * x_)
    net(x, t)
    assert float(net.penalty.detach()) == pytest.approx(81 * float(x.pow(2).mean()), rel=1e-6)
    (grad,) = torch.autograd.grad(net.penalty, scale)  # d/ds mean (11 s x - 2 x)^2 at s = 1: 2 * 11 * 9 mean x^2
    assert float(grad) == pytest.approx(198 * float(x.pow(2).mean()), rel=1e-6)


def test_drop_labels_drops_at_the_rate_asked_and_is_seeded():
    y = torch.arange(10).repeat(1000)
    dropped = models.drop_labels(y, 0.2, 10, torch.Generator().manual_seed(0))
    share = float((dropped == 10).double().mean())
    assert abs(share - 0.2) < 4 * (0.2 * 0.8 / len(y)) ** 0.5  # binomial: 4 standard errors
    kept = dropped != 10
    assert torch.equal(dropped[kept], y[kept])
    assert torch.equal(dropped, models.drop_labels(y, 0.2, 10, torch.Generator().manual_seed(0)))
    assert torch.equal(models.drop_labels(y, 0.0, 10, torch.Generator()), y)
    assert bool((models.drop_labels(y, 1.0, 10, torch.Generator()) == 10).all())
    with pytest.raises(ValueError, match="p_uncond"):
        models.drop_labels(y, 1.5, 10, torch.Generator())


def _scrambled_unet(name: str = "mnist-cfg"):
    """`name`'s network (chapter 7's U-Net, or mnist-cfg's conditional one) with every weight perturbed."""
    torch.manual_seed(0)
    spec = models.get(name)
    unet = spec.build(spec.config)
    with torch.no_grad():  # past the zero-initialised convs, as after training; small, so samples stay inside
        for p in unet.parameters():  # [0, 1], where the labels' samples can differ
            p.add_(0.02 * torch.randn_like(p))
    return unet


def test_cfg_samples_one_label_per_sample_through_the_chunks_and_without_a_label_unconditionally():
    unet = _scrambled_unet()
    kw = dict(steps=2, seed=3, sampler="ancestral", scale=2.0, chunk=2)
    mixed = models.sample("mnist-cfg", unet, 4, label=[3, 3, 7, 7], **kw)
    threes = models.sample("mnist-cfg", unet, 4, label=3, **kw)
    sevens = models.sample("mnist-cfg", unet, 4, label=7, **kw)
    assert np.array_equal(mixed[:2], threes[:2]) and np.array_equal(mixed[2:], sevens[2:])
    assert not np.allclose(threes, sevens)
    free = models.sample("mnist-cfg", unet, 4, steps=2, seed=3, sampler="ancestral", chunk=2)
    null = models.sample("mnist-cfg", unet, 4, label=3, **{**kw, "scale": -1.0})  # w = -1: the null label only
    assert np.array_equal(free, null)
    with pytest.raises(ConfigError, match="w must be a finite number >= -1"):
        models.sample("mnist-cfg", unet, 4, label=3, **{**kw, "scale": -2.0})
    with pytest.raises(ConfigError, match="n = 4 of them, got 3"):
        models.sample("mnist-cfg", unet, 4, label=[1, 2, 3], **kw)


@pytest.mark.usefixtures("mnist")
def test_cfg_sampling_from_the_command_line(capsys, tmp_path, tmp_checkpoints, monkeypatch):
    spec = models.get("mnist-cfg")  # three training steps: a checkpoint for the command line to read
    monkeypatch.setitem(models.REGISTRY, "mnist-cfg", dataclasses.replace(spec, fast={**spec.fast, "steps": 3}))
    models.train_model("mnist-cfg", "fast", progress=False, evaluate=False)
    for argv in (["--label", "5", "--scale", "2"], []):
        out = tmp_path / "digits.npy"
        code, _, err = _run(capsys, "sample", spec.name, *argv, "--n", "3", "--steps", "3", "--out", str(out),
                            "--no-progress")
        assert code == 0, err
        x = np.load(out)
        assert x.shape == (3, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        out.unlink()
    code, _, err = _run(capsys, "sample", spec.name, "--label", "5", "--scale", "-1", "--n", "3", "--out", str(out))
    assert code == 2 and "expected a finite number >= 0" in err and len(err.strip().splitlines()) == 1
