"""Training batches through a ``torch.utils.data`` pipeline: a held-out split, deterministic shuffling that
a resumed run reproduces, per-rank shards, worker processes and pinned memory.

The training fields (positions ``0 … n-1`` of :func:`split_rows`'s training part) are visited in epochs,
each a permutation drawn from its own seeded stream (:func:`epoch_order`); draw ``d`` of the run takes
the global batch at positions ``[d B, (d+1) B)`` of the epochs laid end to end::

    batch_d[j] = perm_e(p mod n),   p = d B + j,   e = ⌊p / n⌋                                   (L1)

a pure function of ``(seed, d)``: a resumed run needs only the number of draws made (checkpointed) to
read exactly what the uninterrupted run reads, and workers can read ahead. Under ``torchrun`` rank ``r``
reads only rows :meth:`~hilbert_diffusion.distributed.DistributedContext.shard` of each global batch, so
within an epoch the ranks read disjoint fields and together every field once.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .normalization import Normalization
from .seeding import stream_generator, stream_seed

__all__ = ["epoch_order", "global_batch", "split_rows", "ShuffledBatches", "NormalisedFields", "batch_stream"]

_SHUFFLE_STREAM = 0x5348  # the stream of seeding.stream_seed(seed, ·) whose sub-streams are the epochs


def epoch_order(seed: int, epoch: int, num: int) -> Tensor:
    """The permutation of ``0 … num-1`` that epoch ``epoch`` of a run seeded ``seed`` visits."""
    return torch.randperm(num, generator=stream_generator(stream_seed(seed, _SHUFFLE_STREAM), epoch))


def global_batch(seed: int, num: int, draw: int, batch_size: int,
                 order: Callable[[int], Tensor] | None = None) -> Tensor:
    """The positions of draw ``draw``'s global batch, (L1); ``order(epoch)`` may serve cached permutations."""
    order = order or (lambda epoch: epoch_order(seed, epoch, num))
    p = torch.arange(draw * batch_size, (draw + 1) * batch_size)
    epochs = p // num
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in epochs.unique().tolist():
        mine = epochs == epoch
        out[mine] = order(epoch)[p[mine] % num]
    return out


def split_rows(num: int, val_fraction: float) -> tuple[range, range]:
    """Training and held-out rows of ``num`` fields: the last ``⌈val_fraction · num⌉`` are held out (whole
    trajectories when a file stores time series sample after sample, so no neighbouring snapshot leaks)."""
    held = math.ceil(val_fraction * num) if val_fraction > 0 else 0
    if held and held >= num:
        raise ValueError(f"val_fraction={val_fraction} holds out {held} of {num} fields, leaving none to train on; "
                         f"lower --val-fraction or give more data.")
    return range(num - held), range(num - held, num)


class ShuffledBatches(Sampler):
    """This rank's positions (``shard`` of each global batch, (L1)) for draws ``start, start + 1, …``, endless."""

    def __init__(self, num: int, *, seed: int, batch_size: int, start: int, shard: slice) -> None:
        self.num, self.seed, self.batch_size, self.start, self.shard = num, seed, batch_size, start, shard

    def __iter__(self) -> Iterator[list[int]]:
        order = functools.lru_cache(maxsize=2)(lambda epoch: epoch_order(self.seed, epoch, self.num))
        for draw in itertools.count(self.start):
            yield global_batch(self.seed, self.num, draw, self.batch_size, order)[self.shard].tolist()


class _InMemory:
    """An in-memory tensor ``(num, channels, *grid)`` behind the ``read(index)`` of lazy fields."""

    def __init__(self, data: Tensor) -> None:
        self.data = data

    def read(self, index: Sequence[int] | Tensor) -> Tensor:
        return self.data[torch.as_tensor(index, dtype=torch.long)]


class NormalisedFields(Dataset):
    """Rows ``rows`` of ``fields`` (a tensor or :class:`~hilbert_diffusion.datasets.lazy.LazyFields`), normalised
    per channel as they are read; ``__getitems__`` reads a whole batch at once."""

    def __init__(self, fields: Any, rows: range, normalization: Normalization) -> None:
        self.fields = _InMemory(fields) if isinstance(fields, Tensor) else fields
        self.rows, self.normalization = rows, normalization
        self.grid = tuple(fields.shape[2:])

    def __len__(self) -> int:
        return len(self.rows)

    def raw(self, positions: Sequence[int] | Tensor) -> Tensor:
        """Fields at ``positions`` of the rows, in data units."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        return self.fields.read(self.rows.start + positions)

    def read(self, positions: Sequence[int] | Tensor) -> Tensor:
        """Normalised fields at ``positions`` of the rows."""
        return self.normalization.encode(self.raw(positions))

    def __getitems__(self, positions: Sequence[int]) -> Tensor:
        return self.read(positions)

    def __getitem__(self, position: int) -> Tensor:
        return self.read([position])[0]


def _batch(fields: Tensor) -> Tensor:  # __getitems__ already returns the batch
    return fields


def batch_stream(dataset: NormalisedFields, *, seed: int, batch_size: int, start: int, shard: slice, workers: int,
                 pin_memory: bool) -> Iterator[Tensor]:
    """This rank's rows of draws ``start, start + 1, …`` (endless), read by ``workers`` processes (0: this
    one) through a ``DataLoader``, in pinned memory when ``pin_memory`` (for a CUDA device)."""
    sampler = ShuffledBatches(len(dataset), seed=seed, batch_size=batch_size, start=start, shard=shard)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=_batch, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=2 if workers else None)
    return iter(loader)
