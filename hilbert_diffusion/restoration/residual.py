"""PDE residuals of pair fields ``x = (a, u)``: a differentiable ``R(a, u)`` that vanishes on the pairs a known
PDE makes, for residual guidance alongside the observation term (DiffusionPDE's and FunDPS's "physics loss").

Each residual is the generator's own discretisation (:mod:`hilbert_diffusion.datasets.elliptic`) on the ``S × S``
vertex grid of the unit square, ``h = 1/(S-1)``, evaluated at the interior nodes, so it is zero to the solver's
tolerance on the data's exact pairs and converges at the scheme's order ``O(h²)`` on smooth continuous pairs:

* :class:`DirichletResidual` — ``R = Δ_h u + c u − a`` (5-point Laplacian; Poisson ``c = 0``, Helmholtz ``c = k²``);
* :class:`DarcyResidual` — ``R = Σ_nb (a_c + a_nb)/2 (u_c − u_nb)/h² − f`` (finite volumes, ``−∇·(a∇u) − f``), with
  ``a`` and ``f`` carried from the cell centres to the vertices and ``u`` back from the cell centres by the generator's
  splines (the vertex → centre spline is inverted: its matrix is well conditioned, cond ≤ 15 up to ``S = 128``).

The residual is linear in ``u`` (and in ``a``), so its autograd gradient is exact. Navier–Stokes has none here: its
pair is ``(ω₀, ω(T))`` a whole solve apart, so a residual would be ``ω(T) − Φ_T(ω₀)``, a differentiable run of the
pseudo-spectral solver per guidance step (hundreds of time steps), costlier than the model evaluations it guides.

Residuals act on normalised fields too (:meth:`PDEResidual.normalised`: ``x_c ↦ mean_c + std_c x_c`` first), which is
how a trained run's restoration methods see them.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..datasets.elliptic import darcy_transfers, flux_divergence, solve_dirichlet

__all__ = ["PDEResidual", "DirichletResidual", "DarcyResidual", "check_residual_options"]


def check_residual_options(residual: object, weight: float) -> None:
    """The residual options a restoration method takes: ``residual`` a :class:`PDEResidual` or ``None``, ``weight``
    (λ) finite and ≥ 0; a one-line error otherwise."""
    if not (math.isfinite(weight) and weight >= 0):
        raise ValueError(f"residual_weight (λ) must be a finite number ≥ 0, got {weight}.")
    if residual is not None and not isinstance(residual, PDEResidual):
        raise ValueError(f"residual must be a PDEResidual (hilbert_diffusion.restoration.residual), got "
                         f"{type(residual).__name__}.")


@dataclass(frozen=True)
class PDEResidual(ABC):
    """``R(a, u)`` of fields ``(batch, channels, S, S)`` whose channels ``a_channel`` and ``u_channel`` are the pair;
    ``mean``/``std`` (per channel) decode normalised fields first (see :meth:`normalised`)."""

    a_channel: int = 0
    u_channel: int = 1
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    @abstractmethod
    def residual(self, a: Tensor, u: Tensor) -> Tensor:
        """The residual at the interior nodes, ``(..., S-2, S-2)``, for ``a`` and ``u`` shaped ``(..., S, S)``."""

    def normalised(self, mean: Sequence[float], std: Sequence[float]) -> PDEResidual:
        """This residual on fields normalised per channel, ``(x_c − mean_c)/std_c``."""
        return replace(self, mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std))

    def __call__(self, x: Tensor) -> Tensor:
        """``R`` of the pair fields ``x`` ``(batch, channels, S, S)``: ``(batch, S-2, S-2)``."""
        channels = self._check(x)
        if self.mean is not None and self.std is not None:
            if len(self.mean) != channels or len(self.std) != channels:
                raise ValueError(f"the residual's normalisation has {len(self.mean)} channels but the fields have "
                                 f"{channels}; pass one mean and std per channel to normalised().")
            shape = (channels,) + (1,) * (x.dim() - 2)
            x = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(shape) + x * torch.as_tensor(
                self.std, dtype=x.dtype, device=x.device).view(shape)
        return self.residual(x[:, self.a_channel], x[:, self.u_channel])

    def norm(self, x: Tensor) -> Tensor:
        """``‖Δ_h⁻¹ R‖_{L²}`` per field, ``(batch,)``: the residual carried to the solution's units by the inverse
        5-point Laplacian (zero on the boundary), then the quadrature ``(h² Σ ·²)^{1/2}``. ``R`` itself scales like
        ``u/h²`` in its fine modes, so its plain norm's gradient grows as ``h⁻²`` and a guidance weight on it would
        depend on the grid; ``Δ_h⁻¹ R`` (for Poisson ``u − S a``) is bounded by the fields, uniformly in ``h``."""
        r = torch.nn.functional.pad(self(x), (1, 1, 1, 1))
        lifted = solve_dirichlet(r)  # (Δ_h)⁻¹ R at the interior nodes
        return lifted.flatten(1).square().sum(-1).mul(1.0 / (x.shape[-1] - 1) ** 2).clamp_min(1e-30).sqrt()

    def norm_and_gradient(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`norm` at the fields ``x`` and its Euclidean gradient per field, both detached."""
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            norm = self.norm(leaf)
            (grad,) = torch.autograd.grad(norm.sum(), leaf)
        return norm.detach(), grad

    def _check(self, x: Tensor) -> int:
        if x.dim() != 4 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 4:
            raise ValueError(f"a PDE residual takes pair fields (batch, channels, S, S) on a square grid with S ≥ 4, "
                             f"got shape {tuple(x.shape)}.")
        channels = x.shape[1]
        for name, c in (("a_channel", self.a_channel), ("u_channel", self.u_channel)):
            if not 0 <= c < channels:
                raise ValueError(f"{name}={c} but the fields have {channels} channels; pick a channel in "
                                 f"0..{channels - 1}.")
        return channels


