"""`ebm-2d`: the latent-space EBM prior model (Pang et al. 2020) on make_moons (noise 0.05). Chapter 4.

A `latent_ebm.LatentEBM` with an MLP prior f_alpha on a 2D latent and an MLP generator, trained on
standardised moons with two learning rates (the prior's and the generator's: `param_groups`). Its one
sampler, "prior", runs the short-run prior chain in z from p_0 and returns the generator mean g_beta(z),
as the paper's samples are drawn.

Budget (one CPU thread): 5000 steps of batch 256 at about 0.34 s a step (28 minutes), each step two
short-run chains (60 prior steps of h = 0.05 in standardised units with sigma_0 = 1; 80 posterior steps of
h = 5e-4 with sigma = 0.05) and one Adam step at lr 1e-3 (generator) and 2e-4 (prior). Measured while
choosing it: a prior lr of 4e-4 or 1e-3 diverges (f falls to -1e5 and below within 1500-2000 steps).
"""

from __future__ import annotations

import torch

from .. import nets
from ..latent_ebm import LatentEBM
from ..samplers.kernels import Trajectory
from .moons import MOONS_NOISE, moons_batches, moons_evaluator, moons_to_data
from .registry import ModelSpec, register


def build_latent_ebm(cfg: dict) -> LatentEBM:
    """The LatentEBM of an ebm config: EBMPrior and generator from "arch", sigma_0 and sigma from "process"."""
    a, p = cfg["arch"], cfg["process"]
    prior = nets.EBMPrior(a["latent_dim"], a["prior_hidden"], a["prior_depth"])
    generator = nets.MLPGenerator(a["latent_dim"], a["data_dim"], a["gen_hidden"], a["gen_depth"])
    return LatentEBM(prior, generator, p["sigma_0"], p["sigma"])


def _loss(cfg: dict):
    p = cfg["process"]
    return lambda model, x, g: model.training_loss(x, g, p["prior_steps"], p["prior_h"], p["post_steps"], p["post_h"])


def _param_groups(model: LatentEBM, cfg: dict) -> list[dict]:
    """The prior at lr_prior, the generator at lr (Pang et al. train them with separate Adam learning rates)."""
    tc = cfg["train"]
    return [{"params": list(model.prior.parameters()), "lr": tc["lr_prior"]},
            {"params": list(model.generator.parameters()), "lr": tc["lr"]}]


def _prior_sampler(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """Short-run prior chain of `steps` ULA steps (None: the config's prior_steps) from p_0, then g_beta(z).

    The Trajectory holds g_beta of the kept latents (shape of x), at chain times 1 - k / steps."""
    p = cfg["process"]
    z, traj = model.prior_chain(shape[0], steps or p["prior_steps"], p["prior_h"], generator, keep_every)
    with torch.no_grad():
        x = model.generator(z)
        states = torch.stack([model.generator(s.to(z)).cpu() for s in traj.states])
    return x, Trajectory(traj.times, states, traj.nfev)


register(ModelSpec(
    name="ebm-2d", chapter=4, summary="latent-space EBM prior and MLP generator on make_moons (noise 0.05)",
    config={"arch": {"latent_dim": 2, "data_dim": 2, "prior_hidden": 128, "prior_depth": 2, "gen_hidden": 128,
                     "gen_depth": 3},
            "process": {"noise": MOONS_NOISE, "sigma_0": 1.0, "sigma": 0.05, "prior_steps": 60, "prior_h": 0.05,
                        "post_steps": 80, "post_h": 5e-4},
            "train": {"steps": 5000, "batch": 256, "lr": 1e-3, "lr_prior": 2e-4, "lr_schedule": "cosine",
                      "warmup": 200, "seed": 0, "checkpoint_every": 500}},
    fast={"steps": 100, "batch": 128},
    build=build_latent_ebm, batches=moons_batches, loss=_loss, evaluate=moons_evaluator("ebm-2d"),
    samplers={"prior": _prior_sampler}, sample_shape=(2,), to_data=moons_to_data, param_groups=_param_groups,
    record=lambda model: dict(model.last_parts),
))
