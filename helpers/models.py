"""The course's model zoo: one `ModelSpec` per named model, and `load_or_train`.

A spec says how to build the network, draw training batches, compute the loss, sample (in the data's own
coordinates) and evaluate; its `config` has three parts:
    arch     the network's shape                 } a checkpoint is compatible when these two
    process  the noise process (schedule, SDE)   } equal the spec's
    train    the full-mode budget (`fast` overrides some of it for a CPU-minute run)
    sample   default sampler settings (optional; free to change without retraining)
The command line (`python -m helpers`) and the notebooks use only this module's functions.
"""

from __future__ import annotations

import copy
import datetime
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from . import checkpoints, config, data, losses, metrics, nets, samplers
from . import sde as vpsde
from .langevin import annealed_langevin
from .schedules import DDPMSchedule, geometric_sigmas


@dataclass(frozen=True)
class ModelSpec:
    """How to build, train, sample and evaluate one named model.

    build(cfg) -> nn.Module; batches(cfg) -> draw(generator) -> batch; loss(cfg) -> loss_fn(model, batch, g);
    sample(model, cfg, n, steps, generator, device, **options) -> np.ndarray float32 in data coordinates;
    evaluate(model, cfg, device) -> dict of metrics stored in the manifest.
    """

    name: str
    chapter: int
    summary: str
    config: dict
    fast: dict
    build: Callable
    batches: Callable
    loss: Callable
    sample: Callable
    evaluate: Callable
    sample_options: dict = field(default_factory=dict)  # extra CLI options, e.g. {"sampler": ("em", "ode")}
    store_dtype: torch.dtype | None = None

    def budget(self, mode: str) -> dict:
        """The config with the training budget of `mode` ('fast' or 'full')."""
        if mode not in config.MODES:
            raise ValueError(f"mode must be one of {config.MODES}, got {mode!r}")
        cfg = copy.deepcopy(self.config)
        if mode == "fast":  # a fast budget has no warm restart unless `fast` gives one
            cfg["train"].pop("restart", None)
            cfg["train"].update(self.fast)
        return cfg


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ModelSpec:
    """The spec of `name`; unknown names raise ValueError listing the known ones."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


# ------------------------------------------------------------------------------------- training, loading


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def train_model(name: str, mode: str | None = None, device: str | torch.device | None = None,
                folder: str | Path | None = None, progress: bool = True, save: bool = True,
                evaluate: bool = True):
    """Train `name` with the budget of `mode` (default: config.mode()) and save it with its manifest entry.

    folder: where the checkpoint and manifest go (default: config.checkpoint_dir()); notebooks pass a
    temporary folder for their short fast-mode runs so the shipped checkpoints stay untouched.
    A resume file `folder/name.resume.pt` is written while training; rerunning after a kill continues.
    A budget with a "restart" ({"steps", "lr", "warmup"}) trains on from the first phase's EMA weights
    (rounded to the stored dtype) with a fresh optimizer, EMA and generator (seed + 1): a warm restart
    (Loshchilov & Hutter 2017). When `folder` already holds the first phase's checkpoint (same config
    minus the restart), the restart starts from it instead of training the first phase again.
    evaluate: measure the spec's metrics for the manifest (False skips it, e.g. in tests).
    Returns (model in eval mode on `device`, manifest entry dict, TrainResult of the last phase; its losses
    give the entry's final_loss).
    """
    from .training import train

    spec = get(name)
    mode = mode or config.mode()
    cfg = spec.budget(mode)
    dev = config.device(device) if not isinstance(device, torch.device) else device
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    tc = cfg["train"]
    restart = tc.get("restart")
    first_cfg = copy.deepcopy(cfg)  # the budget of the first phase: the config without its restart
    first_cfg["train"].pop("restart", None)
    seed = tc.get("seed", config.seed())

    def run(model, phase_cfg, steps, lr, warmup, generator, resume_name, desc):
        ptc = phase_cfg["train"]
        return train(model, spec.loss(cfg), spec.batches(cfg), steps=steps, lr=lr, generator=generator,
                     device=dev, lr_schedule=ptc.get("lr_schedule", "constant"), warmup=warmup,
                     grad_clip=ptc.get("grad_clip"), ema_decay=ptc.get("ema_decay"),
                     resume_path=folder / resume_name if save else None,
                     checkpoint_every=ptc.get("checkpoint_every", 1000), run_config=phase_cfg,
                     progress=progress, desc=desc)

    model, seconds = _first_phase_checkpoint(spec, folder, first_cfg, dev) if restart else (None, 0.0)
    if model is None:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
            torch.manual_seed(seed)
            model = spec.build(cfg)
        first = run(model, first_cfg, tc["steps"], tc["lr"], tc.get("warmup", 0), config.generator(seed),
                    f"{name}.resume.pt", f"{name} ({mode})")
        if first.ema_state is not None:
            model.load_state_dict(first.ema_state)
        seconds, result = first.seconds, first
    if restart:
        if spec.store_dtype is not None:  # start from the weights exactly as the first phase's file stores them
            model.load_state_dict({k: v.to(spec.store_dtype).float() if v.is_floating_point() else v
                                   for k, v in model.state_dict().items()})
        result = run(model, cfg, restart["steps"], restart["lr"], restart.get("warmup", 0),
                     config.generator(seed + 1), f"{name}.restart.resume.pt", f"{name} ({mode}, restart)")
        if result.ema_state is not None:
            model.load_state_dict(result.ema_state)
        seconds += result.seconds
    model.eval()
    entry = {"mode": mode, "metrics": spec.evaluate(model, cfg, dev) if evaluate else {},
             "train_steps": tc["steps"] + (restart["steps"] if restart else 0), "train_seconds": round(seconds, 1),
             "final_loss": float(np.mean(result.losses[-500:])),
             "parameters": nets.count_parameters(model), "hardware": _hardware(dev),
             "torch": torch.__version__, "created": datetime.date.today().isoformat()}
    if save:
        checkpoints.save_model(folder, name, model.state_dict(), cfg, entry, dtype=spec.store_dtype)
        entry = checkpoints.read_manifest(folder)["models"][name]
    return model, entry, result


def _first_phase_checkpoint(spec: ModelSpec, folder: Path, first_cfg: dict, device: torch.device):
    """(model, its training seconds) from `folder`'s checkpoint of `spec` when it was trained with exactly
    `first_cfg` (a budget with a restart, minus the restart), so the restart can start from it; else
    (None, 0.0)."""
    try:
        model, entry = load(spec.name, device, folder)
    except checkpoints.CheckpointError:
        return None, 0.0
    if entry.get("config") != first_cfg:
        return None, 0.0
    print(f"{spec.name}: restarting from the stored checkpoint of the first phase "
          f"({entry['train_steps']} steps, {entry['train_seconds']:.0f} s)")
    return model, float(entry["train_seconds"])


def compatible(spec: ModelSpec, entry: dict) -> bool:
    """Whether a manifest entry's arch and process equal the spec's (the training budget may differ)."""
    stored = entry.get("config", {})
    return all(stored.get(k) == spec.config[k] for k in ("arch", "process"))


def load(name: str, device: str | torch.device | None = None, folder: str | Path | None = None):
    """Load the checkpoint of `name` (hash-checked). Returns (model in eval mode, manifest entry).

    Raises checkpoints.CheckpointError if it is missing, altered or built for another architecture.
    """
    spec = get(name)
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    state, entry = checkpoints.load_model(folder, name)
    if not compatible(spec, entry):
        raise checkpoints.CheckpointError(
            f"the checkpoint of {name!r} was trained with another architecture or process than the code "
            f"now defines; retrain it with: python -m helpers train {name}")
    dev = config.device(device) if not isinstance(device, torch.device) else device
    model = spec.build(entry["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(dev).eval(), entry


def load_or_train(name: str, mode: str | None = None, device: str | torch.device | None = None,
                  folder: str | Path | None = None, progress: bool = True):
    """The shipped checkpoint of `name` when present and compatible, else a freshly trained one.

    In full mode only a full-budget checkpoint is accepted. Returns (model in eval mode, manifest entry).
    """
    mode = mode or config.mode()
    try:
        model, entry = load(name, device, folder)
        if mode == "fast" or entry.get("mode") == "full":
            return model, entry
        print(f"{name}: the stored checkpoint has a {entry.get('mode')}-mode budget; training in full mode")
    except checkpoints.CheckpointError as err:
        print(f"{name}: {err}\ntraining it now ({mode} mode)")
    model, entry, _ = train_model(name, mode, device, folder, progress)
    return model, entry


def sample(name: str, model: nn.Module, n: int, steps: int | None = None, seed: int = 0,
           device: str | torch.device | None = None, cfg: dict | None = None, **options) -> np.ndarray:
    """n samples of `model` (a `name` model) as float32 numpy in the data's own coordinates."""
    spec = get(name)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    dev = config.device(device) if not isinstance(device, torch.device) else device
    out = spec.sample(model.to(dev), cfg or spec.config, n, steps, config.generator(seed), dev, **options)
    return np.asarray(out, dtype=np.float32)


def time_steps(name: str, steps: int = 5, n_sample: int = 64, sample_steps: int = 2,
               device: str | torch.device | None = None) -> dict:
    """Wall-clock seconds of `name`'s full-budget training step and of a short sampling run.

    Builds a fresh model (no checkpoint needed), runs one untimed warm-up step, then times `steps` Adam
    steps at the full budget's batch size; then times sampling n_sample points with `sample_steps` sampler
    steps (skipped for models without a sampler). Used by `python -m helpers time` to plan CPU or GPU runs.
    Returns {"train_step_s", "batch", "parameters", "sample_s", "n_sample", "sample_steps", "device"}.
    """
    import time

    spec = get(name)
    cfg = spec.budget("full")
    dev = config.device(device) if not isinstance(device, torch.device) else device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = spec.build(cfg).to(dev).train()
    g, draw, loss_fn = config.generator(0), spec.batches(cfg), spec.loss(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    from .training import to_device

    def step():
        loss = loss_fn(model, to_device(draw(g), dev), g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    out = {"train_step_s": (time.perf_counter() - t0) / steps, "batch": cfg["train"]["batch"],
           "parameters": nets.count_parameters(model),
           "sample_s": None, "n_sample": n_sample, "sample_steps": sample_steps, "device": str(dev)}
    model.eval()
    try:
        t0 = time.perf_counter()
        spec.sample(model, cfg, n_sample, sample_steps, config.generator(0), dev)
        sync()
        out["sample_s"] = time.perf_counter() - t0
    except ValueError:  # a classifier has no sampler
        pass
    return out


# ------------------------------------------------------------------------------------ 2D moons (ch. 1, 2)

MOONS_NOISE = 0.05
MOONS_TRAIN = {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
               "ema_decay": 0.999, "seed": 0}  # full budget of both moons models (about 5 min on a CPU core)
MOONS_FAST = {"steps": 600, "ema_decay": 0.98}  # a short EMA window: 0.999 would still average the start


def _moons_scale(cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return data.moons_moments(cfg["process"]["noise"])


def _moons_batches(cfg: dict):
    mean, std = _moons_scale(cfg)
    batch, noise = cfg["train"]["batch"], cfg["process"]["noise"]
    return lambda g: (data.sample_moons(batch, noise, g) - mean) / std


def moons_reference(n: int, seed: int, noise: float = MOONS_NOISE) -> np.ndarray:
    """Fresh i.i.d. moons of size n (the reference and floor samples of chapters 1 and 2)."""
    return data.sample_moons(n, noise, config.generator(10_000 + seed)).numpy()


def moons_quality(samples: np.ndarray, noise: float = MOONS_NOISE) -> dict:
    """MMD^2 (RBF, bandwidth 0.1 and median) and energy distance of (n, 2) samples vs fresh moons, with floors."""
    n = len(samples)
    draw = lambda seed: moons_reference(n, seed, noise)  # noqa: E731
    out = {}
    for key, fn in (("mmd2_bw0.1", lambda a, b: metrics.mmd2_unbiased(a, b, 0.1)),
                    ("mmd2_median", lambda a, b: metrics.mmd2_unbiased(a, b, "median")),
                    ("energy", metrics.energy_distance)):
        r = metrics.with_floor(fn, samples, draw)
        out[key], out[key + "_floor"], out[key + "_floor_std"] = r["value"], r["floor"], r["floor_std"]
    return out


def _moons_build(cfg: dict) -> nn.Module:
    return nets.TimeMLP(dim=2, **cfg["arch"])


def ddpm_schedule(cfg: dict) -> DDPMSchedule:
    """The DDPMSchedule of a DDPM model's config (its "process" T, beta_1, beta_T). Chapters 1, 6 and 7."""
    p = cfg["process"]
    return DDPMSchedule(p["T"], p["beta_1"], p["beta_T"])


def _moons_ddpm_sample(model, cfg, n, steps, g, device):
    mean, std = _moons_scale(cfg)
    x, _ = samplers.ddpm_ancestral(model, ddpm_schedule(cfg), (n, 2), g, device, steps=steps)
    return (x.cpu() * std + mean).numpy()


register(ModelSpec(
    name="moons-ddpm", chapter=1, summary="DDPM noise predictor on make_moons (noise 0.05)",
    config={"arch": {"hidden": 128, "depth": 3, "time_dim": 64},
            "process": {"T": 1000, "beta_1": 1e-4, "beta_T": 0.02, "noise": MOONS_NOISE},
            "train": dict(MOONS_TRAIN)},
    fast=dict(MOONS_FAST),
    build=_moons_build, batches=_moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ddpm_loss(model, x0, ddpm_schedule(cfg), g)),
    sample=_moons_ddpm_sample, evaluate=lambda model, cfg, dev: _moons_eval(model, cfg, dev, _moons_ddpm_sample),
))


def _ncsn_sigmas(cfg: dict) -> torch.Tensor:
    p = cfg["process"]
    return geometric_sigmas(p["sigma_max"], p["sigma_min"], p["levels"])


def _moons_ncsn_sample(model, cfg, n, steps, g, device):
    """Annealed Langevin from N(0, sigma_1^2 I) in standardised coordinates; steps = steps per level."""
    mean, std = _moons_scale(cfg)
    sigmas = _ncsn_sigmas(cfg)
    p = cfg["sample"]
    score = lambda x, j: losses.ncsn_score(model, x, torch.full((len(x),), j), sigmas)  # noqa: E731
    x0 = float(sigmas[0]) * torch.randn(n, 2, generator=g).to(device)
    x, _ = annealed_langevin(score, sigmas, x0, p["eps"], steps or p["steps_per_level"], g)
    return (x.cpu() * std + mean).numpy()


def _moons_eval(model, cfg, device, sampler):
    x = sampler(model, cfg, 2000, None, config.generator(123), device)
    return {k: float(f"{v:.3g}") for k, v in moons_quality(x, cfg["process"]["noise"]).items()}


register(ModelSpec(
    name="moons-ncsn", chapter=2, summary="NCSN score network on make_moons (noise 0.05)",
    config={"arch": {"hidden": 128, "depth": 3, "time_dim": 64, "time_scale": 100.0},
            "process": {"sigma_max": 3.0, "sigma_min": 0.01, "levels": 10, "noise": MOONS_NOISE},
            "sample": {"eps": 2e-5, "steps_per_level": 100},
            "train": dict(MOONS_TRAIN)},
    fast=dict(MOONS_FAST),
    build=_moons_build, batches=_moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ncsn_loss(model, x0, _ncsn_sigmas(cfg), g)),
    sample=_moons_ncsn_sample, evaluate=lambda model, cfg, dev: _moons_eval(model, cfg, dev, _moons_ncsn_sample),
))


# ------------------------------------------------------------------------------- 1D VP-SDE (ch. 5)


SDE1D_MIXTURE = {"weights": [0.5, 0.5], "means": [-3.0, 3.0], "stds": [0.5, 0.5]}


def sde1d_process(cfg: dict | None = None) -> tuple[vpsde.VPSDE, data.GaussianMixture1D, float]:
    """(VP-SDE, data mixture, end time eps) of the `sde-1d` model's config (default: the registered one)."""
    p = (cfg or get("sde-1d").config)["process"]
    mix = data.GaussianMixture1D(p["weights"], p["means"], p["stds"])
    return vpsde.VPSDE(p["beta_min"], p["beta_max"]), mix, float(p["eps"])


def sde1d_score(model: nn.Module, cfg: dict | None = None) -> vpsde.ScoreFn:
    """The learned score s_theta(x, t) = -eps_theta(x, t) / sigma(t) of an `sde-1d` network; x (B, 1), t (B,)."""
    return vpsde.eps_score(model, sde1d_process(cfg)[0])


def sde1d_score_error(score: vpsde.ScoreFn, cfg: dict | None = None, n: int = 4000, times: int = 50,
                      seed: int = 7) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted score error E_t E_{x ~ p_t} sigma(t)^2 |s(x, t) - grad log p_t(x)|^2 against the exact score.

    t on `times` evenly spaced values in [eps, 1], n exact draws of p_t at each (seeded). sigma^2 is the
    training loss's weight lambda(t), so this is the part of the loss the network could still remove.
    Returns (mean over t, the times (times,), the error at each time (times,)).
    """
    sde_, mix, eps = sde1d_process(cfg)
    g = config.generator(seed)
    ts = np.linspace(eps, 1.0, times)
    errs = []
    with torch.no_grad():
        for t in ts:
            x = vpsde.mixture_marginal(mix, sde_, t).sample(n, generator=g).reshape(-1, 1)
            tb = torch.full((n,), float(t))
            diff = score(x, tb) - vpsde.mixture_score(mix, sde_, x, tb)
            errs.append(float((sde_.marginal_std(tb).reshape(-1, 1) ** 2 * diff**2).mean()))
    return float(np.mean(errs)), ts, np.array(errs)


def sde1d_quality(samples: np.ndarray, cfg: dict | None = None) -> dict:
    """W1 and KS of (n,) samples against the exact mixture CDF, each beside its floor (3 significant figures).

    The floor is the same statistic for n fresh draws of the mixture (mean and std over 20 draws): a
    perfect sampler scores it, not 0. At n = 10,000 the W1 floor is about 0.028, most of it from the
    binomial spread of the share of points in each mode times the 6 between the modes.
    """
    _, mix, _ = sde1d_process(cfg)
    x = np.ravel(np.asarray(samples, dtype=np.float64))
    lo, hi = min(mix.means) - 8 * max(mix.stds), max(mix.means) + 8 * max(mix.stds)
    draw = lambda seed: mix.sample(len(x), seed=20_000 + seed).numpy()  # noqa: E731
    # the reference of both statistics is the exact CDF, so with_floor's second sample goes unused
    stats = {"w1": lambda a, _ref: metrics.wasserstein_1d_cdf(a, mix.cdf, lo, hi),
             "ks": lambda a, _ref: metrics.ks_statistic(a, mix.cdf)}
    out = {}
    for key, fn in stats.items():
        r = metrics.with_floor(fn, x, draw, repeats=20)
        out[key], out[key + "_floor"], out[key + "_floor_std"] = r["value"], r["floor"], r["floor_std"]
    return {k: float(f"{v:.3g}") for k, v in out.items()}


def _sde1d_build(cfg: dict) -> nn.Module:
    """TimeMLP(dim=1); `train_model` seeds its initial weights from the training seed."""
    return nets.TimeMLP(dim=1, **cfg["arch"])


def _sde1d_batches(cfg: dict):
    _, mix, _ = sde1d_process(cfg)
    batch = cfg["train"]["batch"]
    return lambda g: mix.sample(batch, generator=g).reshape(-1, 1)


def _sde1d_loss(cfg: dict):
    sde_, _, eps = sde1d_process(cfg)
    return lambda model, x0, g: losses.vpsde_loss(model, x0, sde_, g, eps)


def _sde1d_sample(model, cfg, n, steps, g, device, sampler: str = "sde"):
    """Reverse SDE (Euler-Maruyama) or probability-flow ODE ("euler", "heun") from N(0, 1) to t = eps: (n,)."""
    sde_, _, eps = sde1d_process(cfg)
    x, _ = vpsde.reverse_sample(sde_, vpsde.eps_score(model, sde_), (n, 1), steps or cfg["sample"]["steps"],
                                g, sampler=sampler, eps=eps, device=device)
    return x.cpu().reshape(-1).numpy()


def _sde1d_eval(model, cfg, device):
    tc = cfg["train"]
    x = _sde1d_sample(model, cfg, tc["eval_n"], tc["eval_steps"], config.generator(0), device)
    out = sde1d_quality(x, cfg)
    out["score_err"] = float(f"{sde1d_score_error(vpsde.eps_score(model.cpu(), sde1d_process(cfg)[0]), cfg)[0]:.3g}")
    model.to(device)
    return out


register(ModelSpec(
    name="sde-1d", chapter=5, summary="VP-SDE noise predictor on 0.5 N(-3, 0.5^2) + 0.5 N(3, 0.5^2)",
    config={"arch": {"hidden": 64, "depth": 2, "time_dim": 64},
            "process": {"beta_min": 0.1, "beta_max": 20.0, "eps": vpsde.EPS, **SDE1D_MIXTURE},
            "sample": {"steps": 1000},
            "train": {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
                      "ema_decay": 0.999, "seed": 0, "eval_n": 10_000, "eval_steps": 1000}},
    fast={"steps": 300, "ema_decay": 0.98, "eval_n": 2000, "eval_steps": 200},
    build=_sde1d_build, batches=_sde1d_batches, loss=_sde1d_loss, sample=_sde1d_sample, evaluate=_sde1d_eval,
    sample_options={"sampler": ("sde", "euler", "heun")},
))


# ------------------------------------------------------------------------------------- MNIST (ch. 6-8)
#
# Budgets, measured with one CPU thread (OMP_NUM_THREADS=1) on the course's 2-core build machine:
#   mnist-eval  full: 1,500 steps of batch 128 (3.8 passes over its 50,000 images), 0.27-0.45 s a step,
#               7-12 minutes (test accuracy 0.9951); fast: 60 steps of batch 64, plus the test-set
#               evaluation, about 30 s.
#   mnist-ddpm  full: 12,000 steps of batch 64 (12.8 epochs) of a 0.69 M-parameter U-Net (16, 32, 64
#               channels), 0.33-0.45 s a step on one CPU thread (72 minutes measured; FD 3.3 x its floor),
#               then a warm restart of 6,000 steps at lr 3e-4 (34 minutes; FD 2.2 x), then the FD at
#               n = 1000 with 1000 sampling steps (about 30 minutes): a CPU budget, since no GPU was lent
#               when the checkpoints were made; a GPU runs the same budget in minutes.
#               fast: 30 steps of batch 32, about 5 s, a smoke test that yields noise.
#               Sampling: about 1.6 ms per image per step at batch 64 on one CPU thread.


def _mnist_train_images(cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images (N, 1, 28, 28) in [0, 1] and labels (N,) a model of `cfg` trains on.

    MNIST is read from disk on the first call of the process (data.mnist_tensors_cached), never at import.
    `process.train_images` (the classifier's) keeps only the first that many, holding out the rest.
    """
    images, labels = data.mnist_tensors_cached(train=True)
    keep = cfg["process"].get("train_images", len(images))
    return images[:keep], labels[:keep]


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


def _eval_build(cfg: dict) -> nn.Module:
    return nets.MNISTClassifier(**cfg["arch"])


def _eval_batches(cfg: dict):
    images, labels = _mnist_train_images(cfg)
    tc = cfg["train"]

    def draw(g):
        idx = torch.randint(0, len(images), (tc["batch"],), generator=g)
        return augment_digits(images[idx], tc["degrees"], tc["shift"], g), labels[idx]

    return draw


@torch.no_grad()
def mnist_test_accuracy(classifier: nn.Module, device: torch.device | str = "cpu") -> float:
    """Accuracy of a `nets.MNISTClassifier` on the 10,000 MNIST test images."""
    images, labels = data.mnist_tensors_cached(train=False)
    classifier.eval()
    correct = sum(int((classifier(x.to(device)).argmax(1).cpu() == y).sum())
                  for x, y in zip(images.split(200), labels.split(200)))
    return correct / len(labels)


def _eval_evaluate(model, cfg, device):
    floor = metrics.mnist_fd_floor(model, 1000)
    return {"test_accuracy": round(mnist_test_accuracy(model, device), 4), "fd_floor_n1000": round(floor, 4)}


def _eval_sample(*args, **kwargs):
    raise ValueError("mnist-eval is a classifier and has no sampler")


register(ModelSpec(
    name="mnist-eval", chapter=6, summary="MNIST classifier whose features define the FD of chapters 6-8",
    config={"arch": {"channels": [32, 64, 128], "feature_dim": 128, "dropout": 0.0},
            "process": {"train_images": metrics.MNIST_HELD_OUT[0]},
            "train": {"steps": 1500, "batch": 128, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 100,
                      "degrees": 10.0, "shift": 2.0, "ema_decay": 0.99, "seed": 0}},
    fast={"steps": 60, "batch": 64, "ema_decay": 0.9},
    build=_eval_build, batches=_eval_batches,
    loss=lambda cfg: (lambda model, batch, g: nn.functional.cross_entropy(model(batch[0]), batch[1])),
    sample=_eval_sample, evaluate=_eval_evaluate,
))


def _mnist_ddpm_build(cfg: dict) -> nn.Module:
    return nets.UNet(**cfg["arch"])


def _mnist_ddpm_batches(cfg: dict):
    images, _ = _mnist_train_images(cfg)
    batch = cfg["train"]["batch"]
    return lambda g: data.to_model_range(images[torch.randint(0, len(images), (batch,), generator=g)])


def _digits_in_chunks(draw, n: int, device, chunk: int | None = None) -> np.ndarray:
    """n digits (n, 28, 28) float32 in [0, 1] from draw(shape) -> images in the models' range, `chunk` at a time.

    chunk: default 128 on CPU (where larger batches run slower per image) and 1000 on a GPU; the draws share
    one generator, so the result does not depend on the chunking's timing, only on its size.
    """
    chunk, out = chunk or (128 if torch.device(device).type == "cpu" else 1000), []
    for k in range(0, n, chunk):
        out.append(data.from_model_range(draw((min(chunk, n - k), 1, 28, 28)).cpu())[:, 0])
    return torch.cat(out).numpy()


MNIST_DDPM_SAMPLERS = ("ancestral", "em")


def ddpm_images(model, cfg: dict, shape: tuple, steps: int | None, generator, device,
                sampler: str = "ancestral") -> torch.Tensor:
    """One batch of `shape` images in the models' range from an `mnist-ddpm`-like noise predictor. Chapter 6.

    sampler "ancestral": the DDPM's own chain (`samplers.ddpm_ancestral`, `steps` of its T respaced;
    None means T). "em": the network read as a score model, s(x, t) = -eps(x, i / T) / sqrt(1 - alpha_bar_i)
    (`losses.ddpm_score`), in the reverse VP-SDE with beta(t) = T beta_{tT} (`sde.discrete_beta_range`),
    integrated by Euler-Maruyama from t = 1 to t = eps in `steps` steps (None means T). Returns (shape) on
    `device`.
    """
    if sampler not in MNIST_DDPM_SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(MNIST_DDPM_SAMPLERS)}, got {sampler!r}")
    sched = ddpm_schedule(cfg)
    if sampler == "ancestral":
        return samplers.ddpm_ancestral(model, sched, shape, generator, device, steps=steps)[0]
    sde_ = vpsde.VPSDE(*vpsde.discrete_beta_range(sched.T, sched.beta_1, sched.beta_T))
    score = losses.ddpm_score(model, (1.0 - sched.alpha_bars).sqrt())
    return vpsde.reverse_sample(sde_, score, shape, steps or sched.T, generator, "sde", vpsde.EPS, device)[0]


def _mnist_ddpm_sample(model, cfg, n, steps, g, device, sampler: str = "ancestral", chunk: int | None = None):
    """n digits (n, 28, 28) float32 in [0, 1] with `sampler` (see `ddpm_images`), `chunk` at a time.

    chunk: default 128 on CPU (where larger batches run slower per image) and 1000 on a GPU (same generator).
    """
    return _digits_in_chunks(lambda shape: ddpm_images(model, cfg, shape, steps, g, device, sampler), n, device, chunk)


def _mnist_images_eval(sample_fn, **options):
    """An `evaluate` for MNIST image models: mnist_quality of eval_n samples drawn with eval_steps steps
    (and `options`, e.g. sampler="em"), when the mnist-eval checkpoint is there; else {}."""
    def evaluate(model, cfg, device):
        try:
            classifier, _ = load("mnist-eval", device)
        except checkpoints.CheckpointError:
            return {}
        tc = cfg["train"]
        x = sample_fn(model, cfg, tc["eval_n"], tc["eval_steps"], config.generator(123), device, **options)
        q = metrics.mnist_quality(x, classifier)
        return {"eval_steps": tc["eval_steps"], **{f"eval_{k}": v for k, v in options.items()},
                **{k: round(v, 4) if isinstance(v, float) else v for k, v in q.items()}}
    return evaluate


register(ModelSpec(
    name="mnist-ddpm", chapter=6, summary="DDPM noise predictor (small U-Net) on MNIST in [-1, 1]",
    config={"arch": {"channels": [16, 32, 64], "blocks": 1, "attention": True, "time_dim": 128},
            "process": {"T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
            "train": {"steps": 12_000, "batch": 64, "lr": 1e-3, "lr_schedule": "cosine", "warmup": 500,
                      "grad_clip": 1.0, "ema_decay": 0.999, "seed": 0, "checkpoint_every": 500,
                      "restart": {"steps": 6000, "lr": 3e-4, "warmup": 200},
                      "eval_n": 1000, "eval_steps": 1000}},
    fast={"steps": 30, "batch": 32, "warmup": 10, "ema_decay": 0.9, "eval_n": 200, "eval_steps": 10},
    build=_mnist_ddpm_build, batches=_mnist_ddpm_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ddpm_loss(model, x0, ddpm_schedule(cfg), g)),
    sample=_mnist_ddpm_sample, evaluate=_mnist_images_eval(_mnist_ddpm_sample), store_dtype=torch.float16,
    sample_options={"sampler": MNIST_DDPM_SAMPLERS},
))


# -------------------------------------------------------------------------- MNIST VP-SDE (ch. 7)
#
# The same U-Net as mnist-ddpm, trained with the VP-SDE noise-matching loss at continuous t ~ U(eps, 1) on
# the SDE that continues the DDPM's schedule (beta(i / T) = T beta_i; sde.discrete_beta_range).
# Budgets as mnist-ddpm's (FD 3.4 x its floor after the first phase, 2.96 x after the restart).

MNIST_VPSDE_SAMPLERS = ("em", "ancestral", "ode", "pc")


def _mnist_vpsde_process(cfg: dict) -> tuple[vpsde.VPSDE, float]:
    p = cfg["process"]
    return vpsde.VPSDE(p["beta_min"], p["beta_max"]), float(p["eps"])


def _mnist_vpsde_loss(cfg: dict):
    sde_, eps = _mnist_vpsde_process(cfg)
    return lambda model, x0, g: losses.vpsde_loss(model, x0, sde_, g, eps)


def vpsde_images(model, cfg: dict, shape: tuple, steps: int, generator, device, sampler: str = "em") -> torch.Tensor:
    """One batch of `shape` images in the models' range from an `mnist-vpsde`-like noise predictor. Chapter 7.

    sampler: "em" (reverse SDE, `sde.euler_maruyama` to t = eps), "ancestral" (`sde.ancestral_sample`
    to t = 0), "ode" (probability-flow ODE, Heun: 2 network calls a step, `sde.ode_solve`) or "pc"
    (`sde.pc_sample`: reverse-SDE predictor and one Langevin corrector step with cfg["sample"]["snr"];
    2 network calls a step). x_1 ~ N(0, I) from `generator`. Returns (shape) on `device`.
    """
    if sampler not in MNIST_VPSDE_SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(MNIST_VPSDE_SAMPLERS)}, got {sampler!r}")
    sde_, eps = _mnist_vpsde_process(cfg)
    score = vpsde.eps_score(model, sde_)
    x1 = sde_.prior_sample(shape, generator, device)
    if sampler == "em":
        x, _ = vpsde.reverse_sample(sde_, score, shape, steps, generator, "sde", eps, device, x1=x1)
    elif sampler == "ode":
        x, _ = vpsde.reverse_sample(sde_, score, shape, steps, generator, "heun", eps, device, x1=x1)
    elif sampler == "ancestral":
        x, _ = vpsde.ancestral_sample(sde_, score, x1, steps, generator)
    else:
        s = cfg.get("sample", {})
        x, _ = vpsde.pc_sample(sde_, score, x1, steps, generator, snr=s.get("snr", 0.16),
                               corrector_steps=s.get("corrector_steps", 1), eps=eps)
    return x


