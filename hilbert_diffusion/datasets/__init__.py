"""Datasets: every builder returns a :class:`FieldDataset` (fields ``(num, channels, *grid)`` on a
spectral domain, plus the spec that rebuilds them). Nothing is downloaded: data are generated
(and cached on disk when generation is slow) or read from the user's files.

* :func:`gaussian_random_fields` — ``N(0, Q)`` for any spectrum and domain (the oracle's data).
* :func:`quadratic` — HDM's 1-D Quadratic curves.
* :func:`navier_stokes` — 2-D vorticity on the torus (FNO set-up), pseudo-spectral solver.
* :func:`navier_stokes_pair`, :func:`poisson`, :func:`helmholtz`, :func:`darcy` — DiffusionPDE's pairs ``(a, u)``
  of coefficient (or source, or initial state) and solution, as 2-channel fields.
* :func:`shapes` — images of discs, rectangles and triangles with sharp edges (procedural, any resolution).
* :func:`digits`, :func:`faces`, :func:`photo_patches` — scikit-learn's digits, scikit-image's faces and patches of
  its photographs (shipped in those packages; the ``images`` extra).
* :func:`sphere_random_fields`, :func:`shallow_water` — fields on S².
* :func:`load_array`, :func:`load_images`, :func:`from_array` — the user's own data.
* :func:`open_npy`, :func:`open_shards`, :func:`open_hdf5` — the user's data read lazily (:class:`LazyFields`),
  for sets larger than memory.
"""

from .base import FieldDataset, dataset_spec, field_generator, field_seed, from_spec, grid_coordinates
from .cache import CACHE_ENV, cached_tensor, default_cache_dir
from .files import from_array, load_array, load_images
from .grf import gaussian_random_fields
from .hdf5 import open_hdf5
from .images import digits, faces, photo_patches
from .lazy import LazyFields, open_npy, open_shards
from .navier_stokes import (
    FNO_INITIAL_VORTICITY,
    VorticitySolver,
    fno_forcing,
    fno_initial_vorticity,
    navier_stokes,
    navier_stokes_pair,
    vorticity_map,
)
from .pde_pairs import DIFFUSIONPDE_GRF, PDE_PAIR_CHANNELS, darcy, diffusionpde_source, helmholtz, poisson
from .quadratic import quadratic, quadratic_curves, sorted_uniform_points
from .shapes import render_shapes, shapes
from .sphere import SHALLOW_WATER_CHANNELS, shallow_water, sphere_random_fields

__all__ = [
    "FieldDataset",
    "dataset_spec",
    "from_spec",
    "grid_coordinates",
    "field_generator",
    "field_seed",
    "CACHE_ENV",
    "cached_tensor",
    "default_cache_dir",
    "gaussian_random_fields",
    "quadratic",
    "quadratic_curves",
    "sorted_uniform_points",
    "FNO_INITIAL_VORTICITY",
    "VorticitySolver",
    "fno_forcing",
    "fno_initial_vorticity",
    "navier_stokes",
    "navier_stokes_pair",
    "vorticity_map",
    "DIFFUSIONPDE_GRF",
    "PDE_PAIR_CHANNELS",
    "diffusionpde_source",
    "poisson",
    "helmholtz",
    "darcy",
    "shapes",
    "render_shapes",
    "digits",
    "faces",
    "photo_patches",
    "sphere_random_fields",
    "shallow_water",
    "SHALLOW_WATER_CHANNELS",
    "from_array",
    "load_array",
    "load_images",
    "LazyFields",
    "open_npy",
    "open_shards",
    "open_hdf5",
]
