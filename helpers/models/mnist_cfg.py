"""`mnist-cfg`: chapter 7's U-Net and VP-SDE loss, conditioned on the digit's label, for classifier-free
guidance (Ho and Salimans 2022). Chapter 8, part two.

The network is `nets.ConditionalUNet`: a learned embedding of the label (ten digits and an eleventh "no
label" class) is added to the time embedding. It trains as `mnist-vpsde` does (same U-Net, SDE, loss, budget
and seed), with each training image's label replaced by "no label" with probability p_uncond = 0.2, so one
network learns both eps(x, t, y) and the unconditional eps(x, t, null). Ho and Salimans (2022, table 1)
found p_uncond = 0.1 and 0.2 about equally good for guided samples and 0.5 worse; 0.2 gives the
unconditional mode, which chapter 8 compares with `mnist-vpsde`, twice the training signal of 0.1.

It samples with `mnist-vpsde`'s seven samplers. Without guidance they sample the unconditional model (the
null label; `evaluate` measures its FD, with the default sampler). With guidance=(None, label, w) they
sample with `scores.cfg_eps`, eps_w = (1 + w) eps(x, t, y) - w eps(x, t, null): classifier guidance by the
model's implicit classifier at gamma = 1 + w.
"""

from __future__ import annotations

import copy

import torch

from .. import data, losses, nets
from .. import sde as vpsde
from .mnist_common import (CPU_CHUNK, DIGIT_SHAPE, GENERATOR_FAST, GENERATOR_TRAIN, UNET_ARCH, digits_to_data,
                           image_evaluator, train_images)
from .mnist_ddpm import DDPM_PROCESS
from .mnist_vpsde import SAMPLERS, vpsde_process
from .registry import ModelSpec, register

P_UNCOND = 0.2  # probability that a training label is replaced by "no label"
CFG_SCALE = 1.0  # w of `sample mnist-cfg --label` without --scale (gamma = 1 + w): the lowest FD among the scales
# where mnist-eval calls >= 99 % of 200 guided 5s a 5 (chapter 8, section 7, full mode: 50 steps)


def _batches(cfg: dict):
    """draw(generator) -> (images (B, 1, 28, 28) in [-1, 1], labels (B,)) from the training set."""
    images, labels = train_images(cfg)
    batch = cfg["train"]["batch"]

    def draw(g):
        idx = torch.randint(0, len(images), (batch,), generator=g)
        return data.to_model_range(images[idx]), labels[idx]

    return draw


def drop_labels(y: torch.Tensor, p_uncond: float, classes: int, generator: torch.Generator) -> torch.Tensor:
    """y (B,) with each label replaced by the null label `classes` with probability p_uncond (Ho and Salimans
    2022, algorithm 1); the draw is on the CPU from `generator`."""
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond}")
    drop = (torch.rand(len(y), generator=generator) < p_uncond).to(y.device)
    return torch.where(drop, torch.full_like(y, classes), y)


def _loss(cfg: dict):
    """The VP-SDE noise-prediction loss (`losses.vpsde_loss`) of eps(x_t, t, y), y dropped with p_uncond."""
    sde_, eps = vpsde_process(cfg)
    p_uncond = cfg["train"]["p_uncond"]

    def loss(model, batch, g):
        x0, y = batch
        y = drop_labels(y, p_uncond, cfg["arch"]["classes"], g)
        return losses.vpsde_loss(lambda x, t: model(x, t, y), x0, sde_, g, eps)

    return loss


register(ModelSpec(
    name="mnist-cfg", chapter=8, summary="label-conditional VP-SDE noise predictor for classifier-free guidance",
    config={"arch": {**UNET_ARCH, "classes": 10}, "process": {**DDPM_PROCESS, "eps": vpsde.EPS},
            "sample": {"steps": {"em": 1000, "ancestral": 1000, "ode": 250, "pc": 500}, "snr": 0.16,
                       "corrector_steps": 1, "guidance_scale": CFG_SCALE},
            "train": {**copy.deepcopy(GENERATOR_TRAIN), "p_uncond": P_UNCOND, "eval_steps": 20}},
    fast=dict(GENERATOR_FAST), build=lambda cfg: nets.ConditionalUNet(**cfg["arch"]), batches=_batches,
    loss=_loss, evaluate=image_evaluator("mnist-cfg", "sde-dpm2m"), samplers=SAMPLERS,
    sample_shape=DIGIT_SHAPE, to_data=digits_to_data, sample_chunk=CPU_CHUNK, requires=("mnist-eval",),
    conditional=True, store_dtype=torch.float16,
))
