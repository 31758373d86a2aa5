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
        if mode == "fast":
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
                folder: str | Path | None = None, progress: bool = True, save: bool = True):
    """Train `name` with the budget of `mode` (default: config.mode()) and save it with its manifest entry.

    folder: where the checkpoint and manifest go (default: config.checkpoint_dir()); notebooks pass a
    temporary folder for their short fast-mode runs so the shipped checkpoints stay untouched.
    A resume file `folder/name.resume.pt` is written while training; rerunning after a kill continues.
    Returns (model in eval mode on `device`, manifest entry dict, TrainResult).
    """
    from .training import train

    spec = get(name)
    mode = mode or config.mode()
    cfg = spec.budget(mode)
    dev = config.device(device) if not isinstance(device, torch.device) else device
    folder = Path(folder) if folder is not None else config.checkpoint_dir()
    tc = cfg["train"]
    model = spec.build(cfg)
    g = config.generator(tc.get("seed", config.seed()))
    result = train(model, spec.loss(cfg), spec.batches(cfg), steps=tc["steps"], lr=tc["lr"], generator=g,
                   device=dev, lr_schedule=tc.get("lr_schedule", "constant"), warmup=tc.get("warmup", 0),
                   grad_clip=tc.get("grad_clip"), ema_decay=tc.get("ema_decay"),
                   resume_path=folder / f"{name}.resume.pt" if save else None,
                   checkpoint_every=tc.get("checkpoint_every", 1000), run_config=cfg, progress=progress,
                   desc=f"{name} ({mode})")
    if result.ema_state is not None:
        model.load_state_dict(result.ema_state)
    model.eval()
    entry = {"mode": mode, "metrics": spec.evaluate(model, cfg, dev), "train_steps": tc["steps"],
             "train_seconds": round(result.seconds, 1), "final_loss": float(np.mean(result.losses[-500:])),
             "parameters": nets.count_parameters(model), "hardware": _hardware(dev),
             "torch": torch.__version__, "created": datetime.date.today().isoformat()}
    if save:
        checkpoints.save_model(folder, name, model.state_dict(), cfg, entry, dtype=spec.store_dtype)
        entry = checkpoints.read_manifest(folder)["models"][name]
    return model, entry, result


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


# ------------------------------------------------------------------------------------ 2D moons (ch. 1, 2)

MOONS_NOISE = 0.05


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


def _ddpm_schedule(cfg: dict) -> DDPMSchedule:
    p = cfg["process"]
    return DDPMSchedule(p["T"], p["beta_1"], p["beta_T"])


def _moons_ddpm_sample(model, cfg, n, steps, g, device):
    mean, std = _moons_scale(cfg)
    x, _ = samplers.ddpm_ancestral(model, _ddpm_schedule(cfg), (n, 2), g, device, steps=steps)
    return (x.cpu() * std + mean).numpy()


register(ModelSpec(
    name="moons-ddpm", chapter=1, summary="DDPM noise predictor on make_moons (noise 0.05)",
    config={"arch": {"hidden": 128, "depth": 3, "time_dim": 64},
            "process": {"T": 1000, "beta_1": 1e-4, "beta_T": 0.02, "noise": MOONS_NOISE},
            "train": {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
                      "ema_decay": 0.999, "seed": 0}},
    fast={"steps": 600, "ema_decay": 0.98},
    build=_moons_build, batches=_moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ddpm_loss(model, x0, _ddpm_schedule(cfg), g)),
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
            "train": {"steps": 30_000, "batch": 1024, "lr": 2e-3, "lr_schedule": "cosine", "warmup": 200,
                      "ema_decay": 0.999, "seed": 0}},
    fast={"steps": 600, "ema_decay": 0.98},
    build=_moons_build, batches=_moons_batches,
    loss=lambda cfg: (lambda model, x0, g: losses.ncsn_loss(model, x0, _ncsn_sigmas(cfg), g)),
    sample=_moons_ncsn_sample, evaluate=lambda model, cfg, dev: _moons_eval(model, cfg, dev, _moons_ncsn_sample),
))
