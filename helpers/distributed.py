"""Data-parallel training with PyTorch DistributedDataParallel, for runs that outgrow one device.

`training.train` runs unchanged under `torchrun`: every process draws the same global batch from the
shared generator, keeps its own shard of it (`shard`), and DDP averages the gradients, so the weights stay
identical on every rank and equal those of one process training on the whole batch, up to the losses' own
noise (diffusion times, Gaussian noise), which each rank draws for its shard (`noise_generator`). The
config's batch is the global batch: n processes each see batch / n examples a step.

    torchrun --nproc-per-node 4 -m helpers train mnist-vpsde                          # one node, 4 GPUs
    torchrun --nnodes 2 --nproc-per-node 8 \\
             --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m helpers train mnist-vpsde   # two nodes

NCCL on GPUs, gloo on CPUs. Rank 0 alone writes checkpoints, resume files and the manifest, and shows
the progress bar; resume files must sit on storage every node sees. A non-finite loss stops every rank
at the same step (the check reads the loss averaged over the ranks), but an error inside one rank's loss
(e.g. the latent EBM's divergence guard) leaves the others waiting in the next collective: stop the run
(Ctrl-C) and read that rank's message. Used by `helpers.training` and the CLI.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import Tensor, nn

from . import config
from .errors import ConfigError


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group; (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in a plain process): the one that writes files and prints progress."""
    return world()[0] == 0


def init_from_env(device: torch.device) -> bool:
    """Join the process group `torchrun` describes (RANK, WORLD_SIZE, MASTER_ADDR ...): NCCL for a CUDA
    `device`, gloo otherwise. Returns False, doing nothing, in a plain process (WORLD_SIZE unset or 1)."""
    rank, local_rank, size = config.ranks()
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return size > 1
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; train in one process")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def shard(batch: Any, rank: int, size: int) -> Any:
    """This rank's part of a global batch: a tensor (B, ...) -> rows [rank*B/size, (rank+1)*B/size);
    a tuple or list of tensors is cut alike. B must be divisible by size (else ConfigError)."""
    if size == 1:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard(b, rank, size) for b in batch)
    if not isinstance(batch, Tensor):
        raise ConfigError(f"a batch to shard must be a tensor or a tuple of tensors, got {type(batch).__name__}")
    if len(batch) % size:
        raise ConfigError(f"the global batch of {len(batch)} does not split over {size} processes; "
                          f"choose a batch divisible by the number of processes")
    part = len(batch) // size
    return batch[rank * part:(rank + 1) * part]


class LossModule(nn.Module):
    """`loss_fn(model, batch, generator)` as a module whose forward is the loss, so DDP sees every call
    of the model, whatever the loss does with it (calls it, its sub-networks, or Langevin chains)."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any, generator: torch.Generator) -> Tensor:
        return self.loss_fn(self.model, batch, generator)


def wrap(model: nn.Module, loss_fn: Callable, device: torch.device) -> nn.Module:
    """The loss as a module: DDP-wrapped when a process group is up (gradients averaged over ranks, rank 0's
    initial weights broadcast to all), the plain LossModule otherwise."""
    module = LossModule(model, loss_fn)
    if world()[1] == 1:
        return module
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def mean_over_ranks(value: Tensor) -> Tensor:
    """The mean of a scalar over all ranks (the global batch's loss, for the log); itself in one process."""
    if world()[1] == 1:
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / world()[1]


def gather(obj: Any) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank; [obj] in one process."""
    size = world()[1]
    if size == 1:
        return [obj]
    out = [None] * size
    dist.all_gather_object(out, obj)
    return out


def noise_generator(generator: torch.Generator) -> torch.Generator:
    """The generator a rank's loss draws its noise from: `generator` itself in one process; under DDP one
    per rank, seeded from `generator`'s seed and the rank (without drawing from it), so the shards get
    independent noise while the batches, drawn from `generator` on every rank, stay those of one process."""
    rank, size = world()
    if size == 1:
        return generator
    g = torch.Generator(device=generator.device)
    g.manual_seed((generator.initial_seed() * 1_000_003 + rank + 1) % 2**63)
    return g
