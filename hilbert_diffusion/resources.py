"""What a request will cost, checked before any work starts: memory (of data, training, sampling and a
model a checkpoint describes) against the memory the machine has free, and disk space before a write.

Estimates are deliberately rough upper bounds in float32 bytes (the FNO keeps about
:data:`ACTIVATIONS_PER_LAYER` tensors of ``batch × width × points`` per layer for the backward pass); they
exist to refuse a request that cannot fit (``--resolution 100000``, a checkpoint claiming 10⁹ channels)
with the numbers and the fix, instead of allocating until the machine dies.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

__all__ = ["ResourceError", "DiskFullError", "available_memory", "free_disk", "format_bytes", "check_memory",
           "check_disk", "is_out_of_space", "field_bytes", "network_bytes", "model_bytes", "max_batch"]

FLOAT = 4  # bytes of a float32
ACTIVATIONS_PER_LAYER = 12  # float32 tensors of batch × width × points per FNO layer (forward, FFTs, backward)
GENERATION_COPIES = 4  # float64 copies a data set generator holds per field (the field, its spectrum, a buffer)


class ResourceError(ValueError):
    """A request that needs more memory than the machine has."""


class DiskFullError(OSError):
    """Not enough disk space for a write: says what ran out and where."""

    def __str__(self) -> str:
        return str(self.strerror)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable`` of ``/proc/meminfo``, else
    ``os.sysconf``), ``None`` if the system does not say."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def free_disk(path: str | os.PathLike) -> int:
    """Free bytes on the file system holding ``path`` (its nearest existing ancestor)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"  # unreachable


def check_memory(need: float, *, what: str, fix: str) -> None:
    """Raise :class:`ResourceError` when ``need`` bytes exceed the available memory."""
    available = available_memory()
    if available is not None and need > available:
        raise ResourceError(f"{what} needs about {format_bytes(need)} of memory but {format_bytes(available)} "
                            f"are available; {fix}.")


def check_disk(path: str | os.PathLike, need: float, *, what: str, fix: str) -> None:
    """Raise :class:`DiskFullError` when the file system of ``path`` has fewer than ``need`` free bytes."""
    free = free_disk(path)
    if need > free:
        raise DiskFullError(errno.ENOSPC, f"disk space ran out: {what} needs about {format_bytes(need)} but "
                            f"{format_bytes(free)} are free on the file system of {path}; {fix}.")


def is_out_of_space(err: BaseException) -> bool:
    """Whether a failed write failed for lack of space (``ENOSPC``/``EDQUOT``, also inside torch's writer)."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err).lower()
    return "no space left" in text or "disk quota" in text


def field_bytes(num: int, channels: int, points: int, *, copies: float = 1, itemsize: int = FLOAT) -> float:
    """Bytes of ``num`` fields of ``channels`` channels on ``points`` grid points, ``copies`` times."""
    return float(num) * channels * points * itemsize * copies


def network_bytes(*, batch: int, channels: int, points: int, width: int, layers: int) -> float:
    """Working memory of one forward and backward pass of the score network on a batch."""
    per_layer = ACTIVATIONS_PER_LAYER * float(batch) * width * points * FLOAT
    ends = field_bytes(batch, channels + 4 * width, points, copies=4)  # lifting, projection, x_t, denoised
    return per_layer * layers + ends


def model_bytes(*, channels: int, width: int, layers: int, modes: int, ratio: float = 2.0) -> float:
    """Parameters (with EMA and AdamW's two moments: four copies) of an FNO of this shape; ``modes``: the
    Fourier modes kept in all (product over the axes)."""
    spectral = layers * width * width * modes * 2  # complex weights per layer
    ends = 2 * channels * width * ratio + 2 * width * width * ratio
    return 4 * FLOAT * float(spectral + ends)


def max_batch(budget: float, per_item: float) -> int:
    """The largest batch whose cost ``per_item × batch`` fits ``budget`` (at least 0)."""
    return max(0, math.floor(budget / per_item)) if per_item > 0 else 0
