"""Independent random streams from ``(seed, index)`` pairs (per field of a data set, per chunk of samples)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["stream_seed", "stream_generator", "draw_device"]


def stream_seed(seed: int, index: int) -> int:
    """A 63-bit seed for stream ``index`` of a run seeded ``seed``: NumPy's ``SeedSequence`` hash of the pair,
    so ``(seed, i)`` and ``(seed + 1, j)`` are unrelated and every bit varies (torch's CPU generator keeps
    only the low 32 bits of a seed, so structured seeds like ``seed · 2³² + i`` would collide across seeds)."""
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be ≥ 0, got seed={seed}, index={index}.")
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0]) >> 1


def stream_generator(seed: int, index: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with :func:`stream_seed` ``(seed, index)``."""
    return torch.Generator().manual_seed(stream_seed(seed, index))


def draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device | str | None:
    """Where to draw random numbers for a tensor that lives on ``device``: the generator's own device (a seed then
    gives the same numbers wherever the result lives; move them after drawing), else ``device``."""
    return generator.device if generator is not None else device
