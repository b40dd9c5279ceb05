"""Boxes ``[0, L_1] × … × [0, L_d]``: periodic (FFT), Neumann walls (DCT-II on cell centres), Dirichlet walls (DST-I)."""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .base import Grid, SpectralBasis, _as_tuple

__all__ = ["PeriodicBasis", "NeumannBasis", "DirichletBasis"]


def _resize_centered_axis(c: Tensor, dim: int, n_out: int) -> Tensor:
    """Resize one full FFT axis (standard ordering) from ``n_in`` to ``n_out`` frequencies.

    Frequencies both sizes resolve are copied; the Nyquist bin of an even size is split into two
    half-amplitude bins at ``±n/2`` when padding and the two are summed when truncating, so that
    padding then truncating is the identity and real fields stay real.
    """
    n_in = c.shape[dim]
    if n_in == n_out:
        return c
    k = min(n_in, n_out)
    n_pos = (k + 1) // 2  # frequencies 0 .. n_pos-1 (Nyquist of an even k excluded)
    n_neg = (k - 1) // 2  # frequencies -n_neg .. -1
    shape = list(c.shape)
    shape[dim] = n_out
    out = c.new_zeros(shape)
    out.narrow(dim, 0, n_pos).copy_(c.narrow(dim, 0, n_pos))
    if n_neg:
        out.narrow(dim, n_out - n_neg, n_neg).copy_(c.narrow(dim, n_in - n_neg, n_neg))
    if k % 2 == 0:
        half = k // 2
        if n_in > n_out:  # both ±k/2 alias to the coarse Nyquist bin
            out.narrow(dim, half, 1).copy_(c.narrow(dim, half, 1) + c.narrow(dim, n_in - half, 1))
        else:  # the coarse Nyquist bin becomes two half-amplitude bins
            nyq = c.narrow(dim, half, 1) / 2
            out.narrow(dim, half, 1).copy_(nyq)
            out.narrow(dim, n_out - half, 1).copy_(nyq)
    return out


@dataclass(frozen=True)
class _BoxBasis(SpectralBasis):
    """Shared parts of the bases on a box ``[0, L_1] × ... × [0, L_d]``."""

    ndim: int = 1
    lengths: tuple[float, ...] | float = 1.0

    def __post_init__(self) -> None:
        if self.ndim < 1:
            raise ValueError(f"ndim must be at least 1, got {self.ndim}.")
        object.__setattr__(self, "lengths", _as_tuple(self.lengths, self.ndim, "lengths"))
        if any(L <= 0 for L in self.lengths):
            raise ValueError(f"lengths must be positive, got {self.lengths}.")

    @property
    def volume(self) -> float:
        return math.prod(self.lengths)

    def _grid_axes(self, x: Tensor) -> list[int]:
        return list(range(x.dim() - self.ndim, x.dim()))

    @abstractmethod
    def _unit_nodes(self, n: int) -> Tensor:
        """Grid points of one axis of length 1."""

    def axis_points(self, grid: Grid, *, fractional: bool = False) -> list[Tensor]:
        return [self._unit_nodes(n) * (1.0 if fractional else L) for n, L in zip(grid, self.lengths)]


