"""`mnist-ddpm`: a DDPM noise predictor (small U-Net) on MNIST in [-1, 1], read as a score model. Chapter 6.

Five named samplers: "sde-dpm2m" (the default), "dpm2m" and "ddim", few-step solvers on the DDPM's own steps i / T
(`schedules.DiscreteVP`: SDE-DPM-Solver++(2M) with steps uniform in i, DPM-Solver++(2M) with steps uniform in
log-SNR, and DDIM as its paper runs it, eta = 0 and steps uniform in i), each ending on a step to t = 0 that returns the denoised guess;
"ancestral", the DDPM's own chain (Ho et al. 2020, Algorithm 2); and "em", the network read as a score model
s(x, t) = -eps(x, i / T) / sqrt(1 - alpha_bar_i) (`scores.ddpm_score`) in the reverse VP-SDE with
beta(t) = T beta_{tT} (`sde.discrete_beta_range`), by Euler-Maruyama from t = 1 to t = eps.
"""

from __future__ import annotations

import copy

import torch

from .. import losses, samplers, scores
from .. import sde as vpsde
from .mnist_common import (CPU_CHUNK, DIGIT_SHAPE, GENERATOR_FAST, GENERATOR_TRAIN, UNET_ARCH, build_unet,
                           digits_to_data, image_batches, image_evaluator, prior_images)
from ..schedules import DiscreteVP
from .moons import ddpm_schedule
from .registry import ModelSpec, register

DDPM_PROCESS = {"T": 1000, "beta_1": 1e-4, "beta_T": 0.02}


SDE_DPM3M_LAST = 0.02  # sde-dpm3m's last time before the denoising step: FD 2.33 +- 0.18 at 10 calls against
# 2.62 +- 0.39 at 1 / T (`python -m helpers schedules mnist-ddpm --sampler sde-dpm3m`, seeds 200-202)


def ddpm_solver(method: str, default_steps: int, schedule: str, last: float | None = None):
    """A named sampler for `samplers.ddim` (eta = 0) or `samplers.dpm_solver_pp_2m` / `_3m` on the DDPM's grid
    (`schedules.DiscreteVP`): `steps` network calls (default `default_steps`) at times i / T placed by
    `schedule`, from i = T to the last time `last` (default 1 / T), then a step to t = 0 that returns the data
    prediction. The study of `helpers.schedule_study` passes another `schedule` or last time `t_end`; chapter
    4's latent DDPM priors (`ebm_diffusion`) run it on their latents."""
    solve = samplers.FEW_STEP_SOLVERS[method]
    default_schedule = schedule

    def run(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, schedule=None, t_end=None):
        sched = ddpm_schedule(cfg)
        score = scores.ddpm_score(model, (1.0 - sched.alpha_bars).sqrt())
        return solve(score, DiscreteVP(sched), prior_images(shape, generator, device), steps or default_steps,
                     generator, schedule=schedule or default_schedule, t_end=t_end or last or 1.0 / sched.T,
                     denoise=True, keep_every=keep_every, progress=progress)

    run.__doc__ = (f"{method} on the DDPM's steps, {default_steps} by default, {schedule} schedule"
                   + (f", last time {last}." if last else "."))
    return run


def ddpm_ancestral_sampler(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """`samplers.ddpm_ancestral` with `steps` of the T steps (respaced; None means T). Chapters 6 and 4 (the
    latent DDPM priors of `ebm_diffusion`)."""
    return samplers.ddpm_ancestral(model, ddpm_schedule(cfg), prior_images(shape, generator, device), steps,
                                   generator, keep_every, progress)


def _em(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """The noise predictor read as a score in the reverse VP-SDE, `steps` Euler-Maruyama steps (None: T)."""
    sched = ddpm_schedule(cfg)
    sde_ = vpsde.VPSDE(*vpsde.discrete_beta_range(sched.T, sched.beta_1, sched.beta_T))
    score = scores.ddpm_score(model, (1.0 - sched.alpha_bars).sqrt())
    return samplers.euler_maruyama(score, sde_, prior_images(shape, generator, device), steps or sched.T,
                                   generator, 1.0, vpsde.EPS, keep_every, progress)


register(ModelSpec(
    name="mnist-ddpm", chapter=6, summary="DDPM noise predictor (small U-Net) on MNIST in [-1, 1]",
    config={"arch": dict(UNET_ARCH), "process": dict(DDPM_PROCESS), "train": copy.deepcopy(GENERATOR_TRAIN)},
    fast=dict(GENERATOR_FAST), build=build_unet, batches=image_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ddpm_loss(model, x0, ddpm_schedule(cfg), g)),
    evaluate=image_evaluator("mnist-ddpm", "ancestral"),
    samplers={"sde-dpm2m": ddpm_solver("sde-dpm2m", 20, "time"), "dpm2m": ddpm_solver("dpm2m", 20, "logsnr"),
              "ddim": ddpm_solver("ddim", 50, "time"),
              "sde-dpm3m": ddpm_solver("sde-dpm3m", 10, "time", SDE_DPM3M_LAST),
              "dpm3m": ddpm_solver("dpm3m", 10, "logsnr"),
              "ancestral": ddpm_ancestral_sampler, "em": _em},
    sample_shape=DIGIT_SHAPE, to_data=digits_to_data, sample_chunk=CPU_CHUNK, requires=("mnist-eval",),
    store_dtype=torch.float16,
))
