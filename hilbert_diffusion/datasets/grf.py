"""Gaussian random fields ``N(0, Q)``, ``Q`` diagonal in a spectral basis: the oracle's data.

Any spectrum (:mod:`hilbert_diffusion.noise`) on any domain: the periodic box, boxes with Neumann or
Dirichlet walls (1-D or 2-D), the sphere. Each coefficient is ``x_k = sqrt(q(λ_k)) ξ_k`` with
``E|ξ_k|² = 1`` (:class:`GaussianRandomField`), so the law does not depend on the grid and
:class:`~hilbert_diffusion.models.GaussianOracle` with the same spectrum is the exact denoiser.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..bases import PeriodicBasis, SpectralBasis
from ..noise import GaussianRandomField, Matern, Spectrum, require_trace_class
from .base import FieldDataset, dataset_spec, grid_coordinates

__all__ = ["gaussian_random_fields"]


def gaussian_random_fields(
    num: int = 1000,
    resolution: int | Sequence[int] = 32,
    *,
    spectrum: Spectrum = Matern(alpha=2.0, tau=3.0),
    basis: SpectralBasis = PeriodicBasis(2),
    channels: int = 1,
    seed: int = 0,
) -> FieldDataset:
    """``num`` independent draws of ``N(0, Q)``, ``Q e_k = spectrum(λ_k) e_k``, shaped
    ``(num, channels, *grid)`` (channels independent).

    Args:
        num: number of fields.
        resolution: grid of ``basis`` (an int: the same on every axis; on the sphere ``nlat``).
        spectrum: the covariance spectrum; must be trace class on the domain (white noise is refused).
        basis: the domain (``PeriodicBasis(1)``, ``NeumannBasis(2)``, ``SphereBasis()``, ...).
        channels: independent channels per field.
        seed: seed of the generator (the same seed gives the same fields).
    """
    require_trace_class(spectrum, basis, "gaussian_random_fields")
    grid = basis.grid(resolution)
    generator = torch.Generator().manual_seed(seed)
    data = GaussianRandomField(basis, spectrum).sample(num, grid, channels=channels, generator=generator)
    spec = dataset_spec(
        gaussian_random_fields,
        num=num, resolution=list(grid), spectrum=spectrum, basis=basis, channels=channels, seed=seed,
    )
    return FieldDataset(data=data, basis=basis, name="grf", spec=spec, coordinates=grid_coordinates(basis, grid))
