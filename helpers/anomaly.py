"""The latent EBM as an anomaly detector (Pang et al. 2020, sec. 5.5; chapter 4).

A model trained on normal data only scores a test image x by its unnormalised log-joint at a latent drawn
from the model's own short-run posterior chain:

    z ~ posterior chain of x (K_1 steps of ULA on p(z | x) from p_0, as in training)
    log p(x, z) + const = log p_psi(x | z) + f_omega(z) - |z|^2 / (2 sigma_0^2)
                        = -|x - g_psi(z)|^2 / (2 sigma^2) + f_omega(z) - |z|^2 / (2 sigma_0^2)

and the anomaly score is minus it: an image the generator cannot reconstruct, or whose latent the prior
finds unlikely, scores high. The benchmark (Kumar et al. 2019, Zenati et al. 2018) holds one digit out of
training and measures how well the score ranks that digit's test images above the rest by the area under
the precision-recall curve (AUPRC); chance is the held-out digit's share of the test set (about a third in
Kumar et al.'s protocol, `models.ebm_anomaly.protocol_test_set`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .latent_ebm import LatentEBM


def score_parts(model: LatentEBM, x: Tensor, steps: int, h: float, generator: torch.Generator,
                chunk: int = 500) -> tuple[Tensor, Tensor]:
    """The anomaly score's two terms at z from a posterior chain of each x (Pang et al. 2020, eq. 2, sec. 5.5):
    reconstruction |x - g_psi(z)|^2 / (2 sigma^2) and prior |z|^2 / (2 sigma_0^2) - f_omega(z), each (N,) float32
    on the CPU; their sum is `anomaly_scores`.

    x: (N, ...) images in the model's coordinates, as the generator outputs them; steps, h: the posterior
    chain's length and ULA step (the model's post_steps and post_h); chunk: images per chain run (the chains
    are independent: it changes only the order of the random draws). Chapter 4.
    """
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    like = next(model.parameters())
    recon, prior = [], []
    for xb in x.split(chunk):
        xb = xb.to(like)
        z, _ = model.posterior_chain(xb, steps, h, generator)
        with torch.no_grad():
            recon.append(-model.log_likelihood(xb, z).float().cpu())
            prior.append(-model.log_prior(z).float().cpu())
    return torch.cat(recon), torch.cat(prior)


def anomaly_scores(model: LatentEBM, x: Tensor, steps: int, h: float, generator: torch.Generator,
                   chunk: int = 500) -> Tensor:
    """-log p(x, z) + const at z from a posterior chain of each x: (N,) float32 scores on the CPU, higher =
    more anomalous; the sum of `score_parts` (same arguments). Chapter 4."""
    recon, prior = score_parts(model, x, steps, h, generator, chunk)
    return recon + prior


def auprc(scores: np.ndarray | Tensor, is_anomaly: np.ndarray | Tensor) -> float:
    """Area under the precision-recall curve of `scores` (N,) ranking the positives of `is_anomaly` (N,)
    first: scikit-learn's average precision, sum_k (R_k - R_{k-1}) P_k over the score's thresholds. Chance
    (random scores) gives the positives' share. Chapter 4."""
    from sklearn.metrics import average_precision_score

    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(is_anomaly).astype(bool)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f"scores and is_anomaly must be two (N,) arrays, got {scores.shape} and {labels.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    if labels.all() or not labels.any():
        raise ValueError("is_anomaly must hold both anomalies and normal examples")
    return float(average_precision_score(labels, scores))


def auprc_null(is_anomaly: np.ndarray | Tensor, draws: int = 200, seed: int = 0) -> tuple[float, float]:
    """Mean and sd of the AUPRC of random scores (a permutation null) for the labels `is_anomaly` (N,):
    what a detector that has learnt nothing scores, and how much it varies at this N. Chapter 4's checks
    take their margins from this sd."""
    labels = np.asarray(is_anomaly).astype(bool)
    rng = np.random.default_rng(seed)
    values = [auprc(rng.random(len(labels)), labels) for _ in range(draws)]
    return float(np.mean(values)), float(np.std(values, ddof=1))
