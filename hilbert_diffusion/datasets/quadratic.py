"""HDM's 1-D benchmark "Quadratic" (Lim et al., NeurIPS 2023; DESIGN §2).

Each curve is ``y(x) = (a x² + ε) / 50`` on ``[-10, 10]`` with ``a ∈ {-1, +1}`` equally likely and
``ε ~ N(0, 1)`` shared by the whole curve; HDM uses 1000 curves on 100 points.

HDM's grid is ``torch.linspace(-10, 10, 100)`` (both endpoints included). The toolkit's domains
sample on their own grids, so two conventions are offered:

* ``endpoints=False`` (default): the Neumann (cosine) basis on ``[-10, 10]``, cell-centred points
  ``x_j = -10 + (j + ½)·20/N``. The curve is a fixed function of ``x`` on a fixed domain, so data at
  50, 100, 200 or 400 points are samples of the same functions: the right choice for training at
  one resolution and comparing at another.
* ``endpoints=True``: HDM's exact points ``linspace(-10, 10, N)``, read as the cell centres of the
  slightly larger interval ``[-10 - h/2, 10 + h/2]``, ``h = 20/(N-1)`` (basis length ``20 N/(N-1)``):
  the values equal HDM's to rounding, for comparison with its numbers at its own resolution.

Why Neumann (cosine) and not periodic: the even reflection behind the cosine basis is continuous
for every curve, so coefficients decay at least like ``k^-2`` and resampling has no Gibbs jump;
this matches HDM's own DCT heat process. (The Quadratic curves happen to satisfy
``y(-10) = y(10)``, so their periodic extension is continuous too; both extensions have a kink,
``y'(±10) = ±0.4 a``, and both spectra decay like ``k^-2``; for general non-periodic curves only the
cosine one does.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..bases import NeumannBasis
from .base import FieldDataset, dataset_spec, grid_coordinates

__all__ = ["quadratic", "quadratic_curves", "sorted_uniform_points", "QUADRATIC_DOMAIN"]

#: the interval HDM's curves live on.
QUADRATIC_DOMAIN = (-10.0, 10.0)
_SCALE = 1.0 / 50.0


def quadratic_curves(points: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
    """Curves of the Quadratic law evaluated at ``points``.

    Args:
        points: ``(num, n)`` positions in ``[-10, 10]`` (one row per curve; rows may differ, e.g.
            sorted random points from :func:`sorted_uniform_points`).
        generator: source of ``a`` and ``ε``.

    Returns:
        ``(num, 1, n)`` float32: ``(a_i x_ij² + ε_i) / 50`` with ``a_i = ±1`` (probability ½ each)
        and ``ε_i ~ N(0, 1)``, one pair per curve.
    """
    if points.dim() != 2:
        raise ValueError(
            f"points must be shaped (num, n), got {tuple(points.shape)}; use points.expand(num, -1) for a shared grid."
        )
    num = points.shape[0]
    a = 2.0 * torch.randint(0, 2, (num, 1), generator=generator, dtype=torch.float64) - 1.0
    eps = torch.randn((num, 1), generator=generator, dtype=torch.float64)
    x = points.to(torch.float64)
    return ((a * x**2 + eps) * _SCALE).unsqueeze(1).to(torch.float32)


def sorted_uniform_points(num: int, num_points: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``(num, num_points)`` independent uniform points of ``[-10, 10]``, sorted along each row (for
    irregularly sampled Quadratic curves; they are not on a spectral grid)."""
    low, high = QUADRATIC_DOMAIN
    u = torch.rand((num, num_points), generator=generator, dtype=torch.float64)
    return (low + (high - low) * u).sort(dim=-1).values


def quadratic(num: int = 1000, num_points: int = 100, *, endpoints: bool = False, seed: int = 0) -> FieldDataset:
    """HDM's Quadratic data set: ``num`` curves on ``num_points`` points, ``(num, 1, num_points)``.

    Args:
        num: number of curves (HDM: 1000).
        num_points: points per curve (HDM: 100; any ``≥ 2``).
        endpoints: ``False``: cell-centred points of ``[-10, 10]`` (resolution-consistent);
            ``True``: HDM's ``linspace(-10, 10, num_points)`` (see the module docstring).
        seed: seed of the generator.

    The dataset's ``coordinates`` hold the ``x`` of each point, shaped ``(num_points, 1)``.
    """
    if num < 1 or num_points < 2:
        raise ValueError(f"need num ≥ 1 and num_points ≥ 2, got num={num}, num_points={num_points}.")
    low, high = QUADRATIC_DOMAIN
    width = high - low
    if endpoints:
        h = width / (num_points - 1)
        basis = NeumannBasis(1, lengths=width + h)
        origin = low - h / 2
    else:
        basis = NeumannBasis(1, lengths=width)
        origin = low
    coordinates = grid_coordinates(basis, (num_points,)) + origin
    generator = torch.Generator().manual_seed(seed)
    data = quadratic_curves(coordinates[..., 0].expand(num, -1), generator=generator)
    spec = dataset_spec(quadratic, num=num, num_points=num_points, endpoints=endpoints, seed=seed)
    return FieldDataset(data=data, basis=basis, name="quadratic", spec=spec, coordinates=coordinates)
