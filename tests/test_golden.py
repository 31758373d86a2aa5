"""Golden numbers: a few samples of every shipped model at a fixed seed and step count, on the CPU.

A refactor that silently changes a sampler, a score conversion or a network's forward pass moves these
numbers and fails here (diffusers' full-loop tests do the same). The stored values were measured before
the `helpers.models` package was split into files (commit a8c8846's code, torch 2.x on CPU, one thread);
`ebm-2d`'s, `ebm-2d-gauss`'s and `ebm-mnist`'s when their checkpoints were added, and the guided runs and
`mnist-noisy-classifier`'s logits when that checkpoint was added (chapter 8), and the fast solvers' (dpm2m, ddim)
when they were added (chapter 7), and the third-order solvers' (dpm3m, sde-dpm3m) when they were added, and
`ebm-2d-mle`'s, `ebm-2d-exact`'s and `ebm-2d-exact-mle`'s (exact grid draws), the DDPM priors' and
`ebm-mnist-pang`'s when their checkpoints were added, and the latent DDPM priors' sde-dpm2m when it was added.
The tolerance 2e-4 is far above float32 round-off (about 1e-6 after a few dozen steps here) and far below
any real change (a different seed or step count moves these values by 0.1 or more).

Regenerate deliberately, after a change that is meant to move them:
    python tests/test_golden.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import config, models

GOLDEN = Path(__file__).with_name("golden_samples.json")
TOLERANCE = 2e-4
# (model, sampler or None for the default, n, steps); MNIST runs are short: 2 images, 10 steps
CASES = [("moons-ddpm", None, 4, 50), ("moons-ncsn", None, 4, 5),
         ("sde-1d", "sde", 4, 50), ("sde-1d", "euler", 4, 50), ("sde-1d", "heun", 4, 20),
         ("mnist-ddpm", "ancestral", 2, 10), ("mnist-ddpm", "em", 2, 10), ("mnist-ddpm", "dpm2m", 2, 10),
         ("mnist-ddpm", "ddim", 2, 10), ("mnist-ddpm", "sde-dpm2m", 2, 10), ("mnist-vpsde", "dpm2m", 2, 10),
         ("mnist-vpsde", "ddim", 2, 10), ("mnist-vpsde", "sde-dpm2m", 2, 10), ("mnist-ddpm", "sde-dpm3m", 2, 10),
         ("mnist-vpsde", "dpm3m", 2, 10),
         ("mnist-vpsde", "em", 2, 10), ("mnist-vpsde", "ancestral", 2, 10), ("mnist-vpsde", "ode", 2, 10),
         ("mnist-vpsde", "pc", 2, 10), ("ebm-2d", None, 4, 20), ("ebm-2d-gauss", None, 4, 20),
         ("ebm-mnist", None, 2, 10), ("ebm-2d-mle", None, 4, 20), ("ebm-2d-exact", None, 4, 20),
         ("ebm-2d-exact-mle", None, 4, 20), ("ebm-2d-ddpm", None, 4, 20), ("ebm-2d-exact-ddpm", None, 4, 20),
         ("ebm-mnist-ddpm", None, 2, 10), ("ebm-mnist-ddpm", "sde-dpm2m", 2, 10), ("ebm-mnist-pang", None, 2, 10),
         ("ebm-mnist-pang-ddpm", None, 2, 10), ("ebm-mnist-pang-ddpm", "sde-dpm2m", 2, 10)]
# classifier-guided runs (chapter 8): (model, sampler, n, steps, label, scale)
GUIDED = [("mnist-vpsde", "ancestral", 2, 10, 3, 4.0), ("mnist-vpsde", "pc", 2, 10, 7, 2.0),
          ("mnist-vpsde", "dpm2m", 2, 10, 3, 4.0)]
PIXELS = [(0, 14, 14), (0, 10, 20), (0, 20, 8), (1, 7, 7), (1, 14, 10), (1, 21, 18)]


def _key(name: str, sampler: str | None, n: int, steps: int) -> str:
    return f"{name}/{sampler or 'default'}/n{n}/steps{steps}"


def _guided_key(name: str, sampler: str, n: int, steps: int, label: int, scale: float) -> str:
    return f"{_key(name, sampler, n, steps)}/label{label}/scale{scale}"


def measure(name: str, sampler: str | None, n: int, steps: int, label: int | None = None,
            scale: float | None = None) -> list[float]:
    """The numbers kept for one case: all values for 2D and 1D models; for digits, the two images' means
    and six fixed pixels (in [0, 1]). label, scale: classifier guidance by the shipped noisy classifier."""
    model, _ = models.load(name, "cpu")
    options = {"sampler": sampler} if sampler else {}
    if label is not None:
        options.update(label=label, scale=scale)
    x = models.sample(name, model, n, steps, seed=0, device="cpu", **options)
    if x.ndim == 3:  # digits (n, 28, 28)
        values = [float(v) for v in x.reshape(n, -1).mean(1)] + [float(x[p]) for p in PIXELS]
    else:
        values = [float(v) for v in np.ravel(x)]
    return [round(v, 6) for v in values]


def classifier_logits() -> list[float]:
    """Logits of the mnist-eval classifier on two seeded uniform-noise images (no MNIST needed)."""
    model, _ = models.load("mnist-eval", "cpu")
    x = torch.rand(2, 1, 28, 28, generator=config.generator(0))
    with torch.no_grad():
        return [round(float(v), 5) for v in model(x).ravel()]


def noisy_classifier_logits() -> list[float]:
    """Logits of mnist-noisy-classifier on two seeded N(0, I) images at t = 0.3 and 0.7 (no MNIST needed)."""
    model, _ = models.load("mnist-noisy-classifier", "cpu")
    x = torch.randn(2, 1, 28, 28, generator=config.generator(0))
    with torch.no_grad():
        return [round(float(v), 5) for v in model(x, torch.tensor([0.3, 0.7])).ravel()]


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("name, sampler, n, steps", CASES, ids=[_key(*c) for c in CASES])
def test_shipped_model_samples_match_their_golden_numbers(golden, name, sampler, n, steps):
    got = np.array(measure(name, sampler, n, steps))
    want = np.array(golden[_key(name, sampler, n, steps)])
    assert got.shape == want.shape and np.abs(got - want).max() < TOLERANCE, (got, want)


@pytest.mark.parametrize("case", GUIDED, ids=[_guided_key(*c) for c in GUIDED])
def test_guided_samples_match_their_golden_numbers(golden, case):
    got, want = np.array(measure(*case)), np.array(golden[_guided_key(*case)])
    assert got.shape == want.shape and np.abs(got - want).max() < TOLERANCE, (got, want)


def test_noise_aware_classifier_matches_its_golden_logits(golden):
    got, want = np.array(noisy_classifier_logits()), np.array(golden["mnist-noisy-classifier/logits"])
    assert np.abs(got - want).max() < 1e-3, (got, want)


def test_evaluation_classifier_matches_its_golden_logits(golden):
    got, want = np.array(classifier_logits()), np.array(golden["mnist-eval/logits"])
    assert np.abs(got - want).max() < 1e-3, (got, want)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/test_golden.py --write   (overwrites tests/golden_samples.json)")
    torch.set_num_threads(1)
    table = {_key(*case): measure(*case) for case in CASES}
    table.update({_guided_key(*case): measure(*case) for case in GUIDED})
    table["mnist-eval/logits"] = classifier_logits()
    table["mnist-noisy-classifier/logits"] = noisy_classifier_logits()
    GOLDEN.write_text(json.dumps(table, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({len(table)} entries)")
