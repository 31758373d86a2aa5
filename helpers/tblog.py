"""TensorBoard logs of a training: curves, sample figures and a profile, written only when asked. Appendix.

`python -m helpers train MODEL --log-dir DIR` (or COURSE_LOG_DIR=DIR) writes one run per model under
DIR/MODEL, which `tensorboard --logdir DIR` shows:

    train/loss, train/lr, train/grad_norm   every step (grad_norm: the gradient's global norm before clipping)
    train/steps_per_s          every `rate_every` steps and at the last: training steps per second of wall
                               time since the last point (time spent drawing sample figures left out)
    record/NAME                what the model records each step (the latent EBM's energies, chapter 4)
    samples                    every `sample_every` steps, a figure of samples of the EMA weights
                               (an image grid for MNIST models, a scatter for 2D ones)

The step is global: a warm restart goes on from the first phase's last step. A stopped training that
resumes from its resume file at step T purges what the run logged from T on (SummaryWriter's purge_step), so
no step is logged twice. Under torchrun only rank 0 writes. `profile_steps` records a few steps with
torch.profiler into DIR/MODEL/profile (TensorBoard's profiler plugin opens it) and prints the top operators.
Nothing here runs, and nothing is written, without a log folder.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .errors import ConfigError


def check_log_dir(path: str | Path) -> Path:
    """`path` as a folder that logs can be written to (created if missing); ConfigError saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--log-dir {str(path)!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write logs to {str(path)!r}: {err.strerror or err}") from None
    return path


class RunLog:
    """One training phase's TensorBoard events: `begin(step)` once, `step(...)` after every optimizer step.

    folder: the run's folder (DIR/MODEL); offset: the global step of this phase's step 0 (a warm restart
    goes on from the first phase's steps); sample_figure(model) -> matplotlib figure of samples (None: no
    figures); sample_every: steps between figures (and one at the last step); rate_every: steps between
    points of train/steps_per_s (and one at the last step).
    """

    def __init__(self, folder: str | Path, offset: int = 0,
                 sample_figure: Callable[[nn.Module], object] | None = None, sample_every: int = 1000,
                 rate_every: int = 100):
        self.folder = check_log_dir(folder)
        self.offset, self.writer = int(offset), None
        self.sample_figure, self.sample_every = sample_figure, max(1, int(sample_every))
        self.rate_every, self._clock = max(1, int(rate_every)), None  # (time, global step) of the last rate

    def begin(self, start: int) -> None:
        """Open the run at the phase's step `start` (> 0 when resumed): what a stopped run logged from there
        on is purged, so no step is logged twice."""
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        first = self.offset + start
        self.writer = SummaryWriter(str(self.folder), purge_step=first if first > 0 else None)
        self._clock = (time.perf_counter(), first - 1)  # the step before the first one logged

    def step(self, step: int, loss: float, lr: float, grad_norm: float | None, record: dict | None = None,
             sample_model: Callable[[], nn.Module] | None = None, last: bool = False) -> None:
        """Log the phase's step `step` (global step offset + step); sample_model() gives the weights to draw
        samples from (the EMA's), called only when a figure is due."""
        step = self.offset + step
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/lr", lr, step)
        if grad_norm is not None and math.isfinite(grad_norm):
            self.writer.add_scalar("train/grad_norm", grad_norm, step)
        for name, value in (record or {}).items():
            self.writer.add_scalar(f"record/{name}", float(value), step)
        since, since_step = self._clock
        if step - since_step >= self.rate_every or (last and step > since_step):
            now = time.perf_counter()
            self.writer.add_scalar("train/steps_per_s", (step - since_step) / max(now - since, 1e-9), step)
            self._clock = (now, step)
        if self.sample_figure is not None and sample_model is not None and (step % self.sample_every == 0 or last):
            import matplotlib.pyplot as plt

            start = time.perf_counter()
            fig = self.sample_figure(sample_model())
            self.writer.add_figure("samples", fig, step)
            plt.close(fig)
            self._clock = (self._clock[0] + time.perf_counter() - start, self._clock[1])  # not training time

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def profile_steps(step_fn: Callable[[], None], folder: str | Path, steps: int = 5, warmup: int = 2,
                  rows: int = 12) -> str:
    """Run step_fn() warmup times, then `steps` times under torch.profiler; write the trace to folder
    (TensorBoard's profiler plugin: `tensorboard --logdir folder`) and return the table of the top `rows`
    operators by their own CPU time (printed by `train --profile`)."""
    from torch.profiler import ProfilerActivity, profile, tensorboard_trace_handler

    folder = check_log_dir(folder)
    for _ in range(warmup):  # first calls allocate and pick kernels: not what a long training spends its time on
        step_fn()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step_fn()
    tensorboard_trace_handler(str(folder))(prof)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
