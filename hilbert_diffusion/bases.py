"""Spectral bases: orthonormal Laplacian eigenbases of a domain with fast transforms.

Every basis maps a field sampled on a grid, shaped ``(*batch, *grid)``, to the coefficients of the
function in an L²-orthonormal eigenbasis of the Laplacian, ``-Δ e_k = λ_k e_k``, shaped
``(*batch, *coefficient_shape(grid))``. Coefficients are normalised to approximate the function's own
coefficients ``c_k = ∫ f ē_k`` (quadrature on the grid), so the same field on a 32-grid and on a
128-grid has the same low coefficients and grid-independent norms.

Conventions shared by every basis (and relied upon by :mod:`hilbert_diffusion.noise` and
:mod:`hilbert_diffusion.sde`):

* A diagonal operator ``T e_k = t(λ_k) e_k`` acts as ``inverse(t(λ) * forward(x))``.
* ``white_noise`` draws the grid restriction of (band-limited) L² white noise: its coefficients have
  ``E|c_k|² = 1`` for every stored coefficient. Scaling them by ``sqrt(c_k)`` samples ``N(0, C)``.
* ``multiplicity`` says how many real-field coefficients a stored coefficient stands for (2 for a
  complex coefficient whose conjugate partner is not stored), so ``‖f‖² = Σ_k m_k |c_k|²`` (Parseval).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "SpectralBasis",
    "PeriodicBasis",
    "NeumannBasis",
    "DirichletBasis",
    "SphereBasis",
    "Grid",
]

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
        if finite and not torch.isfinite(x).all():
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
        z = torch.randn((*shape, *grid), generator=generator, dtype=dtype, device=device)
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
