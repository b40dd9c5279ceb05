"""Observations as coordinate vectors over their observed entries, and an operator's dense matrix on one grid: the
dense algebra of the exact references and of the particle filter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..bases import Grid
from ..engine import Run
from .operators import ObservationOperator

__all__ = ["observation_matrix", "cholesky"]


def _to_vector(operator: ObservationOperator, y: Tensor, grid: Grid) -> Tensor:
    """Observation fields ``(*batch, *g)`` -> coordinate vectors ``(*batch, n_obs)`` (observed points only)."""
    points = _shared_points(operator, grid).flatten().to(y.device)
    return y.flatten(y.dim() - operator.basis.ndim)[..., points]


def _shared_points(operator: ObservationOperator, grid: Grid) -> Tensor:
    """The observed points of the observation grid, the same in every channel (the dense algebra's vectors)."""
    points = operator.observed_points(grid)
    if points.dim() > operator.basis.ndim:
        raise ValueError("this method needs every channel observed at the same points, but the mask observes each "
                         "channel at its own points; use dps or ddnm, which take channel-wise masks.")
    return points


def _from_vector(operator: ObservationOperator, u: Tensor, grid: Grid) -> Tensor:
    """The inverse of :func:`_to_vector` (zeros at unobserved points)."""
    obs_grid = operator.observation_grid(grid)
    points = _shared_points(operator, grid).flatten().to(u.device)
    out = u.new_zeros((*u.shape[:-1], points.numel()))
    out[..., points] = u
    return out.reshape(*u.shape[:-1], *obs_grid)


def observation_matrix(operator: ObservationOperator, grid: Grid) -> Tensor:
    """The Euclidean matrix ``(n_obs, N)`` (float64) of ``A`` from grid values to observed values."""
    grid = operator.basis.grid(grid)
    n = math.prod(grid)
    identity = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
    return _to_vector(operator, operator.forward(identity), grid).T.contiguous()


def cholesky(gram: Tensor) -> Tensor:
    """Cholesky factor of the symmetric positive (semi-)definite ``gram``, with the smallest relative jitter
    (from 1e-14 of its mean diagonal) that makes it succeed."""
    scale = gram.diagonal().mean()
    for jitter in (0.0, 1e-14, 1e-12, 1e-10, 1e-8):
        factor, info = torch.linalg.cholesky_ex(gram + jitter * scale * torch.eye(len(gram), dtype=gram.dtype, device=gram.device))
        if int(info) == 0:
            return factor
    raise ValueError("the observations' covariance is singular: some observed values are exact linear combinations "
                     "of others (repeated points?); remove them or add observation noise.")


@dataclass
class _Linear:
    """Observation-space algebra for one run of :data:`filtering_smc` (float64), matrix-free on the grid.

    ``S`` is the grid covariance of per-mode variances ``var`` (``S f = apply_diagonal(f / w, var)``) and
    ``Aᵀ u = w A*(u / W)`` the Euclidean transpose, so ``S Aᵀ u = apply_diagonal(A*(u / W), var)``; only the
    ``n_obs × n_obs`` matrix ``K = A S Aᵀ`` is dense.
    """

    run: Run
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
