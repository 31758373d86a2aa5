"""Chapter 4's diffusion prior in ebm-mnist's 16-dimensional latent (`ebm-mnist-ddpm`; `ebm-mnist-pang-ddpm` is the
same code on another source): its latent scale in the loss and in both samplers, against the exact noise
predictors of Gaussian and of one-point latents, and its training (only the denoiser, from ebm-mnist's posterior
latents; a save/load round trip)."""

import copy
import dataclasses
import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from helpers import config, models, nets
from helpers.latent_ebm import LatentEBM
from helpers.models.ebm_diffusion import LatentDiffusionPrior
from helpers.models.moons import ddpm_schedule
from helpers.samplers.ddpm import respaced_steps


class ExactEps(nn.Module):
    """The exact noise predictor for data N(0, I): E[eps | z_i] = sqrt(1 - alpha_bar_i) z_i."""

    def __init__(self, alpha_bars: torch.Tensor):
        super().__init__()
        self.alpha_bars, self.T = alpha_bars, len(alpha_bars)

    def alpha_bar(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """alpha_bar_i at the network's times t = i / T: (B,) -> (B, 1), like z."""
        return self.alpha_bars[(t * self.T).round().long() - 1].to(z)[:, None]

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.alpha_bar(z, t)).sqrt() * z


def _scaled_model(scale: float):
    """ebm-mnist-ddpm's config at latent_scale `scale`, with the exact noise predictor and an identity
    generator from a 16-dim latent to 16 numbers."""
    cfg = copy.deepcopy(models.get("ebm-mnist-ddpm").config)
    cfg["process"]["latent_scale"] = scale
    generator = nets.MLPGenerator(16, 16, depth=0)
    with torch.no_grad():
        generator.net[0].weight.copy_(torch.eye(16))
        generator.net[0].bias.zero_()
    model = LatentDiffusionPrior(LatentEBM(nets.EBMPrior(16), generator), ExactEps(ddpm_schedule(cfg).alpha_bars))
    return model, cfg


@pytest.mark.parametrize("scale, matches", [(2.0, True), (1.0, False)])
def test_the_loss_divides_latents_by_their_scale(scale, matches):
    # latents N(0, 4 I) at latent_scale 2 are N(0, I) to the denoiser, whose exact loss is then mean(alpha_bar_i):
    # the residual eps - sqrt(1 - ab) z_i = ab eps - sqrt(ab (1 - ab)) z_0 has variance ab^2 + ab (1 - ab) = ab
    model, cfg = _scaled_model(scale)
    spec, n = models.get("ebm-mnist-ddpm"), 20_000
    z = 2.0 * torch.randn(n, 16, generator=config.generator(0))
    loss = float(spec.loss(cfg)(model, z, config.generator(1)))
    exact = float(ddpm_schedule(cfg).alpha_bars.mean())
    # a row's mean over 16 dimensions has sd below 0.5 (ab^2 chi^2_16 / 16 and the spread of ab over i)
    assert (abs(loss - exact) < 4 * 0.5 / math.sqrt(n)) == matches, (loss, exact)


def test_the_sampler_hands_the_generator_latents_times_their_scale():
    # with the exact eps of N(0, I), an ancestral step keeps the variance: sqrt(a) z + sqrt(beta) noise; the last
    # step adds no noise, so z_0 has variance alpha_bar at the first kept step, and the generator gets scale * z_0
    model, cfg = _scaled_model(1.37)
    spec, n, steps = models.get("ebm-mnist-ddpm"), 20_000, 50
    x, _ = spec.samplers["ancestral"](model, cfg, (n, 16), steps, config.generator(0), torch.device("cpu"))
    first_ab = float(ddpm_schedule(cfg).alpha_bars[respaced_steps(1000, steps)[0] - 1])
    want = 1.37 ** 2 * first_ab
    assert abs(float(x.var(0).mean()) / want - 1) < 4 * math.sqrt(2 / (n * 16)), (float(x.var(0).mean()), want)


class PointEps(ExactEps):
    """The exact noise predictor for latents all at one point c (16,): eps = (z_i - sqrt(alpha_bar_i) c) /
    sqrt(1 - alpha_bar_i), so that its data prediction is c at every step."""

    def __init__(self, alpha_bars: torch.Tensor, c: torch.Tensor):
        super().__init__(alpha_bars)
        self.c = c

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar(z, t)
        return (z - ab.sqrt() * self.c) / (1 - ab).sqrt()


@pytest.mark.parametrize("sampler", ["ancestral", "sde-dpm2m"])
def test_every_sampler_lands_on_a_point_prior_and_hands_it_on_times_the_scale(sampler):
    # latents all at c: the exact data prediction is c everywhere, and both samplers' last step returns it
    # (ancestral: the step from i to 0 has beta / (1 - alpha_bar) = 1; the solver: a data-prediction step to t = 0)
    model, cfg = _scaled_model(1.37)
    c = torch.randn(16, generator=config.generator(5))
    model.denoiser = PointEps(ddpm_schedule(cfg).alpha_bars, c)
    x, _ = models.get("ebm-mnist-ddpm").samplers[sampler](model, cfg, (64, 16), 20, config.generator(0),
                                                          torch.device("cpu"))
    torch.testing.assert_close(x, 1.37 * c.expand(64, 16), rtol=0, atol=1e-4)


@pytest.mark.usefixtures("mnist")
def test_ebm_mnist_ddpm_trains_only_its_denoiser_from_ebm_mnist_and_round_trips(monkeypatch, tmp_checkpoints):
    shipped = config.REPO_ROOT / "checkpoints"
    for f in ("manifest.json", "ebm-mnist.pt"):
        shutil.copy(shipped / f, tmp_checkpoints)
    spec = models.get("ebm-mnist-ddpm")
    monkeypatch.setitem(models.REGISTRY, "ebm-mnist-ddpm",
                        dataclasses.replace(spec, fast={"steps": 3, "latents": 300, "batch": 64}))
    model, _, _ = models.train_model("ebm-mnist-ddpm", "fast", "cpu", progress=False, evaluate=False)
    source = models.load("ebm-mnist")[0]
    for a, b in zip(model.generator.state_dict().values(), source.generator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)  # frozen, but for the EMA's float rounding
    assert not torch.equal(model.denoiser.out.weight, spec.build(spec.budget("fast")).denoiser.out.weight)
    loaded = models.load("ebm-mnist-ddpm")[0]
    a = models.sample("ebm-mnist-ddpm", model, 8, 20, seed=3)
    assert a.shape == (8, 28, 28) and np.array_equal(a, models.sample("ebm-mnist-ddpm", loaded, 8, 20, seed=3))
