"""Three 2D latent priors handled exactly on a grid (`grid_density`), beside ebm-2d: chapter 4, section 7.

In a 2D latent the normaliser of p_omega(z) = exp(f_omega(z)) p_0(z) / Z(omega) is a sum over a grid, and exact
draws of p_omega need no chain. That separates the three things ebm-2d's samples depend on: the family of f
(an MLP of width 128), the way it was learnt (Pang et al.'s gradient with a short-run prior chain), and the
sampler. Both models sample with "exact" (grid draws, then g_psi(z)) by default, and with "prior", ebm-2d's
short-run chain.

ebm-2d-mle    the family's ceiling: ebm-2d's generator, frozen, and f_omega (ebm-2d's MLP, started from ebm-2d's
              weights) fitted by maximum likelihood to the aggregate posterior of ebm-2d: 20,000 latents from
              ebm-2d's posterior chains on fresh moons, each step a batch of 1024 of them and log Z on a grid
              of spacing 0.05 over [-6, 6]^2 shifted by a random offset (`grid_density.nll_loss`). 3000 Adam
              steps at lr 1e-3 (cosine), 338 s on one CPU thread; the generator is in no optimizer group. The
              best fit, in likelihood, that this family reaches for this generator's latents.
ebm-2d-exact  Pang et al.'s learning (ebm-2d's model, budget and posterior chain) with the short-run prior chain
              replaced by exact draws of p_omega from the same grid: the same learning with a training-time
              prior sampler that resolves whatever f becomes. Against ebm-2d it shows whether the short-run
              chain limited f through training. One setting differs: lr_prior 1e-3, five times ebm-2d's, which
              the short-run chain cannot take (ebm.py: at 4e-4 or 1e-3 its learning diverges). Measured while
              choosing it (n = 2000, bandwidth 0.1, mean +- sd over 3 seeds other than the chapter's): at ebm-2d's
              lr_prior 2e-4, exact draws gave MMD^2 1.19e-2 +- 0.03e-2 (ebm-2d's own: 0.85e-2), at 1e-3
              0.64e-2 +- 0.01e-2. 5000 steps, 698 s on one CPU thread.
ebm-2d-exact-mle
              ebm-2d-mle's fit on ebm-2d-exact's generator and latents: the family's ceiling for a generator
              that learnt beside a prior it could sample exactly.
"""

from __future__ import annotations

import copy

import torch

from .. import config, data, grid_density
from ..latent_ebm import LatentEBM
from ..samplers.kernels import Trajectory
from .ebm import EBM_2D, _param_groups as ebm_param_groups, _prior_sampler, build_latent_ebm
from .lifecycle import load
from .moons import moons_batches, moons_evaluator, moons_to_data
from .registry import ModelSpec, register

GRID = {"lim": 6.0, "spacing": 0.05}  # the square [-lim, lim]^2 holds p_0's and the aggregate posterior's mass
SAMPLE_SPACING = 0.025  # the exact sampler's cells: half the training grid's, so a cell's own error is small


