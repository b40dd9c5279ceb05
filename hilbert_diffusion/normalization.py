"""Per-channel affine normalisation of fields, fitted by quadrature over the domain.

The model and the SDE live in normalised units ``(x - mean_c) / std_c``; the moments are those of the
fields as functions (``mean_c = E ∫ x_c w / ∫ w``), so they do not depend on the grid and weight the
sphere's cells by their area rather than crowding the poles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .bases import SpectralBasis
from .datasets.base import FieldDataset

__all__ = ["Normalization"]

_CONSTANT = 1e-6  # a channel whose std is below this fraction of its |mean| (or zero) is constant


@dataclass(frozen=True)
class Normalization:
    """Per-channel affine normalisation ``(x - mean) / std``; :meth:`identity` leaves fields unchanged."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if len(self.mean) != len(self.std) or not all(s > 0 and math.isfinite(s) for s in self.std):
            raise ValueError(f"Normalization needs one positive finite std per channel, got {self}.")

    @classmethod
    def identity(cls, channels: int) -> Normalization:
        """Mean 0 and std 1 on each of ``channels`` channels."""
        if channels < 1:
            raise ValueError(f"Normalization.identity needs at least one channel, got {channels}.")
        return cls((0.0,) * channels, (1.0,) * channels)

    @classmethod
    def fit(cls, data: Tensor, *, basis: SpectralBasis, enabled: bool = True) -> Normalization:
        """Quadrature mean and standard deviation of each channel of ``data`` ``(num, channels, *grid)``
        on ``basis``: ``mean_c = E ∫ x_c w / ∫ w``, ``std_c² = E ∫ (x_c - mean_c)² w / ∫ w``
        (:meth:`FieldDataset.channel_statistics`); the identity when not ``enabled``."""
        if not enabled:
            return cls.identity(data.shape[1])
        return cls.from_moments(*FieldDataset(data=data, basis=basis, name="", spec={}).channel_statistics())

    @classmethod
    def from_moments(cls, mean: Tensor, std: Tensor) -> Normalization:
        """From per-channel quadrature moments (refused when a channel is constant: ``std`` below 1e-6 ``|mean|``)."""
        if not bool((std > _CONSTANT * mean.abs()).all()):
            raise ValueError(f"a channel of the data is constant (std {std.tolist()}); it cannot be normalised.")
        return cls(tuple(mean.tolist()), tuple(std.tolist()))

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        if x.dim() < 2 or x.shape[1] != len(self.mean):
            raise ValueError(f"expected (batch, {len(self.mean)}, *grid), got {tuple(x.shape)}.")
        return (1, len(self.mean), *([1] * (x.dim() - 2)))

    def _moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        shape = self._shape(x)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).reshape(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).reshape(shape)
        return mean, std

    def encode(self, x: Tensor) -> Tensor:
        """``(x - mean) / std`` per channel."""
        mean, std = self._moments(x)
        return (x - mean) / std

    def decode(self, x: Tensor) -> Tensor:
        """``x · std + mean`` per channel (the inverse of :meth:`encode`)."""
        mean, std = self._moments(x)
        return x * std + mean
