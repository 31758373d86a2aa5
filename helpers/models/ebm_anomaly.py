"""ebm-anomaly-D: ebm-mnist's latent EBM trained without digit D, for Pang et al.'s anomaly benchmark. Chapter 4.

Pang et al. (2020, sec. 5.5 and Table 4) train one model per held-out digit, D in 1, 4, 5, 7, 9, on the other
nine digits, and rank a test set in which about a third of the digits are D (Kumar et al.'s protocol,
`protocol_test_set`) by the anomaly score of `anomaly.anomaly_scores`. Each model here has ebm-mnist's
architecture, chains and learning rates (`ebm.py`); only the training images and the budget differ:

    train   MNIST's training images whose label is not D (about 54,000), batch 64, 2000 steps (about 2.4
            passes), cosine schedule, then a warm restart of 2000 steps at half the peak learning rates
            (`ANOMALY_RESTART`; 4.7 passes in all). The shipped five took 2044-2363 s each (the restart 628-904
            s of it) on one CPU thread, two trainings side by side on the course's 2-core build machine (0.58 s
            a step measured alone, `helpers time`).
    metric  auprc: AUPRC of the held-out digit over the first 10,000 digits of `protocol_test_set`, one
            posterior chain each (seed 0); anomaly_share: the held-out digit's share of them (AUPRC by chance).

Their checkpoints are each about 0.3 MB. `python -m helpers anomaly-score MODEL --images X.npy --out S.npy`
scores any digits with one of them.
"""

from __future__ import annotations

import copy

import torch
from tqdm.auto import tqdm

from .. import config, data
from ..anomaly import auprc, score_parts
from .ebm import _loss, _param_groups, _prior_sampler, build_latent_ebm
from .mnist_common import CPU_CHUNK, DIGIT_SHAPE, digits_to_data
from .registry import ModelSpec, get, register

HELD_OUT_DIGITS = (1, 4, 5, 7, 9)  # Pang et al.'s Table 4
# Pang et al.'s Table 4, AUPRC by held-out digit: their latent EBM, the VAE they compare with, and the
# hierarchical latent EBM of Cui, Wu and Han (ICCV 2023).
PAPER_AUPRC = {"latent EBM (Pang et al. 2020)": {1: 0.336, 4: 0.630, 5: 0.619, 7: 0.463, 9: 0.413},
               "VAE": {1: 0.063, 4: 0.337, 5: 0.325, 7: 0.148, 9: 0.104},
               "hierarchical latent EBM (Cui et al. 2023)": {1: 0.722, 4: 0.949, 5: 0.980, 7: 0.941, 9: 0.935}}

# After the first 2000 steps, a warm restart (`lifecycle.train_model`) of 2000 more at half the peak learning
# rates. Record (a probe of 3 Dec 2026, not committed): ebm-anomaly-4 continued so had AUPRC 0.200, 0.223, 0.232,
# 0.243, 0.252 at steps 2000-4000 on the first 2000 digits of MNIST's test split: still rising at 2000 steps.
ANOMALY_RESTART = {"steps": 2000, "lr": 2.5e-4, "warmup": 100}


def model_name(digit: int) -> str:
    """The registered name of the model trained without `digit`."""
    return f"ebm-anomaly-{digit}"


def is_anomaly_model(name: str) -> bool:
    """Whether `name` is one of the held-out-digit models (the ones `anomaly-score` accepts)."""
    return name in {model_name(d) for d in HELD_OUT_DIGITS}


def normal_batches(cfg: dict):
    """draw(generator) -> a batch (B, 1, 28, 28) in [-1, 1] of training digits other than process.held_out."""
    images, labels = data.mnist_tensors_cached(train=True)
    keep = images[labels != cfg["process"]["held_out"]]
    batch = cfg["train"]["batch"]
    return lambda g: data.to_model_range(keep[torch.randint(0, len(keep), (batch,), generator=g)])


