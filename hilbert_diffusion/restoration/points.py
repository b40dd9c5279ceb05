"""Sparse point observations of chosen channels: ``y_cj = x_c(p_j) + σ_y ε_cj`` for the channels ``c`` observed and
points ``p_j`` of a reference grid (DiffusionPDE's protocol: 500 of the 128² points, one channel of a pair).

The points are points of one grid of the basis (:attr:`PointObservation.grid`). A field on that grid is read
there; a field on any other grid is first resampled band-limited to it (:meth:`SpectralBasis.resample`), so that
the operator evaluates the field's band-limited interpolant at the same physical points whatever grid the field is
sampled on: a model trained at 64² and sampled at 64² or 128² is conditioned on the same 500 numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..bases import Grid, SpectralBasis
from .operators import Mask

__all__ = ["PointObservation", "diffusionpde_points"]


def diffusionpde_points(seed: int, *, count: int = 500, resolution: int = 128) -> Tensor:
    """DiffusionPDE's observed points: ``np.random.seed(seed); np.random.choice(resolution², count,
    replace=False)`` unravelled row-major, as ``(count, 2)`` grid indices (seed 1 observes ``a``, seed 0 ``u``)."""
    flat = np.random.RandomState(seed).choice(resolution**2, count, replace=False)
    rows, cols = np.unravel_index(flat, (resolution, resolution))
    return torch.as_tensor(np.stack([rows, cols], axis=-1), dtype=torch.long)


@dataclass(frozen=True, kw_only=True, eq=False)
class PointObservation:
    """Values of ``channels`` at points of ``grid``: ``(*batch, C, *G) -> (*batch, len(channels), P)``.

    Attributes:
        basis: the domain.
        grid: the grid the points lie on.
        indices: ``(P, ndim)`` integer indices of the points in ``grid`` (distinct).
        channels: the observed channels of the field.
        noise_std: ``σ_y``, the standard deviation of independent Gaussian observation noise.
    """

    basis: SpectralBasis
    grid: Grid
    indices: Tensor
    channels: tuple[int, ...] = (0,)
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        grid = self.basis.grid(tuple(self.grid))
        indices = torch.as_tensor(self.indices)
        if indices.dim() != 2 or indices.shape[1] != self.basis.ndim or indices.dtype.is_floating_point:
            raise ValueError(f"indices must be integers shaped (points, {self.basis.ndim}), got "
                             f"{tuple(indices.shape)} {indices.dtype}; give one grid index per axis and point.")
        if len(indices) == 0 or (indices < 0).any() or (indices >= torch.tensor(grid)).any():
            raise ValueError(f"point indices must lie in the grid {grid} (0 ≤ index < size on every axis) and be at "
                             f"least one; got range {indices.min().item()}..{indices.max().item()}.")
        flat = self._flat(indices.long(), grid)
        if len(flat.unique()) != len(flat):
            raise ValueError("the points repeat: give each observed point once.")
        channels = tuple(int(c) for c in self.channels)
        if not channels or min(channels) < 0 or len(set(channels)) != len(channels):
            raise ValueError(f"channels must be distinct indices ≥ 0 (at least one), got {self.channels}.")
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std (σ_y) must be a finite number ≥ 0, got {self.noise_std}.")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "indices", indices.long().cpu())
        object.__setattr__(self, "channels", channels)

    @classmethod
    def from_coordinates(cls, basis: SpectralBasis, grid: int | Sequence[int], coordinates: Tensor, *,
                         channels: Sequence[int] = (0,), noise_std: float = 0.0) -> PointObservation:
        """The points at physical ``coordinates`` ``(P, ndim)`` (as ``basis.axis_points(grid)`` places the grid),
        each of which must be a point of ``grid`` (to 1e-9 of the domain's size)."""
        grid = basis.grid(grid)
        coordinates = torch.as_tensor(coordinates, dtype=torch.float64)
        if coordinates.dim() != 2 or coordinates.shape[1] != basis.ndim:
            raise ValueError(f"coordinates must be shaped (points, {basis.ndim}), got {tuple(coordinates.shape)}.")
        lengths = getattr(basis, "lengths", None)  # boxes [0, L_1] × …; the sphere's points are matched only
        columns = []
        for axis, points in enumerate(basis.axis_points(grid)):
            value, points = coordinates[:, axis], points.to(torch.float64)
            if lengths is not None and ((value < 0) | (value > lengths[axis])).any():
                raise ValueError(f"points outside the domain: axis {axis} spans [0, {lengths[axis]:g}] but the "
                                 f"coordinates run {value.min().item():.4g}..{value.max().item():.4g}.")
            distance, index = (value[:, None] - points[None, :]).abs().min(dim=1)
            if (distance > 1e-9).any():
                raise ValueError(f"some coordinates on axis {axis} are not points of the grid {grid}; give grid "
                                 f"points (basis.axis_points(grid)) or the grid that contains them.")
            columns.append(index)
        return cls(basis=basis, grid=grid, indices=torch.stack(columns, dim=-1), channels=tuple(channels),
                   noise_std=noise_std)

    @staticmethod
    def _flat(indices: Tensor, grid: Grid) -> Tensor:
        strides = torch.tensor([math.prod(grid[axis + 1 :]) for axis in range(len(grid))])
        return (indices * strides).sum(-1)

    @property
    def count(self) -> int:
        """``P``, the number of points."""
        return len(self.indices)

    def mask(self) -> Tensor:
        """The observed points as a boolean array shaped like :attr:`grid`."""
        mask = torch.zeros(math.prod(self.grid), dtype=torch.bool)
        mask[self._flat(self.indices, self.grid)] = True
        return mask.reshape(self.grid)

    def as_mask(self, channels: int) -> Mask:
        """The same observation as a channel-wise :class:`Mask` on :attr:`grid` for fields with ``channels``
        channels, for the restoration methods of the engine (``y`` then lives on the grid: :meth:`scatter`)."""
        if max(self.channels) >= channels:
            raise ValueError(f"the observation reads channel {max(self.channels)} but the fields have {channels}.")
        observed = torch.zeros((channels, *self.grid), dtype=torch.bool)
        observed[list(self.channels)] = self.mask()
        return Mask(basis=self.basis, observed=observed, noise_std=self.noise_std)

    def scatter(self, y: Tensor, channels: int) -> Tensor:
        """Observed values ``(n, len(channels), P)`` placed on the grid, ``(n, channels, *grid)`` (zero elsewhere)."""
        self.check_observation(y)
        out = y.new_zeros((len(y), channels, math.prod(self.grid)))
        out[:, list(self.channels)] = out[:, list(self.channels)].index_copy(
            -1, self._flat(self.indices, self.grid).to(y.device), y)
        return out.reshape(len(y), channels, *self.grid)

    def coordinates(self) -> Tensor:
        """The physical positions of the points, ``(P, ndim)`` float64."""
        axes = self.basis.axis_points(self.grid)
        return torch.stack([axes[axis].to(torch.float64)[self.indices[:, axis]] for axis in range(self.basis.ndim)], -1)

    def _check_field(self, x: Tensor) -> Grid:
        grid = self.basis.grid_of(x)
        if x.dim() < self.basis.ndim + 1 or max(self.channels) >= x.shape[-self.basis.ndim - 1]:
            have = x.shape[-self.basis.ndim - 1] if x.dim() > self.basis.ndim else 0
            raise ValueError(f"the observation reads channel {max(self.channels)} but the field has {have} channel(s); "
                             f"observe channels 0..{have - 1} or give (batch, channels, *grid) fields with more.")
        return grid

    def forward(self, x: Tensor) -> Tensor:
        """``A x``: the observed channels at the points, ``(*batch, len(channels), P)``."""
        grid = self._check_field(x)
        channel_axis = x.dim() - self.basis.ndim - 1
        x = x.index_select(channel_axis, torch.tensor(self.channels, device=x.device))
        if grid != self.grid:
            x = self.basis.resample(x, self.grid)
        return x.flatten(channel_axis + 1)[..., self._flat(self.indices, self.grid).to(x.device)]

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def observe(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """A noisy observation ``A x + σ_y ε``."""
        y = self.forward(x)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return y

    def check_observation(self, y: Tensor) -> None:
        """Raises a one-line ValueError unless ``y`` is ``(..., len(channels), P)`` and finite."""
        expected = (len(self.channels), self.count)
        if y.dim() < 2 or tuple(y.shape[-2:]) != expected:
            raise ValueError(f"the observation has shape {tuple(y.shape)} but {self.count} points of "
                             f"{len(self.channels)} channel(s) are observed; give y shaped (..., *{expected}).")
        if not torch.isfinite(y).all():
            raise ValueError("the observation has NaN or infinite values; give finite values at every point.")
