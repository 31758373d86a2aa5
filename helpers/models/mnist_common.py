"""What the MNIST models share (chapters 6-8): the training images, the generators' U-Net and budget,
digits in the data's coordinates, and the evaluation that needs the `mnist-eval` classifier.

Budgets, measured with one CPU thread (OMP_NUM_THREADS=1) on the course's 2-core build machine:
  mnist-eval   full: 1,500 steps of batch 128 (3.8 passes over its 50,000 images), 0.27-0.45 s a step,
               7-12 minutes (test accuracy 0.9951); fast: 60 steps of batch 64, plus the test-set
               evaluation, about 30 s.
  mnist-ddpm,  full: 12,000 steps of batch 64 (12.8 epochs) of a 0.69 M-parameter U-Net (16, 32, 64
  mnist-vpsde  channels), 0.33-0.45 s a step on one CPU thread (72 minutes measured; FD 3.3 x its floor),
               then a warm restart of 6,000 steps at lr 3e-4 (34 minutes; FD 2.2 x and 3.0 x), then the
               FD at n = 1000 with 1000 sampling steps (about 30 minutes): a CPU budget, since no GPU was
               lent when the checkpoints were made; a GPU runs the same budget in minutes.
               fast: 30 steps of batch 32, about 5 s, a smoke test that yields noise.
               Sampling: about 1.6 ms per image per step at batch 64 on one CPU thread.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import config, data, metrics, nets
from .lifecycle import draw_samples
from .registry import get

# The generators' U-Net and budgets (mnist-ddpm and mnist-vpsde differ only in their process and loss).
UNET_ARCH = {"channels": [16, 32, 64], "blocks": 1, "attention": True, "time_dim": 128}
GENERATOR_TRAIN = {"steps": 12_000, "batch": 64, "lr": 1e-3, "lr_schedule": "cosine", "warmup": 500,
                   "grad_clip": 1.0, "ema_decay": 0.999, "seed": 0, "checkpoint_every": 500,
                   "restart": {"steps": 6000, "lr": 3e-4, "warmup": 200},
                   "eval_n": 1000, "eval_steps": 1000}
GENERATOR_FAST = {"steps": 30, "batch": 32, "warmup": 10, "ema_decay": 0.9, "eval_n": 200, "eval_steps": 10}
DIGIT_SHAPE = (1, 28, 28)
CPU_CHUNK = 128  # images sampled at once on a CPU, where larger batches run slower per image


def train_images(cfg: dict) -> tuple[Tensor, Tensor]:
    """The training images (N, 1, 28, 28) in [0, 1] and labels (N,) a model of `cfg` trains on.

    MNIST is read from disk on the first call of the process (data.mnist_tensors_cached), never at import.
    `process.train_images` (the classifier's) keeps only the first that many, holding out the rest.
    """
    images, labels = data.mnist_tensors_cached(train=True)
    keep = cfg["process"].get("train_images", len(images))
    return images[:keep], labels[:keep]


def build_unet(cfg: dict) -> nn.Module:
    return nets.UNet(**cfg["arch"])


def image_batches(cfg: dict):
    """draw(generator) -> a batch (B, 1, 28, 28) of training images in the models' range [-1, 1]."""
    images, _ = train_images(cfg)
    batch = cfg["train"]["batch"]
    return lambda g: data.to_model_range(images[torch.randint(0, len(images), (batch,), generator=g)])


def digits_to_data(x: Tensor, cfg: dict) -> np.ndarray:
    """Images (n, 1, 28, 28) in the models' range to digits (n, 28, 28) in [0, 1], the files' format."""
    return data.from_model_range(x)[:, 0].numpy()


def prior_images(shape: tuple, generator: torch.Generator, device) -> Tensor:
    """x_T ~ N(0, I) of `shape`, drawn on the CPU from `generator`, then moved to `device`."""
    return torch.randn(shape, generator=generator).to(device)


def image_evaluator(name: str, sampler: str | None = None):
    """An `evaluate` for an MNIST generator: `metrics.mnist_quality` of eval_n samples drawn with eval_steps
    steps (seed 123) in the features of the required `mnist-eval` classifier."""
    def evaluate(model, cfg, device, required):
        tc = cfg["train"]
        x = draw_samples(get(name), model, cfg, tc["eval_n"], tc["eval_steps"], config.generator(123), device,
                         sampler)
        q = metrics.mnist_quality(x, required["mnist-eval"])
        return {"eval_steps": tc["eval_steps"], **({"eval_sampler": sampler} if sampler else {}),
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()}}
    return evaluate
