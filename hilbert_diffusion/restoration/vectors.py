"""Observations as coordinate vectors over their observed entries, and an operator's dense matrix on one grid: the
dense algebra of the exact references and of the particle filter."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..bases import Grid
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