@dataclass(frozen=True)
class PeriodicBasis(_BoxBasis):
    """The periodic box ``[0, L)^d`` with Fourier modes ``e_k = exp(2πi k·x / L) / sqrt(|L|)``.

    Grid points ``x_j = j L / N``; ``λ_k = 4π² Σ (k_i / L_i)²``; coefficients are those of ``rfftn``
    (the last axis keeps non-negative frequencies), scaled by ``sqrt(|L|) / N^d``.
    """

    def _scale(self, grid: Grid) -> float:
        return math.sqrt(self.volume) / math.prod(grid)

    def _unit_nodes(self, n: int) -> Tensor:
        return torch.arange(n, dtype=torch.float64) / n  # x_j = j / N

    def forward(self, x: Tensor) -> Tensor:
        grid = self.grid_of(x)
        return torch.fft.rfftn(x, dim=self._grid_axes(x)) * self._scale(grid)

    def inverse(self, c: Tensor, grid: Grid) -> Tensor:
        axes = list(range(c.dim() - self.ndim, c.dim()))
        return torch.fft.irfftn(c / self._scale(grid), s=grid, dim=axes)

    def _frequencies(self, grid: Grid) -> list[Tensor]:
        freqs = [torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64) for n in grid[:-1]]
        freqs.append(torch.fft.rfftfreq(grid[-1], d=1.0 / grid[-1], dtype=torch.float64))
        return freqs

    def eigenvalues(self, grid: Grid) -> Tensor:
        freqs = self._frequencies(grid)
        lam = torch.zeros(tuple(len(f) for f in freqs), dtype=torch.float64)
        for axis, (f, L) in enumerate(zip(freqs, self.lengths)):
            shape = [1] * self.ndim
            shape[axis] = -1
            lam = lam + (2 * math.pi * f / L).reshape(shape) ** 2
        return lam

    def weights(self, grid: Grid) -> Tensor:
        return torch.full(grid, self.volume / math.prod(grid), dtype=torch.float64)

    def multiplicity(self, grid: Grid) -> Tensor:
        n = grid[-1]
        m_last = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64)
        m_last[0] = 1.0
        if n % 2 == 0:
            m_last[-1] = 1.0
        return m_last.expand(self.coefficient_shape(grid)).clone()

    def coefficient_shape(self, grid: Grid) -> tuple[int, ...]:
        return (*grid[:-1], grid[-1] // 2 + 1)

    def _resample(self, x: Tensor, source: Grid, target: Grid) -> Tensor:
        # Resize the full (two-sided) spectrum so every axis handles its Nyquist bin symmetrically.
        axes = self._grid_axes(x)
        c = torch.fft.fftn(x, dim=axes) / math.prod(source)
        for axis, n_out in zip(axes, target):
            c = _resize_centered_axis(c, axis, n_out)
        return torch.fft.ifftn(c * math.prod(target), dim=axes).real.to(x.dtype)

    def _resize_coefficients(self, c: Tensor, source: Grid, target: Grid) -> Tensor:
        # rfftn layout: full axes first, the last axis one-sided.
        axes = list(range(c.dim() - self.ndim, c.dim()))
        for axis, n_out in zip(axes[:-1], target[:-1]):
            c = _resize_centered_axis(c, axis, n_out)
        n_out = target[-1] // 2 + 1
        n_keep = min(c.shape[-1], n_out)
        out = c.new_zeros((*c.shape[:-1], n_out))
        out[..., :n_keep] = c[..., :n_keep]
        return out


def _cosine_matrix(n: int, length: float) -> Tensor:
    """Rows: ``sqrt(L/n) · e_k(x_j)`` for the Neumann basis on the cell-centred grid (orthogonal)."""
    j = torch.arange(n, dtype=torch.float64) + 0.5
    k = torch.arange(n, dtype=torch.float64)
    mat = torch.cos(math.pi * k[:, None] * j[None, :] / n) * math.sqrt(2.0 / n)
    mat[0] /= math.sqrt(2.0)
    return mat


def _sine_matrix(n: int, length: float) -> Tensor:
    """Rows: ``sqrt(L/(n+1)) · e_k(x_j)`` for the Dirichlet basis on the interior grid (orthogonal)."""
    j = torch.arange(1, n + 1, dtype=torch.float64)
    k = torch.arange(1, n + 1, dtype=torch.float64)
    return torch.sin(math.pi * k[:, None] * j[None, :] / (n + 1)) * math.sqrt(2.0 / (n + 1))


@dataclass(frozen=True)
class _RealTrigBasis(_BoxBasis):
    """Separable real orthogonal transforms (cosine / sine) applied axis by axis as matrix products."""

    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    @abstractmethod
    def _matrix(self, n: int, length: float) -> Tensor: ...

    @abstractmethod
    def _cell(self, n: int, length: float) -> float:
        """The quadrature weight of one grid point along an axis."""

    @abstractmethod
    def _wavenumbers(self, n: int) -> Tensor: ...

    def _operator(self, n: int, length: float, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (n, length, dtype, device)
        if key not in self._cache:
            self._cache[key] = self._matrix(n, length).to(dtype=dtype, device=device)
        return self._cache[key]

    def _transform(self, x: Tensor, grid: Grid, *, transpose: bool) -> Tensor:
        for axis, (n, L) in enumerate(zip(grid, self.lengths)):
            mat = self._operator(n, L, x.dtype, x.device)
            mat = mat if transpose else mat.T
            dim = x.dim() - self.ndim + axis
            x = torch.movedim(torch.movedim(x, dim, -1) @ mat, -1, dim)
        return x

    def forward(self, x: Tensor) -> Tensor:
        grid = self.grid_of(x)
        scale = math.sqrt(math.prod(self._cell(n, L) for n, L in zip(grid, self.lengths)))
        return self._transform(x, grid, transpose=False) * scale

    def inverse(self, c: Tensor, grid: Grid) -> Tensor:
        if tuple(c.shape[c.dim() - self.ndim :]) != tuple(grid):
            raise ValueError(f"coefficients of shape {tuple(c.shape)} do not match grid {grid}; resize them first.")
        scale = math.sqrt(math.prod(self._cell(n, L) for n, L in zip(grid, self.lengths)))
        return self._transform(c / scale, grid, transpose=True)

    def eigenvalues(self, grid: Grid) -> Tensor:
        lam = torch.zeros(grid, dtype=torch.float64)
        for axis, (n, L) in enumerate(zip(grid, self.lengths)):
            shape = [1] * self.ndim
            shape[axis] = -1
            lam = lam + (math.pi * self._wavenumbers(n) / L).reshape(shape) ** 2
        return lam

    def weights(self, grid: Grid) -> Tensor:
        return torch.full(grid, math.prod(self._cell(n, L) for n, L in zip(grid, self.lengths)), dtype=torch.float64)

    def multiplicity(self, grid: Grid) -> Tensor:
        return torch.ones(grid, dtype=torch.float64)

    def coefficient_shape(self, grid: Grid) -> tuple[int, ...]:
        return tuple(grid)

    def _resize_coefficients(self, c: Tensor, source: Grid, target: Grid) -> Tensor:
        out = c.new_zeros((*c.shape[: c.dim() - self.ndim], *target))
        keep = tuple(slice(0, min(s, t)) for s, t in zip(source, target))
        out[(..., *keep)] = c[(..., *keep)]
        return out


@dataclass(frozen=True)
class NeumannBasis(_RealTrigBasis):
    """The box ``[0, L]^d`` with reflecting (Neumann) walls: cosine modes, DCT-II.

    Cell-centred grid ``x_j = (j + ½) L / N`` (pixel centres, as images are sampled);
    ``e_k ∝ Π cos(π k_i x_i / L_i)``, ``λ_k = π² Σ (k_i / L_i)²``, ``k_i = 0..N_i-1``; midpoint rule.
    """

    def _matrix(self, n: int, length: float) -> Tensor:
        return _cosine_matrix(n, length)

    def _unit_nodes(self, n: int) -> Tensor:
        return (torch.arange(n, dtype=torch.float64) + 0.5) / n  # cell centres

    def _cell(self, n: int, length: float) -> float:
        return length / n

    def _wavenumbers(self, n: int) -> Tensor:
        return torch.arange(n, dtype=torch.float64)


@dataclass(frozen=True)
class DirichletBasis(_RealTrigBasis):
    """The box ``[0, L]^d`` with absorbing (Dirichlet) walls: sine modes, DST-I.

    Interior grid ``x_j = (j + 1) L / (N + 1)`` (the walls, where the field is zero, are not stored);
    ``e_k ∝ Π sin(π k_i x_i / L_i)``, ``λ_k = π² Σ (k_i / L_i)²``, ``k_i = 1..N_i``; trapezoid rule.
    """

    def _matrix(self, n: int, length: float) -> Tensor:
        return _sine_matrix(n, length)

    def _unit_nodes(self, n: int) -> Tensor:
        return torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)  # interior points

    def _cell(self, n: int, length: float) -> float:
        return length / (n + 1)

    def _wavenumbers(self, n: int) -> Tensor:
        return torch.arange(1, n + 1, dtype=torch.float64)

    def _check_grid(self, grid: Grid) -> None:
        if any(n < 1 for n in grid):
            raise ValueError(f"grid {grid} is too small: every axis needs at least 1 interior point.")

