"""A diffusion prior in a latent EBM's latent space, fitted after the fact (two-stage, as in latent diffusion and
LSGM): chapter 4, sections 7 (moons) and 8 (MNIST).

ebm-2d-ddpm        chapter 1's DDPM (`nets.TimeMLP`, T = 1000, moons-ddpm's budget: 30,000 steps of batch 1024)
                   trained on 20,000 latents of ebm-2d's aggregate posterior, with ebm-2d's generator frozen;
ebm-2d-exact-ddpm  the same on ebm-2d-exact's generator and latents.
Each trained in 288-290 s on one CPU thread. Chapter 4 measures them on the same generators as the energy-based
priors and their family's ceilings, ebm-2d-mle and ebm-2d-exact-mle (`ebm_grid`).
ebm-mnist-ddpm     the same in ebm-mnist's 16-dimensional latent: a TimeMLP of width 256 on the latents of
                   ebm-mnist's posterior chains of the first 20,000 training digits, divided by their sd
                   (process.latent_scale 1.37: the sd of each of the 16 coordinates, averaged; 1.370 by `python -c
                   "from helpers import data, models; from helpers.models import ebm; m, e = models.load('ebm-mnist');
                   print(ebm.digit_posterior_latents(m, e['config'], data.mnist_tensors_cached()[0][:20000], 'cpu',
                   seed=100).std(0).mean())"`); 20,000 steps of batch 1024, 621 s on one CPU
                   thread. Measured while choosing it (FD, n = 1000, 1000 ancestral steps): the latents of all
                   60,000 training digits gave 7.97, 7.90 and 8.48 at chapter 4's seeds 5-7 (these 20,000: 7.24,
                   7.28, 8.68) and 9.19 at the evaluation's seed 123 (8.98): no better.
ebm-mnist-pang-ddpm the same on ebm-mnist-pang's latents (Pang et al.'s generator), divided by 1.75, the sd of
                   all entries of its first 5000 training digits' latents (1.748 by the command above with
                   'ebm-mnist-pang', [:5000] and .std() instead of .std(0).mean(): another convention than
                   ebm-mnist-ddpm's, which measured this way is 1.43; either brings the latents near unit
                   variance, all the DDPM needs): 384 s on two CPU threads. Stored in float16 like its source
                   (5.1 MB).
Samplers: "ancestral", DDPM ancestral steps in the latent (the default, all 1000), and "sde-dpm2m", chapter 6's
SDE-DPM-Solver++(2M) on the DDPM's own steps (20 network calls by default); then g_psi(z). Measured on
ebm-mnist-ddpm at chapter 4's seeds 5-7 (FD, n = 1000; `python -m helpers sample ebm-mnist-ddpm --n 1000 --seed S
--sampler sde-dpm2m --steps 50 --out F.npy`, then `python -m helpers quality F.npy`): 50 solver calls 7.94, 8.52,
7.09; 200 respaced ancestral steps (`--sampler ancestral --steps 200`) 7.08, 7.78, 7.21; chapter 4 prints the
20-call ones (6.19, 6.98, 6.57) and the first seed's 1000 ancestral steps (7.24).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import data, losses, nets
from ..samplers.kernels import Trajectory
from .ebm import EBM_2D, EBM_MNIST, EBM_MNIST_PANG, build_latent_ebm, digit_posterior_latents, mnist_evaluator
from .ebm_grid import GRID_PROCESS, posterior_latent_batches, resampler
from .lifecycle import load
from .mnist_common import DIGIT_SHAPE, digits_to_data
from .mnist_ddpm import ddpm_ancestral_sampler, ddpm_solver
from .moons import MOONS_ARCH, MOONS_FAST, MOONS_TRAIN, ddpm_schedule, moons_evaluator, moons_to_data
from .registry import ModelSpec, register

LATENT_SCALE_PANG = 1.75  # the sd of all entries of ebm-mnist-pang's posterior latents of 5000 digits (docstring)


class LatentDiffusionPrior(nn.Module):
    """A latent EBM's generator g_psi with a DDPM noise predictor eps(z_t, t) on its latent. Chapter 4.

    `latent_ebm`: the source model (a `LatentEBM`, its prior unused after the start); `denoiser`: a
    `nets.TimeMLP` on the latent, (B, d), (B,) -> (B, d)."""

    def __init__(self, latent_ebm: nn.Module, denoiser: nn.Module):
        super().__init__()
        self.latent_ebm, self.denoiser = latent_ebm, denoiser
        self.generator = latent_ebm.generator

    def start_from(self, other: nn.Module) -> None:
        """Copy the source LatentEBM (a budget's `init_from`): its generator, frozen during training."""
        self.latent_ebm.start_from(other)


def _build(cfg: dict) -> LatentDiffusionPrior:
    denoiser = nets.TimeMLP(dim=cfg["arch"]["latent_dim"], **cfg["arch"]["ddpm"])
    return LatentDiffusionPrior(build_latent_ebm(cfg), denoiser)


def _loss(cfg: dict):
    """The DDPM loss (`losses.ddpm_loss`, Ho et al. 2020 eq. 14) of the denoiser on a batch of latents divided
    by process.latent_scale (absent: 1)."""
    schedule, scale = ddpm_schedule(cfg), cfg["process"].get("latent_scale", 1.0)
    return lambda model, z, g: losses.ddpm_loss(model.denoiser, z / scale, schedule, g)


def _denoiser_only(model: LatentDiffusionPrior, cfg: dict) -> list[dict]:
    """Only the noise predictor trains: the generator is the source model's, frozen."""
    return [{"params": list(model.denoiser.parameters()), "lr": cfg["train"]["lr"]}]


def _decode(model, cfg, z, traj):
    """(g_psi(z * latent_scale), the Trajectory of g_psi of its kept latents) for a sampler's final latents z."""
    scale = cfg["process"].get("latent_scale", 1.0)
    with torch.no_grad():
        x = model.generator(z * scale)
        states = torch.stack([model.generator(s.to(z) * scale).cpu() for s in traj.states])
    return x, Trajectory(traj.times, states, traj.nfev)


def _in_latent(sampler, what: str):
    """`sampler`, one of chapter 6's mnist-ddpm samplers (`mnist_ddpm`), run on the prior's noise predictor in
    z from z_T ~ N(0, I) of shape (n, latent_dim), then g_psi(z) (`_decode`)."""
    def run(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
        z, traj = sampler(model.denoiser, cfg, (shape[0], cfg["arch"]["latent_dim"]), steps, generator, device,
                          keep_every, progress)
        return _decode(model, cfg, z, traj)
    run.__doc__ = f"{what} in z, then g_psi(z). The Trajectory holds g_psi of the kept latents."
    return run


# the first is the default
LATENT_SAMPLERS = {"ancestral": _in_latent(ddpm_ancestral_sampler, "DDPM ancestral sampling (steps None: all T)"),
                   "sde-dpm2m": _in_latent(ddpm_solver("sde-dpm2m", 20, "time"),
                                           "SDE-DPM-Solver++(2M) on the DDPM's own steps (20 network calls by "
                                           "default), ending on a step to t = 0 that returns the denoised latent")}


def digit_latent_batches(cfg: dict):
    """draw(generator) -> a batch (B, d) of the source model's posterior latents (train.init_from: ebm-mnist),
    drawn with replacement from a store of them for the first train.latents training digits
    (`ebm.digit_posterior_latents`, seed 100; computed once, on the CPU, from the source's shipped checkpoint)."""
    tc = cfg["train"]
    source, entry = load(tc["init_from"], "cpu")
    images, _ = data.mnist_tensors_cached(train=True)
    return resampler(digit_posterior_latents(source, entry["config"], images[:tc["latents"]], "cpu", seed=100),
                     tc["batch"])


for _name, _source in (("ebm-2d-ddpm", "ebm-2d"), ("ebm-2d-exact-ddpm", "ebm-2d-exact")):
    register(ModelSpec(
        name=_name, chapter=4, summary=f"a DDPM prior on {_source}'s latents, its generator frozen (two-stage)",
        config={"arch": {**copy.deepcopy(EBM_2D["arch"]), "ddpm": dict(MOONS_ARCH)},
                "process": {**copy.deepcopy(GRID_PROCESS), "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
                "train": {**copy.deepcopy(MOONS_TRAIN), "init_from": _source, "latents": 20_000,
                          "checkpoint_every": 5000}},
        fast={**MOONS_FAST, "latents": 2000},
        build=_build, batches=posterior_latent_batches, loss=_loss, evaluate=moons_evaluator(_name),
        samplers=LATENT_SAMPLERS, sample_shape=(2,), to_data=moons_to_data, param_groups=_denoiser_only,
    ))

for _name, _source, _source_cfg, _scale, _dtype in (
        ("ebm-mnist-ddpm", "ebm-mnist", EBM_MNIST, 1.37, None),
        # float16 as its source stores its generator (lossless for it): 5 MB instead of 10
        ("ebm-mnist-pang-ddpm", "ebm-mnist-pang", EBM_MNIST_PANG, LATENT_SCALE_PANG, torch.float16)):
    register(ModelSpec(
        name=_name, chapter=4, summary=f"a DDPM prior on {_source}'s latents, its generator frozen (two-stage)",
        config={"arch": {**copy.deepcopy(_source_cfg["arch"]), "ddpm": {"hidden": 256, "depth": 3, "time_dim": 64}},
                "process": {**copy.deepcopy(_source_cfg["process"]), "latent_scale": _scale,
                            "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
                "train": {"steps": 20_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
                          "ema_decay": 0.999, "seed": 0, "init_from": _source, "latents": 20_000,
                          "checkpoint_every": 2000, "eval_n": 1000}},
        fast={"steps": 300, "ema_decay": 0.98, "warmup": 20, "latents": 1000, "eval_n": 200},
        build=_build, batches=digit_latent_batches, loss=_loss, evaluate=mnist_evaluator(_name, False),
        samplers=LATENT_SAMPLERS, sample_shape=DIGIT_SHAPE, to_data=digits_to_data,
        param_groups=_denoiser_only, requires=("mnist-eval",), store_dtype=_dtype,
    ))
