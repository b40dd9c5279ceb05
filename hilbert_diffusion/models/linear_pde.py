"""The exact Bayes limit of sparse-observation PDE problems whose pair ``(a, u)`` is jointly Gaussian: ``a`` a
Gaussian random field, ``u = S a`` for a linear solution operator ``S`` (DiffusionPDE's Poisson and Helmholtz).

Write the pair as a linear map of white noise, ``x = R ξ``, ``ξ ~ N(0, I)`` on the coefficients of the grid:
``a = P B(√q ξ)`` (``B`` the basis' inverse transform, ``q`` the source spectrum with the mean mode zeroed, ``P`` a
linear preparation such as zeroing the boundary) and ``x = (a, S a)``. Under the linear observation
``y = H x + σ_y ε`` (:class:`~hilbert_diffusion.restoration.points.PointObservation`), with ``G = H R`` as a
``P × n`` matrix (its rows ``Rᵀ Hᵀ e_j``, one vector–Jacobian product each, all at once):

* posterior mean ``x̂ = R Gᵀ K⁻¹ y``, ``K = G Gᵀ + σ_y² I`` (a ``P × P`` system: 500 × 500 for the protocol);   (mean)
* an exact posterior draw by Matheron's rule ``x = R (ξ₀ + Gᵀ K⁻¹ (y − G ξ₀ − σ_y ε₀))``, ``ξ₀, ε₀`` fresh.    (draw)

A single exact draw's expected squared error is twice the mean's (the posterior spread added to the mean's error):
it is what a perfect generative model's single sample scores, the Bayes limit of a single-draw metric.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from ..bases import Grid, NeumannBasis, SpectralBasis
from ..datasets.elliptic import solve_dirichlet, zero_boundary
from ..datasets.pde_pairs import DIFFUSIONPDE_GRF
from ..noise import Spectrum
from ..restoration.constraint import SolutionMap
from ..restoration.points import PointObservation
from ..restoration.vectors import cholesky

__all__ = ["LinearGaussianPair", "PairPosterior"]

_F64 = torch.float64


@dataclass(frozen=True)
class PairPosterior:
    """The exact posterior of a pair given one observation per row: ``mean`` ``(n, 2, *grid)`` and ``draws``
    ``(n, K, 2, *grid)``, float64."""

    mean: Tensor
    draws: Tensor


@dataclass(frozen=True, eq=False)
class LinearGaussianPair:
    """The jointly Gaussian pair ``x = (a, S a)`` on ``grid`` of ``basis``, ``a = prepare(B √q ξ)`` (module docstring).

    Attributes:
        basis, grid: the domain and the grid of the pair.
        spectrum: ``q`` of the source (its mean mode is zeroed, as the data's).
        solve: the linear solution operator ``S``, ``(..., *grid) -> (..., *grid)``.
        prepare: a linear map applied to the source first (identity by default).
    """

    basis: SpectralBasis
    grid: Grid
    spectrum: Spectrum
    solve: Callable[[Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor] = lambda a: a

    @classmethod
    def poisson(cls, resolution: int) -> LinearGaussianPair:
        """DiffusionPDE's Poisson pair (:func:`hilbert_diffusion.datasets.poisson`)."""
        return cls(NeumannBasis(2), (resolution, resolution), DIFFUSIONPDE_GRF, solve_dirichlet)

    @classmethod
    def helmholtz(cls, resolution: int, *, wavenumber: float = 1.0) -> LinearGaussianPair:
        """DiffusionPDE's Helmholtz pair (:func:`hilbert_diffusion.datasets.helmholtz`)."""
        return cls(NeumannBasis(2), (resolution, resolution), DIFFUSIONPDE_GRF,
                   lambda a: solve_dirichlet(a, shift=wavenumber**2), zero_boundary)

    @property
    def solution(self) -> SolutionMap:
        """``(a, u) ↦ (prepare(a), S prepare(a))`` on channels 0 and 1, for restoring through the solver
        (:class:`~hilbert_diffusion.restoration.constraint.ConstrainedMask`)."""
        return SolutionMap(solve=self.solve, prepare=self.prepare)

    def _std(self) -> Tensor:
        std = self.spectrum(self.basis.eigenvalues(self.grid)).to(_F64).sqrt()
        return std * (self.basis.eigenvalues(self.grid) > 0)  # the mean mode is zeroed

    def field(self, xi: Tensor) -> Tensor:
        """``R ξ``: white coefficients ``(..., *coefficient_shape)`` to the pair ``(..., 2, *grid)``."""
        a = self.prepare(self.basis.inverse(xi * self._std().to(xi.device), self.grid))
        return torch.stack([a, self.solve(a)], dim=-1 - self.basis.ndim)

    def white(self, num: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``num`` draws of ``ξ``, ``(num, *coefficient_shape)`` float64."""
        return torch.randn((num, *self.basis.coefficient_shape(self.grid)), generator=generator, dtype=_F64)

    def observation_rows(self, observation: PointObservation) -> Tensor:
        """``G = H R`` as a ``(P_total, n)`` matrix (``P_total = len(channels) · P``), by vector–Jacobian products."""
        total = len(observation.channels) * observation.count
        probe = torch.zeros((total, *self.basis.coefficient_shape(self.grid)), dtype=_F64, requires_grad=True)
        with torch.enable_grad():
            out = observation.forward(self.field(probe)).reshape(total, total)
            (rows,) = torch.autograd.grad(out, probe, grad_outputs=torch.eye(total, dtype=_F64))
        return rows.reshape(total, -1)

    def posterior(self, observation: PointObservation, y: Tensor, *, draws: int = 1,
                  generator: torch.Generator | None = None) -> PairPosterior:
        """The exact posterior given ``y`` ``(n, len(channels), P)`` under ``observation``: (mean) and ``draws``
        exact draws (draw) per row."""
        observation.check_observation(y)
        if observation.grid != self.grid:
            raise ValueError(f"the points lie on {observation.grid} but the pair lives on {self.grid}; "
                             f"build the observation on the pair's grid.")
        g = self.observation_rows(observation)
        gram = g @ g.T + observation.noise_std**2 * torch.eye(len(g), dtype=_F64)
        factor = cholesky(gram)
        y = y.to(_F64).reshape(len(y), -1)
        shape = self.basis.coefficient_shape(self.grid)
        mean = self.field((torch.cholesky_solve(y.T, factor).T @ g).reshape(len(y), *shape))
        xi0 = self.white(len(y) * draws, generator=generator).reshape(len(y) * draws, -1)
        residual = y.repeat_interleave(draws, 0) - xi0 @ g.T
        if observation.noise_std > 0:
            residual = residual - observation.noise_std * torch.randn(residual.shape, generator=generator, dtype=_F64)
        xi = xi0 + torch.cholesky_solve(residual.T, factor).T @ g
        samples = self.field(xi.reshape(-1, *shape))
        return PairPosterior(mean=mean, draws=samples.reshape(len(y), draws, *samples.shape[1:]))

