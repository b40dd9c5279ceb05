"""Memory checks of command-line requests, made before any work starts (estimates from :mod:`.resources`).

A built-in data set is sized before it is generated (``--num``, ``--resolution``), training before the data
are loaded and again once their shape is known, sampling and restoration before the first draw; a request
the machine cannot hold is refused with the numbers and the option that fixes it (for sampling: the
``--batch-size`` that fits, the draws being made in batches anyway).
"""

from __future__ import annotations

import math

from . import resources
from .datasets.spec import spec_size
from .resources import GENERATION_COPIES, check_memory, field_bytes, format_bytes, max_batch, network_bytes

__all__ = ["check_data_memory", "check_generation_memory"]


def check_data_memory(spec: str, *, num: int | None, resolution: int | None, extra: dict,
                       batch: int = 0, width: int = 0, layers: int = 0) -> None:
    """Refuse a built-in data request (and the training on it) whose memory the machine does not have, before
    anything is generated."""
    size = spec_size(spec, num=num, resolution=resolution, **extra)
    if size is None:
        return
    num, channels, points = size
    need = field_bytes(num, channels, points, copies=GENERATION_COPIES, itemsize=8)
    if batch:
        need += network_bytes(batch=batch, channels=channels, points=points, width=width, layers=layers)
    check_memory(need, what=f"{spec} with {num} fields of {channels} channel(s) on {points} grid points"
                 + (f", trained in batches of {batch} at width {width}" if batch else ""),
                 fix="lower --num or --resolution" + (", --batch-size or --width" if batch else ""))


def check_generation_memory(run, grid: tuple[int, ...], *, num_out: int, batch: int, fix_batch: str) -> None:
    """Refuse sampling or restoration whose output (``num_out`` fields) and working batch (``batch`` fields
    through the network at once) need more memory than is available, naming the batch that would fit."""
    points, channels = math.prod(grid), run.channels
    model = run.config.get("model", {}).get("config", {})
    width, layers = int(model.get("hidden_channels", 1)), int(model.get("n_layers", 1))
    output = field_bytes(num_out, channels, points, copies=2)  # the draws and their float32 copy
    per_item = (network_bytes(batch=1, channels=channels, points=points, width=width, layers=layers) / 3  # no backward
                + field_bytes(1, channels, points, copies=8, itemsize=8))  # the sampler's float64 state
    available = resources.available_memory()
    if available is None or output + per_item * batch <= available:
        return
    fits = max_batch(available - output, per_item)
    fix = (f"use {fix_batch} {fits} (the draws are made in batches of that size)" if fits >= 1 else
           f"lower --num or --resolution: the {num_out} output fields alone need {format_bytes(output)}")
    check_memory(output + per_item * batch, what=f"{num_out} draws on the grid {tuple(grid)} in batches of {batch}",
                 fix=fix)
