"""The model registry: one `ModelSpec` per named model, and the rule for a compatible checkpoint.

A spec's `config` has up to four parts:
    arch     the network's shape                 } a checkpoint is compatible when these two
    process  the noise process (schedule, SDE)   } equal the spec's (`compatible`)
    train    the full-mode budget (`fast` overrides some of it for a CPU-minute run)
    sample   default sampler settings (optional; free to change without retraining)
A model family is one file in this folder that calls `register`, plus one import line in `__init__.py`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from .. import config
from ..errors import ConfigError

# A named sampler of a model: (model, cfg, shape, steps or None, generator, device, keep_every=0,
# progress=False) -> (x (shape) in model coordinates on `device`, samplers.Trajectory); the samplers of a
# model with `guided_by` also take guidance=(classifier, label, scale) (chapter 8).
ModelSampler = Callable[..., tuple]


@dataclass(frozen=True)
class ModelSpec:
    """How to build, train, sample and evaluate one named model.

    build(cfg) -> nn.Module (one module; a model of several networks holds them as submodules);
    batches(cfg) -> draw(generator) -> batch; loss(cfg) -> loss_fn(model, batch, generator) -> scalar;
    evaluate(model, cfg, device, required, resume_dir=None, progress=False) -> dict of metrics stored in
        the manifest, where `required` maps each name in `requires` to its loaded model; an evaluation
        that samples for long keeps its resume files in resume_dir and shows progress bars when asked
        (the MNIST generators'); the others, a few seconds long, ignore both;
    samplers: named samplers (`ModelSampler`), the first being the default; empty for a model that
        does not sample (a classifier);
    sample_shape: the shape of one sample in model coordinates, e.g. (2,) or (1, 28, 28);
    to_data(x, cfg) -> float32 numpy in the data's own coordinates (x: (n, *sample_shape) on the CPU);
    sample_chunk: largest batch sampled at once on a CPU (None: all n together);
    param_groups(model, cfg) -> list of {"params", "lr"}: several networks with their own learning rates
        in one Adam optimizer (None: one group at the budget's lr);
    record(model) -> dict of floats kept after every training step (None: only the loss), e.g. the latent
        EBM's energies for chapter 4's training curves;
    requires: other models this one needs (e.g. its evaluation classifier), loaded explicitly by
        `lifecycle.load_required`;
    guided_by: the classifier whose input gradient guides this model's samplers (they then take
        `guidance=(classifier, label, scale)`), loaded by `lifecycle.sample` when a label is asked for;
        guided sampling needs both checkpoints (chapter 8);
    conditional: the network is label-conditional and guides itself (classifier-free guidance, chapter 8):
        its samplers take guidance=(None, label, w);
    store_dtype: the dtype of floating tensors in the checkpoint file (None: as trained).
    """

    name: str
    chapter: int
    summary: str
    config: dict
    fast: dict
    build: Callable[[dict], nn.Module]
    batches: Callable
    loss: Callable
    evaluate: Callable
    samplers: Mapping[str, ModelSampler] = field(default_factory=dict)
    sample_shape: tuple = ()
    to_data: Callable[[Tensor, dict], np.ndarray] | None = None
    sample_chunk: int | None = None
    param_groups: Callable[[nn.Module, dict], list] | None = None
    record: Callable[[nn.Module], dict] | None = None
    requires: tuple[str, ...] = ()
    guided_by: str | None = None
    conditional: bool = False
    store_dtype: torch.dtype | None = None

    @property
    def default_sampler(self) -> str | None:
        """The name of the default sampler, or None for a model that does not sample."""
        return next(iter(self.samplers), None)

    @property
    def sample(self) -> ModelSampler | None:
        """The default sampler, or None for a model that does not sample."""
        return self.samplers[self.default_sampler] if self.samplers else None

    def sampler(self, name: str | None = None) -> ModelSampler:
        """The sampler called `name` (None: the default); ConfigError naming the choices otherwise."""
        if not self.samplers:
            raise ConfigError(f"{self.name} has no sampler ({self.summary})")
        name = name or self.default_sampler
        if name not in self.samplers:
            raise ConfigError(f"{self.name} has samplers {', '.join(self.samplers)}; got {name!r}")
        return self.samplers[name]

    def budget(self, mode: str) -> dict:
        """The config with the training budget of `mode` ('fast' or 'full')."""
        if mode not in config.MODES:
            raise ConfigError(f"mode must be one of {config.MODES}, got {mode!r}")
        cfg = copy.deepcopy(self.config)
        if mode == "fast":  # a fast budget has no warm restart unless `fast` gives one
            cfg["train"].pop("restart", None)
            cfg["train"].update(self.fast)
        return cfg


REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add `spec` to the registry (each name once); returns it."""
    if spec.name in REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> ModelSpec:
    """The spec of `name`; unknown names raise ConfigError listing the known ones."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def compatible(spec: ModelSpec, entry: dict) -> bool:
    """Whether a manifest entry's arch and process equal the spec's (the training budget may differ)."""
    stored = entry.get("config", {})
    return isinstance(stored, dict) and all(stored.get(k) == spec.config.get(k) for k in ("arch", "process"))
