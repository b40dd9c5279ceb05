"""The one type every dataset builder returns: fields on a domain, with the spec that rebuilds them.

A :class:`FieldDataset` holds ``num`` fields sampled on the grid of a :class:`SpectralBasis`,
shaped ``(num, channels, *grid)`` (float32), the basis itself (so the data know their domain, their
transform and their quadrature), a name, and ``spec``: the JSON-able description
``{"builder": "module.function", "kwargs": {...}}`` from which :func:`from_spec` rebuilds the same
data (a checkpoint stores it; only builders inside ``hilbert_diffusion.datasets`` are imported).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..bases import Grid, SpectralBasis
from ..config import from_config, to_config
from ..seeding import stream_generator, stream_seed

__all__ = ["FieldDataset", "dataset_spec", "from_spec", "grid_coordinates", "field_generator", "field_seed"]

_PACKAGE = __name__.rsplit(".", 1)[0]  # hilbert_diffusion.datasets


@dataclass(frozen=True, eq=False)
class FieldDataset:
    """``num`` fields on a spectral domain.

    Attributes:
        data: ``(num, channels, *grid)`` float32 tensor; ``grid`` has ``basis.ndim`` axes.
        basis: the domain the fields live on (transform, eigenvalues, quadrature, resampling).
        name: a short human-readable name (used in file names and figure titles).
        spec: JSON-able ``{"builder": ..., "kwargs": ...}`` that rebuilds the data (:func:`from_spec`),
            with ``"resamples"``: the grids of :meth:`resample` calls, if any.
        coordinates: optional physical positions of the grid points, ``(*grid, basis.ndim)`` float64
            (for the box bases a point ``x`` of ``[0, L]^d``, shifted where the dataset lives elsewhere;
            on the sphere ``(colatitude, longitude)``).
    """

    data: Tensor
    basis: SpectralBasis
    name: str
    spec: dict
    coordinates: Tensor | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, Tensor):
            raise ValueError(
                f"data must be a torch.Tensor, got {type(self.data).__name__}; wrap arrays with torch.as_tensor."
            )
        if self.data.dim() != 2 + self.basis.ndim:
            raise ValueError(
                f"data of shape {tuple(self.data.shape)} does not fit (num, channels, *grid) with the "
                f"{self.basis.ndim}-D grid of {type(self.basis).__name__}; reshape it to {2 + self.basis.ndim} axes."
            )
        if self.data.dtype != torch.float32:
            object.__setattr__(self, "data", self.data.to(torch.float32))
        self.basis.grid_of(self.data)
        if self.coordinates is not None and tuple(self.coordinates.shape) != (*self.grid, self.basis.ndim):
            raise ValueError(
                f"coordinates of shape {tuple(self.coordinates.shape)} do not match the grid {self.grid}; "
                f"give one position per point, shaped {(*self.grid, self.basis.ndim)}."
            )

    @property
    def num(self) -> int:
        return self.data.shape[0]

    @property
    def channels(self) -> int:
        return self.data.shape[1]

    @property
    def grid(self) -> Grid:
        return tuple(self.data.shape[2:])

    def __len__(self) -> int:
        return self.num

    def __getitem__(self, index: int) -> Tensor:
        """One field ``(channels, *grid)`` (so the dataset can feed a ``DataLoader``)."""
        return self.data[index]

    def resample(self, resolution: int | Sequence[int]) -> FieldDataset:
        """The same fields on another grid, band-limited (:meth:`SpectralBasis.resample`)."""
        grid = self.basis.grid(resolution)
        data = self.basis.resample(self.data, grid)
        coordinates = None
        if self.coordinates is not None:
            # Keep the dataset's shift of the basis' own points (e.g. Quadratic lives on [-10, 10]).
            offset = self.coordinates - grid_coordinates(self.basis, self.grid)
            offset = offset.reshape(-1, self.basis.ndim)[0]
            coordinates = grid_coordinates(self.basis, grid) + offset
        spec = {**self.spec, "resamples": [*self.spec.get("resamples", []), list(grid)]}
        return replace(self, data=data, spec=spec, coordinates=coordinates)

    def channel_statistics(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and standard deviation, each ``(channels,)``, by quadrature over the
        domain (grid-independent) and averaged over the fields."""
        volume = self.basis.weights(self.grid).expand(self.grid).sum()
        x = self.data.to(torch.float64)
        mean = self.basis.integrate(x).mean(0) / volume
        centred = x - mean.reshape(-1, *[1] * self.basis.ndim)
        var = self.basis.integrate(centred**2).mean(0) / volume
        return mean.float(), var.sqrt().float()


def dataset_spec(builder: Callable[..., Any], **kwargs: Any) -> dict:
    """The spec of ``builder(**kwargs)``: ``{"builder": "module.name", "kwargs": to_config(kwargs)}``."""
    return {"builder": f"{builder.__module__}.{builder.__qualname__}", "kwargs": to_config(kwargs)}


def from_spec(spec: dict, **overrides: Any) -> FieldDataset:
    """Rebuild a dataset from its ``spec`` (keyword ``overrides`` replace stored arguments, e.g.
    ``cache_dir=`` or ``progress=False``). Only builders of ``hilbert_diffusion.datasets`` are run."""
    if not isinstance(spec, dict) or "builder" not in spec:
        raise ValueError(f"spec must be a dict with a 'builder' entry (as FieldDataset.spec), got {spec!r}.")
    path = spec["builder"]
    if path is None:
        raise ValueError(
            "this dataset was built from an in-memory array, so its spec cannot rebuild it; "
            "save the array with np.save and load it with load_array (whose spec records the path)."
        )
    module_name, _, name = str(path).rpartition(".")
    if not (module_name == _PACKAGE or module_name.startswith(_PACKAGE + ".")):
        raise ValueError(f"spec names builder {path!r}, which is not part of {_PACKAGE}; refusing to import it.")
    try:
        builder = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"spec names builder {path!r}, which this version of the package does not have.") from err
    kwargs = {k: from_config(v) for k, v in spec.get("kwargs", {}).items()}
    accepted = inspect.signature(builder).parameters
    kwargs.update({k: v for k, v in overrides.items() if k in accepted})
    dataset = builder(**kwargs)
    for grid in spec.get("resamples", []):  # in order: each resampling is a band-limited projection
        dataset = dataset.resample(tuple(grid))
    return dataset


def grid_coordinates(basis: SpectralBasis, grid: Grid) -> Tensor:
    """Positions of the grid points of ``basis``, ``(*grid, ndim)`` float64.

    Periodic ``x_j = j L / N``; Neumann (cell centres) ``x_j = (j + ½) L / N``; Dirichlet (interior)
    ``x_j = (j + 1) L / (N + 1)``; sphere ``(θ_i, φ_j)``: Gauss–Legendre (or Clenshaw–Curtis)
    colatitudes from the north pole and ``φ_j = 2π j / nlon``, as ``torch_harmonics`` orders them.
    """
    axes = basis.axis_points(basis.grid(grid))
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


field_seed = stream_seed  # every field of a data set has its own stream: batching does not matter
field_generator = stream_generator

