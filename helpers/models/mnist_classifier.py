"""`mnist-eval`: the classifier whose features define the Frechet distance of chapters 6-8.

It trains on the first 50,000 MNIST training images (`metrics.MNIST_HELD_OUT` are the rest), with small
random rotations and shifts, and has no sampler.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .. import metrics, nets
from ..errors import CheckpointError
from .lifecycle import load
from .mnist_common import train_images
from .registry import ModelSpec, register


def evaluation_classifier(device: str | torch.device | None = None) -> nn.Module:
    """The shipped `mnist-eval` classifier, whose features `metrics.mnist_quality` compares (chapters 4, 6-8);
    CheckpointError saying how to get it when it is missing."""
    try:
        return load("mnist-eval", device)[0]
    except CheckpointError as err:
        raise CheckpointError(
            f"the MNIST quality metric needs the evaluation classifier mnist-eval, which could not be loaded "
            f"({err}). Restore the shipped file with git (git checkout -- checkpoints/) or train it, 7-12 "
            f"minutes on a CPU: python -m helpers train mnist-eval") from err


def augment_digits(images01: torch.Tensor, degrees: float, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Random rotations in [-degrees, degrees] and shifts in [-shift, shift] pixels, bilinear, zero fill.

    images01: (B, 1, H, W) -> (B, 1, H, W). The classifier's augmentation (chapter 6).
    """
    B, _, H, W = images01.shape
    angle = (torch.rand(B, generator=generator) * 2 - 1) * degrees * np.pi / 180
    move = (torch.rand(B, 2, generator=generator) * 2 - 1) * shift * 2 / torch.tensor([W, H])
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
    grid = nn.functional.affine_grid(theta.to(images01), list(images01.shape), align_corners=False)
    return nn.functional.grid_sample(images01, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _batches(cfg: dict):
    images, labels = train_images(cfg)
    tc = cfg["train"]

    def draw(g):
        idx = torch.randint(0, len(images), (tc["batch"],), generator=g)
        return augment_digits(images[idx], tc["degrees"], tc["shift"], g), labels[idx]

    return draw


def _evaluate(model, cfg, device, required, resume_dir=None, progress=False):
    floor = metrics.mnist_fd_floor(model, 1000)
    return {"test_accuracy": round(metrics.mnist_test_accuracy(model, device), 4), "fd_floor_n1000": round(floor, 4)}


register(ModelSpec(
    name="mnist-eval", chapter=6, summary="MNIST classifier whose features define the FD of chapters 6-8",
    config={"arch": {"channels": [32, 64, 128], "feature_dim": 128, "dropout": 0.0},
            "process": {"train_images": metrics.MNIST_HELD_OUT[0]},
            "train": {"steps": 1500, "batch": 128, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 100,
                      "degrees": 10.0, "shift": 2.0, "ema_decay": 0.99, "seed": 0}},
    fast={"steps": 60, "batch": 64, "ema_decay": 0.9},
    build=lambda cfg: nets.MNISTClassifier(**cfg["arch"]), batches=_batches,
    loss=lambda cfg: (lambda model, batch, g: nn.functional.cross_entropy(model(batch[0]), batch[1])),
    evaluate=_evaluate,
))
