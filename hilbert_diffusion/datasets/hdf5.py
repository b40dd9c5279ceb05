"""Fields from HDF5 files (h5py, the optional extra ``hdf5``), read lazily as :class:`~.lazy.LazyFields`.

On the command line: ``file.h5:key=NAME,axes=LETTERS`` (``.h5``/``.hdf5``). ``key`` names the dataset (a path
inside the file; ``A+B`` stacks several datasets as channels); ``axes`` names each axis of the dataset with
one letter:

* ``n`` — the sample axis (required);
* ``t`` — a time axis, folded into samples: every ``(sample, time)`` snapshot is one field;
* ``c`` — the channel axis (optional: without it each dataset is one channel);
* any other letter (``x``, ``y``, ``z``, …) — a grid axis, in the order given.

Without ``axes`` they are inferred: from the dataset's HDF5 dimension labels when every axis has one
(``sample``/``batch``/``n`` → ``n``, ``time``/``t`` → ``t``, ``channel``/``c`` → ``c``, others grid), else from an
``axes`` attribute of the dataset, else the ``.npy`` layout ``(num, channels, *grid)``. With several keys
``axes`` may give one layout per key, joined by ``+``.

Layouts of the common SciML collections (the tests write small files of each):

* **PDEBench** 1-D (advection, Burgers, …): dataset ``tensor`` ``(N, T, X)`` → ``file.hdf5:key=tensor,axes=ntx``.
  2-D compressible Navier–Stokes: datasets ``density``, ``pressure``, ``Vx``, ``Vy`` each ``(N, T, X, Y)`` →
  ``key=density+pressure+Vx+Vy,axes=ntxy``. Darcy flow: coefficient ``nu`` ``(N, X, Y)`` and solution ``tensor``
  ``(N, 1, X, Y)`` → ``key=nu+tensor,axes=nxy+ncxy`` (the pair ``(a, u)`` as two channels). The group-per-sample
  files (``0000/data`` ``(T, X, Y, C)``: diffusion–reaction, shallow water) are not read; convert them to one
  dataset ``(N, T, X, Y, C)`` (``axes=ntxyc``) first.
* **The Well**: per-file groups ``t0_fields/NAME`` ``(trajectories, steps, X, Y)`` and vector fields
  ``t1_fields/NAME`` ``(trajectories, steps, X, Y, D)`` → ``key=t0_fields/density+t0_fields/pressure,axes=ntxy``,
  or ``key=t1_fields/velocity,axes=ntxyc``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..bases import NeumannBasis, SpectralBasis
from .lazy import LazyFields, check_field_shape, file_fingerprint

__all__ = ["Hdf5Fields", "open_hdf5", "HDF5_SUFFIXES"]

#: file suffixes read as HDF5 (case-insensitive).
HDF5_SUFFIXES = (".h5", ".hdf5")

_LABELS = {"sample": "n", "samples": "n", "batch": "n", "n": "n", "time": "t", "t": "t", "channel": "c",
           "channels": "c", "c": "c"}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as err:
        raise ValueError("reading HDF5 needs h5py: pip install -e \".[hdf5]\" (or pip install h5py).") from err
    return h5py


def _infer_axes(dataset: Any) -> str:
    """The axis letters of ``dataset`` from its dimension labels, its ``axes`` attribute or the .npy layout."""
    labels = [dim.label for dim in dataset.dims]
    if labels and all(labels):
        kinds = [_LABELS.get(label.lower()) for label in labels]
        grid = iter("xyzuvw")  # grid axes in order, whatever their labels
        return "".join(kind or next(grid) for kind in kinds)
    stored = dataset.attrs.get("axes")
    if stored is not None:
        return stored.decode() if isinstance(stored, bytes) else str(stored)
    return "nc" + "xyzuvw"[: max(0, dataset.ndim - 2)]


def _check_axes(axes: str, shape: tuple[int, ...], what: str) -> None:
    if len(axes) != len(shape):
        raise ValueError(f"{what} has shape {shape} (rank {len(shape)}) but axes={axes!r} names {len(axes)} axes; "
                         f"give axes= with one letter per axis (n sample, t time, c channel, others grid).")
    if axes.count("n") != 1 or axes.count("t") > 1 or axes.count("c") > 1 or len(set(axes)) != len(axes):
        raise ValueError(f"axes={axes!r} for {what}: needs exactly one n (samples), at most one t and one c, "
                         f"and distinct letters, e.g. axes=ntxy.")
    if not any(a not in "ntc" for a in axes):
        raise ValueError(f"axes={axes!r} for {what} names no grid axis; fields need at least one (e.g. x).")


class Hdf5Fields:
    """Datasets ``keys`` of an HDF5 file as fields ``(num, channels, *grid)``; one ``axes`` string per key."""

    def __init__(self, path: Path, keys: list[str], axes: list[str | None]) -> None:
        self.path, self.keys = path, keys
        self._file: tuple[int, Any, dict] | None = None  # (pid, open file, datasets by key)
        datasets = [self._dataset(k) for k in keys]
        axes = axes * len(keys) if len(axes) == 1 else axes
        if len(axes) != len(keys):
            raise ValueError(f"{len(keys)} keys but {len(axes)} axes layouts; give one, or one per key joined by '+'.")
        self.axes = [a or _infer_axes(d) for a, d in zip(axes, datasets)]
        layouts = []
        for key, axes_k, data in zip(keys, self.axes, datasets):
            what = f"dataset {key!r} of {str(path)!r}"
            _check_axes(axes_k, data.shape, what)
            sizes = dict(zip(axes_k, data.shape))
            grid = tuple(sizes[a] for a in axes_k if a not in "ntc")
            layouts.append((sizes["n"], sizes.get("t", 1), sizes.get("c", 1), grid))
            check_field_shape((sizes["n"] * sizes.get("t", 1), sizes.get("c", 1), *grid), data.dtype, what)
        if len({(n, t, grid) for n, t, _, grid in layouts}) != 1:
            raise ValueError(f"datasets {keys} of {str(path)!r} differ in samples, times or grid "
                             f"({[(n, t, g) for n, t, _, g in layouts]}); stack only datasets of one layout.")
        self.times = layouts[0][1]
        self.shape = (layouts[0][0] * self.times, sum(c for _, _, c, _ in layouts), *layouts[0][3])

    def __getstate__(self) -> dict:  # a worker process opens the file itself
        return {**self.__dict__, "_file": None}

    def _opened(self) -> Any:
        if self._file is None or self._file[0] != os.getpid():
            try:
                self._file = (os.getpid(), _h5py().File(self.path, "r"), {})
            except OSError as err:
                raise ValueError(f"cannot open {str(self.path)!r} as HDF5 ({err}); is it an HDF5 file?") from err
        return self._file[1]

    def _dataset(self, key: str) -> Any:
        file = self._opened()
        cached = self._file[2]
        if key in cached:
            return cached[key]
        found = file.get(key)
        if found is None or not hasattr(found, "shape"):
            names: list[str] = []
            file.visititems(lambda name, item: names.append(name) if hasattr(item, "shape") else None)
            raise ValueError(f"{str(self.path)!r} has no dataset {key!r}; it holds {names} "
                             f"(choose with {self.path.name}:key=NAME).")
        cached[key] = found
        return found

    def _field(self, key: str, axes: str, sample: int, time: int) -> np.ndarray:
        """One snapshot of dataset ``key`` as ``(channels, *grid)``."""
        index = tuple(sample if a == "n" else time if a == "t" else slice(None) for a in axes)
        values = np.asarray(self._dataset(key)[index])
        kept = [a for a in axes if a not in "nt"]
        return np.moveaxis(values, kept.index("c"), 0) if "c" in kept else values[None]

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        for j, row in enumerate(rows):
            sample, time = divmod(int(row), self.times)
            out[j] = np.concatenate([self._field(k, a, sample, time) for k, a in zip(self.keys, self.axes)])
        return out

    def fingerprint(self) -> dict:
        return file_fingerprint([self.path])


def open_hdf5(path: str | os.PathLike, *, key: str | None = None, axes: str | None = None,
              basis: SpectralBasis | None = None) -> LazyFields:
    """Fields from the HDF5 dataset(s) ``key`` of ``path`` laid out as ``axes`` (see the module docstring);
    ``key`` may be omitted when the file holds one dataset. ``basis`` defaults to ``NeumannBasis(ndim)``."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist; give the path of an HDF5 file.")
    if key is None:
        names: list[str] = []
        with _h5py().File(path, "r") as file:
            file.visititems(lambda name, item: names.append(name) if hasattr(item, "shape") else None)
        if len(names) != 1:
            raise ValueError(f"{str(path)!r} holds datasets {names}; choose one: {path.name}:key={(names or ['NAME'])[0]}.")
        key = names[0]
    keys = key.split("+")
    source = Hdf5Fields(path, keys, axes.split("+") if axes else [None])
    basis = basis or NeumannBasis(len(source.shape) - 2)
    spec = {"builder": None, "kwargs": {"path": str(path), "key": key, "axes": "+".join(source.axes)},
            "note": "read lazily from an HDF5 file"}
    return LazyFields(source=source, basis=basis, name=path.stem, spec=spec)
