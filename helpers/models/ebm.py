"""The latent-space EBM prior model (Pang et al. 2020): `ebm-2d`, its ablation `ebm-2d-gauss`, `ebm-mnist`,
`ebm-mnist-pang`. Chapter 4.

Each is a `latent_ebm.LatentEBM` (an MLP prior f_omega on the latent, a generator) trained with two learning
rates, the prior's and the generator's (`param_groups`). The one sampler, "prior", runs the short-run prior
chain in z from p_0 and returns the generator mean g_psi(z), as the paper's samples are drawn.

ebm-2d        make_moons (noise 0.05), standardised; 2D latent, MLP generator. Budget (one CPU thread):
              5000 steps of batch 256 at about 0.34 s a step (28 minutes), each step two short-run chains
              (60 prior steps of h = 0.05 with sigma_0 = 1; 80 posterior steps of h = 5e-4 with sigma = 0.05)
              and one Adam step at lr 1e-3 (generator) and 2e-4 (prior). Measured while choosing it: a prior
              lr of 4e-4 or 1e-3 diverges (f falls to -1e5 and below within 1500-2000 steps).
ebm-2d-gauss  the paper's ablation: ebm-2d's generator, settings and budget with lr_prior 0, so f_omega stays
              at its zero initialisation and the prior is p_0 (alternating back-propagation, Han et al. 2017).
ebm-mnist     MNIST in [-1, 1]; 16-dimensional latent, f_omega an MLP of width 200, `nets.ConvGenerator` with
              16 channels, sigma = 0.3; 60 prior steps of h = 0.08 and 20 posterior steps of h = 0.005 (Pang et
              al.'s steps delta = 0.4 and 0.1 with h = delta^2 / 2); Adam with betas (0.5, 0.999) at 5e-4
              (generator) and 5e-5 (prior), batch 64. About 0.55 s a step on one free CPU thread (measured); the shipped 3000
              steps took 49 minutes with another training on the second core. Checkpoints every 100 steps let
              a stopped run resume.
ebm-mnist-pang
              ebm-mnist's latent, prior and chains with Pang et al.'s generator and learning (`EBM_MNIST_PANG`):
              `nets.DeconvGenerator` with ngf = 64 (1.84 M parameters), batch 100, Adam at a constant 1e-4
              (generator) and 2e-5 (prior), 6000 steps (10 epochs). About 3.2 s a step on one free CPU thread
              (measured over 3 steps), 1.55 s on two: 3-5.5 hours, resumed over sessions from checkpoints every
              50 steps. The shipped one took 12,389 s, its first 400 steps on one thread and the rest on two.
              Stored in float16 (3.7 MB).

`ebm_2d_experiment` trains a 2D model in memory with some settings changed: the chapter's short runs.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from .. import config, data, metrics, nets, training
from ..latent_ebm import LatentEBM
from ..samplers.kernels import Trajectory
from .lifecycle import draw_samples
from .mnist_common import CPU_CHUNK, DIGIT_SHAPE, digits_to_data, image_batches
from .moons import MOONS_NOISE, moons_batches, moons_evaluator, moons_to_data
from .registry import ModelSpec, get, register


def build_latent_ebm(cfg: dict) -> LatentEBM:
    """The LatentEBM of an ebm config: EBMPrior and generator from "arch", sigma_0 and sigma from "process"."""
    a, p = cfg["arch"], cfg["process"]
    prior = nets.EBMPrior(a["latent_dim"], a["prior_hidden"], a["prior_depth"])
    if "gen_channels" in a:  # ebm-mnist: 28 x 28 images
        generator = nets.ConvGenerator(a["latent_dim"], a["gen_channels"])
    elif "gen_ngf" in a:  # ebm-mnist-pang: 28 x 28 images, Pang et al.'s generator
        generator = nets.DeconvGenerator(a["latent_dim"], a["gen_ngf"])
    else:
        generator = nets.MLPGenerator(a["latent_dim"], a["data_dim"], a["gen_hidden"], a["gen_depth"])
    return LatentEBM(prior, generator, p["sigma_0"], p["sigma"])


def _loss(cfg: dict):
    p = cfg["process"]
    return lambda model, x, g: model.training_loss(x, g, p["prior_steps"], p["prior_h"], p["post_steps"], p["post_h"])


def _param_groups(model: LatentEBM, cfg: dict) -> list[dict]:
    """The prior at lr_prior, the generator at lr (Pang et al. train them with separate Adam learning rates),
    both with the config's Adam betas when it sets them (Pang et al.: (0.5, 0.999))."""
    tc = cfg["train"]
    betas = {"betas": tuple(tc["betas"])} if "betas" in tc else {}
    groups = [{"params": list(model.generator.parameters()), "lr": tc["lr"], **betas}]
    if tc["lr_prior"] > 0:  # lr_prior 0: f_omega stays at its zero initialisation, the prior is p_0
        groups.insert(0, {"params": list(model.prior.parameters()), "lr": tc["lr_prior"], **betas})
    return groups


