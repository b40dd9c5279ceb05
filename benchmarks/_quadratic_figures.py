"""The figure of :mod:`benchmarks.quadratic`: real against generated curves, other grids, residuals, powers."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from benchmarks._quadratic_exact import SCALE, grid_points
from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.datasets.quadratic import QUADRATIC_DOMAIN

__all__ = ["plot"]


def plot(rows: dict, figure: dict, path: Path, *, target: float) -> None:
    """Real against generated curves, other resolutions, residuals of the samplers, and the powers."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    basis = NeumannBasis(1, lengths=QUADRATIC_DOMAIN[1] - QUADRATIC_DOMAIN[0])
    fig = Figure(figsize=(13, 8.5))
    axes = fig.subplots(2, 2)
    n = rows["model"]["resolution"]
    x = grid_points(basis, (n,))
    ax = axes[0][0]
    for i, curve in enumerate(figure["data_vs_data"][:20]):
        ax.plot(x, curve[0], color="0.6", lw=1.2, label="real" if i == 0 else None)
    for i, curve in enumerate(figure["model"][:20]):
        ax.plot(x, curve[0], color="C3", lw=0.8, label="generated" if i == 0 else None)
    ax.set_title(f"{n} points: 20 real and 20 generated curves")
    ax.legend(fontsize=8)
    ax = axes[0][1]
    for j, name in enumerate(k for k in rows if k.startswith("model_") and k[6:].isdigit()):
        res = rows[name]["resolution"]
        for i, curve in enumerate(figure[name][:6]):
            ax.plot(grid_points(basis, (res,)), curve[0], color=f"C{j}", lw=0.8,
                    label=f"{res} points" if i == 0 else None)
    ax.set_title("the same model sampled on other grids")
    ax.legend(fontsize=8)
    ax = axes[1][0]
    for j, name in enumerate(k for k in rows if k.startswith("model_hdm_")):
        curves = figure[name][:8, 0].to(torch.float64)
        design = torch.stack([x**2 / SCALE, torch.ones_like(x)], dim=-1)
        fit = torch.linalg.lstsq(design.expand(len(curves), -1, -1), curves[..., None]).solution
        residual = curves - (design @ fit)[..., 0]
        for i, r in enumerate(residual):
            ax.plot(x, r, color=f"C{j}", lw=0.7, label=rows[name]["label"].split(", ", 1)[1] if i == 0 else None)
    ax.set_title("residual from the best-fitting A x²/50 + B (real curves: 0)")
    ax.legend(fontsize=7)
    ax = axes[1][1]
    names = [k for k in rows if not k.startswith("exact_denoiser_hdm")]
    for offset, key in ((-0.2, "10v10"), (0.2, "100v100")):
        values = [(i, rows[k]["power"][key]) for i, k in enumerate(names) if key in rows[k]["power"]]
        half = [v["ci95"] if math.isfinite(v["ci95"]) else 0.0 for _, v in values]
        means = [v["mean"] for _, v in values]
        ax.errorbar([i + offset for i, _ in values], means, yerr=[[min(h, m) for h, m in zip(half, means)], half],
                    fmt="o", capsize=3, label=key.replace("v", " vs "))  # powers are ≥ 0: clip the bars there
    ax.axhline(target, color="k", ls="--", lw=0.8, label=f"{target:g} % (level of the test)")
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("test power (%)")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, path)
