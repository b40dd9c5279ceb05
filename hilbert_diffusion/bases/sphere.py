"""The unit sphere S² with real spherical harmonics (``torch_harmonics``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .base import Grid, SpectralBasis

__all__ = ["SphereBasis"]


@dataclass(frozen=True)
class SphereBasis(SpectralBasis):
    """The unit sphere S² with real spherical harmonics through ``torch_harmonics``.

    Grid ``(nlat, nlon)`` with ``nlon = 2 nlat`` by default; coefficients ``(lmax, mmax)`` complex
    (``m ≥ 0``; the ``-m`` partner of a real field is implied), ``λ_lm = l (l + 1)``.

    ``grid="legendre-gauss"`` (default) is exact: Gauss–Legendre nodes integrate every product of two
    band-limited harmonics, so synthesis followed by analysis is the identity to rounding.
    ``grid="equiangular"`` (Clenshaw–Curtis nodes, poles included) is only exact for
    ``lmax ≤ (nlat + 1) / 2``; at the default ``lmax = nlat`` its round trip has an O(1e-3..1e-1)
    error on the highest degrees (measured in the tests), so use it only for data that come on such
    a grid.
    """

    grid_type: str = "legendre-gauss"
    ndim: int = field(default=2, init=False)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.grid_type not in ("legendre-gauss", "equiangular"):
            raise ValueError(f"grid_type must be 'legendre-gauss' or 'equiangular', got {self.grid_type!r}.")

    def grid(self, resolution: int | Sequence[int]) -> Grid:
        if isinstance(resolution, int):
            resolution = (resolution, 2 * resolution)
        return super().grid(resolution)

    def _check_grid(self, grid: Grid) -> None:
        nlat, nlon = grid
        if nlat < 2 or nlon < 2 * (nlat - 1) + 1:
            raise ValueError(
                f"sphere grid {grid} cannot carry degree {nlat - 1}: it needs nlon ≥ 2·nlat - 1 longitudes "
                f"(the default is nlon = 2·nlat)."
            )

    @staticmethod
    def degrees(grid: Grid) -> tuple[int, int]:
        """``(lmax, mmax)`` used for a grid: all degrees ``l < nlat`` and orders ``m < nlat``."""
        nlat, _ = grid
        return nlat, nlat

    def _transforms(self, grid: Grid, dtype: torch.dtype, device: torch.device):
        from torch_harmonics import InverseRealSHT, RealSHT

        key = (grid, dtype, device)
        if key not in self._cache:
            lmax, mmax = self.degrees(grid)
            kw = dict(lmax=lmax, mmax=mmax, grid=self.grid_type, norm="ortho")
            sht = RealSHT(*grid, **kw).to(device=device, dtype=dtype)
            isht = InverseRealSHT(*grid, **kw).to(device=device, dtype=dtype)
            self._cache[key] = (sht, isht)
        return self._cache[key]

    def forward(self, x: Tensor) -> Tensor:
        grid = self.grid_of(x)
        sht, _ = self._transforms(grid, x.dtype, x.device)
        return sht(x)

    def inverse(self, c: Tensor, grid: Grid) -> Tensor:
        _, isht = self._transforms(grid, c.real.dtype, c.device)
        # Only m ≤ l exists; the imaginary part of m = 0 has no field to carry it.
        c = c * self._valid(grid).to(c.device)
        return isht(c)

    def _valid(self, grid: Grid) -> Tensor:
        lmax, mmax = self.degrees(grid)
        l = torch.arange(lmax)[:, None]
        m = torch.arange(mmax)[None, :]
        return (m <= l).to(torch.float64)

    def eigenvalues(self, grid: Grid) -> Tensor:
        lmax, mmax = self.degrees(grid)
        l = torch.arange(lmax, dtype=torch.float64)[:, None]
        return (l * (l + 1)).expand(lmax, mmax).clone()

    def _latitude_rule(self, nlat: int) -> tuple[Tensor, Tensor]:
        """``cos θ`` nodes and weights, ordered north to south as ``torch_harmonics`` orders the grid."""
        from torch_harmonics.quadrature import clenshaw_curtiss_weights, legendre_gauss_weights

        rule = legendre_gauss_weights if self.grid_type == "legendre-gauss" else clenshaw_curtiss_weights
        nodes, w = rule(nlat, -1.0, 1.0)
        return (torch.flip(torch.as_tensor(nodes, dtype=torch.float64), (0,)),
                torch.flip(torch.as_tensor(w, dtype=torch.float64), (0,)))

    def weights(self, grid: Grid) -> Tensor:
        nlat, nlon = grid
        _, w = self._latitude_rule(nlat)
        return (w * (2 * math.pi / nlon))[:, None].expand(nlat, nlon).clone()

    def axis_points(self, grid: Grid, *, fractional: bool = False) -> list[Tensor]:
        """Colatitude ``θ_i`` (from the north pole) and longitude ``φ_j = 2π j / nlon``."""
        nlat, nlon = grid
        colatitude = torch.arccos(self._latitude_rule(nlat)[0])
        longitude = 2 * math.pi * torch.arange(nlon, dtype=torch.float64) / nlon
        if fractional:
            return [colatitude / math.pi, longitude / (2 * math.pi)]
        return [colatitude, longitude]

    def multiplicity(self, grid: Grid) -> Tensor:
        m = torch.full(self.coefficient_shape(grid), 2.0, dtype=torch.float64)
        m[:, 0] = 1.0
        return m * self._valid(grid)

    def coefficient_shape(self, grid: Grid) -> tuple[int, ...]:
        return self.degrees(grid)

    def _resize_coefficients(self, c: Tensor, source: Grid, target: Grid) -> Tensor:
        shape = self.coefficient_shape(target)
        out = c.new_zeros((*c.shape[:-2], *shape))
        l, m = min(c.shape[-2], shape[0]), min(c.shape[-1], shape[1])
        out[..., :l, :m] = c[..., :l, :m]
        return out