def _exact_sampler(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """Exact draws of p_omega on the grid of cells of side SAMPLE_SPACING (`grid_density.sample`), then
    g_psi(z); steps is ignored. A draw has no path: the Trajectory holds the samples at times 1 and 0, and its
    nfev counts the evaluations of f_omega, one per cell (230,400 on [-6, 6]^2), shared by all the samples."""
    lim = cfg["process"]["grid"]["lim"]
    with torch.no_grad():
        z = grid_density.sample(model.log_prior, shape[0], lim, SAMPLE_SPACING, generator, device)
        x = model.generator(z)
    cells = round(2 * lim / SAMPLE_SPACING) ** 2
    return x, Trajectory(torch.tensor([1.0, 0.0], dtype=torch.float64), torch.stack([x.cpu(), x.cpu()]), cells)


def posterior_latents(model: LatentEBM, cfg: dict, n: int, seed: int) -> torch.Tensor:
    """Latents (n, 2) of `model`'s aggregate posterior: one posterior chain (the config's post_steps, post_h)
    from p_0 for each of n fresh standardised moons (seed: the moons', seed + 1: the chains')."""
    p = cfg["process"]
    mean, std = data.moons_moments(p["noise"])
    x = (data.sample_moons(n, p["noise"], config.generator(seed)) - mean) / std
    x = x.to(next(model.parameters()))
    with torch.no_grad():
        return model.posterior_chain(x, p["post_steps"], p["post_h"], config.generator(seed + 1))[0]


def posterior_latent_batches(cfg: dict):
    """draw(generator) -> a batch (B, 2) of the source model's posterior latents (train.init_from: ebm-2d or
    ebm-2d-exact), drawn with replacement from a store of train.latents of them (computed once, on the CPU, from
    the source's shipped checkpoint)."""
    tc = cfg["train"]
    return resampler(posterior_latents(load(tc["init_from"], "cpu")[0], cfg, tc["latents"], seed=7), tc["batch"])


def resampler(store: torch.Tensor, batch: int):
    """draw(generator) -> `batch` rows of `store` (n, d), drawn with replacement: the batches of a prior fitted
    to a fixed store of posterior latents (chapter 4, sections 7 and 8)."""
    return lambda g: store[torch.randint(0, len(store), (batch,), generator=g)]


def _mle_loss(cfg: dict):
    grid = cfg["process"]["grid"]
    return lambda model, z, g: grid_density.nll_loss(model.log_prior, z, grid["lim"], grid["spacing"], g)


def _prior_only(model: LatentEBM, cfg: dict) -> list[dict]:
    """Only f_omega trains (at the budget's lr): the generator is the source model's, frozen."""
    return [{"params": list(model.prior.parameters()), "lr": cfg["train"]["lr"]}]


def _exact_loss(cfg: dict):
    """Pang et al.'s learning loss (`LatentEBM.learning_loss`) with z_prior exact draws of p_omega on the grid
    (`grid_density.sample`) in place of the short-run prior chain; the posterior chain as ebm-2d's."""
    p, grid = cfg["process"], cfg["process"]["grid"]

    def loss(model: LatentEBM, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        z_prior = grid_density.sample(model.log_prior, len(x), grid["lim"], grid["spacing"], g, x.device)
        z_post, _ = model.posterior_chain(x, p["post_steps"], p["post_h"], g)
        out, model.last_parts = model.learning_loss(x, z_prior, z_post)
        model._guard(z_prior, model.last_parts)
        return out
    return loss


GRID_PROCESS = {**copy.deepcopy(EBM_2D["process"]), "grid": dict(GRID)}
SAMPLERS = {"exact": _exact_sampler, "prior": _prior_sampler}

for _name, _source in (("ebm-2d-mle", "ebm-2d"), ("ebm-2d-exact-mle", "ebm-2d-exact")):
    register(ModelSpec(
        name=_name, chapter=4, summary=f"{_source}'s generator with its prior fitted by maximum likelihood on a grid",
        config={"arch": copy.deepcopy(EBM_2D["arch"]), "process": copy.deepcopy(GRID_PROCESS),
                "train": {"steps": 3000, "batch": 1024, "lr": 1e-3, "lr_schedule": "cosine", "warmup": 0, "seed": 0,
                          "init_from": _source, "latents": 20_000, "checkpoint_every": 500}},
        fast={"steps": 100, "latents": 2000},
        build=build_latent_ebm, batches=posterior_latent_batches, loss=_mle_loss, evaluate=moons_evaluator(_name),
        samplers=SAMPLERS, sample_shape=(2,), to_data=moons_to_data, param_groups=_prior_only,
    ))

register(ModelSpec(
    name="ebm-2d-exact", chapter=4, summary="ebm-2d's learning with exact prior draws on a grid for the prior chain",
    config={"arch": copy.deepcopy(EBM_2D["arch"]), "process": copy.deepcopy(GRID_PROCESS),
            "train": {**copy.deepcopy(EBM_2D["train"]), "lr_prior": 1e-3}},
    fast={"steps": 100, "batch": 128, "warmup": 10},
    build=build_latent_ebm, batches=moons_batches, loss=_exact_loss, evaluate=moons_evaluator("ebm-2d-exact"),
    samplers=SAMPLERS, sample_shape=(2,), to_data=moons_to_data, param_groups=ebm_param_groups,
    record=lambda model: dict(model.last_parts),
))
