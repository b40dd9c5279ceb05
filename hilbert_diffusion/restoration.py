"""Zero-shot restoration: linear observation operators in function space and conditional samplers.

An observation is ``y = A x + σ_y ε`` with ``A`` linear, defined on functions so that it acts on a field
sampled on any (compatible) grid, and ``ε`` independent standard normals at the observation points.
Each operator gives, for a signal grid ``G`` and its observation grid ``g``:

* ``forward(x)`` — ``A x``: ``(*batch, *G) -> (*batch, *g)``;
* ``adjoint(y, G)`` — ``A*`` for the quadrature inner products ``<u, v> = Σ_j w_j u_j v_j`` of both grids,
  ``<A x, y>_g = <x, A* y>_G``;
* ``pseudo_inverse(y, G)`` — the Moore–Penrose ``A⁺`` for the same inner products (``A A⁺ A = A``,
  ``A⁺ A`` an orthogonal projection);
* ``noise_std`` (``σ_y``) and ``observation_grid(G)`` (``g``, validating that ``G`` can be restored).

Operators: :class:`Mask` (point observations; :func:`box_mask`, :func:`random_mask`),
:class:`SpectralDownsample` (the coefficients a low grid resolves; diagonal in the basis),
:class:`BlockAverage` (pixelation) and :class:`HeatBlur` (the heat semigroup ``e^{-τA}``, a Gaussian
kernel; diagonal in the basis).

Conditional samplers share the unconditional samplers' signature (:mod:`hilbert_diffusion.sampling`)
plus the keyword-only ``operator`` and ``y``::

    sampler(model, sde, x, times, *, operator, y, generator=None, callback=None, progress=False, **options)

and use the exact per-mode bridge ``q(x_s | x_t, x_0)`` (``sde.bridge``) for the unconditional part:

* :func:`repaint` — replacement of the observed part by its forward-noised value, with RePaint's
  resampling jumps (Lugmayr et al. 2022);
* :func:`ddnm` — null-space projection of the denoised estimate, ``x̂_0 = D + λ A⁺(y - A D)``
  (Wang et al. 2023; ``λ < 1`` is DDNM⁺'s rule for ``σ_y > 0``);
* :func:`dps` — likelihood guidance through the model by autograd, ``x_s -= ζ ∇_{x_t} ‖y - A D(x_t)‖``
  with the quadrature norm of the observation space (Chung et al. 2023);
* :func:`filtering_smc` — sequential Monte Carlo over the reverse process conditioned on a forward-noised
  observation path (filtering posterior sampling, Dou & Song 2024; MCGdiff, Cardoso et al. 2024):
  asymptotically exact in the number of particles.

:func:`exact_gaussian_posterior` computes the true posterior when the model is the
:class:`~hilbert_diffusion.GaussianOracle` (dense linear algebra; small grids), against which all of these
are measured (``tests/test_restoration.py``, ``benchmarks/restoration_exact.py``). Measured there: for
operators diagonal in the basis (spectral super-resolution) replacement is exact and cheapest (:func:`ddnm`,
:func:`repaint`); for masks, block averages and noisy observations only :func:`filtering_smc` matches the
posterior (mean and spread), at ``particles`` times the cost; DPS and the replacement methods are off by
tens of percent in the mean and over-dispersed there.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor
from tqdm import tqdm

from .bases import Grid, SpectralBasis
from .models.oracle import GaussianOracle
from .sampling import Callback, Model, validate_times
from .sde import DiagonalSDE

__all__ = [
    "grid_coordinates",
    "ObservationOperator",
    "Mask",
    "box_mask",
    "random_mask",
    "SpectralDownsample",
    "BlockAverage",
    "HeatBlur",
    "observation_matrix",
    "GaussianPosterior",
    "exact_gaussian_posterior",
    "repaint",
    "ddnm",
    "dps",
    "filtering_smc",
]


# =========================================================================================== grids
def grid_coordinates(basis: SpectralBasis, grid: Grid) -> list[Tensor]:
    """Fractional coordinates in ``[0, 1]`` of the grid points along each axis (float64, one tensor per axis).

    Periodic ``j/N``; Neumann (cell centres) ``(j + ½)/N``; Dirichlet (interior) ``(j + 1)/(N + 1)``;
    sphere: colatitude ``θ_j / π`` of the quadrature nodes (north first, as ``torch_harmonics``) and
    longitude ``j / N_lon``.
    """
    return basis.axis_points(tuple(grid), fractional=True)


def _nested_indices(basis: SpectralBasis, coarse: Grid, fine: Grid) -> list[Tensor] | None:
    """For every axis, the index in ``fine`` of each point of ``coarse``; ``None`` if some point is missing."""
    indices = []
    for c, f in zip(grid_coordinates(basis, coarse), grid_coordinates(basis, fine)):
        distance = (c[:, None] - f[None, :]).abs()
        best, index = distance.min(dim=1)
        if (best > 1e-9).any():
            return None
        indices.append(index)
    return indices


def _select(x: Tensor, indices: Sequence[Tensor], ndim: int) -> Tensor:
    """``x`` at the sub-grid ``indices`` (one index tensor per trailing axis)."""
    for axis, index in enumerate(indices):
        x = x.index_select(x.dim() - ndim + axis, index.to(x.device))
    return x


def _embed(y: Tensor, indices: Sequence[Tensor], grid: Grid, ndim: int) -> Tensor:
    """Zero field on ``grid`` with ``y`` placed at the sub-grid ``indices`` (the transpose of :func:`_select`)."""
    for axis, (index, n) in enumerate(zip(indices, grid)):
        dim = y.dim() - ndim + axis
        shape = list(y.shape)
        shape[dim] = n
        y = y.new_zeros(shape).index_copy(dim, index.to(y.device), y)
    return y


def _field_shape(x: Tensor, ndim: int) -> tuple[tuple[int, ...], Grid]:
    return tuple(x.shape[: x.dim() - ndim]), tuple(x.shape[x.dim() - ndim :])


# =========================================================================================== operators
@dataclass(frozen=True, kw_only=True, eq=False)
class ObservationOperator(ABC):
    """A linear observation ``y = A x + σ_y ε`` of a function, usable at any compatible grid.

    Subclasses implement :meth:`observation_grid`, :meth:`forward` and :meth:`pseudo_inverse`; the
    adjoint defaults to the exact vector-Jacobian product of ``forward`` rescaled by the quadrature
    weights (``A* y = w_G^{-1} Aᵀ (w_g y)``), which subclasses may replace by a closed form.

    ``diagonal`` says whether ``A`` commutes with every operator diagonal in the basis (``A T = T_g A``, with
    ``T_g`` the same multiplier on the observation grid's coefficients): then replacement in the basis is exact
    for a model diagonal in the basis (:func:`repaint`, :func:`ddnm` with the Gaussian oracle) and the
    forward-noised observation path of :func:`filtering_smc` is exact for every diagonal SPDE.
    """

    basis: SpectralBasis
    noise_std: float = 0.0
    diagonal: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std (σ_y) must be a finite number ≥ 0, got {self.noise_std}.")

    # -- geometry --------------------------------------------------------------------------------
    @abstractmethod
    def observation_grid(self, grid: Grid) -> Grid:
        """The grid of ``A x`` for ``x`` on ``grid``; raises ValueError if ``grid`` cannot be restored."""

    def observed_points(self, grid: Grid) -> Tensor:
        """Boolean ``observation_grid(grid)``: which entries of ``y`` are observations (all, but for masks)."""
        return torch.ones(self.observation_grid(grid), dtype=torch.bool)

    def observation_weights(self, grid: Grid) -> Tensor:
        """Quadrature weights of the observation space (float64, shape ``observation_grid(grid)``)."""
        return self.basis.weights(self.observation_grid(grid)).expand(self.observation_grid(grid))

    # -- the linear maps ---------------------------------------------------------------------------
    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:
        """``A x``: ``(*batch, *grid) -> (*batch, *observation_grid(grid))``."""

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def adjoint(self, y: Tensor, grid: Grid) -> Tensor:
        """``A* y`` on ``grid``: ``<A x, y>_g = <x, A* y>_G`` with quadrature on both grids."""
        grid = self.basis.grid(grid)
        batch = self._check_observation(y, grid)
        probe = torch.zeros((*batch, *grid), dtype=y.dtype, device=y.device, requires_grad=True)
        weights = self._observation_weights_like(grid, y)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.forward(probe), probe, grad_outputs=y * weights)
        return grad / self.basis.weights(grid).to(device=y.device, dtype=y.dtype)

    @abstractmethod
    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        """``A⁺ y`` on ``grid`` (Moore–Penrose for the quadrature inner products)."""

    def observation_multiplier(self, grid: Grid) -> Tensor | None:
        """For an operator diagonal in the basis, ``s_k`` with ``A e_k = s_k e_k^g`` on the coefficients of the
        observation grid (its singular values); ``None`` for the others."""
        return None

    def apply_observed(self, y: Tensor, multiplier: Tensor | float, grid: Grid) -> Tensor:
        """``A T A⁺ y`` for the operator ``T = f(λ)`` diagonal in the basis, given ``multiplier`` = ``f(λ)`` on the
        coefficients of the observation grid (a diagonal operator) or a scalar (any operator): the action of
        ``T`` carried into the observation space, without forming ``A⁺``."""
        if isinstance(multiplier, float) or multiplier.numel() == 1:
            return y * multiplier
        if not self.diagonal:
            raise ValueError(f"{type(self).__name__} is not diagonal in the basis: only scalar multipliers commute with it.")
        return self.basis.apply_diagonal(y, multiplier.to(device=y.device, dtype=y.real.dtype))

    # -- observation space ---------------------------------------------------------------------------
    def _observation_weights_like(self, grid: Grid, like: Tensor) -> Tensor:
        w = self.observation_weights(grid) * self.observed_points(grid)
        return w.to(device=like.device, dtype=like.real.dtype)

    def inner(self, y1: Tensor, y2: Tensor, grid: Grid) -> Tensor:
        """``<y1, y2>_g`` by quadrature over the observed points, summed over the grid axes: ``(*batch,)``."""
        w = self._observation_weights_like(grid, y1)
        return (y1 * y2 * w).flatten(y1.dim() - self.basis.ndim).sum(-1)

    def observe(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """A noisy observation ``A x + σ_y ε`` (ε standard normal at each observed point; zero elsewhere)."""
        grid = self.basis.grid_of(x)
        y = self.forward(x)
        points = self.observed_points(grid).to(y.device)
        if self.noise_std > 0:
            y = y + self.noise_std * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        return y * points

    def _check_observation(self, y: Tensor, grid: Grid) -> tuple[int, ...]:
        expected = self.observation_grid(grid)
        batch, got = _field_shape(y, self.basis.ndim) if y.dim() >= self.basis.ndim else ((), tuple(y.shape))
        if got != expected:
            raise ValueError(
                f"the observation has grid {got} but {type(self).__name__} observes a field on {grid} at {expected}; "
                f"pass y shaped (..., *{expected}) or restore to a grid that matches it."
            )
        return batch


def _check_not_coarser(observed: Grid, grid: Grid, what: str) -> None:
    if len(observed) != len(grid) or any(g < o for o, g in zip(observed, grid)):
        raise ValueError(
            f"{what}: the observation grid {observed} is finer than the requested output grid {grid}; "
            f"restore to a grid at least as fine as the observation (every axis ≥ the observation's)."
        )


@dataclass(frozen=True, kw_only=True, eq=False)
class Mask(ObservationOperator):
    """Point observations: ``(A x)_j = x(p_j)`` at the points where ``observed`` is true.

    ``observed`` is a boolean array shaped like a grid of the basis (broadcast over batch and channels).
    A field on that grid or on any finer grid containing its points (periodic: multiples; Neumann: odd
    multiples; Dirichlet: ``N + 1`` a multiple of ``n + 1``) can be inpainted. ``y`` lives on the mask's
    grid (values off the mask are ignored). With weights ``W`` of the mask grid and ``w`` of the
    signal grid: ``A* y = (W/w) y`` placed at the observed points, ``A⁺ y = y`` placed there (zero elsewhere).
    """

    observed: Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        observed = torch.as_tensor(self.observed)
        if observed.dtype != torch.bool:
            raise ValueError(f"observed must be a boolean array (True = observed), got dtype {observed.dtype}.")
        if observed.dim() != self.basis.ndim:
            raise ValueError(
                f"observed has shape {tuple(observed.shape)} but {type(self.basis).__name__} fields have "
                f"{self.basis.ndim} grid axes; give one boolean per grid point (shape = the grid)."
            )
        self.basis.grid(tuple(observed.shape))
        if not observed.any():
            raise ValueError("the mask observes no point: nothing conditions the sample; use an unconditional sampler.")
        object.__setattr__(self, "observed", observed.cpu())

    @property
    def grid(self) -> Grid:
        return tuple(self.observed.shape)

    def _indices(self, grid: Grid) -> list[Tensor]:
        indices = _nested_indices(self.basis, self.grid, grid)
        if indices is None:
            raise ValueError(
                f"the mask's grid {self.grid} does not match the field's grid {grid}: its points are not points of "
                f"{grid}. Give a mask on the field's grid, or restore to a grid containing the mask's points "
                f"(periodic: a multiple; Neumann: an odd multiple; Dirichlet: N+1 a multiple of n+1)."
            )
        return indices

    def observation_grid(self, grid: Grid) -> Grid:
        grid = tuple(grid)
        _check_not_coarser(self.grid, grid, "Mask")
        self._indices(grid)
        if grid == self.grid and bool(self.observed.all()):
            raise ValueError(
                f"the mask observes every point of the grid {grid}: there are no unknown points to inpaint; "
                f"mark the missing points False or restore to a finer grid."
            )
        return self.grid

    def observed_points(self, grid: Grid) -> Tensor:
        self.observation_grid(grid)
        return self.observed

    def forward(self, x: Tensor) -> Tensor:
        grid = self.basis.grid_of(x)
        self.observation_grid(grid)
        sub = x if grid == self.grid else _select(x, self._indices(grid), self.basis.ndim)
        return sub * self.observed.to(x.device)

    def adjoint(self, y: Tensor, grid: Grid) -> Tensor:
        grid = self.basis.grid(grid)
        self._check_observation(y, grid)
        scale = self.basis.weights(self.grid) * self.observed
        embedded = self.pseudo_inverse(y * scale.to(device=y.device, dtype=y.dtype), grid)
        return embedded / self.basis.weights(grid).to(device=y.device, dtype=y.dtype)

    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        grid = self.basis.grid(grid)
        self._check_observation(y, grid)
        y = y * self.observed.to(y.device)
        return y if grid == self.grid else _embed(y, self._indices(grid), grid, self.basis.ndim)


def _box(basis: SpectralBasis, grid: Grid, low: Sequence[float], high: Sequence[float]) -> Tensor:
    if len(low) != basis.ndim or len(high) != basis.ndim or any(not 0 <= lo < hi <= 1 for lo, hi in zip(low, high)):
        raise ValueError(
            f"box corners low={tuple(low)}, high={tuple(high)} must give {basis.ndim} fractional coordinates with "
            f"0 ≤ low < high ≤ 1 on every axis."
        )
    inside = torch.ones(grid, dtype=torch.bool)
    for axis, (coord, lo, hi) in enumerate(zip(grid_coordinates(basis, grid), low, high)):
        shape = [1] * basis.ndim
        shape[axis] = -1
        inside = inside & ((coord >= lo) & (coord < hi)).reshape(shape)
    return inside


def box_mask(
    basis: SpectralBasis,
    resolution: int | Sequence[int],
    *,
    low: Sequence[float],
    high: Sequence[float],
    noise_std: float = 0.0,
) -> Mask:
    """A :class:`Mask` hiding the box ``[low, high)`` (fractional coordinates, see :func:`grid_coordinates`)
    and observing every other point of the grid ``resolution``."""
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


@dataclass(frozen=True, kw_only=True, eq=False)
class _LowGrid(ObservationOperator):
    """Operators observing at a fixed low grid ``resolution``, whatever the signal grid."""

    resolution: int | tuple[int, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "resolution", self.basis.grid(self.resolution))

    def observation_grid(self, grid: Grid) -> Grid:
        _check_not_coarser(self.resolution, tuple(grid), type(self).__name__)
        return self.resolution


@dataclass(frozen=True, kw_only=True, eq=False)
class SpectralDownsample(_LowGrid):
    """Super-resolution by spectral truncation: ``A x`` is the band-limited field on the grid ``resolution``
    whose coefficients are those of ``x`` that grid resolves (``basis.resample``).

    Diagonal in the basis: ``A⁺ A`` is the projection on the resolved modes (for an even periodic grid,
    the two Nyquist modes ``±n/2`` are averaged, as resampling does), ``A⁺ = `` zero-padding up, and a
    low-grid observation of a field at any finer grid is exact in those modes.
    """

    diagonal: ClassVar[bool] = True

    def observation_multiplier(self, grid: Grid) -> Tensor:
        return torch.ones(self.basis.coefficient_shape(self.observation_grid(grid)), dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        self.observation_grid(self.basis.grid_of(x))
        return self.basis.resample(x, self.resolution)

    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        grid = self.basis.grid(grid)
        self._check_observation(y, grid)
        return self.basis.resample(y, grid)


@dataclass(frozen=True, kw_only=True, eq=False)
class BlockAverage(_LowGrid):
    """Pixelation: ``y_J = Σ_{j∈J} w_j x_j / Σ_{j∈J} w_j`` over blocks of ``f_1 × … × f_d`` points, where
    ``f_i = N_i / n_i`` (the signal grid must be a multiple of ``resolution`` on every axis).

    With the block weights ``W_J = Σ_{j∈J} w_j`` as the observation quadrature, ``A* = A⁺`` = repeat each
    value over its block (``A A* = I``). Not diagonal in the basis.
    """

    def _factors(self, grid: Grid) -> tuple[int, ...]:
        self.observation_grid(grid)
        if any(n % m for n, m in zip(grid, self.resolution)):
            raise ValueError(
                f"BlockAverage to {self.resolution} needs a signal grid that is a multiple of it on every axis, got {grid}; "
                f"restore to e.g. {tuple(2 * m for m in self.resolution)}."
            )
        return tuple(n // m for n, m in zip(grid, self.resolution))

    def _blocks(self, x: Tensor, factors: tuple[int, ...]) -> Tensor:
        """``x`` reshaped to ``(*batch, n_1, f_1, …, n_d, f_d)``."""
        batch, _ = _field_shape(x, self.basis.ndim)
        split = [size for pair in zip(self.resolution, factors) for size in pair]
        return x.reshape(*batch, *split)

    def _block_sum(self, x: Tensor, factors: tuple[int, ...]) -> Tensor:
        blocks = self._blocks(x, factors)
        odd = tuple(blocks.dim() - 2 * self.basis.ndim + 2 * i + 1 for i in range(self.basis.ndim))
        return blocks.sum(dim=odd)

    def observation_weights(self, grid: Grid) -> Tensor:
        w = self.basis.weights(grid).expand(grid)
        return self._block_sum(w, self._factors(grid))

    def forward(self, x: Tensor) -> Tensor:
        grid = self.basis.grid_of(x)
        factors = self._factors(grid)
        w = self.basis.weights(grid).to(device=x.device, dtype=x.real.dtype)
        return self._block_sum(x * w, factors) / self.observation_weights(grid).to(device=x.device, dtype=x.real.dtype)

    def _repeat(self, y: Tensor, grid: Grid) -> Tensor:
        factors = self._factors(grid)
        for axis, f in enumerate(factors):
            y = y.repeat_interleave(f, dim=y.dim() - self.basis.ndim + axis)
        return y

    def adjoint(self, y: Tensor, grid: Grid) -> Tensor:
        grid = self.basis.grid(grid)
        self._check_observation(y, grid)
        return self._repeat(y, grid)

    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        return self.adjoint(y, grid)


@dataclass(frozen=True, kw_only=True, eq=False)
class HeatBlur(ObservationOperator):
    """Blur by the heat semigroup: ``A x = S e^{-τ A_Δ} x``, i.e. ``e^{-τ λ_k}`` on every coefficient
    (``A_Δ = -Δ``), then optionally the spectral truncation ``S`` to the grid ``resolution``
    (``None``: observed on the signal's own grid).

    On the periodic box ``e^{-τλ}`` is convolution with a Gaussian of standard deviation ``sqrt(2τ)`` per
    axis (:meth:`gaussian`). Diagonal in the basis. The pseudo-inverse is the numerical one (as
    ``numpy.linalg.pinv``): ``e^{+τλ} S⁺`` on the modes with ``e^{-τλ} ≥ rcond`` and zero on the others, where
    ``rcond = sqrt(machine epsilon)`` of the data's dtype unless given; so ``A A⁺ A = A`` up to ``rcond``.
    """

    time: float
    resolution: int | tuple[int, ...] | None = None
    rcond: float | None = None
    diagonal: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.time) and self.time > 0):
            raise ValueError(f"time (τ) must be a positive number, got {self.time}.")
        if self.rcond is not None and not 0 < self.rcond < 1:
            raise ValueError(f"rcond must lie in (0, 1) (the smallest singular value inverted), got {self.rcond}.")
        if self.resolution is not None:
            object.__setattr__(self, "resolution", self.basis.grid(self.resolution))

    @classmethod
    def gaussian(
        cls, basis: SpectralBasis, *, width: float, resolution: int | Sequence[int] | None = None, noise_std: float = 0.0
    ) -> HeatBlur:
        """The blur by a Gaussian kernel of standard deviation ``width`` (``τ = width² / 2``)."""
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}.")
        return cls(basis=basis, time=0.5 * width**2, resolution=resolution, noise_std=noise_std)

    def observation_grid(self, grid: Grid) -> Grid:
        grid = tuple(grid)
        if self.resolution is None:
            return grid
        _check_not_coarser(self.resolution, grid, "HeatBlur")
        return self.resolution

    def observation_multiplier(self, grid: Grid) -> Tensor:
        return torch.exp(-self.time * self.basis.eigenvalues(self.observation_grid(grid)))

    def forward(self, x: Tensor) -> Tensor:
        grid = self.basis.grid_of(x)
        blurred = self.basis.apply_diagonal(x, torch.exp(-self.time * self.basis.eigenvalues(grid)))
        return self.basis.resample(blurred, self.observation_grid(grid))

    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        grid = self.basis.grid(grid)
        self._check_observation(y, grid)
        singular = self.observation_multiplier(grid)
        rcond = self.rcond if self.rcond is not None else math.sqrt(torch.finfo(y.dtype).eps)
        inverse = torch.where(singular >= rcond, 1.0 / singular.clamp_min(rcond), torch.zeros_like(singular))
        return self.basis.resample(self.basis.apply_diagonal(y, inverse), grid)


# =========================================================================================== dense algebra
def _to_vector(operator: ObservationOperator, y: Tensor, grid: Grid) -> Tensor:
    """Observation fields ``(*batch, *g)`` -> coordinate vectors ``(*batch, n_obs)`` (observed points only)."""
    points = operator.observed_points(grid).flatten().to(y.device)
    return y.flatten(y.dim() - operator.basis.ndim)[..., points]


def _from_vector(operator: ObservationOperator, u: Tensor, grid: Grid) -> Tensor:
    """The inverse of :func:`_to_vector` (zeros at unobserved points)."""
    obs_grid = operator.observation_grid(grid)
    points = operator.observed_points(grid).flatten().to(u.device)
    out = u.new_zeros((*u.shape[:-1], points.numel()))
    out[..., points] = u
    return out.reshape(*u.shape[:-1], *obs_grid)


def observation_matrix(operator: ObservationOperator, grid: Grid) -> Tensor:
    """The Euclidean matrix ``(n_obs, N)`` (float64) of ``A`` from grid values to observed values."""
    grid = operator.basis.grid(grid)
    n = math.prod(grid)
    identity = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
    return _to_vector(operator, operator.forward(identity), grid).T.contiguous()


def _grid_covariance_columns(basis: SpectralBasis, fields: Tensor, per_mode_variance: Tensor) -> Tensor:
    """``C f`` for grid vectors ``f`` (rows of ``fields``, ``(m, *grid)``): the grid covariance of the field with
    coefficient variances ``per_mode_variance`` is ``C δ_j = apply_diagonal(δ_j / w_j)`` (see
    ``GaussianRandomField.pointwise_variance``), so ``C f = apply_diagonal(f / w)``."""
    grid = basis.grid_of(fields)
    w = basis.weights(grid).to(device=fields.device, dtype=fields.dtype)
    return basis.apply_diagonal(fields / w, per_mode_variance)


@dataclass(frozen=True)
class GaussianPosterior:
    """The exact posterior of a Gaussian prior under a linear-Gaussian observation, on one grid.

    ``mean``: ``(*batch, channels, *grid)``; ``std``: pointwise standard deviation ``(*grid,)`` (the same for
    every channel and observation); ``covariance``: the grid covariance ``(N, N)`` of the values (float64).
    """

    mean: Tensor
    std: Tensor
    covariance: Tensor


def exact_gaussian_posterior(
    oracle: GaussianOracle,
    operator: ObservationOperator,
    y: Tensor,
    grid: int | Sequence[int],
    *,
    prior_mean: Tensor | None = None,
    prior_variance: Tensor | None = None,
    jitter: float = 1e-11,
) -> GaussianPosterior:
    """The posterior of ``x ~ N(m, C)`` (the oracle's data law) given ``y = A x + σ_y ε``, by dense algebra.

    On the grid ``G`` (``N`` points), with ``C_G`` the covariance of the grid values (columns
    ``C δ_j / w_j``, as ``GaussianRandomField.pointwise_variance``) and ``A`` the Euclidean matrix of the
    operator on observed values::

        K = A C_G Aᵀ + σ_y² I,   mean = m + C_G Aᵀ K⁻¹ (y - A m),   cov = C_G - C_G Aᵀ K⁻¹ A C_G

    For ``σ_y = 0`` this conditions exactly on the observed subspace; ``jitter`` (relative to the mean
    diagonal of ``K``) only guards the Cholesky factorisation. ``y`` is ``(*batch, channels, *g)``. All in
    float64; ``N`` up to a few thousand points.

    ``prior_mean`` (a field ``(channels, *grid)``) and ``prior_variance`` (per-mode variances,
    ``coefficient_shape(grid)``) replace the oracle's ``m`` and ``c_k``: e.g. the law a finite-step sampler
    actually draws from, to separate a conditional method's error from its unconditional sampler's.
    """
    basis = oracle.basis
    grid = basis.grid(grid)
    y = y.to(torch.float64)
    operator._check_observation(y, grid)
    n = math.prod(grid)
    identity = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
    variance = oracle.data_variance(grid) if prior_variance is None else prior_variance.to(torch.float64)
    prior = _grid_covariance_columns(basis, identity, variance).reshape(n, n)
    prior = 0.5 * (prior + prior.T)
    a = observation_matrix(operator, grid)
    k = a @ prior @ a.T
    k = k + (operator.noise_std**2 + jitter * k.diagonal().mean()) * torch.eye(len(k), dtype=torch.float64)
    chol = torch.linalg.cholesky(k)
    gain = torch.cholesky_solve(a @ prior, chol).T  # C_G Aᵀ K⁻¹, (N, n_obs)
    channels = y.shape[y.dim() - basis.ndim - 1]
    if prior_mean is not None:
        mean_field = prior_mean.to(torch.float64).expand(channels, *grid)
    elif oracle.mean is not None:
        mean_field = basis.resample(oracle.mean.to(torch.float64), grid).expand(channels, *grid)
    else:
        mean_field = torch.zeros((channels, *grid), dtype=torch.float64)
    residual = _to_vector(operator, y, grid) - _to_vector(operator, operator.forward(mean_field), grid)
    mean = mean_field + (residual @ gain.T).reshape(*residual.shape[:-1], *grid)
    covariance = prior - gain @ a @ prior
    covariance = 0.5 * (covariance + covariance.T)
    std = covariance.diagonal().clamp_min(0).sqrt().reshape(grid)
    return GaussianPosterior(mean=mean, std=std, covariance=covariance)


# =========================================================================================== samplers
@dataclass
class _Problem:
    """A validated conditional sampling run: model, SDE, state, times, operator and observation."""

    model: Model
    sde: DiagonalSDE
    x: Tensor
    times: Tensor
    operator: ObservationOperator
    y: Tensor
    generator: torch.Generator | None
    grid: Grid = field(init=False)

    def __post_init__(self) -> None:
        basis = self.sde.basis
        if self.x.dim() != basis.ndim + 2:
            raise ValueError(
                f"x must be shaped (batch, channels, *grid) with {basis.ndim} grid axes, got {tuple(self.x.shape)}; "
                f"draw it with sde.prior_sample(num, resolution)."
            )
        if self.operator.basis != basis:
            raise ValueError(
                f"the operator is defined on {self.operator.basis} but the SDE on {basis}; build both on the same basis."
            )
        self.grid = basis.grid_of(self.x)
        self.times = validate_times(self.times)
        self.operator._check_observation(self.y, self.grid)
        y = self.y.to(device=self.x.device, dtype=self.x.dtype)
        if y.dim() != self.x.dim() or y.shape[1] != self.x.shape[1] or y.shape[0] not in (1, self.x.shape[0]):
            raise ValueError(
                f"y must be shaped (batch or 1, channels, *observation grid) to match x {tuple(self.x.shape)}, "
                f"got {tuple(self.y.shape)}."
            )
        self.y = y * self.operator.observed_points(self.grid).to(y.device)

    @property
    def basis(self) -> SpectralBasis:
        return self.sde.basis

    def steps(self, progress: bool, name: str):
        pairs = [(i, float(self.times[i]), float(self.times[i + 1])) for i in range(len(self.times) - 1)]
        return tqdm(pairs, desc=name, leave=False) if progress else pairs

    def denoise(self, x: Tensor, t: float) -> Tensor:
        denoised = self.model(x, torch.full((x.shape[0],), t, dtype=x.real.dtype, device=x.device))
        if denoised.shape != x.shape:
            raise ValueError(
                f"the model returned shape {tuple(denoised.shape)} for input {tuple(x.shape)}; a score model must return "
                f"the denoised field E[x_0 | x_t] with the input's shape."
            )
        return denoised

    def bridge(self, x: Tensor, x0: Tensor, t: float, s: float) -> Tensor:
        """The unconditional ancestral step ``x_s ~ q(x_s | x_t, x_0)`` (equals ``x0`` at ``s = 0``)."""
        return self.sde.bridge_sample(x, x0, s, t, generator=self.generator)

    def pinv(self, y: Tensor) -> Tensor:
        return self.operator.pseudo_inverse(y, self.grid)

    def project_observed(self, x: Tensor, target: Tensor) -> Tensor:
        """``(I - A⁺A) x + A⁺A target``: ``x`` with its observed part replaced by that of ``target``."""
        return x + self.pinv(self.operator.forward(target) - self.operator.forward(x))


def repaint(
    model: Model,
    sde: DiagonalSDE,
    x: Tensor,
    times: Tensor,
    *,
    operator: ObservationOperator,
    y: Tensor,
    resample: int = 1,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """Replacement with RePaint's resampling (Lugmayr et al. 2022), in the SDE's basis.

    Per step ``t → s``: the unconditional bridge step ``x_s ~ q(x_s | x_t, D(x_t, t))``; then the observed part
    is replaced by the forward-noised observation, ``x_s ← (I - A⁺A) x_s + A⁺A x̃_s`` with
    ``x̃_s ~ N(a_s A⁺y, v_s)`` (``sde.marginal_sample``). With ``resample = U > 1`` each step is repeated
    ``U`` times, jumping back ``s → t`` by the forward transition in between (jump length 1).
    For an operator diagonal in the basis and a model diagonal too (the Gaussian oracle) the observed and
    unobserved modes are independent and this is exact up to the bridge discretisation.
    ``σ_y`` is ignored (the observation is treated as exact). Model evaluations: ``U · steps``.
    ``y``: ``(batch or 1, channels, *observation_grid)``. Returns a tensor shaped like ``x``.
    """
    if not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be a positive int (RePaint's U), got {resample!r}.")
    run = _Problem(model, sde, x, times, operator, y, generator)
    known = run.pinv(run.y)
    with torch.no_grad():
        for i, t, s in run.steps(progress, "repaint"):
            for r in range(resample):
                denoised = run.denoise(x, t)
                if callback is not None and r == 0:
                    callback(i, t, x, denoised)
                x_s = run.bridge(x, denoised, t, s)
                noised, _ = sde.marginal_sample(known.expand_as(x_s), s, generator=generator)
                x_s = run.project_observed(x_s, noised)
                x = sde.transition_sample(x_s, s, t, generator=generator) if r < resample - 1 else x_s
    return x


def ddnm(
    model: Model,
    sde: DiagonalSDE,
    x: Tensor,
    times: Tensor,
    *,
    operator: ObservationOperator,
    y: Tensor,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """Null-space projection of the denoised estimate (DDNM, Wang et al. 2023), then the bridge step.

    ``x̂_0 = D + A⁺ Λ_t (y - A D)`` with ``D = D(x_t, t)``, then ``x_s ~ q(x_s | x_t, x̂_0)``. For ``σ_y = 0``, ``Λ_t = I``
    and every sample satisfies ``A x_0 = y`` (on the modes ``A⁺`` inverts). For ``σ_y > 0`` (DDNM⁺, their eq. 19)
    ``Λ_t`` scales each singular direction by ``λ = min(1, σ_s / (c_0 σ_y / s))`` so that the observation noise
    carried into ``x_s`` never exceeds the step's own noise (the range-space noise is not reduced): for an
    operator diagonal in the basis, per mode, with ``s_k`` its singular value
    (``operator.observation_multiplier``), ``c_0`` the bridge's weight on ``x̂_0``, ``σ_s² = var_k`` the bridge
    variance and ``σ_y² W`` the coefficient variance of the observation noise; for the others (``s = 1``)
    with the pointwise standard deviations of both noises.
    One model evaluation per step. ``y``: ``(batch or 1, channels, *observation_grid)``. Returns a tensor shaped like ``x``.
    """
    run = _Problem(model, sde, x, times, operator, y, generator)
    basis = sde.basis
    volume = float(basis.weights(run.grid).expand(run.grid).sum())
    multiplicity = basis.multiplicity(run.grid)
    singular = operator.observation_multiplier(run.grid)
    observation_grid = operator.observation_grid(run.grid)
    observation_weight = float(operator.observation_weights(run.grid).mean())
    with torch.no_grad():
        for i, t, s in run.steps(progress, "ddnm"):
            denoised = run.denoise(x, t)
            if callback is not None:
                callback(i, t, x, denoised)
            residual = run.y - operator.forward(denoised)
            if operator.noise_std > 0 and singular is None:  # compare pointwise standard deviations
                _, c_0, var = sde.bridge(s, t, run.grid)
                pointwise = math.sqrt(float((multiplicity * var).sum()) / volume)
                residual = residual * min(1.0, pointwise / (float(c_0.max()) * operator.noise_std))
            elif operator.noise_std > 0:  # per mode: the noise σ_y² W / s² carried by A⁺ against the bridge variance
                _, c_0, var = sde.bridge(s, t, observation_grid)
                carried = c_0 * operator.noise_std * math.sqrt(observation_weight) / singular
                scale = (var.sqrt() / carried.clamp_min(torch.finfo(torch.float64).tiny)).clamp_max(1.0)
                residual = operator.apply_observed(residual, scale, run.grid)
            x = run.bridge(x, denoised + run.pinv(residual), t, s)
    return x


def dps(
    model: Model,
    sde: DiagonalSDE,
    x: Tensor,
    times: Tensor,
    *,
    operator: ObservationOperator,
    y: Tensor,
    step_size: float = 1.0,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """Diffusion posterior sampling (Chung et al. 2023): likelihood guidance through the model.

    Per step ``t → s``: ``x_s = bridge(x_t, D(x_t)) - ζ ∇_{x_t} ‖y - A D(x_t, t)‖_g`` with ``ζ = step_size``, the
    norm the observation space's quadrature norm over the observed points and ``∇`` the L² gradient
    (the Euclidean gradient divided by the grid weights), so ``ζ`` does not depend on the grid. The gradient
    is taken through the model by autograd: one forward and one backward pass per step.
    ``y``: ``(batch or 1, channels, *observation_grid)``. Returns a tensor shaped like ``x``.
    """
    if not (math.isfinite(step_size) and step_size >= 0):
        raise ValueError(f"step_size (ζ) must be a finite number ≥ 0, got {step_size}.")
    run = _Problem(model, sde, x, times, operator, y, generator)
    weights = sde.basis.weights(run.grid).to(device=x.device, dtype=x.dtype)
    for i, t, s in run.steps(progress, "dps"):
        state = x.detach().requires_grad_(True)
        with torch.enable_grad():
            denoised = run.denoise(state, t)
            residual = run.y - operator.forward(denoised)
            norm = operator.inner(residual, residual, run.grid).flatten(1).sum(-1).clamp_min(1e-30).sqrt()
            (grad,) = torch.autograd.grad(norm.sum(), state)
        denoised = denoised.detach()
        if callback is not None:
            callback(i, t, x, denoised)
        with torch.no_grad():
            x = run.bridge(x.detach(), denoised, t, s) - step_size * grad / weights
    return x.detach()


# ------------------------------------------------------------------------------------------- SMC
@dataclass
class _Linear:
    """Observation-space algebra for one run of :func:`filtering_smc` (float64), matrix-free on the grid.

    ``S`` is the grid covariance of per-mode variances ``var`` (``S f = apply_diagonal(f / w, var)``) and
    ``Aᵀ u = w A*(u / W)`` the Euclidean transpose, so ``S Aᵀ u = apply_diagonal(A*(u / W), var)``; only the
    ``n_obs × n_obs`` matrix ``K = A S Aᵀ`` is dense.
    """

    run: _Problem
    weights: Tensor = field(init=False)  # observation quadrature W at the observed coordinates, (n_obs,)
    rows: Tensor = field(init=False)  # A*(e_j / W_j) = Aᵀ e_j / w: the rows of A as grid fields, (n_obs, *grid)

    def __post_init__(self) -> None:
        run = self.run
        w = run.operator.observation_weights(run.grid).to(device=run.x.device, dtype=torch.float64)
        self.weights = _to_vector(run.operator, w, run.grid)
        identity = torch.eye(len(self.weights), dtype=torch.float64, device=run.x.device)
        self.rows = self.transpose_scaled(identity)

    def apply(self, x: Tensor) -> Tensor:
        """``A x`` as coordinate vectors ``(..., n_obs)``."""
        run = self.run
        return _to_vector(run.operator, run.operator.forward(x.to(torch.float64)), run.grid)

    def transpose_scaled(self, u: Tensor) -> Tensor:
        """``Aᵀ u / w = A*(u / W)`` as grid fields ``(..., *grid)``."""
        run = self.run
        return run.operator.adjoint(_from_vector(run.operator, u / self.weights, run.grid), run.grid)

    def gain(self, per_mode_variance: Tensor, extra: Tensor | None = None) -> Tensor:
        """The Cholesky factor of ``K = A S Aᵀ (+ extra)`` (a relative jitter of 1e-10 guards rank loss)."""
        k = self.apply(self.run.basis.apply_diagonal(self.rows, per_mode_variance))
        if extra is not None:
            k = k + extra
        k = 0.5 * (k + k.T)
        k = k + 1e-10 * k.diagonal().mean() * torch.eye(len(k), dtype=k.dtype, device=k.device)
        return torch.linalg.cholesky(k)

    def log_likelihood(self, residual: Tensor, chol: Tensor) -> Tensor:
        """``-½ rᵀ K⁻¹ r`` for residual vectors ``(..., n_obs)`` (the constant of ``log N(r; 0, K)`` is dropped)."""
        flat = residual.reshape(-1, residual.shape[-1]).T
        whitened = torch.linalg.solve_triangular(chol, flat, upper=False)
        return -0.5 * whitened.pow(2).sum(0).reshape(residual.shape[:-1])

    def correction(self, residual: Tensor, per_mode_variance: Tensor, chol: Tensor) -> Tensor:
        """``S Aᵀ K⁻¹ r`` as grid fields ``(..., *grid)`` for residual vectors ``(..., n_obs)``."""
        flat = residual.reshape(-1, residual.shape[-1]).T
        solved = torch.cholesky_solve(flat, chol).T.reshape(residual.shape)
        return self.run.basis.apply_diagonal(self.transpose_scaled(solved), per_mode_variance)

    def transport(self, u: Tensor, factor: Tensor | float) -> Tensor:
        """``A f(λ) A⁺ u`` for coordinate vectors ``u`` (see :meth:`ObservationOperator.apply_observed`)."""
        run = self.run
        fields = run.operator.apply_observed(_from_vector(run.operator, u, run.grid), factor, run.grid)
        return _to_vector(run.operator, fields, run.grid)


def _systematic_resample(log_weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """Systematic resampling per row of ``log_weights`` ``(filters, particles)``: ancestor indices, same shape."""
    filters, particles = log_weights.shape
    cumulative = torch.softmax(log_weights, dim=1).cumsum(1)
    cumulative[:, -1] = 1.0
    u = (torch.rand((filters, 1), generator=generator, dtype=torch.float64) + torch.arange(particles)) / particles
    return torch.searchsorted(cumulative, u.to(cumulative.device)).clamp_max(particles - 1)


def filtering_smc(
    model: Model,
    sde: DiagonalSDE,
    x: Tensor,
    times: Tensor,
    *,
    operator: ObservationOperator,
    y: Tensor,
    particles: int = 16,
    ess_threshold: float = 0.5,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> Tensor:
    """Sequential Monte Carlo over the reverse process (filtering posterior sampling, Dou & Song 2024).

    The observation is carried along the forward process as a noiseless observation of an augmented state:
    with ``y = A x_0 + e``, let the noise ``e`` run its own stationary Ornstein–Uhlenbeck process in the
    observation space, ``e_t = M_t e + ε_t`` (``M_t = A a_t A⁺``, stationary law ``N(0, σ_y² I)``), so that

        y_t = A x_t + e_t = M_t y + A n_t + ε_t                                                   (F1)

    with ``n_t`` the forward noise of ``x``. ``(n_t, ε_t)`` is independent of ``(x_0, e)``, so one exact path
    ``y_t`` per output (drawn backwards in time towards ``n_0 = ε_0 = 0``) leaves ``x_0 | y`` unchanged, and each
    output is one draw from a particle filter of ``particles`` states targeting ``p(x_0 | y_{0:T}) = p(x_0 | y)``:

    * start: prior draws of ``x`` at ``times[0]`` and ``e ~ N(0, σ_y² I)`` conditioned on ``y_T`` exactly (Matheron);
    * step ``t → s``: the model's bridge kernel ``x_s ~ N(μ, Σ)`` (``μ = c_t x_t + c_0 D(x_t)``, ``Σ`` per mode) and
      the exact reverse kernel of the noise, ``e_s ~ N(R e_t, σ_y² (I - R²))`` (``R = M_t M_s⁻¹``, ``e_t = y_t - A x_t``),
      conditioned on ``A x_s + e_s = y_s``: particles are weighted by ``N(y_s; A μ + R e_t, A Σ Aᵀ + σ_y²(I - R²))``
      (fully adapted), resampled (systematically) when the effective sample size falls below
      ``ess_threshold · particles``, then moved by Gaussian conditioning of the proposal draws;
    * last step (into ``t = 0``, where the bridge is deterministic): ``Σ = v_t / a_t²`` (the small-``t`` law of
      ``x_0 | x_t``) for the weights and the projection of ``D``, with no noise added to ``x``;
    * output: one particle per filter drawn by the final weights.

    Exact as ``particles → ∞`` up to the model's reverse kernels (the bridge discretisation), provided ``A``
    commutes with the forward mean factor: ``operator.diagonal`` or ``a_k(t)`` equal for all modes (``κ = 0``);
    otherwise a ValueError. Cost: ``particles · steps`` model evaluations per output, plus a Cholesky
    factorisation of an ``n_obs × n_obs`` matrix per step (small and moderate grids).
    ``x``: ``(batch, channels, *grid)`` prior draws (the first particle of each filter; the others are drawn
    here). ``y``: ``(batch or 1, channels, *observation_grid)``. Returns a tensor shaped like ``x``.
    """
    if not isinstance(particles, int) or particles < 1:
        raise ValueError(f"particles must be a positive int, got {particles!r}.")
    if not 0 <= ess_threshold <= 1:
        raise ValueError(f"ess_threshold must lie in [0, 1], got {ess_threshold}.")
    run = _Problem(model, sde, x, times, operator, y, generator)
    grid, basis = run.grid, sde.basis
    if not operator.diagonal:
        a_all = sde.mean_factor(run.times, grid).flatten(1)
        spread = float(((a_all.amax(1) - a_all.amin(1)) / a_all.amax(1)).max())
        if spread > 1e-12:
            raise ValueError(
                f"filtering_smc needs {type(operator).__name__} to commute with the forward mean factor, but a_k(t) differs "
                f"between modes (by {spread:.2g} relative; a heat process, κ > 0). Use an SDE with κ = 0 (no heat "
                f"schedule), an operator diagonal in the basis, or ddnm / repaint."
            )
    batch, channels = x.shape[:2]
    dtype, device = x.dtype, x.device
    algebra = _Linear(run)
    sigma = operator.noise_std
    y_vec = _to_vector(operator, run.y, grid).to(torch.float64).expand(batch, channels, -1)
    identity = torch.eye(y_vec.shape[-1], dtype=torch.float64, device=device)
    zeros64 = torch.zeros(x.shape, dtype=torch.float64, device=device)

    observation_grid = operator.observation_grid(grid)

    def a(t: float) -> Tensor | float:  # the mean factor as it acts on the observation space (M_t)
        if operator.diagonal:
            return sde.mean_factor(t, observation_grid).to(device)
        return float(sde.mean_factor(t, grid).flatten()[0])

    def white(shape: Sequence[int]) -> Tensor:
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float64).to(device)

    def per_particle(v: Tensor) -> Tensor:  # (batch, ...) -> (batch * particles, ...)
        return v.repeat_interleave(particles, dim=0)

    def noise_covariance(factor: Tensor) -> Tensor:  # σ_y² f(M) as an (n_obs, n_obs) matrix (symmetric)
        return sigma**2 * algebra.transport(identity[:, None], factor)[:, 0]

    # one path (n_t, ε_t) per filter, drawn backwards from times[0]; y_t by (F1)
    t0 = float(run.times[0])
    noise_path, _ = sde.marginal_sample(zeros64, t0, generator=generator)
    obs_path = sigma * algebra.transport(white(y_vec.shape), (1 - a(t0) ** 2) ** 0.5) if sigma > 0 else 0.0

    def observed(t: float) -> Tensor:
        return algebra.transport(y_vec, a(t)) + algebra.apply(noise_path) + obs_path

    y_t = observed(t0)
    # initial particles: x first, then fresh draws of N(0, v(times[0])), with e ~ N(0, σ_y² I), conditioned on y_T
    fresh, _ = sde.marginal_sample(per_particle(zeros64), t0, generator=generator)
    state = fresh.reshape(batch, particles, *x.shape[1:])
    state[:, 0] = x
    state = state.flatten(0, 1)
    initial_variance = sde.variance(t0, grid).to(device)
    chol = algebra.gain(initial_variance, sigma**2 * identity if sigma > 0 else None)
    innovation = per_particle(y_t) - algebra.apply(state)
    if sigma > 0:
        innovation = innovation - sigma * white(innovation.shape)
    state = state + algebra.correction(innovation, initial_variance, chol)
    log_weights = torch.zeros((batch, particles), dtype=torch.float64, device=device)

    for i, t, s in run.steps(progress, "filtering_smc"):
        denoised = run.denoise(state.to(dtype), t).to(torch.float64)
        if callback is not None:
            callback(i, t, state.to(dtype), denoised.to(dtype))
        if s > 0:
            c_t, c_0, var = (q.to(device) for q in sde.bridge(s, t, grid))
            mean = basis.inverse(c_t * basis.forward(state) + c_0 * basis.forward(denoised), grid)
        else:
            var = (sde.variance(t, grid) / sde.mean_factor(t, grid) ** 2).to(device)
            mean = denoised
        a_s, a_t = a(s), a(t)
        noise_path = run.bridge(noise_path, zeros64, t, s)
        if sigma > 0:  # ε_s | ε_t: the bridge of the unit-variance OU towards ε_0 = 0 (per mode of M)
            v_s, v_t, v_st = 1 - a_s**2, 1 - a_t**2, 1 - (a_t / a_s) ** 2
            obs_path = algebra.transport(obs_path, (a_t / a_s) * v_s / v_t)
            obs_path = obs_path + sigma * algebra.transport(white(obs_path.shape), (v_s * v_st / v_t) ** 0.5)
        y_s = observed(s)
        target = per_particle(y_s)
        extra = None
        if sigma > 0:  # e_s | e_t ~ N(R e_t, σ_y² (I - R²)), R = a_t / a_s per mode of M
            ratio = a_t / a_s
            target = target - algebra.transport(per_particle(y_t) - algebra.apply(state), ratio)
            extra = noise_covariance(1 - ratio**2)
        chol = algebra.gain(var, extra)
        log_weights = log_weights + algebra.log_likelihood(target - algebra.apply(mean), chol).sum(-1).reshape(batch, particles)
        ess = 1.0 / torch.softmax(log_weights, dim=1).pow(2).sum(1)
        resample = ess < ess_threshold * particles
        if bool(resample.any()) and s > 0:
            ancestors = _systematic_resample(log_weights, generator).to(device)
            keep = torch.arange(particles, device=device).expand(batch, particles)
            ancestors = torch.where(resample[:, None], ancestors, keep)
            flat = (ancestors + particles * torch.arange(batch, device=device)[:, None]).flatten()
            mean, target = mean[flat], target[flat]
            log_weights = torch.where(resample[:, None], torch.zeros_like(log_weights), log_weights)
        proposal = mean
        if s > 0:
            proposal = mean + basis.inverse(var.sqrt() * sde.white_coefficients(mean, generator=generator), grid)
        residual = target - algebra.apply(proposal)
        if sigma > 0:
            residual = residual - sigma * algebra.transport(white(residual.shape), (1 - ratio**2) ** 0.5)
        state = proposal + algebra.correction(residual, var, chol)
        y_t = y_s
    choice = torch.multinomial(torch.softmax(log_weights, dim=1).cpu(), 1, generator=generator)[:, 0].to(device)
    out = state.reshape(batch, particles, *x.shape[1:])[torch.arange(batch, device=device), choice]
    return out.to(dtype)
