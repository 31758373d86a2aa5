"""What the MNIST models share (chapters 6-8): the training images, the generators' U-Net and budget,
digits in the data's coordinates, and the evaluation that needs the `mnist-eval` classifier.

Budgets, measured with one CPU thread (OMP_NUM_THREADS=1) on the course's 2-core build machine:
  mnist-eval   full: 1,500 steps of batch 128 (3.8 passes over its 50,000 images), 0.27-0.45 s a step,
               7-12 minutes (test accuracy 0.9951); fast: 60 steps of batch 64, plus the test-set
               evaluation, about 30 s.
  mnist-ddpm,  full: 12,000 steps of batch 64 (12.8 epochs) of a 0.69 M-parameter U-Net (16, 32, 64
  mnist-vpsde  channels), 0.33-0.45 s a step on one CPU thread (72 minutes measured; FD 3.3 x its floor),
               then a warm restart of 6,000 steps at lr 3e-4 (34 minutes; FD 2.2 x and 3.0 x), then the
               FD at n = 1000 with 1000 sampling steps for each of three seeds (30 minutes for one seed
               on a free core on 21 November; 70-80 minutes a seed on 29 November, one evaluation on each
               core): a CPU budget, since no GPU was lent when the checkpoints were made; a GPU runs the
               same budget in minutes. `python -m helpers evaluate NAME` measures the FD again, resumably.
               fast: 30 steps of batch 32, about 5 s, a smoke test that yields noise.
               Sampling: about 1.6 ms per image per step at batch 64 on one CPU thread.
"""

from __future__ import annotations

from pathlib import Path

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


EVAL_SEEDS = (123, 124, 125)  # the manifest's FD of an MNIST generator: mean and sd over these draws


def image_evaluator(name: str, sampler: str, seeds: tuple[int, ...] = EVAL_SEEDS):
    """An `evaluate` for an MNIST generator: `metrics.mnist_quality` of eval_n samples drawn with `sampler` and
    eval_steps steps (or the sampler and steps it is called with), once per seed in `seeds`, in the features
    of the required `mnist-eval` classifier.

    One draw of n = 1000 is not a measurement (chapter 7 met two seeds 0.8 floors apart), so the metrics give
    fd and class_tv as means over the seeds, fd_sd (sd over the seeds, ddof = 1), fd_seeds and
    class_tv_seeds (one value per seed), fd_floor and class_tv_floor (real digits at the same n), the floor's
    spread over five reference draws (fd_floor_mean, fd_floor_sd: `metrics.mnist_fd_floor_spread`), and the
    first seed's class_histogram. resume_dir: a folder for one `draw_samples` resume file per seed
    (NAME.eval-SAMPLER-STEPS-SEED.resume.pt), so a stopped evaluation goes on where it
    stopped; `lifecycle` removes them once the manifest entry is written, so a crash between
    the two loses nothing.
    """
    default_sampler = sampler

    def evaluate(model, cfg, device, required, resume_dir=None, progress=False, sampler=None, steps=None):
        tc = cfg["train"]
        sampler, steps = sampler or default_sampler, steps or tc["eval_steps"]
        files = [Path(resume_dir) / f"{name}.eval-{sampler}-{steps}-{seed}.resume.pt" if resume_dir else None
                 for seed in seeds]
        runs = []
        for k, (seed, file) in enumerate(zip(seeds, files)):
            if progress:
                print(f"{name}: FD of {tc['eval_n']} samples of {steps} {sampler} steps, seed {seed} "
                      f"({k + 1} of {len(seeds)})", flush=True)
            x = draw_samples(get(name), model, cfg, tc["eval_n"], steps, config.generator(seed), device,
                             sampler, progress=progress, resume=file)
            runs.append(metrics.mnist_quality(x, required["mnist-eval"]))
        fd, tv = [q["fd"] for q in runs], [q["class_tv"] for q in runs]
        floor_mean, floor_sd = metrics.mnist_fd_floor_spread(required["mnist-eval"], runs[0]["n"])
        out = {"eval_steps": steps, "eval_sampler": sampler, "eval_seeds": list(seeds), "n": runs[0]["n"],
               "fd": float(np.mean(fd)), "fd_sd": float(np.std(fd, ddof=1)) if len(fd) > 1 else 0.0,
               "fd_seeds": fd, "fd_floor": runs[0]["fd_floor"], "fd_floor_mean": floor_mean,
               "fd_floor_sd": floor_sd, "class_tv": float(np.mean(tv)), "class_tv_seeds": tv,
               "class_tv_floor": runs[0]["class_tv_floor"], "class_histogram": runs[0]["class_histogram"]}
        return {k: _rounded(v) for k, v in out.items()}
    return evaluate


def fd_record(stored: dict) -> str:
    """One line for the manifest metrics of an MNIST generator (chapters 6 and 7 show it as a record):
    sampler, n, steps, FD (mean +- sd over the seeds and each seed's value, or one draw for an entry measured
    before the seeds), the floor and their ratio, class TV and its floor. `stored` is the entry's metrics,
    or one of its `by_sampler` records (`evaluate --sampler S --steps N`)."""
    seeds = stored.get("eval_seeds")
    if seeds:
        fd = (f"FD {stored['fd']:.2f} +- {stored['fd_sd']:.2f} over seeds {', '.join(map(str, seeds))} "
              f"({', '.join(f'{v:.2f}' for v in stored['fd_seeds'])})")
        ratio = f"ratio {stored['fd'] / stored['fd_floor']:.2f} +- {stored['fd_sd'] / stored['fd_floor']:.2f}"
    else:
        fd, ratio = f"FD {stored['fd']:.2f} (one draw, seed 123)", f"ratio {stored['fd'] / stored['fd_floor']:.2f}"
    return (f"{stored.get('eval_sampler', 'ancestral')}, n = {stored['n']}, {stored['eval_steps']} steps: {fd}, "
            f"floor {stored['fd_floor']:.2f} ({ratio}); class TV {stored['class_tv']:.3f}, "
            f"floor {stored['class_tv_floor']:.3f}")


def _rounded(value):
    """Floats (alone or in a list) to 4 decimals, for the manifest; anything else as it is."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
