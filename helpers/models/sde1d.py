"""The VP-SDE noise predictor on a 1D two-Gaussian mixture, where every score is known exactly. Chapter 5."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import config, data, losses, metrics, nets, samplers, scores
from .. import sde as vpsde
from .lifecycle import draw_samples
from .registry import ModelSpec, get, register

SDE1D_MIXTURE = {"weights": [0.5, 0.5], "means": [-3.0, 3.0], "stds": [0.5, 0.5]}


def sde1d_process(cfg: dict | None = None) -> tuple[vpsde.VPSDE, data.GaussianMixture1D, float]:
    """(VP-SDE, data mixture, end time eps) of the `sde-1d` model's config (default: the registered one)."""
    p = (cfg or get("sde-1d").config)["process"]
    mix = data.GaussianMixture1D(p["weights"], p["means"], p["stds"])
    return vpsde.VPSDE(p["beta_min"], p["beta_max"]), mix, float(p["eps"])


def sde1d_score(model: nn.Module, cfg: dict | None = None) -> scores.ScoreFn:
    """The learned score s_theta(x, t) = -eps_theta(x, t) / sigma(t) of an `sde-1d` network; x (B, 1), t (B,)."""
    return scores.eps_score(model, sde1d_process(cfg)[0])


def sde1d_score_error(score: scores.ScoreFn, cfg: dict | None = None, n: int = 4000, times: int = 50,
                      seed: int = 7) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted score error E_t E_{x ~ p_t} sigma(t)^2 |s(x, t) - grad log p_t(x)|^2 against the exact score.

    t on `times` evenly spaced values in [eps, 1], n exact draws of p_t at each (seeded). sigma^2 is the
    training loss's weight lambda(t), so this is the part of the loss the network could still remove.
    Returns (mean over t, the times (times,), the error at each time (times,)).
    """
    sde_, mix, eps = sde1d_process(cfg)
    g = config.generator(seed)
    ts = np.linspace(eps, 1.0, times)
    errs = []
    with torch.no_grad():
        for t in ts:
            x = vpsde.mixture_marginal(mix, sde_, t).sample(n, generator=g).reshape(-1, 1)
            tb = torch.full((n,), float(t))
            diff = score(x, tb) - vpsde.mixture_score(mix, sde_, x, tb)
            errs.append(float((sde_.marginal_std(tb).reshape(-1, 1) ** 2 * diff**2).mean()))
    return float(np.mean(errs)), ts, np.array(errs)


def sde1d_quality(samples: np.ndarray, cfg: dict | None = None) -> dict:
    """W1 and KS of (n,) samples against the exact mixture CDF, each beside its floor (3 significant figures).

    The floor is the same statistic for n fresh draws of the mixture (mean and std over 20 draws): a
    perfect sampler scores it, not 0. At n = 10,000 the W1 floor is about 0.028, most of it from the
    binomial spread of the share of points in each mode times the 6 between the modes.
    """
    _, mix, _ = sde1d_process(cfg)
    x = np.ravel(np.asarray(samples, dtype=np.float64))
    lo, hi = min(mix.means) - 8 * max(mix.stds), max(mix.means) + 8 * max(mix.stds)
    draw = lambda seed: mix.sample(len(x), seed=20_000 + seed).numpy()  # noqa: E731
    # the reference of both statistics is the exact CDF, so with_floor's second sample goes unused
    stats = {"w1": lambda a, _ref: metrics.wasserstein_1d_cdf(a, mix.cdf, lo, hi),
             "ks": lambda a, _ref: metrics.ks_statistic(a, mix.cdf)}
    out = {}
    for key, fn in stats.items():
        r = metrics.with_floor(fn, x, draw, repeats=20)
        out[key], out[key + "_floor"], out[key + "_floor_std"] = r["value"], r["floor"], r["floor_std"]
    return {k: float(f"{v:.3g}") for k, v in out.items()}


def _build(cfg: dict) -> nn.Module:
    """TimeMLP(dim=1); `train_model` seeds its initial weights from the training seed."""
    return nets.TimeMLP(dim=1, **cfg["arch"])


def _batches(cfg: dict):
    _, mix, _ = sde1d_process(cfg)
    batch = cfg["train"]["batch"]
    return lambda g: mix.sample(batch, generator=g).reshape(-1, 1)


def _loss(cfg: dict):
    sde_, _, eps = sde1d_process(cfg)
    return lambda model, x0, g: losses.vpsde_loss(model, x0, sde_, g, eps)


def _reverse(method: str):
    """A named sampler: `samplers.reverse_sample` with `method` ("sde", "euler" or "heun") from N(0, 1) to eps."""
    def run(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
        sde_, _, eps = sde1d_process(cfg)
        return samplers.reverse_sample(scores.eps_score(model, sde_), sde_, shape, steps or cfg["sample"]["steps"],
                                       generator, method, eps, device, keep_every=keep_every, progress=progress)
    return run


def _evaluate(model, cfg, device, required, resume_dir=None, progress=False):
    tc = cfg["train"]
    x = draw_samples(get("sde-1d"), model, cfg, tc["eval_n"], tc["eval_steps"], config.generator(0), device)
    out = sde1d_quality(x, cfg)
    out["score_err"] = float(f"{sde1d_score_error(scores.eps_score(model.cpu(), sde1d_process(cfg)[0]), cfg)[0]:.3g}")
    model.to(device)
    return out


register(ModelSpec(
    name="sde-1d", chapter=5, summary="VP-SDE noise predictor on 0.5 N(-3, 0.5^2) + 0.5 N(3, 0.5^2)",
    config={"arch": {"hidden": 64, "depth": 2, "time_dim": 64},
            "process": {"beta_min": 0.1, "beta_max": 20.0, "eps": vpsde.EPS, **SDE1D_MIXTURE},
            "sample": {"steps": 1000},
            "train": {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
                      "ema_decay": 0.999, "seed": 0, "eval_n": 10_000, "eval_steps": 1000}},
    fast={"steps": 300, "ema_decay": 0.98, "eval_n": 2000, "eval_steps": 200},
    build=_build, batches=_batches, loss=_loss, evaluate=_evaluate,
    samplers={"sde": _reverse("sde"), "euler": _reverse("euler"), "heun": _reverse("heun")},
    sample_shape=(1,), to_data=lambda x, cfg: x.reshape(-1).numpy(),
))

