"""DiffusionPDE's static PDE data sets (Huang et al., NeurIPS 2024; the tasks of FunDPS's Table 1): pairs ``(a, u)``
on the unit square, a 2-channel field ``(num, 2, S, S)`` on :class:`NeumannBasis` ``(2)`` (channel 0 the
coefficient or source ``a``, channel 1 the solution ``u``), generated at the requested grid ``S``.

The source is their ``GRF.m``: the orthonormal inverse DCT-II of ``S τ^(α−1) (π²|k|² + τ²)^(−α/2) ξ`` with
``α = 2, τ = 3`` and mode ``(0, 0)`` zeroed. In the orthonormal basis of ``L²([0,1]²)`` its coefficients have
variance ``τ^(2α−2) (π²|k|² + τ²)^(−α)`` whatever ``S`` is: :data:`DIFFUSIONPDE_GRF`
``= Matern(alpha=2, tau=3, scale=1/9)`` on the Neumann box, with its mean removed.

* :func:`poisson` — ``Δ_h u = a`` inside, ``u = 0`` on the boundary nodes (``generate_poisson.m``).
* :func:`helmholtz` — ``a`` zeroed on the boundary nodes, ``(Δ_h + k²) u = a`` (``generate_inhom_helmholtz.m``).
* :func:`darcy` — ``a = 12`` where the GRF is ``≥ 0``, else ``3``; ``−∇·(a∇u) = 1`` (``generate_darcy.m``,
  ``solve_gwf.m``). Their ``solve_gwf`` returns the solution transposed (a final ``'``); here ``u`` is stored in
  the coefficient's orientation, the physical pairing (the law of the pair is the same, the field is isotropic).

Like their arrays, ``a`` sits at the cell centres of the grid and the discrete problems for ``u`` are posed on the
``S × S`` vertex grid ``h = 1/(S−1)``: index ``(i, j)`` of both channels is one point of the square. Solvers:
:mod:`.elliptic`. Field ``i`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch import Tensor

from ..bases import NeumannBasis
from ..noise import GaussianRandomField, Matern
from .base import FieldDataset, dataset_spec, field_generator, grid_coordinates
from .cache import cached_tensor
from .elliptic import replicate_boundary, solve_darcy, solve_dirichlet, zero_boundary

__all__ = ["DIFFUSIONPDE_GRF", "diffusionpde_source", "poisson", "helmholtz", "darcy", "PDE_PAIR_CHANNELS"]

#: their ``GRF(2, 3, S)``: coefficient variance ``τ^(2α−2)(π²|k|² + τ²)^(−α)`` on the Neumann box (mean removed).
DIFFUSIONPDE_GRF = Matern(alpha=2.0, tau=3.0, scale=1.0 / 9.0)

#: the channel names of every pair data set.
PDE_PAIR_CHANNELS = ("a", "u")

_GENERATOR_VERSION = 1
_BATCH = 64


def diffusionpde_source(num: int, resolution: int, *, seed: int = 0, first: int = 0,
                        dtype: torch.dtype = torch.float64) -> Tensor:
    """Fields ``first … first + num − 1`` of :data:`DIFFUSIONPDE_GRF` on the ``resolution²`` Neumann grid,
    ``(num, S, S)``, each with its mean (the ``(0, 0)`` mode) removed."""
    grf = GaussianRandomField(NeumannBasis(2), DIFFUSIONPDE_GRF)
    fields = torch.cat([grf.sample(1, resolution, generator=field_generator(seed, i), dtype=dtype)[:, 0]
                        for i in range(first, first + num)])
    return fields - fields.mean(dim=(-2, -1), keepdim=True)


def _pairs(name: str, builder: Callable, solve: Callable[[Tensor], tuple[Tensor, Tensor]], *, num: int,
           resolution: int, seed: int, cache_dir, use_cache: bool, progress: bool, **options) -> FieldDataset:
    """Generate (or load from the cache) ``num`` pairs ``solve(source batch) -> (a, u)`` at ``resolution²``."""
    if num < 1 or resolution < 4:
        raise ValueError(f"{name} needs num ≥ 1 and resolution ≥ 4, got num={num}, resolution={resolution}.")
    spec = dataset_spec(builder, num=num, resolution=resolution, seed=seed, **options)

    def generate() -> Tensor:
        from tqdm import tqdm

        out = []
        for start in tqdm(range(0, num, _BATCH), disable=not progress, desc=name, unit="batch"):
            a, u = solve(diffusionpde_source(min(_BATCH, num - start), resolution, seed=seed, first=start))
            out.append(torch.stack([a, u], dim=1).float())
        return torch.cat(out).contiguous()

    data = cached_tensor({**spec, "version": _GENERATOR_VERSION}, generate, name=name, cache_dir=cache_dir,
                         use_cache=use_cache)
    basis = NeumannBasis(2)
    return FieldDataset(data=data, basis=basis, name=name, spec=spec,
                        coordinates=grid_coordinates(basis, basis.grid(resolution)))


def poisson(num: int = 1000, resolution: int = 64, *, seed: int = 0, cache_dir: str | os.PathLike | None = None,
            use_cache: bool = True, progress: bool = True) -> FieldDataset:
    """Poisson pairs ``(a, u)``: ``a`` = :func:`diffusionpde_source`, ``Δ_h u = a``, ``u = 0`` on the boundary."""
    return _pairs("poisson", poisson, lambda a: (a, solve_dirichlet(a)), num=num, resolution=resolution,
                  seed=seed, cache_dir=cache_dir, use_cache=use_cache, progress=progress)


def helmholtz(num: int = 1000, resolution: int = 64, *, wavenumber: float = 1.0, seed: int = 0,
              filled_boundary: bool = False, cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
              progress: bool = True) -> FieldDataset:
    """Helmholtz pairs ``(a, u)``: ``a`` the source with its boundary nodes zeroed, ``(Δ_h + k²) u = a``,
    ``u = 0`` on the boundary (``k = wavenumber``).

    ``filled_boundary=True`` stores ``a`` with its boundary nodes holding their interior neighbours' values
    (:func:`~.elliptic.replicate_boundary`; ``u`` is the same, the solve zeroes them): training data for restoring
    through the solver, which reads only ``zero_boundary(a)``. Without the jump to zero at the walls the source is
    close to stationary: its per-mode Wiener filter is within 5 % of the exact Gaussian denoiser, against 2.4–3.8 ×
    its error with the zeros (32², trace-class noise; at 16² within 15 %, ``tests/test_pde_inverse.py``)."""

    def solve(source: Tensor) -> tuple[Tensor, Tensor]:
        a = zero_boundary(source)
        return (replicate_boundary(source) if filled_boundary else a), solve_dirichlet(a, shift=wavenumber**2)

    return _pairs("helmholtz", helmholtz, solve, num=num, resolution=resolution, seed=seed, cache_dir=cache_dir,
                  use_cache=use_cache, progress=progress, wavenumber=wavenumber,
                  **({"filled_boundary": True} if filled_boundary else {}))


def darcy(num: int = 1000, resolution: int = 64, *, high: float = 12.0, low: float = 3.0, seed: int = 0,
          cache_dir: str | os.PathLike | None = None, use_cache: bool = True, progress: bool = True) -> FieldDataset:
    """Darcy pairs ``(a, u)``: ``a = high`` where the source GRF is ``≥ 0``, else ``low``; ``−∇·(a∇u) = 1``."""
    if not 0 < low <= high:
        raise ValueError(f"darcy needs 0 < low ≤ high (a positive coefficient), got low={low}, high={high}.")

    def solve(source: Tensor) -> tuple[Tensor, Tensor]:
        a = torch.where(source >= 0, high, low).to(source.dtype)
        return a, solve_darcy(a)

    return _pairs("darcy", darcy, solve, num=num, resolution=resolution, seed=seed, cache_dir=cache_dir,
                  use_cache=use_cache, progress=progress, high=high, low=low)