@dataclass(frozen=True)
class DirichletResidual(PDEResidual):
    """``R = Δ_h u + shift · u − a`` at the interior nodes (``Δ_h`` the 5-point Laplacian, ``h = 1/(S-1)``): zero on
    :func:`~hilbert_diffusion.datasets.poisson` pairs (``shift = 0``) and :func:`~hilbert_diffusion.datasets.helmholtz`
    pairs (``shift = k²``)."""

    shift: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.shift):
            raise ValueError(f"shift (k²) must be a finite number, got {self.shift}.")

    def residual(self, a: Tensor, u: Tensor) -> Tensor:
        inner = u[..., 1:-1, 1:-1]
        neighbours = u[..., 2:, 1:-1] + u[..., :-2, 1:-1] + u[..., 1:-1, 2:] + u[..., 1:-1, :-2]
        laplacian = (neighbours - 4 * inner) * (u.shape[-1] - 1) ** 2  # Δ_h u, 5-point
        return laplacian + self.shift * inner - a[..., 1:-1, 1:-1]


@functools.cache
def _darcy_maps(size: int) -> tuple[Tensor, Tensor]:
    """The generator's centre → vertex spline and the inverse of its vertex → centre one (the vertex values of the
    spline that gives ``u`` at the centres), float64: built once per grid, not at every guidance step."""
    to_vertices, to_centres = darcy_transfers(size)
    return to_vertices, torch.linalg.inv(to_centres)


@dataclass(frozen=True)
class DarcyResidual(PDEResidual):
    """``R = −∇_h·(a ∇_h u) − f`` in :func:`~hilbert_diffusion.datasets.darcy`'s finite volumes, on cell-centre data
    (module docstring): zero on its pairs. ``source`` is ``f``: a number, or a function of the cell centres'
    coordinates ``(x, y)`` (``S × S`` each, ``x`` along the first grid axis) giving ``f`` there."""

    source: float | Callable[[Tensor, Tensor], Tensor] = 1.0

    def residual(self, a: Tensor, u: Tensor) -> Tensor:
        size = a.shape[-1]
        to_vertices, from_centres = (m.to(dtype=a.dtype, device=a.device) for m in _darcy_maps(size))
        a_v = to_vertices @ a @ to_vertices.T
        u_v = from_centres @ u @ from_centres.T
        if callable(self.source):
            centres = (torch.arange(size, dtype=a.dtype, device=a.device) + 0.5) / size
            f = self.source(*torch.meshgrid(centres, centres, indexing="ij"))
        else:
            f = torch.full((size, size), float(self.source), dtype=a.dtype, device=a.device)
        f_v = to_vertices @ f @ to_vertices.T
        return flux_divergence(u_v, a_v) - f_v[1:-1, 1:-1]
