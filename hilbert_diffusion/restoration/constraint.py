"""Restoration under a known linear PDE: pairs ``x = (a, u)`` with ``u = S a`` for a known solution operator ``S``
(DiffusionPDE's Poisson and Helmholtz: ``S`` a Dirichlet solve of the 5-point Laplacian).

A generative model of the pair never satisfies ``u = S a`` exactly, and restoration from sparse points of one field
carries information to the other only through the model's learned coupling. With ``S`` known, both fields are
functions of ``a`` alone:

    y = M (P a, S P a) + σ_y ε                                                                         (observe)
    x̂ = (P â, S P â)                                                                                   (complete)

(``P`` a linear preparation of the source that the data satisfy, e.g. Helmholtz's zeroed boundary; the identity
for Poisson)

— observe the completed pair (:class:`ConstrainedMask`: points of ``a``, of ``u = S a`` through the solver, or
both), restore ``a`` with any method that needs only a linear operator (covariance guidance: its rows ``Sᵀ Mᵀ e_j``
come from one vector–Jacobian product through the solver), and complete ``u`` from the restored ``a``. For Gaussian
``a`` with the model's spectrum this is the exact posterior (the Bayes limit of
:class:`~hilbert_diffusion.models.linear_pde.LinearGaussianPair`); for a learned model, ``u`` is exactly consistent
with the restored ``a`` and the inverse problem reads ``u``'s points through the exact solver instead of the model's
cross-channel coupling.

With a nonlinear solver (Darcy: ``u = S(a)`` solves ``−∇·(a∇u) = 1``) the observation is no longer linear in ``a``:
:class:`SolverMask` reads the same points through it, and the methods that need only a differentiable ``A`` restore
it: hard data consistency (:mod:`.consistency`: the denoised estimate fitted to ``y`` before each step, the default)
and DPS (the likelihood gradient through the model too); the misfit's gradient flows through the solver by its adjoint
(one more solve per evaluation, :func:`~hilbert_diffusion.datasets.elliptic.solve_darcy`).

Covariance guidance re-derives ``u`` from the conditional estimate of ``a`` at every step
(:meth:`ConstrainedMask.derive`), so that the state the model sees next is a consistent pair. The model lives in
normalised units ``x_c ↦ (x_c − m_c)/s_c`` (:class:`~hilbert_diffusion.normalization.Normalization`), where the
solution map is affine (:meth:`SolutionMap.in_units`); :meth:`~hilbert_diffusion.trained.TrainedRun.restore` restores
with the operator's :meth:`ConstrainedMask.normalised` copy and completes the decoded draws (:meth:`~ConstrainedMask.
project`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
from torch import Tensor

from ..bases import Grid
from .operators import Mask, ObservationOperator

__all__ = ["SolutionMap", "ConstrainedMask", "SolverMask"]


@dataclass(frozen=True, kw_only=True, eq=False)
class SolutionMap:
    """``(a, u) ↦ (P a, S P a)`` on two channels of a field, ``(..., *grid) -> (..., *grid)`` at any grid (the grid
    read from the shape), differentiable in torch; ``S`` and ``P`` linear for :class:`ConstrainedMask` (``affine=False``
    is then the linear part), any differentiable maps for :class:`SolverMask`; optionally on fields in normalised units
    ``(x_c − m_c)/s_c``: ``u_n = (S P (s_a a_n + m_a) − m_u)/s_u`` (:meth:`in_units`).

    Attributes:
        solve: the solution operator ``S`` (e.g. :attr:`LinearGaussianPair.solution`).
        prepare: ``P``, a map the data's sources are fixed by (``None``: the identity).
        source, solution: the channels of ``a`` and ``u``.
        units: ``(m_a, s_a, m_u, s_u)``, the normalisation of the two channels (data units: ``(0, 1, 0, 1)``).
    """

    solve: Callable[[Tensor], Tensor]
    prepare: Callable[[Tensor], Tensor] | None = None
    source: int = 0
    solution: int = 1
    units: tuple[float, float, float, float] = (0.0, 1.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        if self.source == self.solution or min(self.source, self.solution) < 0:
            raise ValueError(f"source and solution must be two distinct channels ≥ 0, got {self.source}, "
                             f"{self.solution}.")

    def complete(self, x: Tensor, ndim: int, *, affine: bool = True, prepare_source: bool = True) -> Tensor:
        """``x`` ``(*batch, C, *grid)`` (``ndim`` grid axes) with ``u := S P a`` and, if ``prepare_source``, ``a := P a``
        (complete); ``affine=False`` drops the normalisation's means (the map's linear part)."""
        axis = x.dim() - ndim - 1
        if axis < 0 or max(self.source, self.solution) >= x.shape[axis]:
            raise ValueError(f"the solution map reads channel {self.source} and writes {self.solution} but the field "
                             f"is shaped {tuple(x.shape)}; give (batch, channels, *grid) fields with both.")
        m_a, s_a, m_u, s_u = self.units
        if not affine:
            m_a = m_u = 0.0
        source = s_a * x.select(axis, self.source) + m_a  # in data units
        prepared = source if self.prepare is None else self.prepare(source)
        solved = {self.solution: (self.solve(prepared) - m_u) / s_u}  # u = S P a     (complete)
        if prepare_source:
            solved[self.source] = (prepared - m_a) / s_a
        channels = [solved.get(c, x.select(axis, c)) for c in range(x.shape[axis])]
        return torch.stack(channels, dim=axis)

    def in_units(self, mean: Sequence[float], std: Sequence[float]) -> SolutionMap:
        """The map on fields normalised per channel, ``(x_c − mean_c)/std_c``."""
        return replace(self, units=(float(mean[self.source]), float(std[self.source]), float(mean[self.solution]),
                                    float(std[self.solution])))


@dataclass(frozen=True, kw_only=True, eq=False)
class ConstrainedMask(ObservationOperator):
    """Points of the completed pair: ``A x = M (x with a := P a, u := S P a)`` (module docstring, (observe)), ``M`` a
    :class:`~hilbert_diffusion.restoration.operators.Mask` (channel-wise, e.g. :meth:`PointObservation.as_mask`).
    Linear in the source channel; the solution channel of ``x`` is never read. ``y`` lives on the mask's grid.
    Build it with :meth:`of`; restore with :data:`covariance_guidance` (the default) and complete the draws with
    :meth:`project` (:meth:`TrainedRun.restore` does both)."""

    mask: Mask
    solution: SolutionMap

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask.basis != self.basis or self.mask.noise_std != self.noise_std:
            raise ValueError("build a ConstrainedMask with ConstrainedMask.of(mask, solution): its basis and "
                             "noise_std are the mask's.")

    @classmethod
    def of(cls, mask: Mask, solution: SolutionMap) -> ConstrainedMask:
        """``mask`` read on fields completed by ``solution``."""
        return cls(basis=mask.basis, noise_std=mask.noise_std, mask=mask, solution=solution)

    @property
    def per_channel(self) -> bool:
        return self.mask.per_channel

    def observation_grid(self, grid: Grid) -> Grid:
        return self.mask.observation_grid(grid)

    def observed_points(self, grid: Grid) -> Tensor:
        return self.mask.observed_points(grid)

    def project(self, x: Tensor) -> Tensor:
        """The fields as this operator reads them: ``(P a, S P a)``, (complete)."""
        return self.solution.complete(x, self.basis.ndim)

    def derive(self, x: Tensor) -> Tensor:
        """``u := S P a``, the source left as it is (for a sampler's intermediate estimates)."""
        return self.solution.complete(x, self.basis.ndim, prepare_source=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.mask.forward(self.solution.complete(x, self.basis.ndim, affine=False))

    def pseudo_inverse(self, y: Tensor, grid: Grid) -> Tensor:
        raise ValueError("a ConstrainedMask has no closed-form pseudo-inverse (it observes through the solver): "
                         "restore with covariance_guidance (the default), not ddnm/repaint/smc.")

    def normalised(self, mean: Sequence[float], std: Sequence[float]) -> ConstrainedMask:
        """The operator on fields normalised per channel, ``(x_c − mean_c)/std_c``: ``forward`` its linear part,
        :meth:`project` and :meth:`derive` the affine map."""
        return replace(self, solution=self.solution.in_units(mean, std))


@dataclass(frozen=True, kw_only=True, eq=False)
class SolverMask(ConstrainedMask):
    """Points of the completed pair through a *nonlinear* solver ``S`` (differentiable, e.g. by its adjoint):
    ``A(x) = M (P a, S P a)``, in normalised units the affine map of :meth:`SolutionMap.in_units` (``S`` need not be
    linear), with ``y`` encoded as the mask's, ``(y − m)/s``. Restore with
    :data:`~hilbert_diffusion.restoration.hard_consistency` (the default for it) or :data:`~hilbert_diffusion.restoration.dps`;
    the methods that need a linear ``A`` refuse it. Build it with :meth:`of`."""

    linear: ClassVar[bool] = False

    def forward(self, x: Tensor) -> Tensor:
        return self.mask.forward(self.solution.complete(x, self.basis.ndim))  # (observe), affine

    def encode(self, y: Tensor, mean: Tensor, std: Tensor, grid: Grid) -> Tensor:
        """``(y − m)/s``: the mask's points of the normalised pair, whose ``u`` :meth:`forward` maps affinely."""
        return self.mask.encode(y, mean, std, grid)

    def adjoint(self, y: Tensor, grid: Grid) -> Tensor:
        raise ValueError("a SolverMask is nonlinear (it reads through a nonlinear solver) and has no adjoint: "
                         "restore with hard_consistency or dps.")
