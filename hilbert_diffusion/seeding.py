"""Independent random streams from ``(seed, index)`` pairs (per field of a data set, per chunk of samples)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["stream_seed", "stream_generator"]


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