def _mnist_vpsde_sample(model, cfg, n, steps, g, device, sampler: str = "em", chunk: int | None = None):
    """n digits (n, 28, 28) float32 in [0, 1] with `sampler` (see `vpsde_images`), `chunk` at a time.

    steps: default cfg["sample"]["steps"][sampler]. chunk: 128 on CPU, 1000 on a GPU (same generator).
    """
    steps = steps or cfg["sample"]["steps"].get(sampler)
    return _digits_in_chunks(lambda shape: vpsde_images(model, cfg, shape, steps, g, device, sampler), n, device, chunk)


_VPSDE_BETA_MIN, _VPSDE_BETA_MAX = vpsde.discrete_beta_range(1000, 1e-4, 0.02)

register(ModelSpec(
    name="mnist-vpsde", chapter=7, summary="VP-SDE noise predictor (small U-Net) on MNIST in [-1, 1]",
    config={"arch": {"channels": [16, 32, 64], "blocks": 1, "attention": True, "time_dim": 128},
            "process": {"beta_min": _VPSDE_BETA_MIN, "beta_max": _VPSDE_BETA_MAX, "eps": vpsde.EPS,
                        "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
            "sample": {"steps": {"em": 1000, "ancestral": 1000, "ode": 250, "pc": 500}, "snr": 0.16,
                       "corrector_steps": 1},
            "train": {"steps": 12_000, "batch": 64, "lr": 1e-3, "lr_schedule": "cosine", "warmup": 500,
                      "grad_clip": 1.0, "ema_decay": 0.999, "seed": 0, "checkpoint_every": 500,
                      "restart": {"steps": 6000, "lr": 3e-4, "warmup": 200},
                      "eval_n": 1000, "eval_steps": 1000}},
    fast={"steps": 30, "batch": 32, "warmup": 10, "ema_decay": 0.9, "eval_n": 200, "eval_steps": 10},
    build=_mnist_ddpm_build, batches=_mnist_ddpm_batches, loss=_mnist_vpsde_loss,
    sample=_mnist_vpsde_sample, evaluate=_mnist_images_eval(_mnist_vpsde_sample, sampler="em"),
    store_dtype=torch.float16,
    sample_options={"sampler": MNIST_VPSDE_SAMPLERS},
))
