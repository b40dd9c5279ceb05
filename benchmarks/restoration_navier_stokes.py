"""Zero-shot restoration of real fields: Navier–Stokes vorticity with an unconditionally trained score operator.

Data: :func:`~hilbert_diffusion.datasets.navier_stokes` vorticity snapshots (the FNO set-up with ``ν = 1e-4``,
``T = 20``, solved at 128² with ``Δt = 0.005``) at 32², 160 training fields (seed 0) and 8 held-out fields
(seed 1, so no field is shared). At the package's default ``ν = 1e-3`` the fields keep 1e-6 of their energy
beyond ``k = 8``: ×2 zero-padding then reaches 83 dB and super-resolution measures float32 round-off.
Model: a :class:`~hilbert_diffusion.models.fno.ScoreFNO` trained once, unconditionally, at 32² on the
normalised fields for at most 6 minutes on one core, with the command line's forward process
(:func:`hilbert_diffusion.cli.default_sde`: κ = 0, Matérn noise). Every restoration below reuses that one model.

Tasks (all restore the 32² field; the observation is exact, ``σ_y = 0``):

* ``SR ×2`` / ``SR ×4`` — super-resolution from the band-limited observation on the 16² / 8² grid
  (:class:`~hilbert_diffusion.restoration.SpectralDownsample`: the Fourier modes that grid resolves);
* ``box 50%`` — a centred square of side ``√½`` hidden (``box_mask``; 23² of the 32² points = 51.7 %);
* ``random 80%`` — 80 % of the points hidden at random (``random_mask(observed_fraction=0.2)``).

Methods: :func:`~hilbert_diffusion.restoration.ddnm` (null-space projection, one model call per step) and
:func:`~hilbert_diffusion.restoration.filtering_smc` (asymptotically exact sequential Monte Carlo, ``P``
particles per sample), each with ``power_times(30, t_end=1e-3)`` (the smallest training time; then a step
to 0), 8 draws per field (``P = 4``). Baselines: spectral zero-padding (``A⁺ y``) and
periodic bicubic interpolation (Keys' kernel, ``torch.nn.functional.interpolate(mode="bicubic")`` on the
periodically padded grid, aligned so that coarse points land on fine points) for super-resolution;
``skimage.restoration.inpaint_biharmonic`` (on the periodically padded image) for inpainting.

Metrics, per held-out field, averaged (``data_range`` = max − min over the held-out truths):

* ``PSNR`` / ``SSIM`` (:func:`~hilbert_diffusion.metrics.psnr`, :func:`~hilbert_diffusion.metrics.ssim`) of the
  posterior mean (the average of the ``samples`` draws) and of single draws (averaged over draws);
* ``spec err``: :func:`~hilbert_diffusion.metrics.spectrum_error` of the radial spectrum of the pooled single
  draws (or of the posterior means / baseline fields) against that of the truths, over all complete shells
  ``0 < k ≤ 15``; ``E hi``: the energy in the Fourier modes beyond the observed band, over the truths'
  (``‖x − P x‖² / ‖x₀ − P x₀‖²``, ``P`` the projection on the modes an ``n²`` grid resolves, ``max |k_i| < n/2``;
  ``n`` = the observation grid for super-resolution, 16 for the masks): 1 means the unobserved fine scales are
  present with the right energy, 0 that they are missing (zero-padding has exactly 0);
* ``consist``: ``‖A x − y‖ / ‖y‖`` with the observation space's quadrature norm.

Targets (issue 5): the posterior mean beats every baseline on PSNR; single samples match the data spectrum
beyond the observed band, where the baselines fall to zero.

    python benchmarks/restoration_navier_stokes.py [--quick] [--run-dir DIR] [--cache-dir DIR]

prints the table and writes ``benchmarks/results/restoration_navier_stokes.json`` and ``.png``
(per task: observation, baseline, one sample, posterior mean, pointwise std, truth and radial spectra).
``--run-dir``: a trained run to reuse (or the directory to train into); ``--cache-dir``: where the data are
cached (default: the package's cache). ``--quick`` (CI, under a minute): 16² fields from a coarse, short
solve, a tiny model trained for a few seconds, observations at 8² and 4², ``..._quick.json/.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hilbert_diffusion import PeriodicBasis
from hilbert_diffusion.checkpoint import list_checkpoints, load
from hilbert_diffusion.cli import default_sde
from hilbert_diffusion.datasets import navier_stokes
from hilbert_diffusion.metrics import psnr, radial_spectrum, spectrum_error, ssim
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.restoration import (
    Mask,
    ObservationOperator,
    SpectralDownsample,
    box_mask,
    covariance_guidance,
    ddnm,
    filtering_smc,
    random_mask,
)
from hilbert_diffusion.sampling import Sampler, power_times
from hilbert_diffusion.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Setting:
    """Sizes of one run of the benchmark (full or quick)."""

    resolution: int
    train_fields: int
    test_fields: int
    data: dict  # extra keyword arguments of navier_stokes (solver resolution, horizon)
    model: ScoreFNOConfig
    train: TrainConfig
    train_seconds: float
    steps: int
    samples: int
    particles: int


FULL = Setting(
    resolution=32, train_fields=160, test_fields=8, data={"viscosity": 1e-4, "time_step": 0.005},
    model=ScoreFNOConfig(hidden_channels=32, n_layers=4, n_modes=16, embedding_dim=64),
    train=TrainConfig(steps=1500, batch_size=16, lr=2e-3, warmup_steps=50, checkpoint_every=0, figure_samples=0),
    train_seconds=360.0, steps=30, samples=8, particles=4,
)
QUICK = Setting(
    resolution=16, train_fields=24, test_fields=2, data={"solver_resolution": 32, "horizon": 2.0, "time_step": 0.05},
    model=ScoreFNOConfig(hidden_channels=8, n_layers=2, n_modes=8, embedding_dim=16),
    train=TrainConfig(steps=30, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=0, figure_samples=0),
    train_seconds=15.0, steps=8, samples=2, particles=2,
)


@dataclass(frozen=True)
class Task:
    label: str
    operator: ObservationOperator
    band: int  # the "E hi" column counts the Fourier modes a band × band grid does not resolve
    baselines: tuple[str, ...]


@dataclass(frozen=True)
class Method:
    label: str
    sampler: Sampler  # configured: its evaluations(steps) counts the particles


def make_tasks(basis: PeriodicBasis, n: int) -> list[Task]:
    side = math.sqrt(0.5)
    lo, hi = 0.5 - side / 2, 0.5 + side / 2
    return [
        Task("SR ×2", SpectralDownsample(basis=basis, resolution=n // 2), n // 2, ("zero-pad", "bicubic")),
        Task("SR ×4", SpectralDownsample(basis=basis, resolution=n // 4), n // 4, ("zero-pad", "bicubic")),
        Task("box 50%", box_mask(basis, n, low=[lo, lo], high=[hi, hi]), n // 2, ("biharmonic",)),
        Task("random 80%", random_mask(basis, n, observed_fraction=0.2, generator=torch.Generator().manual_seed(5)),
             n // 2, ("biharmonic",)),
    ]


def make_methods(setting: Setting) -> list[Method]:
    p = setting.particles
    return [Method(ddnm.name, ddnm), Method(f"smc P={p}", filtering_smc.configure(particles=p)),
            Method("guidance", covariance_guidance)]


# ------------------------------------------------------------------------------------------- baselines
def bicubic_periodic(y: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic interpolation of periodic fields ``(num, channels, n, n)`` sampled at ``j/n`` to ``size × size``
    points ``i/size`` (``size`` a multiple of ``n``): pad two points periodically on each side, interpolate with
    ``align_corners=True`` (grid points onto grid points) and crop the period back."""
    n = y.shape[-1]
    f = size // n
    padded = torch.cat([y[..., -2:, :], y, y[..., :2, :]], dim=-2)
    padded = torch.cat([padded[..., -2:], padded, padded[..., :2]], dim=-1)
    fine = F.interpolate(padded.to(torch.float64), size=(f * (n + 3) + 1,) * 2, mode="bicubic", align_corners=True)
    return fine[..., 2 * f : 2 * f + size, 2 * f : 2 * f + size].to(y.dtype)


