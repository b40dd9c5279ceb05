"""Zero-shot restoration against the exact Gaussian posterior.

The model is the :class:`~hilbert_diffusion.GaussianOracle` (the exact denoiser of Gaussian data ``N(m, C)``,
``C`` diagonal in the basis) and every observation is linear-Gaussian, ``y = A x + σ_y ε``, so the true
posterior is Gaussian and :func:`~hilbert_diffusion.restoration.exact_gaussian_posterior` computes it by
dense linear algebra. Every error below is therefore the conditional sampler's own (plus the finite-step
error of its unconditional part, reported separately as the ``floor``).

Settings: the periodic interval with 64 points (data ``Matern(2, τ=8)`` plus a smooth mean, noise
``Q = Matern(1, τ=8)``) and the periodic square at 16×16 (``Matern(2.5, τ=8)``, ``Q = Matern(1.5, τ=8)``):
the forward noise is rougher than the data, as in DDO; ``StochasticHeatSDE`` with the cosine schedule and three
processes (``PROCESSES``, ``κ λ_max`` at the grid): ``κ = 0`` (DDO: one ``a(t)`` for every mode), HDM's heat ``¼``
and IHDM-like strong heat ``25`` (mode-dependent ``a_k(t)``: the filtering SMC does not apply there but to operators
diagonal in the basis, and is skipped); ``power_times(100, ρ=2, t_end=1e-4)``. Tasks: a box hiding ``[¼, ¾)^d``, 80 % of the points
missing at random, spectral super-resolution ×4, and in 1-D also the random mask with ``σ_y = 0.1``,
spectral ×2, block averaging ×4 and a heat blur (``τ = 2e-3``) with ``σ_y = 0.02``. Methods: RePaint
(``U = 1``; ``U = 5`` on 1-D inpainting), DDNM (DDNM⁺ when ``σ_y > 0``), DPS (``ζ = 1``), the filtering SMC
(12 particles in 1-D, 8 in 2-D), covariance guidance and, under heat, the twisted SMC with ``TWISTED`` = 2 particles
(200 evaluations per draw).

Per task and method, over ``truths`` ground truths drawn from the prior (``samples`` posterior draws each;
the filtering SMC draws half as many):

* ``mean err``: relative L² error ``‖x̄ - μ‖ / ‖μ‖`` of the sample mean, averaged over the truths (``mc``: its
  Monte Carlo expectation ``sqrt(Σ w σ² / n) / ‖μ‖`` for exact samples); ``bias``: its systematic part,
  ``sqrt(Σ (‖x̄ - μ‖² - Σ w s² / n)) / sqrt(Σ ‖μ‖²)`` (the sample variance ``s²`` removes the Monte Carlo part);
* ``std``: ``sqrt(Σ s² / Σ σ²)`` over the points the observation does not determine;
* ``vs floor``: mean error / std ratio against the exact posterior of the law the unconditional bridge
  sampler actually draws at this step count (``gaussian_sampler_law``); ``floor``: that law's std ratio to
  the exact one (the finite-step error no conditional method can remove);
* ``cal90``: the fraction of true held-out values inside the pointwise 5–95 % sample interval;
* ``NFE``: model evaluations per returned sample; ``time``: wall-clock seconds.

The ``exact`` rows apply the same statistics to draws of the exact posterior: the Monte Carlo reference
for every column (calibration included: with a few strongly correlated truths it scatters around 0.9).

Targets (issue 5, and issue 16 under heat on every operator, at ≤ 2× κ = 0's evaluations): the best method ≤ 5 %
mean error and std ratio in [0.85, 1.15], exact to Monte Carlo error on spectral super-resolution; calibration
0.85–0.95. 8 truths with 512 draws each in 1-D (the Monte Carlo part of the mean error stays under 5 % on the box),
128 in 2-D. ``--process``, ``--ndim``, ``--task``, ``--method`` (label prefix) and ``--truths`` run a subset and keep
the previous result's other rows (each row records its ``truths``; a row is replaced by one of the same process,
setting, task, method and truths; the configuration of the processes not run is kept as ``kept_from_previous_run``),
e.g. the coverage checks with 48 truths beside the 8-truth rows.

    python benchmarks/restoration_exact.py [--quick] [--process κ=0|heat ¼|heat 25 ...] [--ndim 1|2] [--task LABEL]
        [--method PREFIX] [--truths N]

prints the table and writes ``benchmarks/results/restoration_exact.json`` and ``restoration_exact.png``
(observation, samples, mean and std against the exact posterior, under ``κ = 0`` and strong heat; a partial run draws
the panels it ran into ``restoration_exact_subset.png``); ``--quick``: 1-D, three tasks, fewer steps and samples,
``..._quick.json/.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from hilbert_diffusion import CosineSchedule, GaussianOracle, Matern, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.restoration import (
    BlockAverage,
    GaussianPosterior,
    HeatBlur,
    ObservationOperator,
    SpectralDownsample,
    box_mask,
    covariance_guidance,
    ddnm,
    dps,
    exact_gaussian_posterior,
    filtering_smc,
    random_mask,
    repaint,
    twisted_smc,
)
from hilbert_diffusion.sampling import exponential_ancestral, gaussian_sampler_law, power_times

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Method:
    label: str
    sampler: Callable
    options: dict
    noisy: bool = True  # whether the method models σ_y > 0
    fraction: float = 1.0  # of the samples per truth it draws (the expensive methods draw fewer)
    inpainting_only: bool = False  # run on the inpainting tasks only (to bound the run time)


@dataclass(frozen=True)
class Task:
    label: str
    make: Callable[[PeriodicBasis, tuple[int, ...]], ObservationOperator]
    inpainting: bool


def methods(quick: bool, ndim: int, *, heat: bool = False) -> list[Method]:
    """Every method; under heat without RePaint's resampling (``U = 5`` costs 5× and leaves RePaint 30–40 % off at
    ``κ = 0``: not a candidate, and the run is bounded)."""
    particles = 8 if quick or ndim == 2 else 12
    resampling = ndim == 1 and not heat
    return [
        Method("repaint", repaint, {}, noisy=False),
        *([Method("repaint U=5", repaint, {"resample": 5}, noisy=False, inpainting_only=True)] if resampling else []),
        Method("ddnm", ddnm, {}),
        Method("dps ζ=1", dps, {"step_size": 1.0}),
        Method(f"smc P={particles}", filtering_smc, {"particles": particles}, fraction=0.5),
        Method("guidance", covariance_guidance, {}),
        *([Method(f"twisted P={TWISTED}", twisted_smc, {"particles": TWISTED})] if heat else []),
    ]


#: particles of the twisted SMC (heat only): 2 × 100 steps = 200 evaluations per draw, ≤ 2× every κ = 0 method's
#: (covariance guidance 100, the filtering SMC 800–1200); it draws as many samples per truth as guidance (its mean
#: error is Monte Carlo error: fewer draws would raise it)
TWISTED = 2


def tasks(ndim: int, quick: bool) -> list[Task]:
    half = [0.25] * ndim, [0.75] * ndim
    fraction = lambda basis, grid, **kw: random_mask(
        basis, grid, observed_fraction=0.2, generator=torch.Generator().manual_seed(1), **kw
    )
    low = lambda grid, f: tuple(n // f for n in grid)
    all_tasks = [
        Task("box", lambda b, g: box_mask(b, g, low=half[0], high=half[1]), True),
        Task("random 80%", fraction, True),
        Task("random 80% σ=0.1", lambda b, g: fraction(b, g, noise_std=0.1), True),
        Task("spectral ×2", lambda b, g: SpectralDownsample(basis=b, resolution=low(g, 2)), False),
        Task("spectral ×4", lambda b, g: SpectralDownsample(basis=b, resolution=low(g, 4)), False),
        Task("block ×4", lambda b, g: BlockAverage(basis=b, resolution=low(g, 4)), False),
        Task("heat blur σ=0.02", lambda b, g: HeatBlur(basis=b, time=2e-3, noise_std=0.02), False),
    ]
    if quick:
        return [all_tasks[i] for i in (0, 1, 4)]
    if ndim == 2:
        return [all_tasks[i] for i in (0, 1, 4)]
    return all_tasks


#: the forward processes compared, by ``κ λ_max`` at the grid: DDO's (every mode shares ``a(t)``), HDM's heat
#: (``¼``, as ``benchmarks/quadratic.py`` and the command line's heat), and IHDM-like strong heat, where the finest mode
#: dissipates 26× faster than the mean and its stationary noise is 26× smaller.
PROCESSES = {"κ=0": 0.0, "heat ¼": 0.25, "heat 25": 25.0}


def setting(ndim: int, *, kappa_nyquist: float = 0.0) -> tuple[GaussianOracle, tuple[int, ...]]:
    basis = PeriodicBasis(ndim)
    grid = basis.grid(64 if ndim == 1 else 16)
    kappa = kappa_nyquist / float(basis.eigenvalues(grid).max())  # κ λ_max = kappa_nyquist
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=ndim / 2 + 0.5, tau=8.0), kappa=kappa, decay=CosineSchedule())
    x = torch.arange(grid[0], dtype=torch.float64) / grid[0]
    mean = (0.5 * torch.sin(2 * math.pi * x)).reshape(1, -1, *[1] * (ndim - 1)).expand(1, *grid).clone()
    return GaussianOracle(sde, Matern(alpha=ndim / 2 + 1.5, tau=8.0), mean=mean), grid


class Counter:
    """The oracle, counting the rows it evaluates."""

    def __init__(self, model) -> None:
        self.model, self.rows = model, 0
        self.data_covariance = model.data_covariance  # the spectrum covariance guidance reads from the model

    def __call__(self, x, t):
        self.rows += x.shape[0]
        return self.model(x, t)


def _unknown(posterior: GaussianPosterior) -> torch.Tensor:
    return posterior.std > 1e-3 * posterior.std.max()


def _scores(samples: torch.Tensor, truth: torch.Tensor, exact: GaussianPosterior, reference: GaussianPosterior, basis) -> dict:
    """Metrics of ``samples`` ``(truths, n, 1, *grid)`` against per-truth exact posteriors (means ``(truths, 1, *grid)``)."""
    n = samples.shape[1]
    mean, std = samples.mean(1), samples.std(1)
    unknown = _unknown(exact)

    def against(post: GaussianPosterior) -> tuple[float, float]:
        err = (basis.norm(mean - post.mean) / basis.norm(post.mean)).mean()
        ratio = std[:, 0][:, unknown].pow(2).mean() / post.std[unknown].pow(2).mean()
        return float(err), float(ratio.sqrt())

    mean_err, std_ratio = against(exact)
    # the systematic part: E‖x̄ - μ‖² = ‖bias‖² + Σ w σ² / n, with σ² estimated by the sample variances
    squared = basis.norm(mean - exact.mean).pow(2) - basis.integrate(std.pow(2)) / n
    bias = float(squared.sum().clamp_min(0).sqrt() / basis.norm(exact.mean).pow(2).sum().sqrt())
    floor_err, floor_ratio = against(reference)
    lo, hi = torch.quantile(samples, torch.tensor([0.05, 0.95], dtype=samples.dtype), dim=1)
    inside = ((truth >= lo) & (truth <= hi))[:, 0][:, unknown]
    mc = (basis.norm(exact.std[None]) / math.sqrt(n) / basis.norm(exact.mean)).mean()
    return {
        "mean_error": mean_err,
        "mc": float(mc),
        "bias": bias,
        "std_ratio": std_ratio,
        "mean_error_vs_floor": floor_err,
        "std_ratio_vs_floor": floor_ratio,
        "calibration90": float(inside.double().mean()),
    }


def run_task(
    oracle, grid, task: Task, method_list: list[Method], *, steps: int, truths: int, samples: int, seed: int,
    process: str = "κ=0", times: torch.Tensor | None = None,
) -> list[dict]:
    """Rows of every method on one task, on ``times`` (default ``power_times(steps, ρ=2, t_end=1e-4)``)."""
    basis, sde = oracle.basis, oracle.sde
    op = task.make(basis, grid)
    gen = torch.Generator().manual_seed(seed)
    truth = oracle.sample_data(truths, grid, generator=gen, dtype=torch.float64)
    y = op.observe(truth, generator=gen)
    exact = exact_gaussian_posterior(oracle, op, y, grid)
    times = power_times(steps, rho=2.0, t_end=1e-4) if times is None else times
    law_mean, law_var = gaussian_sampler_law(exponential_ancestral, oracle, sde, times, resolution=grid)
    reference = exact_gaussian_posterior(oracle, op, y, grid, prior_mean=basis.inverse(law_mean, grid), prior_variance=law_var[0])
    unknown = _unknown(exact)
    floor = float((reference.std[unknown].pow(2).mean() / exact.std[unknown].pow(2).mean()).sqrt())
    # the exact row: the same statistics for draws of the exact posterior (the Monte Carlo reference)
    eigenvalues, vectors = torch.linalg.eigh(exact.covariance)
    root = vectors * eigenvalues.clamp_min(0).sqrt()
    white = torch.randn((truths, samples, root.shape[0]), generator=gen, dtype=torch.float64)
    draws = exact.mean[:, None] + (white @ root.T).reshape(truths, samples, 1, *grid)
    rows = [{
        "task": task.label, "method": "exact", **_scores(draws, truth, exact, reference, basis), "samples": truths * samples,
        "truths": truths,
        "floor_std_ratio": floor, "unknown_points": int(unknown.sum()), "observations": int(op.observed_points(grid).sum()),
    }]
    for method in method_list:
        row = {"task": task.label, "method": method.label, "truths": truths}
        if method.inpainting_only and not task.inpainting:
            continue
        if op.noise_std > 0 and not method.noisy:
            rows.append({**row, "skipped": "treats the observation as exact (σ_y ignored): A⁺ amplifies the noise"})
            continue
        if method.sampler is filtering_smc and not op.diagonal and getattr(sde, "kappa", 0.0) > 0:
            rows.append({**row, "skipped": "exact only when A commutes with a(t) (κ = 0 or A diagonal)"})
            continue
        per_truth = int(samples * method.fraction)
        counter = Counter(oracle)
        x = sde.prior_sample(truths * per_truth, grid, generator=gen, dtype=torch.float64)
        start = time.perf_counter()
        y_batch = y.repeat_interleave(per_truth, 0)
        out = method.sampler(counter, sde, x, times, operator=op, y=y_batch, generator=gen, **method.options)
        elapsed = time.perf_counter() - start
        scores = _scores(out.reshape(truths, per_truth, *out.shape[1:]), truth, exact, reference, basis)
        rows.append({**row, **scores, "samples": truths * per_truth, "nfe": counter.rows / len(out), "seconds": elapsed,
                     "floor_std_ratio": floor})
        if (process, task.label) in FIGURE_TASKS and basis.ndim == 1:
            entry = {"truth": truth[0, 0], "y": y[0, 0], "op": op, "exact": exact, "grid": grid, "methods": {}}
            key = f"{process}, {task.label}"
            FIGURE.setdefault(key, entry)
            FIGURE[key]["methods"][method.label] = out[:per_truth, 0]
    return rows


FIGURE_TASKS = (("κ=0", "box"), ("κ=0", "random 80%"), ("κ=0", "spectral ×4"), ("heat 25", "box"),
                ("heat 25", "block ×4"), ("heat 25", "heat blur σ=0.02"))
COLORS = {"repaint": "tab:blue", "repaint U": "tab:orange", "ddnm": "tab:green", "dps": "tab:red", "smc": "tab:purple",
          "guidance": "tab:brown", "twisted": "tab:pink"}
FIGURE: dict = {}


def print_table(rows: list[dict]) -> None:
    head = (
        f"{'process':8s} {'setting':8s} {'task':18s} {'method':12s} {'truths':>6s} {'mean err':>8s} {'mc':>6s} {'bias':>6s} {'std':>6s} {'vs floor':>13s} "
        f"{'floor':>6s} {'cal90':>6s} {'NFE':>6s} {'time':>6s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        lead = f"{r['process']:8s} {r['setting']:8s} {r['task']:18s} {r['method']:12s} {r.get('truths', ''):>6}"
        if "skipped" in r:
            print(f"{lead} n/a: {r['skipped']}")
        else:
            vs = f"{r['mean_error_vs_floor']:.3f}/{r['std_ratio_vs_floor']:.3f}"
            cost = f"{r['nfe']:6.0f} {r['seconds']:6.1f}" if "nfe" in r else ""
            print(f"{lead} {r['mean_error']:8.4f} {r['mc']:6.4f} {r['bias']:6.4f} {r['std_ratio']:6.3f} {vs:>13s} "
                  f"{r['floor_std_ratio']:6.3f} {r['calibration90']:6.3f} {cost}")


def figure(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(FIGURE), 3, figsize=(15, 3.2 * len(FIGURE)), squeeze=False)
    for row, (label, data) in zip(axes, FIGURE.items()):
        grid, op, exact = data["grid"], data["op"], data["exact"]
        xs = torch.arange(grid[0]) / grid[0]
        best = list(data["methods"])[-1]
        row[0].plot(xs, data["methods"][best][:6].T, color="tab:blue", alpha=0.4, lw=0.8)
        row[0].plot(xs, data["truth"], "k", lw=1.5, label="truth")
        seen = op.observed_points(grid)
        low = op.observation_grid(grid)[0]
        points = (torch.arange(low) / low)[seen]
        row[0].plot(points, data["y"][seen], "o", color="tab:red", ms=3, label="observation (at its grid points)")
        row[0].set_title(f"{label}: truth, observation, samples ({best})")
        row[0].legend(fontsize=7)
        row[1].plot(xs, exact.mean[0, 0], "k", lw=2.5, label="exact")
        row[2].plot(xs, exact.std, "k", lw=2.5, label="exact")
        for name, out in data["methods"].items():
            color = COLORS[name.split()[0] + (" U" if "U=" in name else "")]
            row[1].plot(xs, out.mean(0), lw=1, color=color, label=name)
            row[2].plot(xs, out.std(0), lw=1, color=color, label=name)
        row[1].set_title("posterior mean")
        row[2].set_title("pointwise std")
        row[2].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _key(row: dict, truths: int) -> tuple:
    return row["process"], row["setting"], row["task"], row["method"], row.get("truths", truths)


def _merge(path: Path, rows: list[dict]) -> tuple[list[dict], dict]:
    """The previous result's rows that no row of this run replaces (same process, setting, task, method and number
    of truths; rows written before the heat settings existed are ``κ = 0``'s), then this run's; and the
    configuration each kept process was measured with."""
    if not path.exists():
        return rows, {}
    previous = json.loads(path.read_text())
    old = previous["config"].get("kept_from_previous_run", {})
    config = {k: v for k, v in previous["config"].items() if k != "kept_from_previous_run"}
    truths = lambda process: old.get(process, config).get("truths", 8)
    new = {_key(r, 0) for r in rows}
    kept = [{"process": "κ=0", "kappa_nyquist": 0.0, **r} for r in previous["rows"]]
    kept = [{**r, "truths": r.get("truths", truths(r["process"]))} for r in kept]
    kept = [r for r in kept if _key(r, 0) not in new]
    return kept + rows, {p: old.get(p, config) for p in {r["process"] for r in kept}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1-D, three tasks, 50 steps, fewer samples")
    parser.add_argument("--process", action="append", choices=list(PROCESSES),
                        help="the forward process(es) to run (κ λ_max at the grid; repeatable; default: all)")
    parser.add_argument("--task", action="append", help="run these tasks only (labels; repeatable; default: all)")
    parser.add_argument("--method", action="append",
                        help="run the methods whose label starts with this only (repeatable; default: all)")
    parser.add_argument("--ndim", type=int, action="append", choices=(1, 2), help="the settings to run (default: both)")
    parser.add_argument("--truths", type=int, help="ground truths per task (default 8; 4 with --quick)")
    args = parser.parse_args(argv)
    processes = args.process or list(PROCESSES)
    torch.set_num_threads(1)
    steps, truths = (50, 4) if args.quick else (100, 8)
    truths = args.truths or truths
    stem = "restoration_exact_quick" if args.quick else "restoration_exact"
    rows: list[dict] = []
    started = time.perf_counter()
    dims = (1,) if args.quick else tuple(args.ndim or (1, 2))
    for process, ndim in ((p, d) for p in processes for d in dims):
        oracle, grid = setting(ndim, kappa_nyquist=PROCESSES[process])
        samples = 64 if args.quick else (512 if ndim == 1 else 128)
        for i, task in enumerate(tasks(ndim, args.quick)):
            if args.task and task.label not in args.task:
                continue
            method_list = [m for m in methods(args.quick, ndim, heat=PROCESSES[process] > 0)
                           if not args.method or any(m.label.startswith(prefix) for prefix in args.method)]
            runs = run_task(oracle, grid, task, method_list, steps=steps, truths=truths, samples=samples, seed=100 + i,
                            process=process)
            print(f"{process} {ndim}-D {task.label}: {time.perf_counter() - started:.0f} s", flush=True)
            for row in runs:
                rows.append({"process": process, "kappa_nyquist": PROCESSES[process],
                             "setting": f"{ndim}-D {'×'.join(map(str, grid))}", **row})
    subset = bool(args.task or args.method or args.ndim or args.truths) or set(processes) != set(PROCESSES)
    rows, kept = _merge(RESULTS / f"{stem}.json", rows) if subset else (rows, {})
    print_table(rows)
    RESULTS.mkdir(exist_ok=True)
    config = {"steps": steps, "times": "power_times(steps, rho=2, t_end=1e-4)", "truths": truths,
              "samples_per_truth": {"1-D": 64 if args.quick else 512, "2-D": 128},
              "smc_samples_per_truth": "half of samples_per_truth (twisted: all)",
              "processes_run": processes, "tasks_run": args.task or "all", "methods_run": args.method or "all",
              "kept_from_previous_run": kept, "platform": platform.platform(), "torch": torch.__version__}
    (RESULTS / f"{stem}.json").write_text(json.dumps({"config": config, "rows": rows}, indent=1, ensure_ascii=False))
    picture = f"{stem}_subset.png" if subset else f"{stem}.png"  # a partial run keeps the full run's figure
    if FIGURE:
        figure(RESULTS / picture)
    print(f"wrote {RESULTS / f'{stem}.json'}" + (f" and {picture}" if FIGURE else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
