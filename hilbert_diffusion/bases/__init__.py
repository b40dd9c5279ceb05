"""Spectral bases: orthonormal Laplacian eigenbases of a domain with fast transforms.

Every basis maps a field sampled on a grid, shaped ``(*batch, *grid)``, to the coefficients of the
function in an L²-orthonormal eigenbasis of the Laplacian, ``-Δ e_k = λ_k e_k``, shaped
``(*batch, *coefficient_shape(grid))``. Coefficients are normalised to approximate the function's own
coefficients ``c_k = ∫ f ē_k`` (quadrature on the grid), so the same field on a 32-grid and on a
128-grid has the same low coefficients and grid-independent norms.

Conventions shared by every basis (and relied upon by :mod:`hilbert_diffusion.noise` and
:mod:`hilbert_diffusion.sde`):

* A diagonal operator ``T e_k = t(λ_k) e_k`` acts as ``inverse(t(λ) * forward(x))``.
* ``white_noise`` draws the grid restriction of (band-limited) L² white noise: its coefficients have
  ``E|c_k|² = 1`` for every stored coefficient. Scaling them by ``sqrt(c_k)`` samples ``N(0, C)``.
* ``multiplicity`` says how many real-field coefficients a stored coefficient stands for (2 for a
  complex coefficient whose conjugate partner is not stored), so ``‖f‖² = Σ_k m_k |c_k|²`` (Parseval).

Modules: :mod:`.base` (the interface, :class:`SpectralBasis`), :mod:`.box` (periodic, Neumann and Dirichlet boxes in
any dimension), :mod:`.sphere` (spherical harmonics).
"""

from .base import Grid, SpectralBasis
from .box import DirichletBasis, NeumannBasis, PeriodicBasis
from .sphere import SphereBasis

__all__ = [
    "SpectralBasis",
    "PeriodicBasis",
    "NeumannBasis",
    "DirichletBasis",
    "SphereBasis",
    "Grid",
]
