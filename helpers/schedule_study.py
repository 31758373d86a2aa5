"""`python -m helpers schedules MODEL`: FD of a few-step solver under each time-step schedule and last time.

A few-step solver's FD depends on where its network calls fall (`samplers.solver_times`: uniform in t,
uniform in log-SNR, or EDM's rho = 7 steps) and on the last time t_end before the final denoising step.
Chapter 7 picks one schedule per named sampler; this study measures the others on the same footing, so a
default is a measured choice. For each setting it draws n digits per seed with the model's named sampler
(exactly as `evaluate --sampler S --steps N` does: same chunks, same generator) and prints the FD's mean and
sd over the seeds in the features of `mnist-eval`, and its ratio to the model's 1000-step FD in the
manifest. Choose a setting on seeds other than the manifest's 123-125, then measure it there with `evaluate`.

    study(name, sampler, steps, seeds, n, settings) -> list of rows (schedule, t_end, fd mean, sd, per seed)
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time

from . import config, metrics
from .models import draw_samples, evaluation_classifier, get, load
from .samplers.timesteps import SCHEDULES


def settings_grid(t_ends: tuple[float | None, ...] = (None, 0.02, 0.05)) -> list[tuple[str, float | None]]:
    """Every (schedule, t_end) of `samplers.SCHEDULES` x t_ends; t_end None is the sampler's own last time."""
    return [(s, t) for s in SCHEDULES for t in t_ends]


def study(name: str, sampler: str = "sde-dpm2m", steps: int = 10, seeds: tuple[int, ...] = (200, 201, 202),
          n: int = 1000, settings: list[tuple[str, float | None]] | None = None, device=None,
          progress: bool = True, reference: float | None = None) -> list[dict]:
    """FD of `name`'s `sampler` at `steps` network calls for each (schedule, t_end) of `settings`.

    One row per setting: {"schedule", "t_end" (None: the sampler's own), "fd" (mean over seeds), "fd_sd"
    (ddof = 1), "fd_seeds", "seconds"}; progress prints each row as it is done (`row_line`, with FD / reference
    when given). ConfigError (from the registry) for an unknown model or sampler.
    """
    spec = get(name)
    run = spec.sampler(sampler)
    device = config.device(device)
    model, _ = load(name, device)
    cfg = spec.budget("full")
    classifier = evaluation_classifier(device)
    rows = []
    for schedule, t_end in settings or settings_grid():
        variant = dataclasses.replace(spec, samplers={sampler: functools.partial(run, schedule=schedule, t_end=t_end)})
        start, fds = time.perf_counter(), []
        for seed in seeds:
            x = draw_samples(variant, model, cfg, n, steps, config.generator(seed), device, sampler)
            fds.append(metrics.mnist_quality(x, classifier)["fd"])
        rows.append({"schedule": schedule, "t_end": t_end, "fd": statistics.mean(fds),
                     "fd_sd": statistics.stdev(fds) if len(fds) > 1 else 0.0, "fd_seeds": fds,
                     "seconds": time.perf_counter() - start})
        if progress:
            print(row_line(rows[-1], reference), flush=True)
    return rows


def row_line(row: dict, reference: float | None = None) -> str:
    """One printed line of the study: the setting, FD mean +- sd (each seed), and FD / reference if given."""
    t_end = "own" if row["t_end"] is None else f"{row['t_end']:g}"
    seeds = ", ".join(f"{v:.2f}" for v in row["fd_seeds"])
    ratio = f"  {row['fd'] / reference:.2f}x" if reference else ""
    return f"{row['schedule']:>7} t_end {t_end:>5}: FD {row['fd']:.2f} +- {row['fd_sd']:.2f} ({seeds}){ratio}"