def _prior_sampler(model, cfg, shape, steps, generator, device, keep_every=0, progress=False):
    """Short-run prior chain of `steps` ULA steps (None: the config's prior_steps) from p_0, then g_psi(z).

    The Trajectory holds g_psi of the kept latents (shape of x), at chain times 1 - k / steps."""
    p = cfg["process"]
    z, traj = model.prior_chain(shape[0], steps or p["prior_steps"], p["prior_h"], generator, keep_every)
    with torch.no_grad():
        x = model.generator(z)
        states = torch.stack([model.generator(s.to(z)).cpu() for s in traj.states])
    return x, Trajectory(traj.times, states, traj.nfev)


EBM_2D = {"arch": {"latent_dim": 2, "data_dim": 2, "prior_hidden": 128, "prior_depth": 2, "gen_hidden": 128,
                   "gen_depth": 3},
          "process": {"noise": MOONS_NOISE, "sigma_0": 1.0, "sigma": 0.05, "prior_steps": 60, "prior_h": 0.05,
                      "post_steps": 80, "post_h": 5e-4},
          "train": {"steps": 5000, "batch": 256, "lr": 1e-3, "lr_prior": 2e-4, "lr_schedule": "cosine",
                    "warmup": 200, "seed": 0, "checkpoint_every": 500}}

def _register_2d(name: str, summary: str, train: dict) -> None:
    """Register a moons model with EBM_2D's architecture and process and `train` as its budget."""
    register(ModelSpec(
        name=name, chapter=4, summary=summary, config={**copy.deepcopy(EBM_2D), "train": train},
        fast={"steps": 100, "batch": 128, "warmup": 10},
        build=build_latent_ebm, batches=moons_batches, loss=_loss, evaluate=moons_evaluator(name),
        samplers={"prior": _prior_sampler}, sample_shape=(2,), to_data=moons_to_data, param_groups=_param_groups,
        record=lambda model: dict(model.last_parts),
    ))


_register_2d("ebm-2d", "latent-space EBM prior and MLP generator on make_moons (noise 0.05)", dict(EBM_2D["train"]))
# The paper's ablation (Pang et al. 2020, sec. 5): the same generator and budget with the plain Gaussian
# prior p_0, i.e. f_omega fixed at its zero initialisation (alternating back-propagation, Han et al. 2017).
_register_2d("ebm-2d-gauss", "ablation of ebm-2d: the same generator with the Gaussian prior p_0",
             {**EBM_2D["train"], "lr_prior": 0.0})

def two_blobs_batches(cfg: dict):
    """draw(generator) -> a batch (B, 2) of two Gaussian blobs, centres (-1, 0) and (1, 0), std 0.25: the
    chapter's first 2D data, already about standardised."""
    batch = cfg["train"]["batch"]

    def draw(g: torch.Generator) -> torch.Tensor:
        side = 2.0 * (torch.rand(batch, generator=g) < 0.5).float() - 1.0
        return torch.stack([side, torch.zeros(batch)], 1) + 0.25 * torch.randn(batch, 2, generator=g)
    return draw