def protocol_test_set(digit: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The test set of Kumar et al.'s protocol (2019, the one Pang et al.'s Table 4 follows) for held-out
    `digit`, on MNIST's own split: images (N, 1, 28, 28) in [0, 1] and is_out (N,) bool. Chapter 4.

    Kumar et al. pool all 70,000 MNIST digits, train on 80 % of the normal ones and test on the other 20 % of
    them plus every digit D, so D's share of their test set is n_D / (n_D + 0.2 n_normal): 0.33-0.39 for the
    five digits, not the tenth of MNIST's test split. The models here train on MNIST's training split, so
    the normal test digits are the test split's (about 9,000, never seen in training) and the anomalies
    are as many digits D, drawn from both splits (training never sees a D), as give that same share.
    A seeded permutation orders the set, so its first n digits keep about the same share.
    """
    train_x, train_y = data.mnist_tensors_cached(train=True)
    test_x, test_y = data.mnist_tensors_cached(train=False)
    n_out = int((train_y == digit).sum() + (test_y == digit).sum())
    n_normal = len(train_y) + len(test_y) - n_out
    normal = test_x[test_y != digit]
    k = round(len(normal) * n_out / (0.2 * n_normal))  # anomalies per normal digit as in Kumar et al.'s split
    pool = torch.cat([test_x[test_y == digit], train_x[train_y == digit]])
    g = config.generator(seed)
    images = torch.cat([normal, pool[torch.randperm(len(pool), generator=g)[:k]]])
    is_out = torch.cat([torch.zeros(len(normal), dtype=torch.bool), torch.ones(k, dtype=torch.bool)])
    order = torch.randperm(len(images), generator=g)
    return images[order], is_out[order]


def score_test_set(model, cfg: dict, seed: int = 0, n: int | None = None, device=None, parts: bool = False):
    """Anomaly scores (n,) of the first n digits of `protocol_test_set` (None: all of them, about 14,000)
    and whether each is the held-out digit (n,) bool, with the config's posterior chain, seeded. parts:
    return the score's two terms (reconstruction, prior) (`anomaly.score_parts`) instead of their sum.
    Chapter 4."""
    p = cfg["process"]
    images, is_out = protocol_test_set(p["held_out"])
    n = len(images) if n is None else n
    if device is not None:
        model = model.to(device)
    terms = score_parts(model, data.to_model_range(images[:n]), p["post_steps"], p["post_h"], config.generator(seed))
    return (terms if parts else terms[0] + terms[1]), is_out[:n]


def benchmark(models_by_digit: dict, n: int | None = None, seeds: tuple[int, ...] = (0,)) -> dict:
    """Pang et al.'s Table 4 for the loaded models {digit: (model, manifest entry)}: for each held-out digit,
    the AUPRC over the first n digits of its `protocol_test_set` (None: all of them) for each posterior-chain
    seed in `seeds`.

    Returns {digit: {"auprc": [one per seed], "share": the digit's share of the n test digits,
    "scores": (n,) scores of the last seed, "reconstruction" and "prior": its two terms (n,), "is_out": (n,)
    bool}}. A whole protocol set (13,600-14,500 digits) took 28 s per model and seed on two CPU threads, 54-64 s
    on one thread beside a training; the first 1000 digits about 4 s. Chapter 4.
    """
    table = {}
    for digit, (model, entry) in tqdm(models_by_digit.items(), desc="scoring test digits", leave=False):
        aps = []
        for seed in seeds:
            (recon, prior), is_out = score_test_set(model, entry["config"], seed=seed, n=n, parts=True)
            aps.append(auprc((recon + prior).numpy(), is_out.numpy()))
        table[digit] = {"auprc": aps, "share": float(is_out.float().mean()), "scores": (recon + prior).numpy(),
                        "reconstruction": recon.numpy(), "prior": prior.numpy(), "is_out": is_out.numpy()}
    return table


def _evaluator(model, cfg, device, required, resume_dir=None, progress=False):
    """The manifest's metrics: AUPRC over the first eval_n digits of `protocol_test_set` (full: 10,000;
    seed 0) and the held-out digit's share of them."""
    scores, is_out = score_test_set(model, cfg, seed=0, n=cfg["train"]["eval_n"], device=device)
    return {"auprc": round(auprc(scores.numpy(), is_out.numpy()), 4),
            "anomaly_share": round(float(is_out.float().mean()), 4), "n": len(scores)}


def _register(digit: int) -> None:
    cfg = copy.deepcopy(get("ebm-mnist").config)
    cfg["process"]["held_out"] = digit
    cfg["train"].update(steps=2000, eval_n=10_000, restart=dict(ANOMALY_RESTART))
    register(ModelSpec(
        name=model_name(digit), chapter=4,
        summary=f"ebm-mnist's latent EBM trained without digit {digit} (anomaly benchmark)",
        config=cfg, fast={"steps": 40, "batch": 32, "warmup": 5, "eval_n": 1000},
        build=build_latent_ebm, batches=normal_batches, loss=_loss, evaluate=_evaluator,
        samplers={"prior": _prior_sampler}, sample_shape=DIGIT_SHAPE, to_data=digits_to_data,
        sample_chunk=CPU_CHUNK, param_groups=_param_groups, record=lambda model: dict(model.last_parts),
    ))


for _digit in HELD_OUT_DIGITS:
    _register(_digit)
