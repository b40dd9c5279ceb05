"""The figure of ``benchmarks/images.py``: per data set, held-out images, one sample per architecture, the learning
curves and the denoising gain over the Gaussian fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _curve_panel(ax, name: str, result: dict) -> None:
    """Kurtosis of differences against CPU minutes per architecture (and the sampler of the curve's samples, which
    may not be the table's); the held-out value dashed, an untrained control's dotted."""
    n0 = str(result["resolution"])
    for k, (arch, row) in enumerate(result["architectures"].items()):
        if row["curve"]:
            sampler = row["train"].get("curve_sampler", "exponential_multistep").split(",")[0]
            ax.plot([c["cpu_minutes"] for c in row["curve"]], [c["kurtosis"] for c in row["curve"]], "o-",
                    color=f"C{k}", label=f"{arch}, {sampler}")
        else:  # untrained (the Gaussian fit, its scale mixture): its samples' value
            ax.axhline(row[n0]["kurtosis"], color=f"C{k}", ls=":", lw=1.2, label=f"{arch} (untrained)")
    training = result.get("training_fields", {}).get(n0)
    if training:  # the held-out value and the training fields' own
        ax.axhline(training["kurtosis"], color="0.5", ls="-.", lw=0.8, label="training fields")
    data_kurtosis = training["data_kurtosis"] if training else next(iter(result["architectures"].values()))[n0][
        "data_kurtosis"]
    ax.axhline(data_kurtosis, color="k", ls="--", lw=0.8, label="held-out")
    ax.set_xlabel("CPU minutes", fontsize=8)
    ax.set_ylabel("kurtosis of differences", fontsize=8)
    ax.set_title(f"{name}: learning curve", fontsize=8)
    ax.legend(fontsize=6)


def _gain_panel(ax, name: str, result: dict, times: tuple[float, ...]) -> None:
    """Held-out denoising error over the Gaussian fit's against t, at each learning-curve point (darker: later), and
    of the untrained scale mixture (dotted)."""
    for k, (arch, row) in enumerate(result["architectures"].items()):
        for j, point in enumerate(row["curve"]):
            ax.semilogx(times[: len(point.get("denoising_gain", []))], point.get("denoising_gain", []), "o-",
                        color=f"C{k}", alpha=(j + 1) / len(row["curve"]), ms=3,
                        label=f"{arch}, {point['cpu_minutes']:.1f} min")
        if not row["curve"] and "denoising_gain" in row:  # an untrained control (the Gaussian fit: 1 at every t)
            ax.semilogx(times, row["denoising_gain"], ":", color=f"C{k}", marker="s", ms=3, label=arch)
    ax.set_xlabel("t (noise level)", fontsize=8)
    ax.set_ylabel("denoising error / Gaussian fit's", fontsize=8)
    ax.set_title(f"{name}: denoising against the fit", fontsize=8)
    ax.legend(fontsize=5)


def figure(results: dict, path: Path, *, gain_times: tuple[float, ...]) -> None:
    """Per data set a row: held-out images, a training field, the first sample of each architecture (grey, upright,
    colour bar; fields that are not images in a diverging map over the held-out range), the learning curves
    (:func:`_curve_panel`) and the denoising gain over the Gaussian fit at ``gain_times`` (:func:`_gain_panel`); with
    no architecture (``--data-only``) the fields alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = max(len(r["architectures"]) for r in results.values())
    columns = 3 + models + (2 if models else 0)  # with --data-only no curve and no gain
    fig = Figure(figsize=(2.8 * columns, 2.6 * len(results)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(results), columns, squeeze=False)
    for row_axes, (name, result) in zip(axes, results.items()):
        n0 = str(result["resolution"])
        panels = [(f"{name}: held-out {i + 1}", result["data_first"][i]) for i in range(2)]
        panels += [(f"{name}: training field", result["train_first"][0])] if "train_first" in result else []
        panels += [(f"{arch} sample", row[n0]["first"][0]) for arch, row in result["architectures"].items()]
        top = float(torch.tensor(result["data_first"]).abs().max())
        style = (dict(cmap="gray", vmin=0, vmax=1) if result.get("images", True) else
                 dict(cmap="RdBu_r", vmin=-top, vmax=top))
        for ax, (title, image) in zip(row_axes, panels):
            shown = ax.imshow(np.asarray(image), origin="upper", **style)
            fig.colorbar(shown, ax=ax, shrink=0.8)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        for ax in row_axes[len(panels):columns - 2]:  # data sets with fewer architectures than the widest row
            ax.set_axis_off()
        if models:
            _curve_panel(row_axes[-2], name, result)
            _gain_panel(row_axes[-1], name, result, gain_times)
    fig.savefig(path, dpi=80)
