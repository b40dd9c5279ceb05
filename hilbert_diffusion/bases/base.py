"""The interface every spectral basis implements (see :mod:`hilbert_diffusion.bases` for the conventions)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..seeding import draw_device

__all__ = ["Grid", "SpectralBasis"]


Grid = tuple[int, ...]


def _as_tuple(value: float | Sequence[float], ndim: int, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        return (float(value),) * ndim
    value = tuple(float(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{name} has {len(value)} entries but the basis has {ndim} dimensions; give one per dimension.")
    return value


class SpectralBasis(ABC):
    """A domain with an orthonormal Laplacian eigenbasis and a fast transform.

    Subclasses implement ``forward``, ``inverse``, ``eigenvalues``, ``weights``, ``multiplicity`` and
    ``_resize_coefficients``; everything else (norms, diagonal operators, white noise, resampling,
    validation) is shared.
    """

    #: number of grid axes a field on this domain has (trailing axes of every tensor).
    ndim: int

    # ----------------------------------------------------------------- grid handling
    def grid(self, resolution: int | Sequence[int]) -> Grid:
        """The grid shape for ``resolution``: an int (same on every axis) or one size per axis."""
        if isinstance(resolution, int):
            shape = (resolution,) * self.ndim
        else:
            shape = tuple(int(n) for n in resolution)
        if len(shape) != self.ndim:
            raise ValueError(
                f"resolution {resolution!r} has {len(shape)} axes but {type(self).__name__} is {self.ndim}-D; "
                f"give an int or {self.ndim} sizes."
            )
        self._check_grid(shape)
        return shape

    def _check_grid(self, grid: Grid) -> None:
        if any(n < 2 for n in grid):
            raise ValueError(f"grid {grid} is too small: every axis needs at least 2 points.")

    def grid_of(self, x: Tensor) -> Grid:
        """The grid of a field ``x`` shaped ``(*batch, *grid)`` (validated)."""
        if x.dim() < self.ndim:
            raise ValueError(
                f"a field on {type(self).__name__} needs at least {self.ndim} trailing grid axes, got shape {tuple(x.shape)}."
            )
        grid = tuple(x.shape[x.dim() - self.ndim :])
        self._check_grid(grid)
        return grid

    def check_field(self, x: Tensor, name: str = "x", *, batch_axes: int = 2, finite: bool = True) -> Grid:
        """Validate a field batch ``(batch, channels, *grid)`` at a public entry point; return its grid.

        Raises ``ValueError`` naming the argument, what is wrong and how to fix it (not a tensor, wrong
        rank, complex or integer dtype, NaN/inf unless ``finite=False``, a grid the basis cannot carry).
        ``batch_axes`` is the number of leading axes (1 for one field ``(channels, *grid)``).
        """
        if not isinstance(x, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor shaped (batch, channels, *grid), got {type(x).__name__}.")
        if x.dim() != batch_axes + self.ndim:
            layout = {2: "(batch, channels, *grid)", 1: "(channels, *grid)"}.get(batch_axes, f"{batch_axes} leading axes then the grid")
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} but a field batch on {type(self).__name__} is {layout} with "
                f"{self.ndim} grid axes ({batch_axes + self.ndim} axes in all); add the missing axes, e.g. x[None]."
            )
        if not x.is_floating_point():
            raise ValueError(f"{name} has dtype {x.dtype}; fields must be real floating point (x.float()).")
        if finite and x.device.type != "meta" and not torch.isfinite(x).all():  # a meta tensor has no values
            bad = int((~torch.isfinite(x)).sum())
            raise ValueError(f"{name} contains {bad} NaN or inf values; clean or mask them before calling.")
        return self.grid_of(x)

    # ----------------------------------------------------------------- per-basis pieces
    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """Coefficients ``(*batch, *coefficient_shape(grid))`` of a field ``(*batch, *grid)``."""

    @abstractmethod
    def inverse(self, c: Tensor, grid: Grid) -> Tensor:
        """The real field on ``grid`` with coefficients ``c`` (band-limited synthesis)."""

    @abstractmethod
    def eigenvalues(self, grid: Grid) -> Tensor:
        """``λ_k`` (float64, shape ``coefficient_shape(grid)``) of every stored coefficient."""

    @abstractmethod
    def weights(self, grid: Grid) -> Tensor:
        """Quadrature weights (float64, broadcastable to ``grid``): ``∫ f ≈ Σ w_j f_j``."""

    @abstractmethod
    def multiplicity(self, grid: Grid) -> Tensor:
        """How many real coefficients each stored coefficient stands for (1 or 2), for Parseval."""

    @abstractmethod
    def _resize_coefficients(self, c: Tensor, source: Grid, target: Grid) -> Tensor:
        """Truncate / zero-pad coefficients of a field on ``source`` to those of ``target``."""

    @abstractmethod
    def axis_points(self, grid: Grid, *, fractional: bool = False) -> list[Tensor]:
        """Positions of the grid points along each axis (float64, one tensor per axis); ``fractional``
        divides by the axis' extent (box: ``L``; sphere: ``π`` for colatitude, ``2π`` for longitude)."""

    def coefficient_shape(self, grid: Grid) -> tuple[int, ...]:
        return tuple(self.eigenvalues(grid).shape)

    # ----------------------------------------------------------------- shared operations
    def integrate(self, x: Tensor) -> Tensor:
        """``∫ x`` over the domain, shape ``(*batch,)``."""
        grid = self.grid_of(x)
        w = self.weights(grid).to(device=x.device, dtype=x.real.dtype)
        return (x * w).flatten(x.dim() - self.ndim).sum(-1)

    def inner(self, x: Tensor, y: Tensor) -> Tensor:
        """The L² inner product ``∫ x y`` by quadrature, shape ``(*batch,)``."""
        return self.integrate(x * y)

    def norm(self, x: Tensor) -> Tensor:
        """The L² norm, grid-independent for a resolved field."""
        return self.inner(x, x).clamp_min(0).sqrt()

    def coefficient_energy(self, c: Tensor, grid: Grid) -> Tensor:
        """``Σ_k m_k |c_k|²`` over the coefficient axes (equals ``‖f‖²`` by Parseval)."""
        m = self.multiplicity(grid).to(device=c.device, dtype=c.real.dtype)
        return (m * c.abs() ** 2).flatten(c.dim() - m.dim()).sum(-1)

    def apply_diagonal(self, x: Tensor, multiplier: Tensor) -> Tensor:
        """``T x`` for the operator ``T e_k = multiplier_k e_k``; ``multiplier`` broadcasts over coefficients."""
        grid = self.grid_of(x)
        c = self.forward(x)
        return self.inverse(c * multiplier.to(device=c.device, dtype=c.real.dtype), grid)

    def white_noise(
        self,
        shape: Sequence[int],
        grid: Grid,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Grid values of white noise, shape ``(*shape, *grid)``: variance ``1/w_j`` at point ``j``,
        so its coefficients have ``E|c_k|² = 1``. Not a function (not trace class): use it only
        through a trace-class filter."""
        w = self.weights(grid).to(device=device, dtype=dtype)
        z = torch.randn((*shape, *grid), generator=generator, dtype=dtype, device=draw_device(generator, device))
        z = z.to(w.device)
        return z / w.sqrt()

    def sample_gaussian(
        self,
        num: int,
        resolution: int | Sequence[int],
        per_mode_std: Callable[[Grid], Tensor],
        *,
        channels: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``num`` draws of the centred Gaussian with per-mode standard deviation ``per_mode_std(grid)``
        (``x = Σ_k σ_k ξ_k e_k``), shape ``(num, channels, *grid)``: the same measure at every resolution."""
        if num < 1 or channels < 1:
            raise ValueError(f"num and channels must be positive, got num={num}, channels={channels}.")
        grid = self.grid(resolution)
        white = self.white_noise((num, channels), grid, generator=generator, dtype=dtype, device=device)
        return self.apply_diagonal(white, per_mode_std(grid))

    def resample(self, x: Tensor, resolution: int | Sequence[int]) -> Tensor:
        """Band-limited resampling to another grid: truncation or zero-padding in the basis.

        Up-sampling followed by down-sampling returns the field exactly; down-sampling keeps the
        coefficients both grids share.
        """
        source = self.grid_of(x)
        target = self.grid(resolution)
        if target == source:
            return x
        return self._resample(x, source, target)

    def _resample(self, x: Tensor, source: Grid, target: Grid) -> Tensor:
        c = self._resize_coefficients(self.forward(x), source, target)
        return self.inverse(c, target)

