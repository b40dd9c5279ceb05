"""Figures people look at: samples (beside real data) and restorations, written atomically as PNG
(matplotlib's Agg canvas; no pyplot, no global backend).

Every figure is a grid of panels, each showing one channel: a 2-D field as an image with its own colour
bar, 1-D fields as curves against the position ``j / n`` in the domain (so fields on different grids, e.g.
a coarse observation and its super-resolved samples, line up). Signed fields share a symmetric scale per
channel (``RdBu_r``), non-negative ones start at 0 (``magma``); standard deviations have their own scale
from 0 (``viridis``). Hidden (unobserved) points are NaN: grey in images, left out of curves, whose
observed points are then drawn as markers.

Images (``images=True``, or by default 2-D fields of 1 or 3 channels whose reference values lie in about
``[0, 1]``: see :func:`looks_like_images`) are drawn as pictures: upright (row 0 at the top), grey on
``[0, 1]`` (widened to the values shown) with a colour bar, three channels as one RGB picture, each panel
titled with its value range; hidden points are blue.

``sample_figure`` / ``restoration_figure`` build the :class:`~matplotlib.figure.Figure`;
``save_sample_figure`` / ``save_restoration_figure`` build and write it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["sample_figure", "save_sample_figure", "restoration_figure", "save_restoration_figure",
           "looks_like_images"]

#: rows (observations × channels) a restoration figure draws at most.
MAX_ROWS = 8
#: fields per row of a sample figure's block before it wraps.
MAX_COLUMNS = 8
#: samples per observation a restoration figure shows (beside their mean and std over all of them).
SHOWN_SAMPLES = 3
_HIDDEN_COLOUR = "0.8"  # neutral grey for hidden points
_HIDDEN_IN_GREY = "#4c72b0"  # blue: grey is taken by the picture
#: how far outside [0, 1] the 0.5% and 99.5% quantiles of image data may lie (samples overshoot a little).
IMAGE_SLACK = 0.1


@dataclass(frozen=True)
class _Scale:
    """Colour range (images) or y-range (curves) of a panel."""

    vmin: float
    vmax: float
    cmap: str
    origin: str = "lower"  # "upper" for pictures: row 0 at the top


@dataclass(frozen=True)
class _Panel:
    """One channel: an image ``(h, w)``, or curves ``(k, n)`` overlaid (``curves=True``)."""

    title: str
    field: Tensor
    scale: _Scale
    curves: bool = False
    markers: bool = False  # curves as points (observations) rather than lines
    reference: Tensor | None = None  # curves: an observation drawn behind as grey points
    rgb: bool = False  # an image (3, h, w) drawn as one colour picture


Layout = list[list["_Panel | None"]]  # rows of panels; None leaves a cell empty


def _finite(*fields: Tensor) -> Tensor:
    values = torch.cat([f.reshape(-1) for f in fields])
    return values[torch.isfinite(values)]


def _field_scale(*fields: Tensor) -> _Scale:
    """Symmetric about 0 for signed fields, from 0 for non-negative ones (NaN and inf ignored)."""
    values = _finite(*fields)
    vmax = float(values.abs().max()) if values.numel() else 0.0
    vmax = vmax or 1.0
    signed = bool((values < 0).any())
    return _Scale(-vmax, vmax, "RdBu_r") if signed else _Scale(0.0, vmax, "magma")


def _image_scale(*fields: Tensor) -> _Scale:
    """Grey on ``[0, 1]``, widened to the values shown, upright."""
    values = _finite(*fields)
    low, high = (float(values.min()), float(values.max())) if values.numel() else (0.0, 1.0)
    return _Scale(min(0.0, low), max(1.0, high), "gray", "upper")


def _std_scale(std: Tensor, origin: str = "lower") -> _Scale:
    values = _finite(std)
    return _Scale(0.0, (float(values.max()) if values.numel() else 0.0) or 1.0, "viridis", origin)


def looks_like_images(fields: Tensor) -> bool:
    """Whether ``(num, channels, h, w)`` fields look like pictures: 1 or 3 channels on a 2-D grid, the 0.5% and
    99.5% quantiles of their finite values within ``[-IMAGE_SLACK, 1 + IMAGE_SLACK]``."""
    fields = torch.as_tensor(fields)
    if fields.dim() != 4 or fields.shape[1] not in (1, 3):
        return False
    values = _finite(fields.detach().cpu().float())
    if not values.numel():
        return False
    values = values[torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))[:100_000]]
    low, high = torch.quantile(values, torch.tensor([0.005, 0.995])).tolist()
    return low >= -IMAGE_SLACK and high <= 1 + IMAGE_SLACK


def _ranged(title: str, field: Tensor) -> str:
    """``title [min, max]`` of the finite values of ``field``."""
    values = _finite(field)
    return f"{title} [{float(values.min()):.2f}, {float(values.max()):.2f}]" if values.numel() else title


def _draw(fig: Figure, ax: Axes, panel: _Panel) -> None:
    """A panel on ``ax``: curves with their axis, or an image with a colour bar (hidden points grey)."""
    from matplotlib import colormaps

    scale = panel.scale
    ax.set_title(panel.title, fontsize=8)
    if panel.curves:
        curves = panel.field.reshape(-1, panel.field.shape[-1]).numpy()
        if panel.reference is not None:
            ax.plot(_position(panel.reference), panel.reference.numpy(), ".", ms=4, color="0.55", zorder=3)
        position = _position(panel.field)
        for curve in curves:
            ax.plot(position, curve, ".", ms=4) if panel.markers else ax.plot(position, curve, lw=1)
        margin = 0.05 * (scale.vmax - scale.vmin)
        ax.set_ylim(scale.vmin - margin, scale.vmax + margin)
        ax.set_xlim(0, 1)
        ax.tick_params(labelsize=7)
        return
    ax.set_axis_off()
    if panel.rgb:  # (3, h, w) → (h, w, 3); NaN (hidden) shows as black
        ax.imshow(panel.field.permute(1, 2, 0).nan_to_num(0.0).clamp(0, 1).numpy(), origin=scale.origin)
        return
    cmap = colormaps[scale.cmap].with_extremes(bad=_HIDDEN_IN_GREY if scale.cmap == "gray" else _HIDDEN_COLOUR)
    image = ax.imshow(panel.field.numpy(), cmap=cmap, vmin=scale.vmin, vmax=scale.vmax, origin=scale.origin)
    fig.colorbar(image, ax=ax, shrink=0.8).ax.tick_params(labelsize=7)


def _position(field: Tensor):
    """Where the points of a 1-D field lie in the domain, ``j / n``: fields on any grid line up."""
    return torch.arange(field.shape[-1]).numpy() / field.shape[-1]


def _render(layout: Layout, *, title: str, panel_size: tuple[float, float]) -> Figure:
    from matplotlib.figure import Figure

    rows, columns = len(layout), max(len(row) for row in layout)
    width, height = panel_size
    fig = Figure(figsize=(width * columns, height * rows + (0.4 if title else 0.0)), layout="constrained")
    for r, row in enumerate(layout):
        for c, panel in enumerate(row):
            if panel is not None:
                _draw(fig, fig.add_subplot(rows, columns, r * columns + c + 1), panel)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def _write(fig: Figure, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, path)
    return path


def _fields(x: Tensor, name: str) -> Tensor:
    """``x`` as a CPU float tensor ``(num, channels, *grid)`` with a 1-D or 2-D grid."""
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() not in (3, 4):
        raise ValueError(f"{name} has shape {tuple(x.shape)}; figures draw (num, channels, *grid) fields on a "
                         f"1-D or 2-D grid (slice 3-D fields first).")
    return x


def _channel(c: int, channels: int) -> str:
    return f" · ch {c}" if channels > 1 else ""


# ------------------------------------------------------------------------------------------------ samples
def _image_block(fields: Tensor, *, label: str, suffix: str, scale: _Scale, rgb: bool = False) -> Layout:
    """Images ``(num, h, w)`` (or pictures ``(num, 3, h, w)``, ``rgb``) titled ``label i``, wrapped at
    ``MAX_COLUMNS`` per row; pictures (``scale.origin == "upper"``) carry their value range in the title."""
    columns = min(len(fields), MAX_COLUMNS)
    picture = scale.origin == "upper"
    names = [f"{label} {i + 1}{suffix}" for i in range(len(fields))]
    panels = [_Panel(_ranged(name, f) if picture else name, f, scale, rgb=rgb) for name, f in zip(names, fields)]
    return [panels[r : r + columns] for r in range(0, len(panels), columns)]


def _is_picture(images: bool | None, reference: Tensor) -> bool:
    if images and (reference.dim() != 4 or reference.shape[1] not in (1, 3)):
        raise ValueError(f"images=True draws (num, 1 or 3, h, w) fields, got {tuple(reference.shape)}; "
                         f"drop images=True for other fields.")
    return looks_like_images(reference) if images is None else images


def sample_figure(samples: Tensor, *, title: str = "", data: Tensor | None = None, label: str = "sample",
                  images: bool | None = None) -> Figure:
    """The figure of :func:`save_sample_figure`."""
    samples = _fields(samples, "samples")
    if data is not None:
        data = _fields(data, "data")
        if data.shape[1] != samples.shape[1] or data.dim() != samples.dim():
            raise ValueError(f"data {tuple(data.shape)} and samples {tuple(samples.shape)} need the same channels "
                             f"and grid dimension.")
    channels, layout = samples.shape[1], []
    picture = _is_picture(images, samples if data is None else data)
    if picture and channels == 3:
        scale = _image_scale(samples, *([] if data is None else [data]))
        layout = [] if data is None else _image_block(data, label="data", suffix="", scale=scale, rgb=True)
        layout += _image_block(samples, label=label, suffix="", scale=scale, rgb=True)
        return _render(layout, title=title, panel_size=(2.6, 2.2))
    for c in range(channels):
        suffix = _channel(c, channels)
        fields = [samples[:, c], *([] if data is None else [data[:, c]])]
        scale = _image_scale(*fields) if picture else _field_scale(*fields)
        if samples.dim() == 3:
            row = [] if data is None else [_Panel(f"data{suffix}", data[:, c], scale, curves=True)]
            layout.append([*row, _Panel(f"{label}s{suffix}", samples[:, c], scale, curves=True)])
            continue
        if data is not None:
            layout += _image_block(data[:, c], label="data", suffix=suffix, scale=scale)
        layout += _image_block(samples[:, c], label=label, suffix=suffix, scale=scale)
    size = (4.0, 2.6) if samples.dim() == 3 else (2.6, 2.2)
    return _render(layout, title=title, panel_size=size)


def save_sample_figure(samples: Tensor, path: str | os.PathLike, *, title: str = "", data: Tensor | None = None,
                       label: str = "sample", images: bool | None = None) -> Path:
    """Fields ``samples (num, channels, *grid)`` as a PNG at ``path``, beside real fields ``data (num_data,
    channels, *grid)`` when given (same colour scale per channel). 2-D: a block of images per channel, first
    ``data i`` then ``{label} i``, each with its colour bar; 1-D: per channel a panel of overlaid data curves
    and one of sample curves on a shared y-axis. ``images``: draw pictures (see the module docstring; default:
    when the data, else the samples, :func:`looks_like_images`)."""
    return _write(sample_figure(samples, title=title, data=data, label=label, images=images), Path(path))


# ------------------------------------------------------------------------------------------------ restoration
def _observed(mask: Tensor | None, observations: Tensor) -> Tensor | None:
    """``mask`` (True = observed) broadcast to ``observations (n_obs, channels, *grid)``."""
    if mask is None:
        return None
    mask = torch.as_tensor(mask).detach().cpu() != 0
    try:
        return torch.broadcast_to(mask, observations.shape)
    except RuntimeError as err:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the observations are {tuple(observations.shape)}; "
                         f"give it shaped like the observation grid {tuple(observations.shape[2:])}.") from err


def _restoration_row(observation: Tensor, observed: Tensor | None, samples: Tensor, *, name: str,
                     picture: bool = False) -> list[_Panel]:
    """One observation's channel ``(*grid_obs)`` and its samples ``(num, *grid)``: observation (hidden points
    NaN), up to ``SHOWN_SAMPLES`` samples, their mean and pointwise standard deviation (``picture``: drawn as
    a grey picture, titled with value ranges)."""
    shown = observation if observed is None else torch.where(observed, observation, torch.nan)
    scale = _image_scale(shown, samples) if picture else _field_scale(shown, samples)
    curves = samples.dim() == 2
    std = samples.std(0) if len(samples) > 1 else torch.zeros_like(samples[0])
    reference = shown if curves else None
    mean = samples.mean(0)

    def titled(label: str, field: Tensor) -> str:
        return _ranged(label, field) if picture else label

    return [
        _Panel(titled(name, shown), shown, scale, curves=curves, markers=curves and observed is not None),
        *[_Panel(titled(f"sample {i + 1}", s), s, scale, curves=curves, reference=reference)
          for i, s in enumerate(samples[:SHOWN_SAMPLES])],
        _Panel(titled(f"mean of {len(samples)}", mean), mean, scale, curves=curves, reference=reference),
        _Panel(titled("std", std), std, _std_scale(std, scale.origin), curves=curves),
    ]


def restoration_figure(observations: Tensor, samples: Tensor, *, mask: Tensor | None = None,
                       title: str = "", images: bool | None = None) -> Figure:
    """The figure of :func:`save_restoration_figure`."""
    samples = _fields(samples, "samples")
    observations = torch.as_tensor(observations).detach().cpu().float()
    if observations.dim() == samples.dim() - 1:  # one observation (channels, *grid_obs)
        observations = observations[None]
    observations = _fields(observations, "observations")
    n_obs, channels = observations.shape[:2]
    if observations.dim() != samples.dim() or samples.shape[1] != channels or len(samples) % n_obs:
        raise ValueError(f"samples {tuple(samples.shape)} must be observation-major (n_obs * num, channels, *grid) "
                         f"for observations {tuple(observations.shape)}.")
    observed, num = _observed(mask, observations), len(samples) // n_obs
    picture = _is_picture(images, samples)  # grey pictures, one row per channel (also for RGB)
    drawn = max(1, min(n_obs, MAX_ROWS // channels))
    layout: Layout = []
    for i in range(drawn):
        for c in range(channels):
            layout.append(_restoration_row(observations[i, c], None if observed is None else observed[i, c],
                                           samples[i * num : (i + 1) * num, c],
                                           name=f"observation {i + 1}{_channel(c, channels)}", picture=picture))
    if drawn < n_obs:
        title = f"{title} (first {drawn} of {n_obs} observations)".strip()
    size = (3.0, 2.2) if samples.dim() == 3 else (2.6, 2.2)
    return _render(layout, title=title, panel_size=size)


def save_restoration_figure(observations: Tensor, samples: Tensor, path: str | os.PathLike, *,
                            mask: Tensor | None = None, title: str = "", images: bool | None = None) -> Path:
    """Restorations as a PNG at ``path``. ``observations (n_obs, channels, *grid_obs)`` (or one, ``(channels,
    *grid_obs)``), ``samples (n_obs * num, channels, *grid)`` observation-major: observation ``i`` owns
    ``samples[i * num : (i + 1) * num]``. One row per observation and channel (at most ``MAX_ROWS``, noted in
    the title): the observation, up to three samples, their mean and pointwise std. ``mask`` (boolean, shaped
    like the observation grid or broadcastable to the observations; True = observed) hides the unobserved
    points: grey in images, and a 1-D observation is drawn as markers at its observed points only. ``images``:
    grey upright pictures, channel by channel (default: when the samples :func:`looks_like_images`)."""
    return _write(restoration_figure(observations, samples, mask=mask, title=title, images=images), Path(path))
