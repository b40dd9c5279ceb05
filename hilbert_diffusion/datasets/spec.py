"""Data given on the command line: ``NAME[:key=value,...]`` for a built-in data set, or a path.

``grf``, ``grf:dim=1,alpha=1.5``, ``quadratic``, ``navier-stokes:horizon=10``, ``sphere-grf``,
``shallow-water``, DiffusionPDE's pairs ``poisson``, ``helmholtz``, ``darcy``, ``ns-pair``, the images ``shapes``,
``digits``, ``faces``, ``patches`` (``faces:split=test`` for held-out images); a ``.npy``/``.npz`` file ``(num, channels, *grid)``
(``file.npz:key=NAME`` picks one array of several); a folder of PNG/JPEG images. Read lazily, for data larger
than memory (:class:`~.lazy.LazyFields`): ``file.npy:mmap=true`` (memory-mapped), ``file.h5:key=NAME,axes=ntxy``
(HDF5, :mod:`.hdf5`), a folder of ``.npy`` shards. :func:`spec_size` tells the
size of a built-in request before it is generated, so its memory can be checked first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..bases import DirichletBasis, NeumannBasis, PeriodicBasis, SpectralBasis
from ..noise import Matern
from .base import FieldDataset
from .files import IMAGE_SUFFIXES, load_array, load_images
from .grf import gaussian_random_fields
from .hdf5 import HDF5_SUFFIXES, open_hdf5
from .images import digits, faces, photo_patches
from .lazy import LazyFields, open_npy, open_shards
from .navier_stokes import navier_stokes, navier_stokes_pair
from .pde_pairs import darcy, helmholtz, poisson
from .quadratic import quadratic
from .shapes import shapes
from .sphere import shallow_water, sphere_random_fields

__all__ = ["BUILT_IN", "parse_options", "dataset_from_spec", "spec_size"]

_BOXES: dict[str, type[SpectralBasis]] = {"periodic": PeriodicBasis, "neumann": NeumannBasis, "dirichlet": DirichletBasis}


def _grf(*, num: int = 1000, resolution: int = 32, seed: int = 0, dim: int = 2, domain: str = "periodic",
         alpha: float = 2.5, tau: float = 7.0, scale: float = 1.0, channels: int = 1) -> FieldDataset:
    if domain not in _BOXES:
        raise ValueError(f"grf domain={domain!r} is not one of {sorted(_BOXES)}; use sphere-grf for the sphere.")
    return gaussian_random_fields(num, resolution, spectrum=Matern(alpha=alpha, tau=tau, scale=scale),
                                  basis=_BOXES[domain](dim), channels=channels, seed=seed)


def _quadratic(*, num: int = 1000, resolution: int = 100, seed: int = 0, endpoints: bool = False) -> FieldDataset:
    return quadratic(num, resolution, endpoints=endpoints, seed=seed)


def _navier_stokes(*, num: int = 256, resolution: int = 64, seed: int = 0, **options) -> FieldDataset:
    return navier_stokes(num, resolution, seed=seed, **options)


def _sphere_grf(*, num: int = 1000, resolution: int = 32, seed: int = 0, alpha: float = 2.0, tau: float = 3.0,
                channels: int = 1) -> FieldDataset:
    return sphere_random_fields(num, resolution, spectrum=Matern(alpha=alpha, tau=tau), channels=channels, seed=seed)


def _shallow_water(*, num: int = 64, resolution: int = 32, seed: int = 0, **options) -> FieldDataset:
    return shallow_water(num, resolution, seed=seed, **options)


#: Built-in data sets by command-line name (the CLI's vocabulary; library code passes functions).
BUILT_IN: dict[str, Callable[..., FieldDataset]] = {
    "grf": _grf,
    "quadratic": _quadratic,
    "navier-stokes": _navier_stokes,
    "sphere-grf": _sphere_grf,
    "shallow-water": _shallow_water,
    "poisson": poisson,
    "helmholtz": helmholtz,
    "darcy": darcy,
    "ns-pair": navier_stokes_pair,
    "shapes": shapes,
    "digits": digits,
    "faces": faces,
    "patches": photo_patches,
}


def _value(text: str) -> bool | int | float | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_options(text: str) -> dict[str, bool | int | float | str]:
    """``"a=1,b=x"`` → ``{"a": 1, "b": "x"}``."""
    options = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"data option {item!r} is not key=value; write e.g. grf:alpha=2.5,tau=7.")
        options[key.strip().replace("-", "_")] = _value(value.strip())
    return options


# Grid points of a built-in data set at ``resolution`` (default: a square 2-D grid); sphere grids are nlat × 2 nlat.
_POINTS: dict[str, Callable[[int, dict], int]] = {
    "grf": lambda r, o: r ** int(o.get("dim", 2)),
    "quadratic": lambda r, o: r,
    "sphere-grf": lambda r, o: 2 * r * r,
    "shallow-water": lambda r, o: 2 * max(r, int(o.get("solver_resolution", 48))) ** 2,
    "navier-stokes": lambda r, o: max(r, int(o.get("solver_resolution", 128))) ** 2,
    "ns-pair": lambda r, o: max(r, int(o.get("solver_resolution", 128))) ** 2,
}
_CHANNELS = {"shallow-water": 3, "poisson": 2, "helmholtz": 2, "darcy": 2, "ns-pair": 2}


def spec_size(spec: str, *, num: int | None = None, resolution: int | None = None,
              **extra) -> tuple[int, int, int] | None:
    """``(num, channels, grid points)`` a built-in ``spec`` would generate (the generator's grid, which may be
    finer than the output's), or ``None`` for files and folders, names that are not built in and whole packaged
    image sets."""
    name, _, text = spec.partition(":")
    if name not in BUILT_IN or Path(spec).expanduser().exists():
        return None
    try:
        options = parse_options(text) | extra
    except ValueError:
        return None  # dataset_from_spec reports it
    defaults = {k: p.default for k, p in inspect.signature(BUILT_IN[name]).parameters.items()}
    num = num or options.get("num", defaults.get("num", 1))
    if num is None:  # the whole of a packaged set (faces, digits): small, its size known only once loaded
        return None
    num = int(num)
    resolution = int(resolution or options.get("resolution", defaults.get("resolution", 32)))
    points = _POINTS.get(name, lambda r, o: r * r)(resolution, options)
    return num, int(options.get("channels", _CHANNELS.get(name, 1))), int(points)


# The options each kind of file takes on the command line (``file.SUFFIX:key=value,...``).
_FILE_OPTIONS = {".npy": {"mmap"}, ".npz": {"key"}, ".h5": {"key", "axes"}, ".hdf5": {"key", "axes"}}


def _file_and_options(spec: str) -> tuple[Path, dict] | None:
    """``file.npz:key=NAME``, ``file.npy:mmap=true``, ``file.h5:key=NAME,axes=ntxy`` (or a plain path) → the
    path and its options, else ``None``."""
    path = Path(spec).expanduser()
    if path.suffix.lower() in _FILE_OPTIONS or path.exists():
        return path, {}
    head, sep, text = spec.rpartition(":")
    suffix = Path(head).suffix.lower()
    if sep and suffix in _FILE_OPTIONS:
        options = parse_options(text)
        if not set(options) <= _FILE_OPTIONS[suffix]:
            raise ValueError(f"data {spec!r}: a {suffix} file takes the options {sorted(_FILE_OPTIONS[suffix])}, "
                             f"got {sorted(options)}.")
        return Path(head).expanduser(), options
    return None


def _open_file(path: Path, options: dict) -> FieldDataset | LazyFields:
    """The data set of a file: HDF5 and ``mmap=true`` ``.npy`` read lazily, others loaded."""
    if path.suffix.lower() in HDF5_SUFFIXES:
        key, axes = options.get("key"), options.get("axes")
        return open_hdf5(path, key=None if key is None else str(key), axes=None if axes is None else str(axes))
    if options.get("mmap", False) is True:
        return open_npy(path)
    if options.get("mmap", False) is not False:
        raise ValueError(f"mmap={options['mmap']!r}: write mmap=true (read lazily) or mmap=false (load into memory).")
    key = options.get("key")
    return load_array(path, key=None if key is None else str(key))


def _open_folder(path: Path, resolution: int | None) -> FieldDataset | LazyFields:
    """A folder of ``.npy`` shards (read lazily) or of images (loaded)."""
    files = [p.suffix.lower() for p in path.iterdir() if p.is_file()]
    if ".npy" in files and not any(suffix in IMAGE_SUFFIXES for suffix in files):
        return open_shards(path)
    return load_images(path, resolution=resolution)


def dataset_from_spec(spec: str, *, num: int | None = None, resolution: int | None = None, seed: int | None = None,
                      **extra) -> FieldDataset | LazyFields:
    """The data set a command-line ``SPEC`` names (see the module docstring).

    ``num``, ``resolution`` and ``seed`` override the built-in defaults when given; for files,
    ``resolution`` resizes images (arrays keep their grid) and ``num`` keeps the first fields.
    """
    path = Path(spec).expanduser()
    found = (path, {}) if path.is_dir() else _file_and_options(spec)
    if found is not None:
        dataset = _open_folder(path, resolution) if path.is_dir() else _open_file(*found)
        if num is None:
            return dataset
        return dataset.head(num) if isinstance(dataset, LazyFields) else replace(dataset, data=dataset.data[:num])
    name, _, text = spec.partition(":")
    if name not in BUILT_IN:
        raise ValueError(
            f"data {spec!r} is neither an existing file or folder nor a built-in data set; "
            f"built-in: {', '.join(BUILT_IN)} (options as NAME:key=value,...)."
        )
    options = parse_options(text) | extra
    for key, value in (("num", num), ("resolution", resolution), ("seed", seed)):
        if value is not None:
            options.setdefault(key, value)
    try:
        return BUILT_IN[name](**options)
    except TypeError as err:
        raise ValueError(f"data {spec!r}: {err}; see `hilbert-diffusion data --help` for the options.") from err