@dataclass
class Experiment:
    """What `ebm_2d_experiment` returns: the model (eval mode), its config, the per-step records (prior and
    generator losses, mean f under the prior and posterior chains) and, when learning ran away, why."""
    model: LatentEBM
    cfg: dict
    records: list[dict]
    seconds: float
    diverged: str | None = None


def ebm_2d_experiment(data_name: str = "moons", process: dict | None = None, train: dict | None = None,
                      progress: bool = False) -> Experiment:
    """Train a fresh 2D latent EBM for one of chapter 4's experiments, no checkpoint written.

    The config is ebm-2d's fast budget with the entries of `process` and `train` replaced (e.g. the
    logbook's settings, lr_prior 0 for the Gaussian-prior ablation); data_name "moons" (standardised, as
    ebm-2d) or "blobs" (`two_blobs_batches`). Learning that runs away (`LatentEBM._guard`) ends the run
    early with `diverged` set instead of raising, so the chapter can show it.
    """
    if data_name not in ("moons", "blobs"):
        raise ValueError(f"data_name must be 'moons' or 'blobs', got {data_name!r}")
    cfg = get("ebm-2d").budget("fast")
    cfg["process"].update(process or {})
    cfg["train"].update(train or {})
    tc = cfg["train"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tc["seed"])
        model = build_latent_ebm(cfg)
    records: list[dict] = []
    draw = moons_batches(cfg) if data_name == "moons" else two_blobs_batches(cfg)
    start, diverged = time.perf_counter(), None

    def record(m: LatentEBM) -> dict:  # kept here too, so a run that diverges still has its curves
        records.append(dict(m.last_parts))
        return records[-1]
    try:
        training.train(model, _loss(cfg), draw, steps=tc["steps"], lr=tc["lr"],
                       generator=config.generator(tc["seed"]), lr_schedule=tc["lr_schedule"],
                       warmup=tc["warmup"], param_groups=_param_groups(model, cfg), progress=progress,
                       desc=f"latent EBM on {data_name}", record=record)
    except FloatingPointError as err:
        diverged = str(err)
    return Experiment(model.eval(), cfg, records, time.perf_counter() - start, diverged)


def mnist_evaluator(name: str, reconstruction: bool = True):
    """An MNIST latent model's manifest metrics: `mnist_quality` of eval_n samples of its default sampler
    (seed 123) and, with `reconstruction`, the posterior reconstruction MSE (pixels in [0, 1]) of the first
    eval_n test digits."""
    def evaluate(model, cfg, device, required, resume_dir=None, progress=False):
        tc = cfg["train"]
        x = draw_samples(get(name), model, cfg, tc["eval_n"], None, config.generator(123), device)
        q = metrics.mnist_quality(x, required["mnist-eval"])
        out = {k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()}
        if reconstruction:
            out["recon_mse"] = round(reconstruction_mse(model, cfg, tc["eval_n"], device), 5)
        return out
    return evaluate


def digit_posterior_latents(model: LatentEBM, cfg: dict, images01: torch.Tensor, device, seed: int = 0) -> torch.Tensor:
    """z from a posterior chain of each digit (the config's post_steps and post_h, from p_0), in batches of 250
    (batch k's chains seeded seed + k): images01 (n, 28, 28) or (n, 1, 28, 28) in [0, 1] -> (n, d) on `device`.
    Chapter 4: the reconstructions, and the latents a diffusion prior learns (`ebm_diffusion`)."""
    p = cfg["process"]
    x = data.to_model_range(images01.reshape(-1, 1, 28, 28)).to(device)
    return torch.cat([model.posterior_chain(xb, p["post_steps"], p["post_h"], config.generator(seed + k))[0]
                      for k, xb in enumerate(x.split(250))])


