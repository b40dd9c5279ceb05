"""Fields on the sphere S²: Gaussian random fields and shallow-water states.

Both live on :class:`SphereBasis` (Legendre–Gauss grid by default: exact spherical-harmonic round
trip), grid ``(nlat, 2 nlat)``, rows from the north pole.

Shallow water: ``torch_harmonics.examples.ShallowWaterSolver`` (shipped with torch-harmonics 0.8.0,
runs offline) integrates the rotating shallow-water equations on an Earth-sized sphere from its
random initial condition (``random_initial_condition(mach=0.2)``: white spherical-harmonic noise in
geopotential, vorticity and divergence, drawn from torch's global generator, which is seeded per
field inside ``torch.random.fork_rng`` so the caller's random state is untouched). The solver keeps
degrees ``l < ⌈nlat_solver / 3⌉`` (as torch-harmonics' own ``PdeDataset``) and steps with
third-order Adams–Bashforth plus implicit hyperdiffusion. The state after ``horizon_hours`` is
returned as three dimensionless channels on the grid: height anomaly ``(φ/g - h̄) / h_amp``,
vorticity and divergence in units of ``sqrt(g h̄) / R`` (torch-harmonics' scales,
``h̄ = 10 km``, ``h_amp = 120 m``), resampled band-limited to the output grid.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import Tensor

from ..bases import SphereBasis
from ..noise import Matern, Spectrum
from .base import FieldDataset, dataset_spec, field_seed, grid_coordinates
from .cache import cached_tensor
from .grf import gaussian_random_fields

__all__ = ["sphere_random_fields", "shallow_water", "SHALLOW_WATER_CHANNELS"]

#: the channels of :func:`shallow_water`, in order.
SHALLOW_WATER_CHANNELS = ("height", "vorticity", "divergence")

_GENERATOR_VERSION = 1


def sphere_random_fields(
    num: int = 1000,
    resolution: int | Sequence[int] = 32,
    *,
    spectrum: Spectrum = Matern(alpha=2.0, tau=3.0),
    grid_type: str = "legendre-gauss",
    channels: int = 1,
    seed: int = 0,
) -> FieldDataset:
    """Gaussian random fields on S², ``(num, channels, nlat, nlon)``: :func:`gaussian_random_fields`
    on ``SphereBasis(grid_type)`` (``resolution`` is ``nlat``, ``nlon = 2 nlat``; ``λ_l = l(l+1)``,
    so a Matérn spectrum is trace class iff ``alpha > 1``)."""
    return gaussian_random_fields(
        num, resolution, spectrum=spectrum, basis=SphereBasis(grid_type), channels=channels, seed=seed
    )


def _shallow_water_state(solver, steps: int, seed: int) -> Tensor:
    """One trajectory: the random initial state of ``seed`` advanced ``steps`` steps, as the three
    dimensionless grid channels ``(3, nlat, nlon)`` (float64)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        uspec = solver.random_initial_condition(mach=0.2)
    uspec = solver.timestep(uspec, steps)
    grid = solver.spec2grid(uspec)
    gravity, havg, hamp, radius = (float(getattr(solver, k)) for k in ("gravity", "havg", "hamp", "radius"))
    height = (grid[0] / gravity - havg) / hamp
    flow = grid[1:] * radius / math.sqrt(gravity * havg)
    return torch.cat([height[None], flow])


def shallow_water(
    num: int = 64,
    resolution: int = 32,
    *,
    solver_resolution: int = 48,
    horizon_hours: float = 24.0,
    time_step_seconds: float = 600.0,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FieldDataset:
    """Shallow-water states on S², ``(num, 3, nlat, 2 nlat)`` with channels
    :data:`SHALLOW_WATER_CHANNELS`, on ``SphereBasis()`` (Legendre–Gauss).

    Args:
        num: number of fields (independent initial conditions; field ``i`` depends only on ``(seed, i)``).
        resolution: output ``nlat``.
        solver_resolution: the solver's ``nlat`` (degrees ``l < ⌈nlat/3⌉`` are resolved).
        horizon_hours: simulated time.
        time_step_seconds: solver step (600 s is stable up to ``solver_resolution ≈ 48``; halve it
            when doubling the resolution).
        seed, cache_dir, use_cache, progress: as for :func:`~.navier_stokes.navier_stokes`.

    Cost at the defaults: about 0.3 s per field on one core.
    """
    if num < 1:
        raise ValueError(f"num must be positive, got {num}.")
    if horizon_hours < 0 or time_step_seconds <= 0:
        raise ValueError(
            f"need horizon_hours ≥ 0 and time_step_seconds > 0, got {horizon_hours}, {time_step_seconds}."
        )
    basis = SphereBasis()
    grid = basis.grid(resolution)
    solver_grid = basis.grid(solver_resolution)
    kwargs = dict(
        num=num, resolution=resolution, solver_resolution=solver_resolution, horizon_hours=horizon_hours,
        time_step_seconds=time_step_seconds, seed=seed,
    )
    spec = dataset_spec(shallow_water, **kwargs)

    def generate() -> Tensor:
        from torch_harmonics.examples import ShallowWaterSolver
        from tqdm import tqdm

        lmax = math.ceil(solver_grid[0] / 3)
        solver = ShallowWaterSolver(
            *solver_grid, time_step_seconds, lmax=lmax, mmax=lmax, grid=basis.grid_type
        ).to(torch.float64)
        steps = math.ceil(horizon_hours * 3600.0 / time_step_seconds - 1e-9)
        fields = []
        for i in tqdm(range(num), disable=not progress, desc="shallow water", unit="field"):
            state = _shallow_water_state(solver, steps, field_seed(seed, i))
            if not torch.isfinite(state).all():
                raise ValueError(
                    f"the shallow-water solution blew up (field {i}); use a smaller time_step_seconds "
                    f"(now {time_step_seconds})."
                )
            fields.append(basis.resample(state, grid).float())
        return torch.stack(fields).contiguous()

    key = {**spec, "version": _GENERATOR_VERSION}
    data = cached_tensor(key, generate, name="shallow_water", cache_dir=cache_dir, use_cache=use_cache)
    coordinates = grid_coordinates(basis, grid)
    return FieldDataset(data=data, basis=basis, name="shallow_water", spec=spec, coordinates=coordinates)
