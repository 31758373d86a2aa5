"""The two models on make_moons (noise 0.05): a DDPM noise predictor (chapter 1) and an NCSN score
network (chapter 2), both a `nets.TimeMLP` trained on standardised moons with the same budget.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import config, data, losses, metrics, nets, samplers, scores
from ..schedules import DDPMSchedule, geometric_sigmas
from .lifecycle import draw_samples
from .registry import ModelSpec, get, register

MOONS_NOISE = 0.05
MOONS_TRAIN = {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
               "ema_decay": 0.999, "seed": 0}  # full budget of both moons models (about 5 min on a CPU core)
MOONS_FAST = {"steps": 600, "ema_decay": 0.98}  # a short EMA window: 0.999 would still average the start
MOONS_ARCH = {"hidden": 128, "depth": 3, "time_dim": 64}


def moons_reference(n: int, seed: int, noise: float = MOONS_NOISE) -> np.ndarray:
    """Fresh i.i.d. moons of size n (the reference and floor samples of chapters 1 and 2)."""
    return data.sample_moons(n, noise, config.generator(10_000 + seed)).numpy()


def moons_quality(samples: np.ndarray, noise: float = MOONS_NOISE) -> dict:
    """MMD^2 (RBF, bandwidth 0.1 and median) and energy distance of (n, 2) samples vs fresh moons, with floors."""
    n = len(samples)
    draw = lambda seed: moons_reference(n, seed, noise)  # noqa: E731
    out = {}
    for key, fn in (("mmd2_bw0.1", lambda a, b: metrics.mmd2_unbiased(a, b, 0.1)),
                    ("mmd2_median", lambda a, b: metrics.mmd2_unbiased(a, b, "median")),
                    ("energy", metrics.energy_distance)):
        r = metrics.with_floor(fn, samples, draw)
        out[key], out[key + "_floor"], out[key + "_floor_std"] = r["value"], r["floor"], r["floor_std"]
    return out


def ddpm_schedule(cfg: dict) -> DDPMSchedule:
    """The DDPMSchedule of a DDPM model's config (its "process" T, beta_1, beta_T). Chapters 1, 6 and 7."""
    p = cfg["process"]
    return DDPMSchedule(p["T"], p["beta_1"], p["beta_T"])


def ncsn_sigmas(cfg: dict | None = None) -> Tensor:
    """The noise levels sigma_1 > ... > sigma_L of an NCSN config (default: moons-ncsn's). Chapter 2."""
    p = (cfg or get("moons-ncsn").config)["process"]
    return geometric_sigmas(p["sigma_max"], p["sigma_min"], p["levels"])


def _build(cfg: dict) -> nn.Module:
    return nets.TimeMLP(dim=2, **cfg["arch"])


def moons_batches(cfg: dict):
    """draw(generator) -> a batch (B, 2) of standardised moons with the config's noise and batch size."""
    mean, std = data.moons_moments(cfg["process"]["noise"])
    batch, noise = cfg["train"]["batch"], cfg["process"]["noise"]
    return lambda g: (data.sample_moons(batch, noise, g) - mean) / std


def moons_to_data(x: Tensor, cfg: dict) -> np.ndarray:
    """Standardised model coordinates (n, 2) back to the moons' own coordinates."""
    mean, std = data.moons_moments(cfg["process"]["noise"])
    return (x * std + mean).numpy()


def _ddpm_ancestral(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """`samplers.ddpm_ancestral` from x_T ~ N(0, I); steps None means all T."""
    x_T = torch.randn(shape, generator=generator).to(device)
    return samplers.ddpm_ancestral(model, ddpm_schedule(cfg), x_T, steps, generator, keep_every, progress)


def _ncsn_annealed(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """`samplers.annealed_langevin` from N(0, sigma_1^2 I); steps = Langevin steps per level."""
    sigmas, p = ncsn_sigmas(cfg), cfg["sample"]
    x = float(sigmas[0]) * torch.randn(shape, generator=generator).to(device)
    return samplers.annealed_langevin(scores.ncsn_level_score(model, sigmas), sigmas, x,
                                      steps or p["steps_per_level"], generator, p["eps"],
                                      keep_every=keep_every, progress=progress)


def moons_evaluator(name: str):
    """The manifest metrics of a model of moons (chapters 1, 2, 4): `moons_quality` of 2000 samples
    (seed 123, default steps)."""
    def evaluate(model, cfg, device, required, resume_dir=None, progress=False):
        x = draw_samples(get(name), model, cfg, 2000, None, config.generator(123), device)
        return {k: float(f"{v:.3g}") for k, v in moons_quality(x, cfg["process"]["noise"]).items()}
    return evaluate


register(ModelSpec(
    name="moons-ddpm", chapter=1, summary="DDPM noise predictor on make_moons (noise 0.05)",
    config={"arch": dict(MOONS_ARCH),
            "process": {"T": 1000, "beta_1": 1e-4, "beta_T": 0.02, "noise": MOONS_NOISE},
            "train": dict(MOONS_TRAIN)},
    fast=dict(MOONS_FAST), build=_build, batches=moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ddpm_loss(model, x0, ddpm_schedule(cfg), g)),
    evaluate=moons_evaluator("moons-ddpm"), samplers={"ancestral": _ddpm_ancestral}, sample_shape=(2,),
    to_data=moons_to_data,
))

register(ModelSpec(
    name="moons-ncsn", chapter=2, summary="NCSN score network on make_moons (noise 0.05)",
    config={"arch": {**MOONS_ARCH, "time_scale": 100.0},
            "process": {"sigma_max": 3.0, "sigma_min": 0.01, "levels": 10, "noise": MOONS_NOISE},
            "sample": {"eps": 2e-5, "steps_per_level": 100},
            "train": dict(MOONS_TRAIN)},
    fast=dict(MOONS_FAST), build=_build, batches=moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ncsn_loss(model, x0, ncsn_sigmas(cfg), g)),
    evaluate=moons_evaluator("moons-ncsn"), samplers={"annealed": _ncsn_annealed}, sample_shape=(2,),
    to_data=moons_to_data,
))