def reconstruct_digits(model: LatentEBM, cfg: dict, images01: torch.Tensor, device, seed: int = 0,
                       with_latents: bool = False):
    """g_psi(z) for z from `digit_posterior_latents`: images01 (n, 28, 28) or (n, 1, 28, 28) in [0, 1] ->
    (n, 1, 28, 28) in [0, 1] on the CPU; with_latents: (those images, z (n, d)). Chapter 4: the reconstructions'
    MSE and FD (the generator's ceiling), and the spread of the posterior latents."""
    z = digit_posterior_latents(model, cfg, images01, device, seed)
    with torch.no_grad():
        x = data.from_model_range(torch.cat([model.generator(zb) for zb in z.split(250)]).cpu())
    return (x, z) if with_latents else x


def reconstruction_mse(model: LatentEBM, cfg: dict, n: int, device, seed: int = 0) -> float:
    """Mean squared error, pixels in [0, 1], between the first n MNIST test digits and their reconstructions
    (`reconstruct_digits`). Chapter 4."""
    images, _ = data.mnist_tensors_cached(train=False)
    rec = reconstruct_digits(model, cfg, images[:n], device, seed)
    return float((rec.reshape(images[:n].shape) - images[:n]).pow(2).mean())


EBM_MNIST = {"arch": {"latent_dim": 16, "prior_hidden": 200, "prior_depth": 2, "gen_channels": 16},
             "process": {"sigma_0": 1.0, "sigma": 0.3, "prior_steps": 60, "prior_h": 0.08,
                         "post_steps": 20, "post_h": 0.005},
             "train": {"steps": 3000, "batch": 64, "lr": 5e-4, "lr_prior": 5e-5, "betas": [0.5, 0.999],
                       "lr_schedule": "cosine", "warmup": 200, "seed": 0, "checkpoint_every": 100,
                       "eval_n": 1000}}
# Pang et al.'s SVHN settings where ebm-mnist departs from them: their generator (ngf = 64), batch 100, Adam at
# lr 1e-4 (generator) and 2e-5 (prior) with no warm-up; their decay of 0.998 an epoch is 2 % over these 10 epochs
# of MNIST, so the rate is held constant. The latent stays 16-dimensional, as ebm-mnist's.
EBM_MNIST_PANG = {"arch": {"latent_dim": 16, "prior_hidden": 200, "prior_depth": 2, "gen_ngf": 64},
                  "process": dict(EBM_MNIST["process"]),
                  "train": {**EBM_MNIST["train"], "steps": 6000, "batch": 100, "lr": 1e-4, "lr_prior": 2e-5,
                            "lr_schedule": "constant", "warmup": 0, "checkpoint_every": 50}}

for _name, _cfg, _fast, _dtype, _summary in (
        ("ebm-mnist", EBM_MNIST, {"steps": 40, "batch": 32, "warmup": 5, "eval_n": 200}, None,
         "latent-space EBM prior and conv generator on MNIST in [-1, 1]"),
        ("ebm-mnist-pang", EBM_MNIST_PANG, {"steps": 40, "batch": 32, "eval_n": 200}, torch.float16,  # 3.7 MB
         "ebm-mnist with Pang et al.'s generator (ngf 64) and learning rates")):
    register(ModelSpec(
        name=_name, chapter=4, summary=_summary, config=copy.deepcopy(_cfg), fast=_fast, store_dtype=_dtype,
        build=build_latent_ebm, batches=image_batches, loss=_loss, evaluate=mnist_evaluator(_name),
        samplers={"prior": _prior_sampler}, sample_shape=DIGIT_SHAPE, to_data=digits_to_data,
        sample_chunk=CPU_CHUNK, param_groups=_param_groups, requires=("mnist-eval",),
        record=lambda model: dict(model.last_parts),
    ))
