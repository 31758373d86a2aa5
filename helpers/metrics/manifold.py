"""Improved precision and recall of generated samples (Kynkaenniemi et al. 2019), in any feature space.
Chapter 8.

FD mixes two failures into one number: samples that do not look like data (fidelity) and data the samples do
not cover (diversity). Precision and recall separate them. Each set's manifold is estimated as the union of
balls around its points, each ball reaching its centre's k-th nearest neighbour in the same set (eq. 1):

    precision = share of generated points inside the real manifold    (fidelity; eq. 2)
    recall    = share of real points inside the generated manifold    (diversity; eq. 3)

Guidance that collapses each class onto its most typical digits keeps precision near 1 while recall falls.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

K_NEAREST = 3  # Kynkaenniemi et al.'s k


def _as_features(x, name: str) -> Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).double()
    if t.ndim != 2 or len(t) < 2 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be a finite (n, d) array with n >= 2, got shape {tuple(t.shape)}")
    return t


def knn_radii(feats: Tensor, k: int = K_NEAREST, chunk: int = 1024) -> Tensor:
    """(n,) distance from each point of feats (n, d) to its k-th nearest neighbour among the others (eq. 1)."""
    if not isinstance(k, int) or not 1 <= k < len(feats):
        raise ValueError(f"k must be an integer in [1, n - 1] = [1, {len(feats) - 1}], got {k!r}")
    radii = []
    for start in range(0, len(feats), chunk):
        d = torch.cdist(feats[start:start + chunk], feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the first is the point itself, at distance 0
    return torch.cat(radii)


def _inside(points: Tensor, centres: Tensor, radii: Tensor, chunk: int = 1024) -> Tensor:
    """(m,) bool: whether each of points (m, d) lies in some ball |p - centre_j| <= radius_j."""
    out = []
    for start in range(0, len(points), chunk):
        out.append((torch.cdist(points[start:start + chunk], centres) <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def precision_recall(real_feats, fake_feats, k: int = K_NEAREST) -> tuple[float, float]:
    """(precision, recall) of fake_feats (m, d) against real_feats (n, d) (Kynkaenniemi et al. 2019, eq. 1-3).

    Both in [0, 1]. Symmetric by construction: precision_recall(a, b) = reversed(precision_recall(b, a)).
    Like FD they depend on n and on the feature space; read them beside two real samples' values (the
    floor), as `mnist_class_quality` gives them. Chapter 8.
    """
    real, fake = _as_features(real_feats, "real_feats"), _as_features(fake_feats, "fake_feats")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"real_feats and fake_feats need the same dimension, got {tuple(real.shape)} and "
                         f"{tuple(fake.shape)}")
    precision = _inside(fake, real, knn_radii(real, k)).double().mean()
    recall = _inside(real, fake, knn_radii(fake, k)).double().mean()
    return float(precision), float(recall)
