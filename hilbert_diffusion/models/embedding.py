"""Time conditioning for score operators: a sinusoidal embedding of ``t`` and feature-wise modulation.

neuraloperator's FNO has no time input (its ``norm="ada_in"`` fails at construction), so a score
operator injects ``t`` itself. The modulation is per sample and per channel::

    e = MLP(sin/cos(2π f_j · s t))                                     (sinusoidal embedding, DDPM/EDM)
    h ← h ⊙ (1 + γ(e)) + β(e)                                          (FiLM, Perez et al. 2018)

It multiplies whole feature *functions* by constants, so it commutes with resampling and works at
any grid, on any domain (box or sphere) and any number of grid axes.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SinusoidalEmbedding", "TimeEmbedding", "FiLM"]


class SinusoidalEmbedding(nn.Module):
    """``t`` (shape ``(batch,)``) ↦ ``[sin(ω_j s t), cos(ω_j s t)]`` (shape ``(batch, dim)``).

    ``ω_j`` are geometric from 1 to ``1 / max_period`` as in DDPM; ``s = scale`` stretches ``t ∈ [0, 1]``
    over ``[0, scale]`` (1000 by default, DDPM's number of steps) so that small times are resolved.
    """

    def __init__(self, dim: int, *, scale: float = 1000.0, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be an even number ≥ 2, got {dim}.")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
        self.register_buffer("freqs", (freqs * scale).float(), persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angles = t.reshape(-1, 1).to(self.freqs.dtype) * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TimeEmbedding(nn.Module):
    """Sinusoidal features of ``t`` followed by a two-layer MLP: ``(batch,) → (batch, dim)``."""

    def __init__(self, dim: int, *, frequencies: int = 64) -> None:
        super().__init__()
        self.sinusoid = SinusoidalEmbedding(frequencies)
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(self.sinusoid(t))


class FiLM(nn.Module):
    """``h ⊙ (1 + γ(e)) + β(e)`` for features ``h`` of shape ``(batch, channels, *grid)``, any rank.

    The projection is zero-initialised, so the modulation starts as the identity and training starts
    from the unconditioned network.
    """

    def __init__(self, embedding_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(embedding_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        gamma, beta = self.proj(embedding).chunk(2, dim=-1)
        shape = (*gamma.shape, *([1] * (h.dim() - 2)))
        return h * (1 + gamma.reshape(shape)) + beta.reshape(shape)
