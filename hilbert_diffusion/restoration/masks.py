"""Masks of common shapes: a box hidden, random points observed, the finite points of observations with NaN where
missing (:class:`~hilbert_diffusion.restoration.operators.Mask`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..bases import Grid, SpectralBasis
from ..bases.base import _as_tuple
from .operators import Mask

__all__ = ["box_mask", "random_mask", "missing_mask"]


def _box(basis: SpectralBasis, grid: Grid, low: float | Sequence[float], high: float | Sequence[float]) -> Tensor:
    low, high = _as_tuple(low, basis.ndim, "low"), _as_tuple(high, basis.ndim, "high")
    if any(not 0 <= lo < hi <= 1 for lo, hi in zip(low, high)):
        raise ValueError(
            f"box corners low={low}, high={high} must be fractional coordinates with 0 ≤ low < high ≤ 1 on every axis."
        )
    inside = torch.ones(grid, dtype=torch.bool)
    for axis, (coord, lo, hi) in enumerate(zip(basis.axis_points(grid, fractional=True), low, high)):
        shape = [1] * basis.ndim
        shape[axis] = -1
        inside = inside & ((coord >= lo) & (coord < hi)).reshape(shape)
    return inside


def box_mask(
    basis: SpectralBasis,
    resolution: int | Sequence[int],
    *,
    low: float | Sequence[float],
    high: float | Sequence[float],
    noise_std: float = 0.0,
) -> Mask:
    """A :class:`Mask` hiding the box ``[low, high)`` and observing every other point of the grid ``resolution``.

    Corners are fractional coordinates (``basis.axis_points(grid, fractional=True)``), one per axis or one number
    for every axis (``box_mask(NeumannBasis(1), 64, low=0.3, high=0.6)``)."""
    grid = basis.grid(resolution)
    return Mask(basis=basis, observed=~_box(basis, grid, low, high), noise_std=noise_std)


def random_mask(
    basis: SpectralBasis,
    resolution: int | Sequence[int],
    *,
    observed_fraction: float,
    generator: torch.Generator | None = None,
    noise_std: float = 0.0,
) -> Mask:
    """A :class:`Mask` observing ``round(observed_fraction · N)`` grid points drawn without replacement."""
    grid = basis.grid(resolution)
    n = math.prod(grid)
    count = round(observed_fraction * n)
    if not 0 < count < n:
        raise ValueError(
            f"observed_fraction={observed_fraction} observes {count} of {n} points; it must leave at least one point "
            f"observed and one unknown (0 < fraction < 1)."
        )
    chosen = torch.randperm(n, generator=generator)[:count]
    observed = torch.zeros(n, dtype=torch.bool)
    observed[chosen] = True
    return Mask(basis=basis, observed=observed.reshape(grid), noise_std=noise_std)


def missing_mask(basis: SpectralBasis, observed: Tensor, *, noise_std: float = 0.0) -> tuple[Mask, Tensor]:
    """``(mask, y)`` from observations ``(*batch, *grid)`` whose missing points are NaN: the :class:`Mask` of the
    points that are finite in every observation, and ``y`` with the NaN replaced by 0 (off the mask, ignored)."""
    grid = basis.grid_of(observed)
    finite = torch.isfinite(observed).reshape(-1, *grid).all(dim=0)
    if not finite.any():
        raise ValueError("every point is NaN in some observation: nothing is observed; give finite values where known.")
    return Mask(basis=basis, observed=finite, noise_std=noise_std), torch.nan_to_num(observed, nan=0.0)
