"""Figures people look at: samples and restorations, written atomically as PNG (matplotlib's Agg
canvas; no pyplot, no global backend)."""

from __future__ import annotations

import os
from pathlib import Path

from torch import Tensor

__all__ = ["save_sample_figure", "save_restoration_figure"]


def _draw(ax, field: Tensor, *, vmin: float, vmax: float, cmap: str = "RdBu_r") -> None:
    """One channel of a field: a curve (1-D) or an image (2-D)."""
    if field.dim() == 1:
        ax.plot(field.numpy(), lw=1)
        ax.set_ylim(vmin, vmax)
    else:
        ax.imshow(field.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, origin="lower")
        ax.set_axis_off()


def _write(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, path)
    return path


def save_sample_figure(samples: Tensor, path: str | os.PathLike, *, title: str = "") -> Path:
    """Fields ``(num, channels, *grid)`` as a PNG: 1-D as overlaid curves per channel, 2-D as images (one per
    sample and channel, a symmetric colour scale per channel)."""
    from matplotlib.figure import Figure

    samples = samples.detach().cpu().float()
    num, channels = samples.shape[:2]
    ndim = samples.dim() - 2
    if ndim not in (1, 2):
        raise ValueError(f"can draw 1-D or 2-D fields, got {ndim} grid axes.")
    columns = 1 if ndim == 1 else num
    fig = Figure(figsize=(6, 2.5 * channels) if ndim == 1 else (2.2 * num, 2.2 * channels))
    for c in range(channels):
        vmax = float(samples[:, c].abs().max()) or 1.0
        if ndim == 1:
            ax = fig.add_subplot(channels, 1, c + 1)
            for i in range(num):
                ax.plot(samples[i, c].numpy(), lw=1)
            ax.set_ylabel(f"channel {c}")
            continue
        for i in range(num):
            _draw(fig.add_subplot(channels, columns, c * columns + i + 1), samples[i, c], vmin=-vmax, vmax=vmax)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _write(fig, Path(path))


def save_restoration_figure(observation: Tensor, samples: Tensor, path: str | os.PathLike, *, title: str = "") -> Path:
    """Observation ``(channels, *grid_obs)``, samples ``(num, channels, *grid)``: one row per channel with the
    observation, up to three samples, their mean and their pointwise standard deviation."""
    from matplotlib.figure import Figure

    observation, samples = observation.detach().cpu().float(), samples.detach().cpu().float()
    channels = samples.shape[1]
    shown = samples[:3]
    panels = ["observation", *[f"sample {i + 1}" for i in range(len(shown))], "mean", "std"]
    fig = Figure(figsize=(2.4 * len(panels), 2.4 * channels))
    for c in range(channels):
        vmax = float(max(samples[:, c].abs().max(), observation[c].abs().max())) or 1.0
        fields = [observation[c], *shown[:, c], samples[:, c].mean(0)]
        for j, (name, field) in enumerate(zip(panels, fields)):
            ax = fig.add_subplot(channels, len(panels), c * len(panels) + j + 1)
            _draw(ax, field, vmin=-vmax, vmax=vmax)
            ax.set_title(name, fontsize=8)
        std = samples[:, c].std(0) if samples.shape[0] > 1 else samples[:, c].mean(0) * 0
        ax = fig.add_subplot(channels, len(panels), (c + 1) * len(panels))
        _draw(ax, std, vmin=0, vmax=float(std.max()) or 1.0, cmap="viridis")
        ax.set_title("std", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _write(fig, Path(path))
