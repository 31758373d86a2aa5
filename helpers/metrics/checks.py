"""What a chapter's check cell needs: a metric beside its floor, and a printed verdict."""

from __future__ import annotations

from typing import Callable

import numpy as np


def with_floor(metric: Callable, samples, draw_reference: Callable[[int], object],
               repeats: int = 5) -> dict:
    """A metric of `samples` against fresh data, beside the same metric between two data samples.

    draw_reference(seed) returns a fresh data sample of the same size as `samples`.
    Returns {"value", "floor", "floor_std"}: value = metric(samples, ref(0)); floor = the mean over
    `repeats` pairs of metric(ref(2k + 1), ref(2k + 2)), and floor_std their standard deviation.
    """
    value = metric(samples, draw_reference(0))
    floors = [metric(draw_reference(2 * k + 1), draw_reference(2 * k + 2)) for k in range(repeats)]
    return {"value": float(value), "floor": float(np.mean(floors)), "floor_std": float(np.std(floors))}


def verdict(label: str, ok: bool) -> bool:
    """Print `label: True/False` for a chapter's check cell (nbval compares the line) and return ok.

    The label states the claim and its threshold, e.g. "MMD^2 within 3e-4 of its floor", so the printed
    line reads the same in fast and full mode whenever the claim holds.
    """
    ok = bool(ok)
    print(f"{label}: {ok}")
    return ok
