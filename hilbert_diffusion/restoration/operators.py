"""Linear observation operators in function space: ``y = A x + σ_y ε``, defined on functions so that they act on
a field sampled on any (compatible) grid, with ``ε`` independent standard normals at the observation points.

Each operator gives, for a signal grid ``G`` and its observation grid ``g``:

* ``forward(x)`` — ``A x``: ``(*batch, *G) -> (*batch, *g)``;
* ``adjoint(y, G)`` — ``A*`` for the quadrature inner products ``<u, v> = Σ_j w_j u_j v_j`` of both grids,
  ``<A x, y>_g = <x, A* y>_G``;
* ``pseudo_inverse(y, G)`` — the Moore–Penrose ``A⁺`` for the same inner products (``A A⁺ A = A``,
  ``A⁺ A`` an orthogonal projection);
* ``noise_std`` (``σ_y``) and ``observation_grid(G)`` (``g``, validating that ``G`` can be restored).

Operators: :class:`Mask` (point observations; built by :func:`~.masks.box_mask`, :func:`~.masks.random_mask`,
:func:`~.masks.missing_mask`),
:class:`SpectralDownsample` (the coefficients a low grid resolves; diagonal in the basis), :class:`BlockAverage`
(pixelation) and :class:`HeatBlur` (the heat semigroup ``e^{-τA}``, a Gaussian kernel; diagonal in the basis).
:func:`~.vectors.observation_matrix` (:mod:`.vectors`) is the dense matrix of an operator on one grid (for exact
references).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..bases import Grid, SpectralBasis

__all__ = [
    "ObservationOperator",
    "Mask",
    "box_mask",
    "random_mask",
    "missing_mask",
    "SpectralDownsample",
    "BlockAverage",
    "HeatBlur",
]


# =========================================================================================== grids
def _nested_indices(basis: SpectralBasis, coarse: Grid, fine: Grid) -> list[Tensor] | None:
    """For every axis, the index in ``fine`` of each point of ``coarse``; ``None`` if some point is missing."""
    indices = []
    for c, f in zip(basis.axis_points(coarse, fractional=True), basis.axis_points(fine, fractional=True)):
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
    linear: ClassVar[bool] = True  # False: ``A`` reads through a nonlinear solver (dps, hard_consistency)

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

    def project(self, x: Tensor) -> Tensor:
        """The fields as the operator reads them: ``x``, but for operators that derive a channel from others
        (:class:`~hilbert_diffusion.restoration.constraint.ConstrainedMask` completes ``u = S a``)."""
        return x

    def derive(self, x: Tensor) -> Tensor:
        """``x`` with the channels the operator derives from others recomputed (the identity but for constraints)."""
        return x

    def normalised(self, mean: Sequence[float], std: Sequence[float]) -> ObservationOperator:
        """The operator on fields normalised per channel, ``(x_c − mean_c)/std_c``, observing ``(y − A mean)/std``:
        ``A_n x = A(std · x)/std``; an operator acting on each channel alone is its own."""
        return self

    def encode(self, y: Tensor, mean: Tensor, std: Tensor, grid: Grid) -> Tensor:
        """``y`` in the units of :meth:`normalised`: ``(y − A m)/s`` for the constant per-channel mean field ``m``
        on ``grid`` (``mean``, ``std`` shaped ``(1, channels, 1, …)``; ``A`` linear)."""
        if not bool((mean == 0).all()):
            y = y - self.forward(mean.expand(1, mean.shape[1], *grid).to(y.dtype))
        return y / std

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

    ``observed`` is a boolean array shaped like a grid of the basis (broadcast over batch and channels), or
    ``(channels, *grid)`` to observe each channel at its own points (DiffusionPDE's protocol observes one channel of a
    pair; :meth:`PointObservation.as_mask`): then the fields must have exactly that many channels. A field on that grid or on any finer grid containing its points (periodic: multiples; Neumann: odd
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
        if observed.dim() not in (self.basis.ndim, self.basis.ndim + 1):
            raise ValueError(
                f"observed has shape {tuple(observed.shape)} but {type(self.basis).__name__} fields have "
                f"{self.basis.ndim} grid axes; give one boolean per grid point (shape = the grid, or (channels, *grid))."
            )
        self.basis.grid(tuple(observed.shape[-self.basis.ndim :]))
        if not observed.any():
            raise ValueError("the mask observes no point: nothing conditions the sample; use an unconditional sampler.")
        object.__setattr__(self, "observed", observed.cpu())

    @property
    def grid(self) -> Grid:
        return tuple(self.observed.shape[-self.basis.ndim :])

    @property
    def per_channel(self) -> bool:
        """Whether each channel is observed at its own points (``observed`` shaped ``(channels, *grid)``)."""
        return self.observed.dim() > self.basis.ndim

    def _check_channels(self, x: Tensor) -> None:
        if self.per_channel and (x.dim() <= self.basis.ndim or x.shape[-self.basis.ndim - 1] != len(self.observed)):
            have = x.shape[-self.basis.ndim - 1] if x.dim() > self.basis.ndim else 0
            raise ValueError(f"the mask observes {len(self.observed)} channels at their own points but the field has "
                             f"{have}; give (batch, {len(self.observed)}, *grid) fields or a mask shaped like the grid.")

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
        self._check_channels(x)
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
        self._check_channels(y)
        y = y * self.observed.to(y.device)
        return y if grid == self.grid else _embed(y, self._indices(grid), grid, self.basis.ndim)


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
    the two Nyquist modes ``±n/2`` are averaged, as resampling does), ``A⁺`` zero-padding up, and a
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


def __getattr__(name: str):  # moved to .vectors and .masks; the old import paths still work
    if name == "observation_matrix":
        from .vectors import observation_matrix

        return observation_matrix
    if name in ("box_mask", "random_mask", "missing_mask"):
        from . import masks

        return getattr(masks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
