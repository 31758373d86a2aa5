"""Data-parallel training (helpers.distributed): two gloo processes on CPU against one process."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from helpers import config, distributed
from helpers.training import train

STEPS, GLOBAL_BATCH = 20, 32


def _tiny_run(out_path):
    """A 3 -> 16 -> 1 MLP fitted by Adam to y = sin(x1 + x2 + x3), from seed 0, batch GLOBAL_BATCH."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def draw(g):
        x = torch.randn(GLOBAL_BATCH, 3, generator=g)
        return x, torch.sin(x.sum(1, keepdim=True))

    seen = []  # the batch size each step's loss saw

    def loss_fn(m, batch, g):
        x, y = batch
        seen.append(len(x))
        return ((m(x) - y) ** 2).mean()

    result = train(model, loss_fn, draw, steps=STEPS, lr=1e-2, generator=config.generator(0), progress=False,
                   grad_clip=1.0, ema_decay=0.9)
    torch.save({"weights": model.state_dict(), "losses": result.losses, "seen": seen}, out_path)


def _rank(rank, size, init_file, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=size)
    try:
        assert distributed.world() == (rank, size)
        _tiny_run(folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_match_one_process_with_the_whole_batch(tmp_path):
    mp.spawn(_rank, args=(2, tmp_path / "init", tmp_path), nprocs=2, join=True)
    _tiny_run(tmp_path / "single.pt")
    r0, r1, one = (torch.load(tmp_path / f, weights_only=True) for f in ("rank0.pt", "rank1.pt", "single.pt"))
    for name, w in one["weights"].items():
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name  # DDP keeps the ranks identical
        torch.testing.assert_close(r0["weights"][name], w, rtol=1e-5, atol=1e-6)  # = one process, batch 32
    torch.testing.assert_close(torch.tensor(r0["losses"]), torch.tensor(one["losses"]), rtol=1e-5, atol=1e-6)
    assert set(r0["seen"]) == set(r1["seen"]) == {GLOBAL_BATCH // 2} and set(one["seen"]) == {GLOBAL_BATCH}
    assert one["losses"][-1] < one["losses"][0]  # it did learn


def test_shard_cuts_every_tensor_of_a_batch_alike_and_refuses_an_uneven_split():
    x, y = torch.arange(12).reshape(6, 2), torch.arange(6)
    xs, ys = distributed.shard((x, y), 1, 3)
    assert torch.equal(xs, x[2:4]) and torch.equal(ys, y[2:4])
    assert torch.equal(torch.cat([distributed.shard(x, r, 3) for r in range(3)]), x)
    with pytest.raises(ValueError, match="does not split over 4"):
        distributed.shard(x, 0, 4)
