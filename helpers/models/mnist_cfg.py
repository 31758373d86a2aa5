"""`mnist-cfg`: chapter 7's U-Net and VP-SDE loss, conditioned on the digit's label, for classifier-free
guidance (Ho and Salimans 2022). Chapter 8, part two.

The network is `nets.ConditionalUNet`: a learned embedding of the label (ten digits and an eleventh "no
label" class) is added to the time embedding. It trains with `mnist-vpsde`'s SDE and loss, each training
image's label replaced by "no label" with probability p_uncond = 0.2, so one network learns both
eps(x, t, y) and the unconditional eps(x, t, null). Ho and Salimans (2022, table 1) found p_uncond = 0.1 and
0.2 about equally good for guided samples and 0.5 worse; 0.2 gives the unconditional mode, which chapter 8
compares with `mnist-vpsde`, twice the training signal of 0.1.

Budget. Trained from scratch with `mnist-vpsde`'s budget (18,000 steps, 4.1 h on one shared core), its
unconditional mode reached FD 4.61 +- 0.32 (sde-dpm2m, 20 calls, seeds 123-125), 2.4 times `mnist-vpsde`'s
1.93 +- 0.35: a fifth of 18,000 steps is a small share of training for the unconditional model. So the full
budget starts from `mnist-vpsde`'s shipped weights with the label embedding at zero
(`nets.ConditionalUNet.start_from`: at step 0 every label's eps is mnist-vpsde's) and trains 6,000 steps at
`mnist-vpsde`'s restart settings (lr 3e-4, cosine, 200 warm-up steps), so that the labels are trained in.
Started so, but with the plain loss, the unconditional mode drifted from FD 2.31 (step 0, seed 123) to 9.43 +-
0.07 at the end: the shared weights moved for the labelled 80 % of each batch while the null label's fifth,
each row with one noisy target z, did not hold them. So the null rows learn from a teacher (`null_teacher`):
their target is mnist-vpsde's eps(x_t, t) instead of z (`teacher_target`). The loss with z is minimised by
E[z | x_t]; with the teacher's target, by the teacher, which is mnist-vpsde's estimate of that same mean, with
no draw's noise left to average away (distillation of the unconditional model into the null label). That
run also left the labels weak: its label embedding, started at zero and trained at lr 3e-4, reached norms of
0.4-0.9 beside a time embedding of norm 1.3-8.9 (t = 0.01-1), and at w = 1 mnist-eval called 62 % of 200
guided 0s a 0. So the label embedding trains at 30 times the lr (`label_lr_factor`, `_param_groups`). The
null label's row then moved as far as the others (norm 1.8 against 2.0-2.3); that run reached FD 2.95 +- 0.09,
and one with the null row held at zero (nn.Embedding's padding_idx) 3.19 +- 0.25: the drift is in the weights
both modes share. So the teacher holds the null label on every row of the batch (`null_every_row`,
`NullOnEveryRow`): each step adds to the loss the null label's squared distance to mnist-vpsde's eps at the same
x_t and t for all 64 rows, in one U-Net call on 128 rows and one teacher call on 64. Trained so, the unconditional
mode reached FD 2.05 +- 0.20 (1.06 times mnist-vpsde's), in 4250 s on one core, 0.71 s a step against 0.32
without. Its total cost is mnist-vpsde's 18,000 steps plus these 6,000. The fast budget trains from scratch (a
smoke test that yields noise).

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
from .lifecycle import load
from .mnist_ddpm import DDPM_PROCESS
from .mnist_vpsde import SAMPLERS, vpsde_process
from .registry import ModelSpec, register

P_UNCOND = 0.2  # probability that a training label is replaced by "no label"
CFG_SCALE = 1.0  # w of `sample mnist-cfg --label` without --scale (gamma = 1 + w): the lowest FD among the scales
# where mnist-eval calls >= 99 % of 200 guided 5s a 5 (chapter 8, section 7, full mode: 50 steps)


# mnist-vpsde's weights, then its restart's settings for 6,000 steps with label dropout (the module's docstring)
CFG_TRAIN = {**{k: v for k, v in copy.deepcopy(GENERATOR_TRAIN).items() if k != "restart"},
             "steps": 6000, "lr": GENERATOR_TRAIN["restart"]["lr"], "warmup": GENERATOR_TRAIN["restart"]["warmup"],
             "init_from": "mnist-vpsde", "null_teacher": "mnist-vpsde", "null_every_row": True, "label_lr_factor": 30.0,
             "p_uncond": P_UNCOND, "eval_steps": 20}


def _param_groups(model, cfg: dict) -> list[dict]:
    """The label embedding at label_lr_factor times the budget's lr, the rest at lr (the module's docstring:
    started at zero beside a time embedding of norm 1.3-8.9, the labels need the larger steps to take hold)."""
    tc = cfg["train"]
    labels = list(model.label_embed.parameters())
    rest = [p for name, p in model.named_parameters() if not name.startswith("label_embed.")]
    return [{"params": labels, "lr": tc["lr"] * tc.get("label_lr_factor", 1.0)}, {"params": rest, "lr": tc["lr"]}]


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


def teacher_target(teacher, null: torch.Tensor):
    """target(x_t, t, z) for `losses.vpsde_loss`: z, except on the rows where `null` (B,) is True, where it is
    the teacher's eps(x_t, t) (no gradient), its estimate of E[z | x_t] in place of one noisy draw. So the few
    null rows of a batch hold the unconditional prediction at the teacher's instead of letting it drift as the
    labels train in (the module's docstring). Chapter 8, section 7."""
    def target(x_t, t, z):
        if not null.any():
            return z
        out = z.clone()
        with torch.no_grad():
            out[null] = teacher(x_t[null], t[null]).to(z)
        return out
    return target


class NullOnEveryRow:
    """net(x_t, t) for `losses.vpsde_loss`: eps(x_t, t, y) (B, ...), computed in one batch of 2B rows with
    eps(x_t, t, null) on the same x_t and t, whose mean squared distance to teacher(x_t, t) it keeps in
    `penalty` (a tensor with gradient, set by each call). Added to the loss, it distils the teacher into the
    null label on every row of the batch, not only on the p_uncond share whose labels were dropped (the
    module's docstring). Chapter 8, section 7."""

    def __init__(self, model, y: torch.Tensor, classes: int, teacher):
        self.model, self.y, self.teacher, self.penalty = model, y, teacher, None
        self.null = torch.full_like(y, classes)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        both = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([self.y, self.null]))
        eps_y, eps_null = both.chunk(2)
        with torch.no_grad():
            want = self.teacher(x_t, t).to(eps_null)
        self.penalty = (eps_null - want).pow(2).mean()
        return eps_y


