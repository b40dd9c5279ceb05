"""Resolution transfer: a score operator trained at 32² sampled at 32², 64², 128² and 256².

Two data sets on the periodic unit square, each with a :class:`~hilbert_diffusion.models.fno.ScoreFNO`
trained once at 32² (≤ 4 minutes on one core) with the command line's forward process
(:func:`hilbert_diffusion.cli.default_sde`: κ = 0, Matérn noise):

* ``grf`` — Gaussian random fields, Matérn ``q(λ) = (1 + λ/9)^-2``. The data law is known at every grid:
  ``E|c_k|² = q(λ_k)``, so the reference spectrum is exact, ``E(s) = Σ_{k ∈ shell s} m_k q(λ_k)``.
* ``navier_stokes`` — FNO vorticity snapshots (ν = 1e-4, T = 20, solved at 128² with Δt = 0.005; at
  ν = 1e-3 the fields carry 1e-6 of their energy beyond k = 8 and 1e-10 beyond k = 12, below what a float32
  network resolves, so the shared-band log error would measure round-off): 224 fields generated
  at 128² (seed 0, cached); the first 192 downsampled to 32² are the training set, the last 32 at 128² the
  held-out reference at every grid (band-limited resampling; the solver's 2/3 rule keeps ``|k_i| ≤ 42``,
  so the reference has no energy beyond that box and the beyond-Nyquist band is cut at ``k ≤ 42``).
  One set split by index, so training and held-out fields come from one solver run.

Samples are drawn with the default sampler (:func:`~hilbert_diffusion.sampling.sample`: the exponential 3M
multistep method on the probability-flow ODE, ``default_times(48)``, 48 model evaluations), prior drawn
exactly at each grid.
Per resolution ``N`` (radial spectra by :func:`~hilbert_diffusion.metrics.radial_spectrum`):

* ``err``: :func:`~hilbert_diffusion.metrics.spectrum_error` of the samples against the reference on the
  shared band ``0 < k ≤ 15`` (the complete shells of the training grid);
* ``ratio``: ``err(N) / err(32)`` where ``err(32)`` uses the first ``n_N`` samples drawn at 32² (the same
  sample count, so the Monte-Carlo noise is the same; target ≤ 1.2); ``floor``: the error of ``n_N``
  exact draws (GRF) / of ``n_N`` training fields (NS) against the reference — the noise level;
* beyond the training Nyquist, ``16 < k ≤ min(64, N/2 - 1)`` (NS: also ``≤ 42``): least-squares log-log
  slope of the sample spectrum and of the reference, and the energy ratio ``Σ E_samples / Σ E_ref`` in
  that band (white noise would give slope ≈ +1, missing fine scales an energy ratio ≈ 0).

Against the field's defaults (issue 6, item 4): the same trained model sampled with Euler–Maruyama on
``uniform_times(1000)`` (HDM's default) and ``uniform_times(250)`` (DDO's) against the default sampler
(``--quick``: 100 and 25 steps, to stay under a minute),
spectrum error (shared band) and wall time, at 32² and 64² with the same samples count and seed.

    OMP_NUM_THREADS=1 python benchmarks/resolution_transfer.py [--quick] [--seconds S] [--cache-dir DIR]

writes ``benchmarks/results/resolution_transfer.json`` and ``resolution_transfer_<data>.png`` (spectra of
samples, solid, and of the data, dashed, per resolution; one sample per resolution); ``--only grf|navier_stokes``
runs one data set and merges it into the JSON. ``--quick``: ``..._quick``; CI-sized,
under a minute: trained at 16² for a few seconds, sampled at 16²–128², NS from a short coarse solve).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from hilbert_diffusion import Matern, PeriodicBasis
from hilbert_diffusion.checkpoint import TrainedRun
from hilbert_diffusion.cli import default_sde
from hilbert_diffusion.datasets import gaussian_random_fields, navier_stokes
from hilbert_diffusion.metrics import radial_spectrum, spectrum_error
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.sampling import euler_maruyama, exponential_multistep
from hilbert_diffusion.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"
BASIS = PeriodicBasis(2)
GRF_SPECTRUM = Matern(alpha=2.0, tau=3.0)
RATIO_TARGET = 1.2


@dataclass(frozen=True)
class Setting:
    """Sizes of one run (full or quick)."""

    train_resolution: int
    resolutions: tuple[int, ...]
    samples: tuple[int, ...]  # per resolution
    num_grf: int
    ns_data: dict  # one navier_stokes() call at the reference grid
    ns_held_out: int  # the last fields of it are the reference, the rest (downsampled) the training set
    model: ScoreFNOConfig
    train: TrainConfig
    seconds: float
    baseline_resolutions: tuple[int, ...]
    baseline_samples: int
    em_steps: tuple[int, int] = (1000, 250)  # HDM's and DDO's Euler–Maruyama step counts
    band_top: int = 64  # the beyond-Nyquist band ends here (or at the reference's last complete shell)


FULL = Setting(
    train_resolution=32,
    resolutions=(32, 64, 128, 256),
    samples=(64, 64, 16, 8),
    num_grf=2000,
    ns_data=dict(num=224, resolution=128, seed=0, viscosity=1e-4, time_step=0.005),
    ns_held_out=32,
    model=ScoreFNOConfig(hidden_channels=32, n_layers=4, n_modes=12, embedding_dim=64),
    train=TrainConfig(steps=4000, batch_size=32, lr=2e-3, warmup_steps=100, ema_decay=0.995, checkpoint_every=0,
                      figure_samples=0),
    seconds=240.0,
    baseline_resolutions=(32, 64),
    baseline_samples=16,
)
QUICK = Setting(
    train_resolution=16,
    resolutions=(16, 32, 64, 128),
    samples=(16, 16, 8, 4),
    num_grf=300,
    ns_data=dict(num=64, resolution=32, seed=0, solver_resolution=32, horizon=2.0, time_step=0.05),
    ns_held_out=16,
    model=ScoreFNOConfig(hidden_channels=8, n_layers=2, n_modes=6, embedding_dim=16),
    train=TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=10, ema_decay=0.9, checkpoint_every=0,
                      figure_samples=0),
    seconds=8.0,
    baseline_resolutions=(16, 32),
    baseline_samples=8,
    em_steps=(100, 25),
    band_top=32,
)


# --------------------------------------------------------------------------------------- references
def exact_grf_spectrum(resolution: int) -> tuple[Tensor, Tensor]:
    """The exact expected radial spectrum of the Matérn GRF at ``resolution``²: a field whose
    coefficients are ``sqrt(q(λ_k))`` has ``|c_k|² = E|c_k|²`` (real, symmetric: a valid real field)."""
    grid = BASIS.grid(resolution)
    root = GRF_SPECTRUM(BASIS.eigenvalues(grid)).sqrt()
    field = BASIS.inverse(root.to(torch.complex128)[None, None], grid)
    return radial_spectrum(field, BASIS)


def slope(spec: tuple[Tensor, Tensor], low: float, high: float) -> float:
    """Least-squares slope of ``log E`` against ``log k`` over shells ``low < k ≤ high``."""
    k, e = spec
    sel = (k > low) & (k <= high + 1e-9)
    x, y = k[sel].log(), e[sel].clamp_min(1e-300).log()
    dx = x - x.mean()
    return float((dx * (y - y.mean())).sum() / (dx**2).sum())


def band_energy(spec: tuple[Tensor, Tensor], low: float, high: float) -> float:
    k, e = spec
    return float(e[(k > low) & (k <= high + 1e-9)].sum())


# --------------------------------------------------------------------------------------- sampling
def draw(run: TrainedRun, sampler: Callable, times: Tensor, num: int, resolution: int, seed: int) -> tuple[Tensor, float]:
    """``num`` samples in original units at ``resolution``² and the wall time of the whole draw."""
    gen = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    x = run.sde.prior_sample(num, resolution, generator=gen)
    with torch.no_grad():
        x = sampler(run.model, run.sde, x, times, generator=gen)
    seconds = time.perf_counter() - start
    return run.normalization.decode(x), seconds


def fit_budget(data: Tensor, sde, setting: Setting) -> TrainConfig:
    """Fit the cosine schedule to the wall-clock budget: time a few steps on this machine, as loaded now."""
    config = setting.train
    if setting.seconds < 30:
        return config
    stamps: list[float] = []
    train(data, sde=sde, model=setting.model, config=replace(config, steps=25), progress=False,
          callback=lambda step, loss: stamps.append(time.monotonic()))
    per_step = float(torch.tensor(stamps[5:], dtype=torch.float64).diff().median())
    return replace(config, steps=max(200, min(config.steps, int(0.95 * setting.seconds / per_step))))


def evaluate(name: str, run: TrainedRun, reference: Callable[[int], tuple[Tensor, Tensor]],
             floor_fields: Callable[[int, int], Tensor], setting: Setting, *, k_cap: float) -> dict:
    """Spectra, errors, ratios and beyond-Nyquist statistics per resolution, and the EM baselines."""
    n0 = setting.train_resolution
    nyq = n0 // 2  # shells 0 < k ≤ nyq - 1 are complete on the training grid
    kmax = nyq - 1
    times = exponential_multistep.times()
    rows, spectra = [], {}
    base_samples = None
    for resolution, num in zip(setting.resolutions, setting.samples):
        x, seconds = draw(run, exponential_multistep, times, num, resolution, seed=100)
        if resolution == n0:
            base_samples = x
        ref = reference(resolution)
        spec = radial_spectrum(x, BASIS)
        err = spectrum_error(spec, ref, kmax=kmax)
        err0 = spectrum_error(radial_spectrum(base_samples[:num], BASIS), reference(n0), kmax=kmax)
        floor = spectrum_error(radial_spectrum(floor_fields(num, n0), BASIS), reference(n0), kmax=kmax)
        row = {
            "resolution": resolution, "samples": num, "seconds": round(seconds, 2),
            "spectrum_error": round(err, 4), "error_at_training_resolution": round(err0, 4),
            "ratio": round(err / err0, 3), "passes_ratio": err / err0 <= RATIO_TARGET,
            "noise_floor": round(floor, 4),
        }
        high = min(setting.band_top, float(spec[0][-1]), float(ref[0][-1]), k_cap)
        if high >= nyq + 3:
            row["beyond_nyquist"] = {
                "band": [nyq, high],
                "slope_samples": round(slope(spec, nyq, high), 3),
                "slope_reference": round(slope(ref, nyq, high), 3),
                "energy_ratio": round(band_energy(spec, nyq, high) / band_energy(ref, nyq, high), 3),
            }
        rows.append(row)
        spectra[resolution] = {"k": spec[0].tolist(), "samples": spec[1].tolist(), "reference": ref[1].tolist(),
                               "one_sample": x[0, 0].float()}
    baselines = []
    hdm, ddo = setting.em_steps
    for resolution in setting.baseline_resolutions:
        ref = reference(resolution)
        for label, sampler, steps in (
            ("exponential_multistep + default_times(48) [default]", exponential_multistep, None),
            (f"euler_maruyama, {hdm} uniform steps [HDM: 1000]", euler_maruyama, hdm),
            (f"euler_maruyama, {ddo} uniform steps [DDO: 250]", euler_maruyama, ddo),
        ):  # each on its own grid, sampler.times(steps) (None: its default steps)
            x, seconds = draw(run, sampler, sampler.times(steps), setting.baseline_samples, resolution, seed=200)
            baselines.append({
                "resolution": resolution, "sampler": label, "nfe": sampler.evaluations(steps),
                "samples": setting.baseline_samples,
                "seconds": round(seconds, 2),
                "spectrum_error": round(spectrum_error(radial_spectrum(x, BASIS), ref, kmax=kmax), 4),
            })
        print(f"  [{name}] baselines at {resolution}² done", file=sys.stderr, flush=True)
    return {"rows": rows, "baselines": baselines, "spectra": spectra}


# --------------------------------------------------------------------------------------- data sets
def run_grf(setting: Setting) -> dict:
    n0 = setting.train_resolution
    sde = default_sde(BASIS, (n0, n0))
    data = gaussian_random_fields(setting.num_grf, n0, spectrum=GRF_SPECTRUM, basis=BASIS, seed=0)
    config = fit_budget(data.data, sde, setting)
    start = time.monotonic()
    run = train(data, sde=sde, model=setting.model, config=config, progress=False, max_seconds=setting.seconds)
    train_seconds = time.monotonic() - start
    exact = {}

    def reference(resolution: int):
        if resolution not in exact:
            exact[resolution] = exact_grf_spectrum(resolution)
        return exact[resolution]

    def floor_fields(num: int, resolution: int) -> Tensor:
        return gaussian_random_fields(num, resolution, spectrum=GRF_SPECTRUM, basis=BASIS, seed=999).data

    result = evaluate("grf", run, reference, floor_fields, setting, k_cap=math.inf)
    result["train"] = {"fields": setting.num_grf, "steps": run.step, "seconds": round(train_seconds, 1),
                       "batch_size": config.batch_size}
    result["reference"] = "exact: E(s) = sum over shell s of m_k q(lambda_k), q = Matern(alpha=2, tau=3)"
    return result


def run_navier_stokes(setting: Setting, cache_dir: str | None) -> dict:
    n0 = setting.train_resolution
    sde = default_sde(BASIS, (n0, n0))
    start = time.monotonic()
    fields = navier_stokes(**setting.ns_data, cache_dir=cache_dir, progress=False).data
    held = fields[-setting.ns_held_out:]
    data = BASIS.resample(fields[: -setting.ns_held_out], n0).float()
    data_seconds = time.monotonic() - start
    config = fit_budget(data, sde, setting)
    start = time.monotonic()
    run = train(data, sde=sde, model=setting.model, config=config, progress=False, max_seconds=setting.seconds)
    train_seconds = time.monotonic() - start
    solver = setting.ns_data.get("solver_resolution", 128)
    cutoff = (solver - 1) // 3  # the solver's 2/3 rule: no energy beyond |k_i| ≤ cutoff

    def reference(resolution: int):
        return radial_spectrum(BASIS.resample(held.to(torch.float64), resolution), BASIS)

    def floor_fields(num: int, resolution: int) -> Tensor:
        return data[:num]

    result = evaluate("navier_stokes", run, reference, floor_fields, setting, k_cap=cutoff)
    result["train"] = {"fields": int(data.shape[0]), "steps": run.step, "seconds": round(train_seconds, 1),
                       "batch_size": config.batch_size, "data_seconds_incl_cache": round(data_seconds, 1)}
    result["reference"] = (f"{held.shape[0]} held-out fields at {held.shape[-1]}² (not in the training set), "
                           f"band-limited resampling to each grid; solver 2/3 rule: |k_i| ≤ {cutoff}")
    return result


# --------------------------------------------------------------------------------------- output
def figure(results: dict, path: Path, setting: Setting) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(results)
    cols = 1 + len(setting.resolutions)
    fig = Figure(figsize=(3.0 * cols, 3.0 * len(names)))
    for i, name in enumerate(names):
        spectra = results[name]["spectra"]
        ax = fig.add_subplot(len(names), cols, i * cols + 1)
        for j, (resolution, s) in enumerate(spectra.items()):
            k = torch.tensor(s["k"])
            color = f"C{j}"
            ax.loglog(k[1:], torch.tensor(s["samples"])[1:], color=color, lw=1.2, label=f"samples {resolution}²")
            ax.loglog(k[1:], torch.tensor(s["reference"])[1:], color="k", lw=0.7, ls="--", zorder=3)
        ax.axvline(setting.train_resolution / 2, color="k", lw=0.6, ls=":")
        ax.set_title(f"{name}: spectra (black dashed: data)", fontsize=8)
        ax.set_xlabel("k")
        ax.legend(fontsize=6)
        for j, (resolution, s) in enumerate(spectra.items()):
            ax = fig.add_subplot(len(names), cols, i * cols + 2 + j)
            img = s["one_sample"]
            vmax = float(img.abs().max()) or 1.0
            ax.imshow(img.numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, origin="lower")
            ax.set_title(f"{name} sample {resolution}²", fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, path)


def table(results: dict) -> str:
    lines = [f"{'data':<14}{'N':>5}{'n':>4}{'err':>8}{'err@32':>8}{'ratio':>7}{'floor':>7}"
             f"{'band':>10}{'slope S':>9}{'slope D':>9}{'E ratio':>8}{'sec':>7}"]
    for name, result in results.items():
        for row in result["rows"]:
            b = row.get("beyond_nyquist")
            extra = (f"{'(%g,%g]' % tuple(b['band']):>10}{b['slope_samples']:>9.2f}{b['slope_reference']:>9.2f}"
                     f"{b['energy_ratio']:>8.2f}") if b else f"{'-':>10}{'':>9}{'':>9}{'':>8}"
            lines.append(f"{name:<14}{row['resolution']:>5}{row['samples']:>4}{row['spectrum_error']:>8.3f}"
                         f"{row['error_at_training_resolution']:>8.3f}{row['ratio']:>7.2f}{row['noise_floor']:>7.3f}"
                         f"{extra}{row['seconds']:>7.1f}")
    lines.append("")
    lines.append(f"{'data':<14}{'N':>5}  {'sampler':<44}{'NFE':>6}{'err':>8}{'sec':>8}")
    for name, result in results.items():
        for row in result["baselines"]:
            lines.append(f"{name:<14}{row['resolution']:>5}  {row['sampler']:<44}{row['nfe']:>6}"
                         f"{row['spectrum_error']:>8.3f}{row['seconds']:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    parser.add_argument("--seconds", type=float, default=None, help="training budget per data set")
    parser.add_argument("--cache-dir", default=None, help="Navier–Stokes data cache (default: the package's)")
    parser.add_argument("--only", choices=("grf", "navier_stokes"), default=None, help="run one data set")
    args = parser.parse_args(argv)
    setting = QUICK if args.quick else FULL
    if args.seconds is not None:
        setting = replace(setting, seconds=args.seconds)
    torch.manual_seed(0)
    wall = time.monotonic()
    results = {}
    if args.only in (None, "grf"):
        results["grf"] = run_grf(setting)
    if args.only in (None, "navier_stokes"):
        results["navier_stokes"] = run_navier_stokes(setting, args.cache_dir)
    stem = "resolution_transfer_quick" if args.quick else "resolution_transfer"
    for name, result in results.items():
        figure({name: result}, RESULTS / f"{stem}_{name}.png", setting)
        for s in result["spectra"].values():
            s.pop("one_sample")
        result["machine"] = {"load_average": list(os.getloadavg()), "wall_seconds": round(time.monotonic() - wall, 1)}
    out = RESULTS / f"{stem}.json"
    if args.only is not None and out.exists():  # merge: the data sets can run separately
        previous = json.loads(out.read_text()).get("results", {})
        results = {**{k: v for k, v in previous.items() if k != args.only}, **results}
    document = {
        "description": "resolution transfer of a score operator trained at the training resolution; "
                       "spectrum error on the shared band 0 < k < N_train/2, ratio to the training resolution "
                       f"(target <= {RATIO_TARGET}), beyond-Nyquist slope and energy ratio; EM baselines",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/resolution_transfer.py{' --quick' if args.quick else ''}",
        "train_resolution": setting.train_resolution,
        "sde": "hilbert_diffusion.cli.default_sde(PeriodicBasis(2), train grid): kappa = 0, Matern noise",
        "model": {k: v for k, v in vars(setting.model).items()},
        "default_sampler": "exponential_multistep (order 3) on default_times(48), 48 NFE",
        "results": results,
        "wall_seconds": round(time.monotonic() - wall, 1),
        "machine": {"threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cpu": platform.machine(), "load_average": list(os.getloadavg())},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1))
    os.replace(tmp, out)
    print(table(results))
    print(f"wrote {out} and {stem}_<data>.png in {document['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
