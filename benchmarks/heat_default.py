"""The evidence for the default forward process: κ = 0 against HDM-like and IHDM-like heat, on one budget.

Three forward processes, each the command line's stochastic heat SPDE (:func:`hilbert_diffusion.sde.default_sde`:
Matérn noise ``α = d/2 + ½``, ``τ = ½ sqrt(λ_1)``, linear β from 0.1 to 20) with heat ``κ`` set by ``κ λ_max`` at
the training grid:

* ``κ=0`` — DDO's coloured-noise VP process (every mode shares ``a(t)``);
* ``heat ¼`` — HDM's heat, ``κ λ_max = ¼`` (as ``benchmarks/quadratic.py``);
* ``heat 25`` — IHDM-like strong heat: the finest trained mode dissipates 26× faster than the mean and its noise
  variance is 26× smaller (``q_k / (1 + κ λ_k)``), so fine scales are destroyed early by dissipation with little
  noise. IHDM itself (deterministic blur, σ = 0.01 noise, a learned prior for the blurred image) is outside this
  family: its terminal law is not a known Gaussian.

Per domain one model per process, trained with the same :class:`~hilbert_diffusion.training.TrainConfig` (the same
steps, batch and seed; wall and CPU seconds measured and stored; no time grid optimised at the end), sampled with
the library default (the exponential
3M multistep method on the probability-flow ODE, ``default_times(48)``, 48 model evaluations):

* **Quadratic** (1-D curves, Neumann basis, 100 points): MMD test power with fresh repetitions
  (:func:`benchmarks.quadratic.fresh_repetitions`: new generated and new real curves per repetition); lower is
  better, about 5 is a perfect generator's;
* **GRF** and **Navier–Stokes** (periodic 2-D, trained at 32²): spectrum error
  (:func:`~hilbert_diffusion.metrics.spectrum_error`, shared band ``0 < k ≤ 15``) at 32² and at 4× (128²), and at
  128² the error on the band beyond the training Nyquist (``16 < k ≤ 63``; NS: ``≤ 21``, the 64² solver's 2/3 rule)
  against the exact spectrum (GRF) or 16 held-out fields (NS);
* **images** (``skimage.data.lfw_subset()``: 100 faces and 100 other patches of the same photographs, 25×25, Neumann
  basis; every fifth held out): the non-Gaussian statistic, the excess kurtosis of horizontal pixel differences
  (median over images; natural images: heavy-tailed edges, ≈ 5 here, a Gaussian field 0), and the mean standard
  deviation of those differences (fine-scale energy), samples against the held-out images;
* **restoration**: PSNR of the posterior mean (8 draws of covariance guidance, 30 steps, the one method exact under
  every process) on 8 held-out NS fields at 32² (×2 and ×4 super-resolution, 50 % box, 80 % of points missing) and on
  8 held-out GRFs (box and random points, beside the exact posterior mean's PSNR: the Bayes limit).

The budgets are small (about 1 CPU-minute per model on one thread, on a machine shared four ways; ``--scale S`` multiplies every training's steps):
the differences below a few model-to-model seeds' scatter are not evidence. A longer run::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/heat_default.py --scale 8

writes ``benchmarks/results/heat_default.json`` and ``heat_default.png``; ``--quick``: tiny models, seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

if __package__ in (None, ""):  # run as a file (python benchmarks/heat_default.py): make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import quadratic as qb
from benchmarks import resolution_transfer as rt
from benchmarks import restoration_navier_stokes as rns
from hilbert_diffusion import GaussianOracle, PeriodicBasis
from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.datasets import from_array, gaussian_random_fields, navier_stokes, quadratic
from hilbert_diffusion.metrics import psnr, radial_spectrum, spectrum_error
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.restoration import box_mask, covariance_guidance, exact_gaussian_posterior, random_mask
from hilbert_diffusion.sampling import default_times, exponential_multistep
from hilbert_diffusion.sde import default_sde
from hilbert_diffusion.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"
PROCESSES = {"κ=0": 0.0, "heat ¼": 0.25, "heat 25": 25.0}  # κ λ_max at the training grid


@dataclass(frozen=True)
class Plan:
    """Sizes of one run (full or quick)."""

    quadratic_model: ScoreFNOConfig
    quadratic_train: TrainConfig
    field_model: ScoreFNOConfig  # GRF, NS and images
    field_train: TrainConfig
    resolution: int  # the training grid of GRF and NS
    ns_data: dict
    ns_train: int
    repetitions: int  # fresh MMD repetitions
    curves: int
    samples: tuple[int, int]  # fields sampled at the training grid and at 4×
    image_samples: int
    sampler_steps: int  # default_times(sampler_steps) for every unconditional draw
    restoration: rns.Setting


FULL = Plan(
    quadratic_model=ScoreFNOConfig(hidden_channels=32, n_modes=16, n_layers=4, positional_embedding=True),
    quadratic_train=TrainConfig(steps=800, batch_size=128, lr=2e-3, checkpoint_every=0, figure_samples=0,
                                optimised_steps=0),
    field_model=ScoreFNOConfig(hidden_channels=32, n_layers=4, n_modes=12, embedding_dim=64),
    field_train=TrainConfig(steps=320, batch_size=32, lr=2e-3, warmup_steps=50, ema_decay=0.995, checkpoint_every=0,
                            figure_samples=0, optimised_steps=0),
    resolution=32,
    ns_data=dict(num=144, resolution=64, solver_resolution=64, viscosity=1e-4, time_step=0.005, seed=0),
    ns_train=128,
    repetitions=6,
    curves=400,
    samples=(32, 4),
    image_samples=64,
    sampler_steps=48,
    restoration=rns.FULL,
)
QUICK = Plan(
    quadratic_model=ScoreFNOConfig(hidden_channels=8, n_modes=8, n_layers=2, embedding_dim=16, positional_embedding=True),
    quadratic_train=TrainConfig(steps=10, batch_size=32, lr=3e-3, warmup_steps=5, checkpoint_every=0, figure_samples=0,
                                optimised_steps=0),
    field_model=ScoreFNOConfig(hidden_channels=8, n_layers=2, n_modes=6, embedding_dim=16),
    field_train=TrainConfig(steps=10, batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=0, figure_samples=0,
                            optimised_steps=0),
    resolution=16,
    ns_data=dict(num=24, resolution=32, solver_resolution=32, horizon=2.0, time_step=0.05, seed=0),
    ns_train=16, repetitions=2, curves=40, samples=(8, 2), image_samples=8, sampler_steps=6,
    restoration=replace(rns.QUICK, test_fields=2),
)
BASIS = rt.BASIS  # the periodic square


# --------------------------------------------------------------------------------------- training
def fit(data: Tensor, basis, kappa_nyquist: float, model: ScoreFNOConfig, config: TrainConfig) -> tuple:
    """One model for ``default_sde(basis, grid, kappa_nyquist=…)``; returns ``(run, timing record)``."""
    sde = default_sde(basis, basis.grid_of(data), kappa_nyquist=kappa_nyquist)
    wall, cpu = time.perf_counter(), time.process_time()
    run = train(data, sde=sde, model=model, config=config, progress=False)
    return run, {"steps": run.step, "batch_size": config.batch_size, "wall_seconds": round(time.perf_counter() - wall, 1),
                 "cpu_seconds": round(time.process_time() - cpu, 1)}


def _sample(run, plan: Plan, num: int, resolution, seed: int) -> Tensor:
    """``num`` draws of the library default sampler, in data units."""
    return rt.draw(run, exponential_multistep, default_times(plan.sampler_steps), num, resolution, seed)[0]


# --------------------------------------------------------------------------------------- the domains
def quadratic_domain(plan: Plan, kappa: float) -> dict:
    data = quadratic(1000, 100, seed=0)
    run, timing = fit(data.data, data.basis, kappa, plan.quadratic_model, plan.quadratic_train)
    times = default_times(plan.sampler_steps)
    sampling = qb.Sampling(f"exponential 3M, default_times({plan.sampler_steps})", exponential_multistep, times)

    def draw(num: int, resolution: int, generator: torch.Generator) -> Tensor:
        return qb.generate(run, run.model, sampling, num=num, resolution=resolution, generator=generator)[0]

    fresh = qb.fresh_repetitions(draw, resolution=100, repetitions=plan.repetitions, curves=plan.curves)
    shape = qb.shape_statistics(fresh["first"], qb.grid_points(data.basis, (100,)))
    return {"train": timing, "power": fresh["powers"], "shape": shape}


def _spectra_rows(samples: dict[int, Tensor], reference, n0: int, top: float) -> dict:
    """Spectrum errors at the training grid and at 4× (shared band), and beyond the training Nyquist at 4×."""
    kmax, fine = n0 // 2 - 1, max(samples)
    spectra = {n: radial_spectrum(x, BASIS) for n, x in samples.items()}
    beyond = _band_error(spectra[fine], reference(fine), low=n0 / 2, high=top)
    return {"error_train_grid": spectrum_error(spectra[n0], reference(n0), kmax=kmax),
            "error_4x": spectrum_error(spectra[fine], reference(fine), kmax=kmax), "error_4x_beyond_nyquist": beyond,
            "spectrum_4x": {"k": spectra[fine][0].tolist(), "samples": spectra[fine][1].tolist(),
                            "reference": reference(fine)[1].tolist()}}


def _band_error(spec: tuple[Tensor, Tensor], ref: tuple[Tensor, Tensor], *, low: float, high: float) -> float:
    """RMS log-ratio of the shell energies over ``low < k ≤ high`` (:func:`spectrum_error` on that band)."""
    keep = lambda s: (s[0][s[0] > low], s[1][s[0] > low])  # noqa: E731
    return spectrum_error(keep(spec), keep(ref), kmax=high)


def grf_domain(plan: Plan, kappa: float) -> dict:
    n0 = plan.resolution
    data = gaussian_random_fields(2000, n0, spectrum=rt.GRF_SPECTRUM, basis=BASIS, seed=0).data
    run, timing = fit(data, BASIS, kappa, plan.field_model, plan.field_train)
    samples = {n: _sample(run, plan, num, n, seed=100) for n, num in zip((n0, 4 * n0), plan.samples)}
    row = {"train": timing, **_spectra_rows(samples, rt.exact_grf_spectrum, n0, top=2 * n0 - 1)}
    return row | {"restoration": grf_restoration(run, plan)}


def grf_restoration(run, plan: Plan) -> dict:
    """PSNR of the posterior mean (covariance guidance) on held-out GRFs, beside the exact posterior mean's."""
    setting = replace(plan.restoration, resolution=plan.resolution)
    n, grid = plan.resolution, (plan.resolution,) * 2
    truth = gaussian_random_fields(setting.test_fields, n, spectrum=rt.GRF_SPECTRUM, basis=BASIS, seed=7).data
    oracle = GaussianOracle(run.sde, rt.GRF_SPECTRUM)
    operators = {"box 50%": box_mask(BASIS, grid, low=[0.25, 0.25], high=[0.75, 0.75]),
                 "random 80%": random_mask(BASIS, grid, observed_fraction=0.2, generator=torch.Generator().manual_seed(5))}
    rows, data_range = {}, float(truth.max() - truth.min())
    for label, op in operators.items():
        y = op.observe(truth.to(torch.float64))
        task = rns.Task(label, op, n // 2, ())
        draws, _ = rns.restore(run, rns.Method("guidance", covariance_guidance), task, y.float(), setting, seed=11)
        exact = exact_gaussian_posterior(oracle, op, y, grid).mean.float()
        rows[label] = {"psnr": float(psnr(draws.mean(1), truth, data_range=data_range).mean()),
                       "exact_posterior_psnr": float(psnr(exact, truth, data_range=data_range).mean())}
    return rows


def ns_domain(plan: Plan, kappa: float, fields: Tensor) -> dict:
    n0, solver = plan.resolution, plan.ns_data["solver_resolution"]
    held = fields[plan.ns_train:].to(torch.float64)
    data = BASIS.resample(fields[: plan.ns_train], n0).float()
    run, timing = fit(data, BASIS, kappa, plan.field_model, plan.field_train)
    samples = {n: _sample(run, plan, num, n, seed=100) for n, num in zip((n0, 4 * n0), plan.samples)}
    reference = lambda n: radial_spectrum(BASIS.resample(held, n), BASIS)  # noqa: E731
    row = {"train": timing, **_spectra_rows(samples, reference, n0, top=(solver - 1) // 3)}
    return row | {"restoration": ns_restoration(run, plan, held)}


def ns_restoration(run, plan: Plan, held: Tensor) -> dict:
    """PSNR of the posterior mean (covariance guidance) on held-out NS fields at the training grid."""
    setting = replace(plan.restoration, resolution=plan.resolution)
    truth = BASIS.resample(held[: setting.test_fields], plan.resolution).float()
    data_range = float(truth.max() - truth.min())
    rows = {}
    for task in rns.make_tasks(BASIS, plan.resolution):
        y = task.operator.observe(truth.to(torch.float64)).float()
        draws, _ = rns.restore(run, rns.Method("guidance", covariance_guidance), task, y, setting, seed=11)
        rows[task.label] = {"psnr": float(psnr(draws.mean(1), truth, data_range=data_range).mean())}
    return rows


def excess_kurtosis(x: Tensor) -> Tensor:
    """``E(d - d̄)⁴ / σ⁴ - 3`` of each row of ``x`` ``(num, n)`` (0 for a Gaussian)."""
    d = x.to(torch.float64)
    d = d - d.mean(1, keepdim=True)
    return d.pow(4).mean(1) / d.pow(2).mean(1) ** 2 - 3


def image_statistics(images: Tensor) -> dict:
    """Per image of ``(num, 1, H, W)``, the horizontal pixel differences: the median over images of their excess
    kurtosis (a median: a few flat images have kurtosis near 100) and the mean of their standard deviations."""
    d = (images[..., 1:] - images[..., :-1]).flatten(1)
    return {"kurtosis": float(excess_kurtosis(d).median()), "difference_std": float(d.to(torch.float64).std(1).mean())}


def faces() -> tuple[Tensor, Tensor]:
    """``skimage.data.lfw_subset()`` (shipped with scikit-image: 100 faces, then 100 non-face patches of faces'
    photographs), ``(n, 1, 25, 25)``: every fifth image held out (40), the other 160 to train."""
    from skimage.data import lfw_subset

    images = torch.tensor(lfw_subset()[:, None], dtype=torch.float32)
    held = torch.arange(len(images)) % 5 == 4
    return images[~held], images[held]


def images_domain(plan: Plan, kappa: float) -> dict:
    train_set, held = faces()
    data = from_array(train_set, basis=NeumannBasis(2), name="lfw_subset")
    model = replace(plan.field_model, positional_embedding=True)  # walls: as the command line does
    run, timing = fit(data.data, data.basis, kappa, model, plan.field_train)
    samples = _sample(run, plan, plan.image_samples, data.grid, seed=100)
    stats, reference = image_statistics(samples), image_statistics(held)
    return {"train": timing, "samples": stats, "held_out": reference, "training_set": image_statistics(train_set),
            "kurtosis_error": abs(stats["kurtosis"] - reference["kurtosis"]),
            "difference_std_ratio": stats["difference_std"] / reference["difference_std"],
            "first_samples": samples[:4, 0].tolist()}


# --------------------------------------------------------------------------------------- verdicts and output
#: per domain: (label, the row's statistic, lower is better); the winner is the process with the best value.
CRITERIA = {
    "quadratic": ("MMD power 10v10 (%)", lambda r: r["power"]["10v10"]["mean"]),
    "grf": ("spectrum error at 4×", lambda r: r["error_4x"]),
    "navier_stokes": ("spectrum error at 4×", lambda r: r["error_4x"]),
    "images": ("|Δ kurtosis| of differences", lambda r: r["kurtosis_error"]),
    "restoration": ("−mean PSNR (dB), NS and GRF", lambda r: -r["mean_psnr"]),
}


def verdicts(results: dict) -> dict:
    """The best process per criterion, with every process's value."""
    out = {}
    for domain, (label, value) in CRITERIA.items():
        values = {p: value(results[domain][p]) for p in results[domain]}
        out[domain] = {"criterion": label, "values": values, "best": min(values, key=values.get)}
    return out


def restoration_summary(results: dict) -> dict:
    """Per process: every restoration PSNR (NS and GRF tasks) and their mean."""
    out = {}
    for process in results["navier_stokes"]:
        psnrs = {f"NS {k}": v["psnr"] for k, v in results["navier_stokes"][process]["restoration"].items()}
        psnrs |= {f"GRF {k}": v["psnr"] for k, v in results["grf"][process]["restoration"].items()}
        out[process] = {"psnr": psnrs, "mean_psnr": sum(psnrs.values()) / len(psnrs)}
    return out


def table(results: dict) -> str:
    lines = [f"{'process':8s} {'quad 10v10':>11s} {'100v100':>8s} {'GRF err':>8s} {'4×':>6s} {'4× hi':>6s} "
             f"{'NS err':>7s} {'4×':>6s} {'4× hi':>6s} {'kurt':>6s} {'(held)':>6s} {'dstd':>5s} {'PSNR':>6s}"]
    for p in PROCESSES:
        q, g, n = results["quadratic"][p], results["grf"][p], results["navier_stokes"][p]
        im, r = results["images"][p], results["restoration"][p]
        lines.append(
            f"{p:8s} {q['power']['10v10']['mean']:6.1f}±{q['power']['10v10']['ci95']:4.1f} "
            f"{q['power'].get('100v100', {}).get('mean', math.nan):8.1f} {g['error_train_grid']:8.3f} {g['error_4x']:6.3f} "
            f"{g['error_4x_beyond_nyquist']:6.3f} {n['error_train_grid']:7.3f} {n['error_4x']:6.3f} "
            f"{n['error_4x_beyond_nyquist']:6.3f} {im['samples']['kurtosis']:6.2f} {im['held_out']['kurtosis']:6.2f} "
            f"{im['difference_std_ratio']:5.2f} {r['mean_psnr']:6.2f}")
    return "\n".join(lines)


def figure(results: dict, path: Path, *, resolution: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16, 7))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 4)
    colors = dict(zip(PROCESSES, ("tab:blue", "tab:orange", "tab:red")))
    for ax, domain in zip(axes[0, :2], ("grf", "navier_stokes")):
        for p, row in results[domain].items():
            spec = row["spectrum_4x"]
            ax.loglog(spec["k"][1:], spec["samples"][1:], color=colors[p], label=p)
        ax.loglog(spec["k"][1:], spec["reference"][1:], "k--", label="reference")
        ax.axvline(resolution / 2, color="grey", lw=0.5)  # the training grid's Nyquist
        ax.set_title(f"{domain}: spectrum at 4× the training grid", fontsize=9)
        ax.legend(fontsize=7)
    quad = results["quadratic"]
    axes[0, 2].bar(list(quad), [quad[p]["power"]["10v10"]["mean"] for p in quad],
                   yerr=[quad[p]["power"]["10v10"]["ci95"] for p in quad], color=[colors[p] for p in quad])
    axes[0, 2].axhline(5, color="k", lw=0.5)
    axes[0, 2].set_title("Quadratic: MMD power 10v10 (%, 5 = perfect)", fontsize=9)
    rest = results["restoration"]
    tasks = list(next(iter(rest.values()))["psnr"])
    for i, p in enumerate(rest):
        axes[0, 3].bar([j + 0.27 * i for j in range(len(tasks))], list(rest[p]["psnr"].values()), 0.27,
                       color=colors[p], label=p)
    axes[0, 3].set_xticks(range(len(tasks)), tasks, rotation=45, fontsize=6)
    axes[0, 3].set_title("restoration: PSNR of the posterior mean (dB)", fontsize=9)
    axes[0, 3].set_ylim(min(min(r["psnr"].values()) for r in rest.values()) - 3, None)
    axes[0, 3].legend(fontsize=7)
    for ax, (p, row) in zip(axes[1], results["images"].items()):
        ax.imshow(torch.tensor(row["first_samples"][0]), cmap="gray")
        ax.set_title(f"{p}: kurtosis {row['samples']['kurtosis']:.2f} (held-out {row['held_out']['kurtosis']:.2f})",
                     fontsize=8)
        ax.axis("off")
    axes[1, 3].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def headline(document: dict) -> dict[str, object]:
    return {domain: v["best"] for domain, v in document["verdicts"].items()}


def run_all(plan: Plan, cache_dir: str | None) -> dict:
    results: dict = {d: {} for d in ("quadratic", "grf", "navier_stokes", "images")}
    fields = navier_stokes(**plan.ns_data, cache_dir=cache_dir, progress=False).data
    started = time.perf_counter()
    for process, kappa in PROCESSES.items():
        for domain, run in (("quadratic", lambda: quadratic_domain(plan, kappa)), ("grf", lambda: grf_domain(plan, kappa)),
                            ("navier_stokes", lambda: ns_domain(plan, kappa, fields)),
                            ("images", lambda: images_domain(plan, kappa))):
            results[domain][process] = run()
            print(f"{process} {domain}: {time.perf_counter() - started:.0f} s", flush=True)
    results["restoration"] = restoration_summary(results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny models and few samples: seconds")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every training's steps (a longer run)")
    parser.add_argument("--cache-dir", default=None, help="data cache (default: the package's cache directory)")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error(f"--scale must be positive, got {args.scale}")
    torch.set_num_threads(1)
    plan = QUICK if args.quick else FULL
    plan = replace(plan, quadratic_train=replace(plan.quadratic_train, steps=round(plan.quadratic_train.steps * args.scale)),
                   field_train=replace(plan.field_train, steps=round(plan.field_train.steps * args.scale)))
    started = time.perf_counter()
    results = run_all(plan, args.cache_dir)
    print(table(results))
    document = {
        "config": {"processes": {p: {"kappa_lambda_max": k} for p, k in PROCESSES.items()},
                   "sde": "hilbert_diffusion.sde.default_sde(basis, training grid, kappa_nyquist=κ λ_max)",
                   "sampler": f"exponential_multistep, default_times({plan.sampler_steps})",
                   "budget": {"quadratic": {"steps": plan.quadratic_train.steps, "batch_size": plan.quadratic_train.batch_size},
                              "fields": {"steps": plan.field_train.steps, "batch_size": plan.field_train.batch_size},
                              "seconds": "per model in each row's train record (wall and CPU, one thread)"},
                   "resolution": plan.resolution, "ns_data": plan.ns_data, "ns_train": plan.ns_train,
                   "repetitions": plan.repetitions, "curves": plan.curves, "samples": plan.samples,
                   "restoration": {"method": "covariance_guidance", "steps": plan.restoration.steps,
                                   "draws": plan.restoration.samples, "fields": plan.restoration.test_fields},
                   "total_seconds": round(time.perf_counter() - started, 1), "threads": torch.get_num_threads(),
                   "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(),
                   "torch": torch.__version__},
        "verdicts": verdicts(results),
        "results": results,
    }
    stem = "heat_default_quick" if args.quick else "heat_default"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(document, indent=1, ensure_ascii=False))
    figure(results, RESULTS / f"{stem}.png", resolution=plan.resolution)
    for domain, v in document["verdicts"].items():
        print(f"{domain}: best {v['best']} by {v['criterion']}")
    print(f"total {document['config']['total_seconds']:.0f} s; wrote {RESULTS / f'{stem}.json'} and {stem}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