def _loss(cfg: dict):
    """The VP-SDE noise-prediction loss (`losses.vpsde_loss`) of eps(x_t, t, y), y dropped with p_uncond;
    with train.null_teacher (a model's name) the dropped rows' target is that model's eps (`teacher_target`),
    and with train.null_every_row as well, plus the null label's distance to it on every row (`NullOnEveryRow`)."""
    sde_, eps = vpsde_process(cfg)
    tc = cfg["train"]
    p_uncond, classes = tc["p_uncond"], cfg["arch"]["classes"]
    teacher_name, teachers = tc.get("null_teacher"), {}
    if tc.get("null_every_row") and not teacher_name:
        raise ValueError("train.null_every_row needs train.null_teacher")

    def loss(model, batch, g):
        x0, y = batch
        y = drop_labels(y, p_uncond, classes, g)
        if not teacher_name:
            return losses.vpsde_loss(lambda x, t: model(x, t, y), x0, sde_, g, eps)
        if x0.device not in teachers:  # loaded on first use, on the batch's device
            teachers[x0.device] = load(teacher_name, x0.device)[0]
        teacher = teachers[x0.device]
        target = teacher_target(teacher, y == classes)
        if not tc.get("null_every_row"):
            return losses.vpsde_loss(lambda x, t: model(x, t, y), x0, sde_, g, eps, target=target)
        net = NullOnEveryRow(model, y, classes, teacher)
        return losses.vpsde_loss(net, x0, sde_, g, eps, target=target) + net.penalty

    return loss


register(ModelSpec(
    name="mnist-cfg", chapter=8, summary="label-conditional VP-SDE noise predictor for classifier-free guidance",
    config={"arch": {**UNET_ARCH, "classes": 10}, "process": {**DDPM_PROCESS, "eps": vpsde.EPS},
            "sample": {"steps": {"em": 1000, "ancestral": 1000, "ode": 250, "pc": 500}, "snr": 0.16,
                       "corrector_steps": 1, "guidance_scale": CFG_SCALE},
            "train": CFG_TRAIN},
    fast={**GENERATOR_FAST, "init_from": None, "null_teacher": None, "null_every_row": False,
          "label_lr_factor": 1.0, "lr": GENERATOR_TRAIN["lr"]},
    build=lambda cfg: nets.ConditionalUNet(**cfg["arch"]), batches=_batches,
    loss=_loss, evaluate=image_evaluator("mnist-cfg", "sde-dpm2m"), samplers=SAMPLERS, param_groups=_param_groups,
    sample_shape=DIGIT_SHAPE, to_data=digits_to_data, sample_chunk=CPU_CHUNK, requires=("mnist-eval",),
    conditional=True, store_dtype=torch.float16,
))
