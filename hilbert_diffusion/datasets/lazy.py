"""Fields read from disk as they are needed: memory-mapped ``.npy`` files and folders of ``.npy`` shards.

A :class:`LazyFields` is the out-of-memory counterpart of :class:`~.base.FieldDataset`: the same
``(num, channels, *grid)`` fields on a :class:`SpectralBasis`, but only the rows asked for are read
(:meth:`LazyFields.read`), so training (:func:`~hilbert_diffusion.training.train`) can run on data far
larger than memory. It is a ``torch.utils.data.Dataset`` (one field per index, or a whole batch through
``__getitems__``), so a ``DataLoader`` with workers feeds it (:mod:`hilbert_diffusion.loader`).

Sources (anything with ``shape``, ``read(rows)`` and ``fingerprint()``):

* :class:`MappedNpy` — one ``.npy`` file, memory-mapped; the pages a read touched (and their neighbours, which
  the kernel maps along) are handed back at once (``madvise(MADV_DONTNEED)``: they stay in the page cache), so
  the process' resident memory stays the size of a batch however much of the file training has visited.
* :class:`NpyShards` — a folder of ``.npy`` files sharing ``(channels, *grid)``, concatenated along the
  first axis in file-name order.
* :class:`~.hdf5.Hdf5Fields` — datasets of an HDF5 file (:mod:`.hdf5`).

A source's :func:`file_fingerprint` (sizes, a hash of each file's first 64 KiB and of 16 blocks spread
over it) is what a resumed run checks instead of hashing the whole set: it costs a few reads whatever the
size, and catches a file replaced, truncated, extended or rewritten in its header between start and resume.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..bases import Grid, NeumannBasis, SpectralBasis

__all__ = ["FieldSource", "LazyFields", "MappedNpy", "NpyShards", "file_fingerprint", "open_npy", "open_shards"]

_HEADER_BYTES = 1 << 16  # hashed from the start of every file
_SAMPLE_BLOCKS, _BLOCK_BYTES = 16, 4096  # blocks hashed at evenly spread offsets
_RELEASE = 1 << 20  # bytes, a multiple of the page size and of the kernel's fault-around window (64 KiB)


class FieldSource(Protocol):
    """Rows of an array ``(num, channels, *grid)`` on disk."""

    shape: tuple[int, ...]

    def read(self, rows: np.ndarray) -> np.ndarray: ...

    def fingerprint(self) -> dict: ...


def file_fingerprint(paths: Sequence[Path]) -> dict:
    """``{"bytes", "files", "header_sha256", "sample_sha256"}`` of ``paths``: their total size and count, a
    SHA-256 of each file's name, size and first 64 KiB, and one of 16 blocks of 4 KiB spread evenly over each."""
    header, sample, total = hashlib.sha256(), hashlib.sha256(), 0
    for path in paths:
        size = path.stat().st_size
        total += size
        header.update(f"{path.name}\0{size}\0".encode())
        with open(path, "rb") as file:
            header.update(file.read(_HEADER_BYTES))
            for k in range(_SAMPLE_BLOCKS):
                file.seek(max(0, size - _BLOCK_BYTES) * k // (_SAMPLE_BLOCKS - 1))
                sample.update(file.read(_BLOCK_BYTES))
    return {"bytes": total, "files": len(paths), "header_sha256": header.hexdigest(),
            "sample_sha256": sample.hexdigest()}


def check_field_shape(shape: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse arrays that cannot hold fields ``(num, channels, *grid)`` of real numbers."""
    real = np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
    if dtype == object or not (real or dtype == np.bool_):
        raise ValueError(f"{what} has dtype {dtype}; it must hold real numbers (convert it with .astype(np.float32)).")
    if len(shape) < 3:
        raise ValueError(f"{what} has shape {tuple(shape)} (rank {len(shape)}), but fields must be shaped "
                         f"(num, channels, *grid); add a channel axis, e.g. array[:, None] for one channel.")
    if 0 in shape:
        raise ValueError(f"{what} is empty (shape {tuple(shape)}); it needs at least one field with at least one point.")


class MappedNpy:
    """A ``.npy`` file memory-mapped read-only; :meth:`read` copies rows out and releases their pages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            header = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise ValueError(f"cannot memory-map {str(path)!r} as a .npy file ({err}); write it with np.save.") from err
        if not isinstance(header, np.memmap):
            raise ValueError(f"{str(path)!r} is not a single .npy array; memory-mapping needs np.save's format.")
        if header.ndim > 1 and not header.flags.c_contiguous:
            raise ValueError(f"{str(path)!r} is stored in Fortran order; rewrite it with np.save(np.ascontiguousarray(a)).")
        check_field_shape(header.shape, header.dtype, f"the array in {str(path)!r}")
        self.shape, self.dtype, self.offset = tuple(header.shape), header.dtype, int(header.offset)
        self.row_items = int(np.prod(self.shape[1:]))
        self.row_bytes = self.row_items * self.dtype.itemsize
        del header
        self._map: tuple[int, mmap.mmap] | None = None

    def __getstate__(self) -> dict:  # a worker process maps the file itself
        return {**self.__dict__, "_map": None}

    def _mapped(self) -> mmap.mmap:
        if self._map is None or self._map[0] != os.getpid():
            with open(self.path, "rb") as file:
                self._map = (os.getpid(), mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        return self._map[1]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (any order, repeats allowed) as a new array ``(len(rows), channels, *grid)``."""
        mapped = self._mapped()
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        starts = [self.offset + int(row) * self.row_bytes for row in rows]
        for j, start in enumerate(starts):
            out[j] = np.frombuffer(mapped, self.dtype, count=self.row_items, offset=start).reshape(self.shape[1:])
        self._release(mapped, starts)
        return out

    def _release(self, mapped: mmap.mmap, starts: list[int]) -> None:
        """Unmap the pages around the rows just copied (their data stay in the page cache), in windows of
        :data:`_RELEASE` bytes: a page fault maps its aligned neighbourhood too (the kernel's fault-around)."""
        windows = sorted((s - s % _RELEASE, min(len(mapped), -(-(s + self.row_bytes) // _RELEASE) * _RELEASE))
                         for s in starts)
        merged: list[list[int]] = []
        for low, high in windows:
            if merged and low <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], high)
            else:
                merged.append([low, high])
        for low, high in merged:
            mapped.madvise(mmap.MADV_DONTNEED, low, high - low)

    def fingerprint(self) -> dict:
        return file_fingerprint([self.path])


class NpyShards:
    """``.npy`` files ``(num_i, channels, *grid)`` read as one array, concatenated in the given order."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.shards = [MappedNpy(p) for p in paths]
        first = self.shards[0]
        for shard in self.shards[1:]:
            if shard.shape[1:] != first.shape[1:]:
                raise ValueError(f"shard {shard.path.name!r} holds fields {shard.shape[1:]} but {first.path.name!r} "
                                 f"holds {first.shape[1:]}; every shard needs the same (channels, *grid).")
        self.ends = np.cumsum([s.shape[0] for s in self.shards])
        self.shape = (int(self.ends[-1]), *first.shape[1:])

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        which = np.searchsorted(self.ends, rows, side="right")
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        for index in np.unique(which):
            mine = which == index
            start = self.ends[index] - self.shards[index].shape[0]
            out[mine] = self.shards[index].read(rows[mine] - start)
        return out

    def fingerprint(self) -> dict:
        return file_fingerprint([s.path for s in self.shards])


@dataclass(frozen=True, eq=False)
class LazyFields(Dataset):
    """Fields ``(num, channels, *grid)`` on ``basis``, read from ``source`` on demand as float32 tensors.

    ``rows``: the source rows in use (all by default; :meth:`head` keeps the first ones). ``target``: the
    grid the fields are band-limited to on reading (:meth:`resample`), ``None`` for the source's own.
    """

    source: Any
    basis: SpectralBasis
    name: str
    spec: dict
    rows: range | None = None
    target: Grid | None = None

    def __post_init__(self) -> None:
        shape = self.source.shape
        if len(shape) != 2 + self.basis.ndim:
            raise ValueError(f"{self.name}: fields of shape {tuple(shape)} do not fit (num, channels, *grid) with the "
                             f"{self.basis.ndim}-D grid of {type(self.basis).__name__}; they need "
                             f"{2 + self.basis.ndim} axes.")
        self.basis.grid_of(torch.empty((1, 1, *shape[2:]), dtype=torch.float32))
        if self.rows is None:
            object.__setattr__(self, "rows", range(shape[0]))

    @property
    def num(self) -> int:
        return len(self.rows)

    @property
    def channels(self) -> int:
        return int(self.source.shape[1])

    @property
    def grid(self) -> Grid:
        return self.target or tuple(int(n) for n in self.source.shape[2:])

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.num, self.channels, *self.grid)

    def __len__(self) -> int:
        return self.num

    def read(self, index: Sequence[int] | Tensor | np.ndarray) -> Tensor:
        """Fields ``index`` (positions in ``0 … num-1``, any order, repeats allowed), ``(len, channels, *grid)``."""
        positions = np.asarray(index, dtype=np.int64).reshape(-1)
        if positions.size and (positions.min() < 0 or positions.max() >= self.num):
            raise IndexError(f"{self.name}: field index out of range 0…{self.num - 1}.")
        rows = self.rows.start + positions * self.rows.step
        fields = torch.from_numpy(np.ascontiguousarray(self.source.read(rows), dtype=np.float32))
        return fields if self.target is None else self.basis.resample(fields, self.target)

    def __getitem__(self, index: int) -> Tensor:
        return self.read([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> Tensor:  # a DataLoader's whole batch in one call
        return self.read(indices)

    def head(self, num: int) -> LazyFields:
        """The first ``num`` fields."""
        return replace(self, rows=self.rows[:num])

    def resample(self, resolution: int | Sequence[int]) -> LazyFields:
        """The same fields band-limited to another grid as they are read (:meth:`SpectralBasis.resample`)."""
        grid = self.basis.grid(resolution)
        return replace(self, target=None if grid == tuple(self.source.shape[2:]) else grid)

    def fingerprint(self) -> dict:
        """The source files' :func:`file_fingerprint` (what a resume checks)."""
        return self.source.fingerprint()


def _spec(kind: str, **kwargs: Any) -> dict:
    return {"builder": None, "kwargs": kwargs, "note": f"read lazily from {kind}"}


def open_npy(path: str | os.PathLike, *, basis: SpectralBasis | None = None) -> LazyFields:
    """A memory-mapped ``.npy`` file ``(num, channels, *grid)``; ``basis`` defaults to ``NeumannBasis(ndim)``."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"data file {str(path)!r} does not exist; give the path of a .npy file.")
    source = MappedNpy(path)
    basis = basis or NeumannBasis(len(source.shape) - 2)
    return LazyFields(source=source, basis=basis, name=path.stem, spec=_spec("a .npy file", path=str(path), mmap=True))


def open_shards(folder: str | os.PathLike, *, basis: SpectralBasis | None = None) -> LazyFields:
    """Every ``.npy`` file in ``folder`` (sorted by name, not recursive) as one lazily read set of fields."""
    root = Path(folder).expanduser().resolve()
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".npy") if root.is_dir() else []
    if not paths:
        raise ValueError(f"{str(root)!r} is not a folder of .npy shards; put files (num_i, channels, *grid) there.")
    source = NpyShards(paths)
    basis = basis or NeumannBasis(len(source.shape) - 2)
    return LazyFields(source=source, basis=basis, name=root.name,
                      spec=_spec("a folder of .npy shards", folder=str(root), shards=len(paths)))
