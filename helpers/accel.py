"""The fast path of training: bf16 autocast, channels_last and TF32, on where `python -m helpers bench`
measures them faster (a GPU), off where it measures them slower (the course's CPUs). `config.fast_path`
decides, and `COURSE_FAST_PATH=0|1` overrides it.

- bf16 autocast runs matmuls and convolutions in bfloat16 (8 exponent bits, as fp32, so no loss scaling
  is needed); weights, optimizer state and the loss's reduction stay fp32.
- channels_last stores images (B, C, H, W) as (B, H, W, C) in memory, the layout tensor cores and oneDNN's
  fast convolutions read.
- TF32 lets fp32 matmuls that remain use tensor cores on Ampere and later GPUs.
Sampling stays fp32 in every case: a thousand reverse steps add up rounding that training averages away.
Used by `training.train` and `bench`.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn


def has_conv(model: nn.Module) -> bool:
    """Whether `model` holds a 2D convolution (channels_last only changes those)."""
    return any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in model.modules())


def prepare(model: nn.Module, enabled: bool) -> nn.Module:
    """`model` in channels_last when `enabled` and it has convolutions, with TF32 on for CUDA; in place."""
    if not enabled:
        return model
    if has_conv(model):
        model.to(memory_format=torch.channels_last)
    if any(p.is_cuda for p in model.parameters()):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return model


def to_layout(batch: Any, enabled: bool) -> Any:
    """4D tensors of `batch` (a tensor or a tuple/list) in channels_last when `enabled`; others unchanged."""
    if not enabled:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_layout(b, enabled) for b in batch)
    if isinstance(batch, Tensor) and batch.dim() == 4:
        return batch.contiguous(memory_format=torch.channels_last)
    return batch


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on `device` when `enabled` (and the device supports it), else a no-op context."""
    if not enabled:
        return contextlib.nullcontext()
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
