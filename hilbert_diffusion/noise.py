"""Covariance operators diagonal in a spectral basis, and Gaussian random fields.

A spectrum is a function ``q(λ)`` of the Laplacian eigenvalue; the operator is ``Q e_k = q(λ_k) e_k``.
``Q`` is trace class (``Σ_k q_k < ∞``, so ``N(0, Q)`` lives in L²) when ``q`` decays faster than
``λ^(-d/2)`` on a ``d``-dimensional domain (Weyl's law: the number of ``λ_k ≤ Λ`` grows as ``Λ^(d/2)``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .bases import Grid, SpectralBasis

__all__ = [
    "Spectrum",
    "Matern",
    "PowerLaw",
    "SquaredExponential",
    "WhiteNoise",
    "GaussianRandomField",
    "require_trace_class",
]


class Spectrum(ABC):
    """Base class of covariance spectra ``q(λ)``; subclasses are frozen dataclasses."""

    @abstractmethod
    def __call__(self, lam: Tensor) -> Tensor:
        """``q(λ)`` elementwise."""

    @abstractmethod
    def is_trace_class(self, ndim: int) -> bool:
        """Whether ``Σ_k q(λ_k) < ∞`` on a ``ndim``-dimensional domain."""

    def trace(self, basis: SpectralBasis, grid: Grid) -> float:
        """``Σ_k m_k q(λ_k)`` over the coefficients a grid resolves (the expected ``‖x‖²`` of ``N(0, Q)``)."""
        return float((basis.multiplicity(grid) * self(basis.eigenvalues(grid))).sum())


@dataclass(frozen=True)
class Matern(Spectrum):
    """Matérn-type ``q(λ) = scale · τ^(2α) (τ² + λ)^(-α)`` (``q(0) = scale``); trace class iff ``α > d/2``.

    ``α = 2.5, τ = 7`` is the initial vorticity law of the FNO Navier–Stokes benchmark (up to scale).
    """

    alpha: float = 2.0
    tau: float = 3.0
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.tau <= 0 or self.scale <= 0:
            raise ValueError(f"Matern needs alpha, tau, scale > 0, got {self}.")

    def __call__(self, lam: Tensor) -> Tensor:
        return self.scale * (1.0 + lam / self.tau**2) ** (-self.alpha)

    def is_trace_class(self, ndim: int) -> bool:
        return self.alpha > ndim / 2


@dataclass(frozen=True)
class PowerLaw(Spectrum):
    """``q(λ) = scale · (λ / λ₀)^(-α)`` for ``λ > 0`` and ``q(0) = zero_mode``; trace class iff ``α > d/2``."""

    alpha: float = 2.0
    scale: float = 1.0
    lam0: float = 4 * math.pi**2
    zero_mode: float = 1.0

    def __post_init__(self) -> None:
        if self.alpha <= 0 or self.scale <= 0 or self.lam0 <= 0 or self.zero_mode < 0:
            raise ValueError(f"PowerLaw needs alpha, scale, lam0 > 0 and zero_mode ≥ 0, got {self}.")

    def __call__(self, lam: Tensor) -> Tensor:
        safe = torch.where(lam > 0, lam, torch.ones_like(lam))
        return torch.where(lam > 0, self.scale * (safe / self.lam0) ** (-self.alpha), torch.full_like(lam, self.zero_mode))

    def is_trace_class(self, ndim: int) -> bool:
        return self.alpha > ndim / 2


@dataclass(frozen=True)
class SquaredExponential(Spectrum):
    """``q(λ) = scale · exp(-ℓ² λ / 2)``: the heat kernel at time ``ℓ²/2``; trace class in every dimension."""

    length_scale: float = 0.1
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.length_scale <= 0 or self.scale <= 0:
            raise ValueError(f"SquaredExponential needs length_scale, scale > 0, got {self}.")

    def __call__(self, lam: Tensor) -> Tensor:
        return self.scale * torch.exp(-0.5 * self.length_scale**2 * lam)

    def is_trace_class(self, ndim: int) -> bool:
        return True


@dataclass(frozen=True)
class WhiteNoise(Spectrum):
    """``q(λ) = scale``: white noise. **Not trace class** — its samples are not functions and their
    pointwise variance grows with the grid. Kept only as the finite-dimensional baseline."""

    scale: float = 1.0

    def __call__(self, lam: Tensor) -> Tensor:
        return torch.full_like(lam, self.scale)

    def is_trace_class(self, ndim: int) -> bool:
        return False


def require_trace_class(spectrum: Spectrum, basis: SpectralBasis, what: str) -> None:
    """Raise a clear error when a trace-class covariance is required and ``spectrum`` is not one."""
    if not spectrum.is_trace_class(basis.ndim):
        raise ValueError(
            f"{what} needs a trace-class covariance on a {basis.ndim}-D domain, but {spectrum} is not one "
            f"(Σ q_k diverges, so samples are not functions and nothing converges as the grid is refined). "
            f"Use e.g. Matern(alpha > {basis.ndim / 2}), PowerLaw(alpha > {basis.ndim / 2}) or SquaredExponential."
        )


@dataclass(frozen=True)
class GaussianRandomField:
    """``N(0, Q)`` with ``Q`` diagonal in ``basis``: one object, samples at any resolution.

    A sample is ``x = Σ_k sqrt(q_k) ξ_k e_k`` with ``ξ`` white-noise coefficients: on every grid the
    coefficients both grids resolve have the same law, so the measure does not depend on the grid.
    """

    basis: SpectralBasis
    spectrum: Spectrum

    def sqrt_multiplier(self, grid: Grid) -> Tensor:
        return self.spectrum(self.basis.eigenvalues(grid)).sqrt()

    def sample(
        self,
        num: int,
        resolution: int | Sequence[int],
        *,
        channels: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``num`` independent fields, shape ``(num, channels, *grid)``."""
        return self.basis.sample_gaussian(num, resolution, self.sqrt_multiplier, channels=channels,
                                          generator=generator, dtype=dtype, device=device)

    def color(self, white: Tensor) -> Tensor:
        """``Q^(1/2) ξ`` for grid white noise ``ξ`` (see :meth:`SpectralBasis.white_noise`)."""
        grid = self.basis.grid_of(white)
        return self.basis.apply_diagonal(white, self.sqrt_multiplier(grid))

    def pointwise_variance(self, resolution: int | Sequence[int]) -> Tensor:
        """Exact ``Var x(x_j)`` on a grid: ``Σ_k q_k |e_k(x_j)|²`` (the diagonal of the grid covariance)."""
        grid = self.basis.grid(resolution)
        n = math.prod(grid)
        eye = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
        w = self.basis.weights(grid)
        # Columns of the grid covariance: C δ_j / w_j (δ_j / w_j is the grid's delta function).
        cov = self.basis.apply_diagonal(eye / w, self.spectrum(self.basis.eigenvalues(grid)))
        return cov.reshape(n, n).diagonal().reshape(grid)
