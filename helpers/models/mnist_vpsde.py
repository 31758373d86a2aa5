"""`mnist-vpsde`: the same U-Net as mnist-ddpm, trained with the VP-SDE noise-matching loss at continuous
t ~ U(eps, 1) on the SDE that continues the DDPM's schedule (beta(i / T) = T beta_i; `sde.discrete_beta_range`).
Chapter 7.

Seven named samplers, each from x_1 ~ N(0, I): "sde-dpm2m" (the default: SDE-DPM-Solver++(2M), the reverse SDE in
a few steps uniform in t), "dpm2m" (DPM-Solver++(2M), the probability-flow ODE in steps uniform in log-SNR), "ddim"
(DDIM, eta = 0, steps uniform in t), "em" (reverse SDE to t = eps),
"ancestral" (to t = 0), "ode" (probability-flow ODE, Heun: 2 network calls a step) and "pc" (reverse-SDE
predictor and one Langevin corrector step with the config's snr; 2 network calls a step). The default step
counts are the config's `sample.steps`, and 20 network calls (50 for DDIM) for the few-step solvers, where chapter 7
measures their FD against the 1000-step samplers'.
Each also samples p_t(x | y) with classifier guidance (`guidance=(classifier, label, scale)`, chapter 8):
`mnist-noisy-classifier` guides it, at the config's `guidance_scale` unless a scale is given.
"""

from __future__ import annotations

import copy

import torch

from .. import losses, samplers, scores
from .. import sde as vpsde
from .mnist_common import (CPU_CHUNK, DIGIT_SHAPE, GENERATOR_FAST, GENERATOR_TRAIN, UNET_ARCH, build_unet,
                           digits_to_data, image_batches, image_evaluator, prior_images)
from .mnist_ddpm import DDPM_PROCESS
from .registry import ModelSpec, register


GUIDANCE_SCALE = 8.0  # gamma of `sample --label` without --scale: chapter 8, section 5, says how it was chosen


def vpsde_process(cfg: dict) -> tuple[vpsde.VPSDE, float]:
    """(VP-SDE, end time eps) of an mnist-vpsde config: beta(t) from the DDPM's (T, beta_1, beta_T)."""
    p = cfg["process"]
    return vpsde.VPSDE(*vpsde.discrete_beta_range(p["T"], p["beta_1"], p["beta_T"])), float(p["eps"])


def _loss(cfg: dict):
    sde_, eps = vpsde_process(cfg)
    return lambda model, x0, g: losses.vpsde_loss(model, x0, sde_, g, eps)


def _start(model, cfg, shape, steps, generator, device, method, guidance=None):
    """(score, sde, end time eps, x_1 ~ N(0, I), steps or the config's default for `method`, sample config).

    guidance: (classifier, label, scale) turns the score into `scores.guided_score` (chapter 8); with
    classifier None the model is label-conditional and guides itself, (None, label, w) giving
    `scores.cfg_eps` (classifier-free guidance, mnist-cfg)."""
    sde_, eps = vpsde_process(cfg)
    s = cfg.get("sample", {})
    if guidance is not None and guidance[0] is None:  # classifier-free
        score = scores.eps_score(scores.cfg_eps(model, guidance[1], guidance[2]), sde_)
    else:
        score = scores.eps_score(model, sde_)
        if guidance is not None:
            score = scores.guided_score(score, *guidance)
    return score, sde_, eps, prior_images(shape, generator, device), steps or s.get("steps", {}).get(method), s


def _solver(method: str, default_steps: int, schedule: str):
    """A named sampler for `samplers.ddim` (eta = 0) or `samplers.dpm_solver_pp_2m` (ODE, or SDE for
    "sde-dpm2m") on the VP-SDE, from t = 1 to eps, `steps` network calls (default `default_steps`) placed by
    `schedule` (`samplers.solver_times`). The study of `helpers.schedule_study` passes another `schedule` or
    last time `t_end` (default eps)."""
    solve = samplers.FEW_STEP_SOLVERS[method]
    default_schedule = schedule

    def run(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, guidance=None,
            schedule=None, t_end=None):
        score, sde_, eps, x1, _, _ = _start(model, cfg, shape, 1, generator, device, method, guidance)
        return solve(score, sde_, x1, steps or default_steps, generator, schedule=schedule or default_schedule,
                     t_end=t_end or eps, keep_every=keep_every, progress=progress)

    run.__doc__ = f"{method} from t = 1 to eps, {default_steps} steps by default, {schedule} schedule."
    return run


FAST_SAMPLERS = {"sde-dpm2m": _solver("sde-dpm2m", 20, "time"), "dpm2m": _solver("dpm2m", 20, "logsnr"),
                 "ddim": _solver("ddim", 50, "time"), "sde-dpm3m": _solver("sde-dpm3m", 10, "time"),
                 "dpm3m": _solver("dpm3m", 10, "logsnr")}


def _em(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, guidance=None):
    """Reverse SDE by `samplers.euler_maruyama` from t = 1 to eps (noise on the last step too)."""
    score, sde_, eps, x1, steps, _ = _start(model, cfg, shape, steps, generator, device, "em", guidance)
    return samplers.euler_maruyama(score, sde_, x1, steps, generator, 1.0, eps, keep_every, progress)


def _ancestral(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, guidance=None):
    """`samplers.vpsde_ancestral` from t = 1 to 0 (the mean on the last step)."""
    score, sde_, _, x1, steps, _ = _start(model, cfg, shape, steps, generator, device, "ancestral", guidance)
    return samplers.vpsde_ancestral(score, sde_, x1, steps, generator, keep_every, progress)


def _ode(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, guidance=None):
    """Probability-flow ODE by Heun (`samplers.ode_solve`), from t = 1 to eps: deterministic given x_1."""
    score, sde_, eps, x1, steps, _ = _start(model, cfg, shape, steps, generator, device, "ode", guidance)
    return samplers.ode_solve(score, sde_, x1, steps, generator, "heun", 1.0, eps, keep_every, progress)


def _pc(model, cfg, shape, steps, generator, device, keep_every=0, progress=False, guidance=None):
    """`samplers.pc_sample` with the config's snr and corrector steps, from t = 1 to eps."""
    score, sde_, eps, x1, steps, s = _start(model, cfg, shape, steps, generator, device, "pc", guidance)
    return samplers.pc_sample(score, sde_, x1, steps, generator, s.get("snr", 0.16), s.get("corrector_steps", 1),
                              eps, keep_every, progress)


SAMPLERS = {**FAST_SAMPLERS, "em": _em, "ancestral": _ancestral, "ode": _ode, "pc": _pc}

register(ModelSpec(
    name="mnist-vpsde", chapter=7, summary="VP-SDE noise predictor (small U-Net) on MNIST in [-1, 1]",
    config={"arch": dict(UNET_ARCH), "process": {**DDPM_PROCESS, "eps": vpsde.EPS},
            "sample": {"steps": {"em": 1000, "ancestral": 1000, "ode": 250, "pc": 500}, "snr": 0.16,
                       "corrector_steps": 1, "guidance_scale": GUIDANCE_SCALE},
            "train": copy.deepcopy(GENERATOR_TRAIN)},
    fast=dict(GENERATOR_FAST), build=build_unet, batches=image_batches, loss=_loss,
    evaluate=image_evaluator("mnist-vpsde", "em"),
    samplers=SAMPLERS,
    sample_shape=DIGIT_SHAPE, to_data=digits_to_data, sample_chunk=CPU_CHUNK, requires=("mnist-eval",),
    guided_by="mnist-noisy-classifier", store_dtype=torch.float16,
))
