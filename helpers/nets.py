"""Networks of the course: time embeddings and a time-conditioned MLP for 1D and 2D data.

Every network takes x of shape (B, D) and a time or noise-level code t of shape (B,) in [0, 1] and returns
a tensor shaped like x. What the output means (noise, score) is the loss's business, not the network's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinusoidalEmbedding(nn.Module):
    """t (B,) in [0, 1] -> (B, dim) features [sin(s t w_k), cos(s t w_k)], w_k = 10000^(-k / (dim/2)).

    The scale s = 1000 makes t = i / T of a T = 1000-step DDPM the familiar integer step i (Ho et al. 2020,
    following the Transformer's position encoding). Chapters 1, 2, 5, 6 and 7.
    """

    def __init__(self, dim: int, scale: float = 1000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 2, got {dim}")
        half = dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half), persistent=False)
        self.scale = scale

    def forward(self, t: Tensor) -> Tensor:
        angles = self.scale * t.reshape(-1, 1).float() * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=1)


class TimeMLP(nn.Module):
    """Residual MLP conditioned on t: (B, dim), (B,) -> (B, dim). Chapters 1, 2 and 5.

    h = W_in x + e(t); then `depth` blocks h <- h + W2 SiLU(W1 SiLU(h) + P_k e(t)); out = W_out SiLU(h),
    where e(t) is a sinusoidal embedding passed through a small MLP. The output layer starts at zero, so a
    fresh model predicts 0 (a neutral start for both noise and score outputs).
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, time_dim: int = 64,
                 time_scale: float = 1000.0):
        super().__init__()
        self.embed = nn.Sequential(SinusoidalEmbedding(time_dim, time_scale), nn.Linear(time_dim, hidden),
                                   nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"w1": nn.Linear(hidden, hidden), "pt": nn.Linear(hidden, hidden),
                           "w2": nn.Linear(hidden, hidden)}) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        if x.ndim != 2 or t.shape != (x.shape[0],):
            raise ValueError(f"TimeMLP expects x (B, D) and t (B,), got {tuple(x.shape)} and {tuple(t.shape)}")
        e = self.embed(t)
        h = self.inp(x) + e
        for b in self.blocks:
            h = h + b["w2"](self.act(b["w1"](self.act(h)) + b["pt"](e)))
        return self.out(self.act(h))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