def biharmonic_periodic(y: torch.Tensor, observed: torch.Tensor, *, pad: int) -> torch.Tensor:
    """``skimage.restoration.inpaint_biharmonic`` of fields ``(num, channels, n, n)`` with the unobserved points
    (``~observed``) filled, on the image padded periodically by ``pad`` points (cropped back)."""
    from skimage.restoration import inpaint_biharmonic

    missing = np.pad(~observed.numpy(), pad, mode="wrap")
    out = torch.empty_like(y, dtype=torch.float64)
    for i in range(y.shape[0]):
        for c in range(y.shape[1]):
            image = np.pad(y[i, c].to(torch.float64).numpy(), pad, mode="wrap")
            out[i, c] = torch.from_numpy(inpaint_biharmonic(image, missing)[pad:-pad, pad:-pad])
    return out.to(y.dtype)


def baseline(name: str, task: Task, y: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    if name == "zero-pad":
        return task.operator.pseudo_inverse(y, grid)
    if name == "bicubic":
        return bicubic_periodic(y, grid[-1])
    assert isinstance(task.operator, Mask)
    return biharmonic_periodic(y, task.operator.observed, pad=max(2, grid[-1] // 4))


# ------------------------------------------------------------------------------------------- metrics
def consistency(op: ObservationOperator, x: torch.Tensor, y: torch.Tensor, grid) -> torch.Tensor:
    """``‖A x − y‖_g / ‖y‖_g`` per field (quadrature norm over the observed points)."""
    r = op.forward(x.to(torch.float64)) - y.to(torch.float64)
    y64 = y.to(torch.float64)
    return (op.inner(r, r, grid).sum(-1) / op.inner(y64, y64, grid).sum(-1)).sqrt()


def high_band_ratio(x: torch.Tensor, truth: torch.Tensor, basis: PeriodicBasis, band: int) -> float:
    """Mean energy of ``x`` in the modes a ``band²`` grid does not resolve (``max |k_i| ≥ band/2``), over the truths':
    ``‖x − P x‖² / ‖x₀ − P x₀‖²`` with ``P`` the spectral projection (averaged over fields)."""
    low = SpectralDownsample(basis=basis, resolution=band)

    def energy(f: torch.Tensor) -> torch.Tensor:
        f = f.to(torch.float64)
        high = f - low.pseudo_inverse(low.forward(f), basis.grid_of(f))
        return basis.inner(high, high).sum(1).mean()

    return float(energy(x) / energy(truth))


def score(fields: torch.Tensor, truth: torch.Tensor, task: Task, y: torch.Tensor, *, data_range: float,
          reference: tuple, grid, kmax: float) -> dict:
    """Metrics of ``fields`` ``(num, channels, *grid)`` against ``truth`` of the same shape."""
    spec = radial_spectrum(fields, task.operator.basis)
    return {
        "psnr": float(psnr(fields, truth, data_range=data_range).mean()),
        "ssim": float(ssim(fields, truth, data_range=data_range).mean()),
        "spectrum_error": spectrum_error(spec, reference, kmax=kmax),
        "high_band_energy_ratio": high_band_ratio(fields, truth, task.operator.basis, task.band),
        "consistency": float(consistency(task.operator, fields, y, grid).mean()),
    }


# ------------------------------------------------------------------------------------------- runs
def get_data(setting: Setting, cache_dir: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    kw = dict(cache_dir=cache_dir, progress=False, **setting.data)
    train_set = navier_stokes(setting.train_fields, setting.resolution, seed=0, **kw)
    test_set = navier_stokes(setting.test_fields, setting.resolution, seed=1, **kw)
    return train_set.data, test_set.data


def get_model(setting: Setting, data: torch.Tensor, run_dir: str | None):
    basis = PeriodicBasis(2)
    if run_dir is not None and Path(run_dir).exists() and list_checkpoints(run_dir):
        return load(run_dir), 0.0
    sde = default_sde(basis, (setting.resolution,) * 2)
    start = time.perf_counter()
    run = train(data, sde=sde, model=setting.model, config=setting.train, out_dir=run_dir, progress=False,
                max_seconds=setting.train_seconds)
    return run, time.perf_counter() - start


def times(setting: Setting) -> torch.Tensor:
    """``power_times(steps)`` ending at the smallest time the model was trained on (the last step goes to 0)."""
    return power_times(setting.steps, t_end=setting.train.time_sampler.t_min)


def restore(run, method: Method, task: Task, y: torch.Tensor, setting: Setting, seed: int) -> tuple[torch.Tensor, float]:
    """``samples`` draws per observation: ``(num, samples, channels, *grid)`` in data units, and the seconds taken."""
    grid = (setting.resolution,) * 2
    generator = torch.Generator().manual_seed(seed)
    num = y.shape[0]
    y_rep = run.normalization.encode(y).repeat_interleave(setting.samples, dim=0).to(torch.float32)
    x = run.sde.prior_sample(num * setting.samples, grid, channels=y.shape[1], generator=generator)
    start = time.perf_counter()
    with torch.no_grad():
        out = method.sampler(run.model, run.sde, x, times(setting), operator=task.operator, y=y_rep,
                             generator=generator)
    seconds = time.perf_counter() - start
    out = run.normalization.decode(out.detach())
    return out.reshape(num, setting.samples, *out.shape[1:]), seconds


def run_task(run, task: Task, methods: list[Method], truth: torch.Tensor, setting: Setting, *, data_range: float,
             seed: int, figure: dict) -> list[dict]:
    basis = task.operator.basis
    grid = tuple(truth.shape[2:])
    kmax = float(setting.resolution // 2 - 1)
    y = task.operator.observe(truth.to(torch.float64)).to(truth.dtype)
    reference = radial_spectrum(truth, basis)
    rows = []
    hidden = ~task.operator.observed if isinstance(task.operator, Mask) else None
    shown = {"truth": truth[0, 0], "y": y[0, 0], "hidden": hidden, "reference": reference, "band": task.band}
    for name in task.baselines:
        start = time.perf_counter()
        fields = baseline(name, task, y, grid)
        seconds = time.perf_counter() - start
        rows.append({"task": task.label, "method": name, "kind": "baseline", "seconds": seconds,
                     **score(fields, truth, task, y, data_range=data_range, reference=reference, grid=grid, kmax=kmax)})
        shown.setdefault("baseline", (name, fields[0, 0], radial_spectrum(fields, basis)))
    for method in methods:
        draws, seconds = restore(run, method, task, y, setting, seed)
        mean = draws.mean(1)
        single = draws.flatten(0, 1)
        truth_rep = truth.repeat_interleave(setting.samples, dim=0)
        y_rep = y.repeat_interleave(setting.samples, dim=0)
        s = score(single, truth_rep, task, y_rep, data_range=data_range, reference=reference, grid=grid, kmax=kmax)
        m = score(mean, truth, task, y, data_range=data_range, reference=reference, grid=grid, kmax=kmax)
        rows.append({
            "task": task.label, "method": method.label, "kind": "zero-shot", "seconds": seconds,
            "nfe_per_sample": method.sampler.evaluations(setting.steps),
            "mean": m, "sample": s,
        })
        shown["method"] = (method.label, draws[0, :, 0], radial_spectrum(single, basis), radial_spectrum(mean, basis))
    figure[task.label] = shown
    return rows


# ------------------------------------------------------------------------------------------- output
def print_table(rows: list[dict]) -> None:
    head = (f"{'task':11s} {'method':11s} {'PSNR mean':>9s} {'PSNR 1':>7s} {'SSIM mean':>9s} {'SSIM 1':>7s} "
            f"{'spec err 1':>10s} {'spec err μ':>10s} {'E hi 1':>7s} {'E hi μ':>7s} {'consist 1':>9s} {'time':>6s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = f"{r['task']:11s} {r['method']:11s}"
        if r["kind"] == "baseline":
            print(f"{lead} {r['psnr']:9.2f} {'':>7s} {r['ssim']:9.3f} {'':>7s} {'':>10s} {r['spectrum_error']:10.3g} "
                  f"{'':>7s} {r['high_band_energy_ratio']:7.3f} {r['consistency']:9.2g} {r['seconds']:6.1f}")
        else:
            m, s = r["mean"], r["sample"]
            print(f"{lead} {m['psnr']:9.2f} {s['psnr']:7.2f} {m['ssim']:9.3f} {s['ssim']:7.3f} {s['spectrum_error']:10.3g} "
                  f"{m['spectrum_error']:10.3g} {s['high_band_energy_ratio']:7.3f} {m['high_band_energy_ratio']:7.3f} "
                  f"{s['consistency']:9.2g} {r['seconds']:6.1f}")


def verdicts(rows: list[dict]) -> dict:
    """Per task: does the best zero-shot posterior mean beat every baseline on PSNR, and how close are single
    samples to the data's energy beyond the observed band (baselines alongside)."""
    out = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        base = [r for r in rows if r["task"] == task and r["kind"] == "baseline"]
        ours = [r for r in rows if r["task"] == task and r["kind"] == "zero-shot"]
        best = max(ours, key=lambda r: r["mean"]["psnr"])
        out[task] = {
            "best_method": best["method"],
            "posterior_mean_psnr": best["mean"]["psnr"],
            "best_baseline_psnr": max(r["psnr"] for r in base),
            "posterior_mean_beats_every_baseline": all(best["mean"]["psnr"] > r["psnr"] for r in base),
            "sample_high_band_energy_ratio": {r["method"]: r["sample"]["high_band_energy_ratio"] for r in ours},
            "baseline_high_band_energy_ratio": {r["method"]: r["high_band_energy_ratio"] for r in base},
        }
    return out


def draw_figure(figure: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(17, 2.6 * len(figure)))
    columns = 7
    for row, (label, d) in enumerate(figure.items()):
        truth = d["truth"].numpy()
        vmax = float(np.abs(truth).max())
        method, draws, spec_sample, spec_mean = d["method"]
        base_name, base_field, spec_base = d["baseline"]
        y = d["y"].clone().to(torch.float64)
        if d["hidden"] is not None:  # a mask: blank the hidden points
            y = torch.where(d["hidden"], torch.nan, y)
        panels = [
            (f"{label}: observation", y.numpy(), "RdBu_r", (-vmax, vmax)),
            (f"{base_name}", base_field.numpy(), "RdBu_r", (-vmax, vmax)),
            (f"{method}: sample", draws[0].numpy(), "RdBu_r", (-vmax, vmax)),
            (f"posterior mean ({len(draws)})", draws.mean(0).numpy(), "RdBu_r", (-vmax, vmax)),
            ("pointwise std", draws.std(0).numpy() if len(draws) > 1 else 0 * truth, "viridis", (0, None)),
            ("truth", truth, "RdBu_r", (-vmax, vmax)),
        ]
        for j, (title, image, cmap, (lo, hi)) in enumerate(panels):
            ax = fig.add_subplot(len(figure), columns, row * columns + j + 1)
            ax.imshow(image, cmap=cmap, vmin=lo, vmax=hi, origin="lower", extent=(0, 1, 0, 1))
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
        ax = fig.add_subplot(len(figure), columns, row * columns + columns)
        for name, (k, e), style in [("truth", d["reference"], "k-"), (base_name, spec_base, "C1--"),
                                    ("samples", spec_sample, "C0-"), ("posterior mean", spec_mean, "C2:")]:
            keep = k > 0
            ax.semilogy(k[keep].numpy(), e[keep].clamp_min(1e-12).numpy(), style, lw=1.2, label=name)
        ax.axvline(d["band"] / 2, color="grey", lw=0.8)
        ax.set_title("radial spectrum", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 16² fields, tiny model, a few seconds of training")
    parser.add_argument("--run-dir", default=None, help="reuse the trained run in this directory (or train into it)")
    parser.add_argument("--cache-dir", default=None, help="data cache (default: the package's cache directory)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    setting = QUICK if args.quick else FULL
    started = time.perf_counter()
    train_data, truth = get_data(setting, args.cache_dir)
    data_seconds = time.perf_counter() - started
    run, train_seconds = get_model(setting, train_data, args.run_dir)
    print(f"data {data_seconds:.0f} s, training {train_seconds:.0f} s ({run.step} steps)", flush=True)
    basis = PeriodicBasis(2)
    data_range = float(truth.max() - truth.min())
    methods = make_methods(setting)
    rows, figure = [], {}
    for i, task in enumerate(make_tasks(basis, setting.resolution)):
        rows += run_task(run, task, methods, truth, setting, data_range=data_range, seed=100 + i, figure=figure)
        print(f"{task.label}: {time.perf_counter() - started:.0f} s", flush=True)
    print_table(rows)
    summary = verdicts(rows)
    for task, v in summary.items():
        print(f"{task}: posterior mean ({v['best_method']}) {v['posterior_mean_psnr']:.2f} dB vs best baseline "
              f"{v['best_baseline_psnr']:.2f} dB -> {'beats' if v['posterior_mean_beats_every_baseline'] else 'does NOT beat'} "
              f"every baseline")
    stem = "restoration_navier_stokes_quick" if args.quick else "restoration_navier_stokes"
    config = {
        "resolution": setting.resolution, "train_fields": setting.train_fields, "test_fields": setting.test_fields,
        "data": {"builder": "navier_stokes", "train_seed": 0, "test_seed": 1, **setting.data},
        "model": run.config.get("model", {}).get("config"), "train": run.config.get("train"),
        "train_seconds_budget": setting.train_seconds,
        "train_steps_done": run.step, "train_seconds": train_seconds, "sde": repr(run.sde),
        "times": f"power_times({setting.steps}, t_end={setting.train.time_sampler.t_min})", "samples_per_field": setting.samples, "data_range": data_range,
        "total_seconds": time.perf_counter() - started, "threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(), "torch": torch.__version__,
    }
    RESULTS.mkdir(exist_ok=True)
    document = {"config": config, "verdicts": summary, "rows": rows}
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=1, ensure_ascii=False))
    draw_figure(figure, RESULTS / f"{stem}.png")
    print(f"total {config['total_seconds']:.0f} s; wrote {RESULTS / f'{stem}.json'} and {stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
