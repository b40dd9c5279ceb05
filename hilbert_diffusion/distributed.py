"""Multi-process execution with PyTorch's own engine (``torchrun``, ``torch.distributed``).

Nothing here invents a launcher: ``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` and :func:`distributed_context` joins the process group it
describes (backend ``nccl`` when CUDA is available, else ``gloo``). Without those variables, or with
``WORLD_SIZE=1``, everything runs in the one process, unchanged.

Two ways of splitting work, both independent of the number of processes:

* **Training** (:func:`hilbert_diffusion.training.train`): every rank draws the *global* batch's
  indices, times and noise from one generator (so its state is global and a run resumes on any
  number of processes) and evaluates the model on its contiguous slice :meth:`DistributedContext.shard`
  of the batch; DDP averages the gradients.
* **Sampling / restoration** (:func:`map_chunks`, :func:`sharded_sample`): the output is cut into
  numbered chunks, chunk ``i`` draws from its own generator :func:`chunk_generator` ``(seed, i)``, chunks
  go round-robin to the ranks and are gathered back in order, so the result is bit-identical to one
  process for a given seed whatever the number of processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor

from .seeding import stream_generator, stream_seed

__all__ = [
    "DistributedContext",
    "chunk_generator",
    "chunk_seed",
    "distributed_context",
    "map_chunks",
    "sharded_sample",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` processes, the ``device`` it computes on
    and the ``backend`` of its process group (``None`` when running alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, draws progress bars and writes files."""
        return self.rank == 0

    def shard(self, total: int) -> slice:
        """This rank's contiguous slice ``[⌊r n/W⌋, ⌊(r+1) n/W⌋)`` of ``total`` items (sizes differ by ≤ 1)."""
        return slice(self.rank * total // self.world_size, (self.rank + 1) * total // self.world_size)

    def barrier(self) -> None:
        """Wait for every rank (no-op alone)."""
        if self.distributed:
            dist.barrier()

    def all_agree(self, flag: bool) -> bool:
        """Rank 0's ``flag`` on every rank (a decision such as "stop now" that must be collective)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def sum(self, value: Tensor) -> Tensor:
        """The sum of ``value`` over the ranks (a copy; ``value`` itself alone)."""
        if not self.distributed:
            return value
        total = value.detach().clone().to(self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total.to(value.device)


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError as err:
        raise ValueError(f"environment variable {name}={text!r} is not an integer; launch with torchrun.") from err


def distributed_context() -> DistributedContext:
    """Join (once) the process group that ``torchrun`` describes in the environment and return this
    process' :class:`DistributedContext`; a single-process context when ``WORLD_SIZE`` is unset or 1.

    Backend and device are chosen automatically: ``nccl`` on ``cuda:LOCAL_RANK`` when CUDA is
    available, ``gloo`` on the CPU otherwise. Calling it again reuses the existing group.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size < 1:
        raise ValueError(f"WORLD_SIZE must be at least 1, got {world_size}.")
    if world_size == 1 and not dist.is_initialized():
        return DistributedContext()
    local_rank = _env_int("LOCAL_RANK", 0)
    if torch.cuda.is_available():
        backend, device = "nccl", torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        backend, device = "gloo", torch.device("cpu")
    if not dist.is_initialized():
        if not dist.is_available():
            raise ValueError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed; run one process.")
        dist.init_process_group(backend=backend)
    else:
        backend = dist.get_backend()
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                              device=device, backend=backend)


chunk_seed = stream_seed  # the seed of chunk ``index`` of a sampling run seeded ``seed``
chunk_generator = stream_generator


def map_chunks(
    make_chunk: Callable[[int], Tensor], count: int, *, context: DistributedContext | None = None
) -> Tensor:
    """``torch.cat([make_chunk(0), …, make_chunk(count - 1)])`` (along dim 0, on the CPU), computed
    with chunk ``i`` on rank ``i mod W`` and gathered on every rank in order.

    The result equals the single-process one exactly as long as ``make_chunk(i)`` depends only on
    ``i`` (draw its randomness from :func:`chunk_generator`). Every rank must call it (it is a
    collective); all chunks must agree in every dimension but the first.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    context = context or distributed_context()
    mine = {i: make_chunk(i).detach().cpu() for i in range(context.rank, count, context.world_size)}
    if not context.distributed:
        return torch.cat([mine[i] for i in range(count)])
    gathered: list[dict[int, Tensor] | None] = [None] * context.world_size
    dist.all_gather_object(gathered, mine)
    chunks = {i: chunk for part in gathered for i, chunk in part.items()}
    return torch.cat([chunks[i] for i in range(count)])


def sharded_sample(
    sample: Callable[[int, torch.Generator], Tensor],
    num: int,
    *,
    seed: int,
    chunk_size: int = 64,
    context: DistributedContext | None = None,
) -> Tensor:
    """``num`` samples ``(num, …)`` made in chunks of ``chunk_size``: chunk ``i`` is
    ``sample(size_i, chunk_generator(seed, i))``, the chunks spread over the ranks and gathered in
    order (:func:`map_chunks`). Bit-identical for a given ``(seed, chunk_size)`` on any number of
    processes; ``chunk_size`` is part of the recipe (it fixes which draws each sample gets).
    """
    if num < 1 or chunk_size < 1:
        raise ValueError(f"num and chunk_size must be positive, got num={num}, chunk_size={chunk_size}.")
    count = -(-num // chunk_size)

    def make_chunk(index: int) -> Tensor:
        size = min(chunk_size, num - index * chunk_size)
        out = sample(size, chunk_generator(seed, index))
        if out.shape[0] != size:
            raise ValueError(f"sample({size}, generator) returned {out.shape[0]} samples; it must return {size}.")
        return out

    return map_chunks(make_chunk, count, context=context)
