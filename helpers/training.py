"""One training loop for every model of the course: seeded, device-agnostic, resumable.

The loop knows nothing about diffusion: a model, a loss `loss_fn(model, batch, generator) -> scalar`
and a batch source `draw_batch(generator) -> batch` are all it needs. All randomness (batches, noise,
times) comes from one `torch.Generator`, whose state is saved in the resume file with the weights and the
optimizer, so a run killed at any step and resumed ends with the same weights as an unbroken run.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from . import accel, distributed
from .checkpoints import load_torch, save_torch


@dataclass
class TrainResult:
    """What `train` returns: the loss of every step, the steps done, wall time (all runs of a resumed
    training together), the step it resumed from, and per-step records (`train`'s `record`)."""

    losses: list[float] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    resumed_from: int = 0
    ema_state: dict | None = None


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or a tuple/list of tensors, to `device`."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    return batch


def fingerprint(config: dict) -> str:
    """A string that identifies a training configuration (resume files only resume the same run)."""
    return json.dumps(config, sort_keys=True, default=str)


def _lr_factor(schedule: str, steps: int, warmup: int) -> Callable[[int], float]:
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {schedule!r}")

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
        if schedule == "constant":
            return warm
        return warm * 0.5 * (1.0 + math.cos(math.pi * min(step, steps) / steps))

    return factor


def _weights_of(model: nn.Module, ema: dict | None) -> nn.Module:
    """A copy of `model` in eval mode holding the EMA weights (the model itself, copied, without an EMA)."""
    copy_ = copy.deepcopy(model)
    if ema is not None:
        copy_.load_state_dict(ema)
    return copy_.eval()


@torch.no_grad()
def _ema_update(ema: dict[str, Tensor], model: nn.Module, decay: float) -> None:
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            ema[name].mul_(decay).add_(value, alpha=1.0 - decay)
        else:
            ema[name].copy_(value)


def train(model: nn.Module, loss_fn: Callable, draw_batch: Callable[[torch.Generator], Any], *,
          steps: int, lr: float, generator: torch.Generator, device: torch.device | str = "cpu",
          lr_schedule: str = "constant", warmup: int = 0, grad_clip: float | None = None,
          ema_decay: float | None = None, resume_path: str | Path | None = None,
          checkpoint_every: int = 1000, run_config: dict | None = None, progress: bool = True,
          desc: str = "training", param_groups: list[dict] | None = None,
          record: Callable[[nn.Module], dict] | None = None, fast_path: bool = False, log=None) -> TrainResult:
    """Adam on `loss_fn` for `steps` steps. Used by every chapter through `models.train_model`.

    model: trained in place (moved to `device`). generator: a CPU generator driving all randomness.
    grad_clip: clip the gradient's global norm; ema_decay: keep an exponential moving average of the
    weights (returned as `ema_state`). resume_path: every `checkpoint_every` steps the weights, optimizer,
    EMA, step and generator state are written there (atomically); a later call with the same path and
    `run_config` continues from it. The file is removed when training completes.
    param_groups: Adam's parameter groups, e.g. [{"params": prior.parameters(), "lr": 2e-4},
    {"params": generator.parameters(), "lr": 1e-3}] for two networks with their own learning rates (a
    group without "lr" takes `lr`); the schedule scales every group alike. None: all of model's parameters.
    record: after every step, record(model) -> dict of floats is appended to `result.records` (e.g. the
    latent EBM's prior and posterior energies, chapter 4's training curves).
    fast_path: bf16 autocast and channels_last (`accel`), the default on a GPU (`config.fast_path`).
    log: a `tblog.RunLog` that gets the loss, learning rate, gradient norm and records of every step, and
    samples of the EMA weights now and then (TensorBoard; None: nothing is written).
    Under `torchrun` (a process group is up) the model is wrapped in DistributedDataParallel: every rank
    draws the same global batch, trains on its shard and keeps identical weights (`distributed`); rank 0
    alone writes the resume file and shows the bar.
    Raises FloatingPointError naming `desc`, the step and the loss when the loss is not finite.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if ema_decay is not None and not 0.0 < ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
    device = torch.device(device)
    model.to(device).train()
    accel.prepare(model, fast_path)
    rank, size = distributed.world()
    main = rank == 0
    noise = distributed.noise_generator(generator)  # `generator` itself in one process
    optimizer = torch.optim.Adam(param_groups if param_groups is not None else model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(lr_schedule, steps, warmup))
    ema = copy.deepcopy(model.state_dict()) if ema_decay is not None else None
    result = TrainResult()
    tag = fingerprint(run_config or {})

    start = 0
    resume_path = Path(resume_path) if resume_path is not None else None
    if resume_path is not None and resume_path.exists():
        state = load_torch(resume_path, map_location=device)
        if state.get("fingerprint") == tag:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            generator.set_state(state["generator"].cpu())
            if size > 1 and len(state.get("noise", [])) == size:
                noise.set_state(state["noise"][rank].cpu())
            if ema is not None:
                ema = state["ema"]
            result.losses = list(state["losses"])
            result.records = list(state.get("records", []))
            result.seconds = float(state.get("seconds", 0.0))
            start = result.resumed_from = int(state["step"])
        else:
            print(f"ignoring {resume_path.name}: it belongs to another configuration")

    log = log if main else None  # under torchrun rank 0 alone writes
    if log is not None:
        log.begin(start)
    step_loss = distributed.wrap(model, loss_fn, device)  # loss_fn(model, ...) as a module; DDP under torchrun
    progress = progress and main
    t0 = time.perf_counter() - result.seconds
    bar = tqdm(range(start, steps), desc=desc, disable=not progress, initial=start, total=steps,
               mininterval=1.0)
    for step in bar:
        batch = distributed.shard(accel.to_layout(to_device(draw_batch(generator), device), fast_path), rank, size)
        try:
            with accel.autocast(device, fast_path):
                loss = step_loss(batch, noise)
        except FloatingPointError as err:  # a loss's own divergence check (e.g. the latent EBM's energies)
            raise FloatingPointError(f"{desc}: {err} at step {step}") from err
        mean_loss = distributed.mean_over_ranks(loss.detach().float())  # the global batch's loss
        if not torch.isfinite(mean_loss):
            raise FloatingPointError(f"{desc}: loss became {mean_loss.item()} at step {step}; lower lr or clip gradients")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if grad_clip is not None or log is not None:  # the norm before clipping (inf: measure only)
            grad_norm = float(nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf))
        step_lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        if ema is not None:
            _ema_update(ema, model, ema_decay)
        result.losses.append(mean_loss.item())
        if record is not None:
            result.records.append(record(model))
        if log is not None:
            log.step(step, result.losses[-1], step_lr, grad_norm, result.records[-1] if record is not None else None,
                     sample_model=lambda: _weights_of(model, ema), last=step == steps - 1)
        if progress and (step % 100 == 0 or step == steps - 1):
            bar.set_postfix(loss=f"{sum(result.losses[-100:]) / len(result.losses[-100:]):.4f}")
        done = step + 1
        if resume_path is not None and done % checkpoint_every == 0 and done < steps:
            noise_states = distributed.gather(noise.get_state()) if size > 1 else []  # every rank takes part
            if main:
                save_torch({"fingerprint": tag, "step": done, "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "generator": generator.get_state(), "noise": noise_states, "ema": ema,
                            "losses": result.losses, "records": result.records,
                            "seconds": time.perf_counter() - t0}, resume_path)
    bar.close()
    if log is not None:
        log.close()
    result.steps = steps
    result.seconds = time.perf_counter() - t0
    result.ema_state = ema
    if main and resume_path is not None and resume_path.exists():
        resume_path.unlink()
    model.eval()
    return result
