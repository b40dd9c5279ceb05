"""Sampler error against the number of model evaluations (NFE), with the exact Gaussian oracle.

The model is :class:`~hilbert_diffusion.GaussianOracle` (exact denoiser of Gaussian data ``N(m, C)``,
``C`` diagonal in the basis), so every error below is the sampler's own. For the samplers that are
affine in their state and noise (Euler–Maruyama, exponential ancestral / deterministic, Heun, RK3) the
law of the output is Gaussian and diagonal, and :func:`~hilbert_diffusion.sampling.gaussian_sampler_law`
propagates its per-mode mean and variance *exactly* through the sampler's own steps (the multistep
sampler, deterministic with memory across steps, over its whole grid at once) — the numbers have no Monte
Carlo error. The predictor–corrector's step size depends on the state, so it is measured by
Monte Carlo, in the ``default`` setting only (2048 samples at 32², 256 at 128²; the ``MC floor`` row is
the same statistic for as many exact data draws — at 128² it dominates, so read that row with care).

Every run is made twice: from the exact law of ``x_1`` (``N(a(1) m, a(1)² C + v(1))``), which isolates the
sampler's discretisation error (``W2``), and from the prior ``N(0, v(1))`` as :func:`sample` does
(``W2 prior``, end to end). The prior leaves out the mean ``a(1) m``: the probability-flow ODE carries
that error to ``t = 0`` (the ``prior floor`` row: the exact flow map applied to the prior, ~5e-4 for
``default``), while the reverse SDE contracts it.

Metrics, both grid-independent:

* ``W2``: the exact 2-Wasserstein distance between the sample law and the data law (Gelbrich:
  ``W2² = Σ_k m_k (|μ_k - m_k|² + (sqrt(s_k) - sqrt(c_k))²)``), reported relative to ``sqrt(E‖x_0‖²)``;
* ``spec``: the RMS log error of the radial energy spectrum over the complete shells
  (:func:`~hilbert_diffusion.metrics.spectrum_error`).

Settings (periodic unit square, ``LinearSchedule`` β ∈ [0.1, 20]): the training benchmark's process
``StochasticHeatSDE(Q = Matern(1.5, τ=3), κ = 2e-4)`` with data ``Matern(2, τ=3)`` plus a smooth mean
(``default``), the same without heat (``ddo``, κ = 0), and data rougher than the noise (``rough``,
``Matern(1.25, τ=8)``). Resolutions 32² and 128². Target (issue 4): the best sampler at ≤ 50 NFE
matches Euler–Maruyama with 1000 uniform steps. The default sampler (exponential 3M on
``default_times(48)``) is swept over the grid's ``ρ`` and ``t_end`` at 32² for ``default`` and ``rough``.

Issue 18: ``exponential_multistep_optimised`` is the 3M sampler on a grid optimised against its exact law
(:func:`~hilbert_diffusion.optimal_times.optimise_times`) for the setting's centred data spectrum at both resolutions
at once — one grid per setting and step count, as a trained run stores one — at 10 and 16 evaluations; targets: 16
beats Euler–Maruyama with 1000 steps, 10 is within 2× of it (``issue18_targets`` per setting and resolution).
``exponential_corrected_optimised``: the same with the exponential-frame corrector (``corrector=True``), on a grid
optimised against its own exact law (``issue18_targets_corrected``).

    python benchmarks/sampler_convergence.py [--quick]

prints a table and writes ``benchmarks/results/sampler_convergence.json`` and ``.png``
(``--quick``: 16² and 32², the ``default`` setting only, 256 Monte Carlo samples, ``..._quick.json/.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from hilbert_diffusion import GaussianOracle, Matern, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.metrics import empirical_mode_variances, gaussian_w2, radial_spectrum, spectrum_error
from hilbert_diffusion.optimal_times import GaussianTarget, optimise_times
from hilbert_diffusion.sampling import (
    Sampler,
    euler_maruyama,
    exponential_ancestral,
    exponential_deterministic,
    exponential_corrected,
    exponential_multistep,
    gaussian_sampler_law,
    heun_ode,
    power_times,
    predictor_corrector,
    rk3_ode,
)

RESULTS = Path(__file__).resolve().parent / "results"
NFE_BUDGET = 50


@dataclass(frozen=True)
class Setting:
    name: str
    kappa: float
    data: Matern


SETTINGS = (
    Setting("default", 2e-4, Matern(alpha=2.0, tau=3.0)),
    Setting("ddo", 0.0, Matern(alpha=2.0, tau=3.0)),
    Setting("rough", 2e-4, Matern(alpha=1.25, tau=8.0)),
)


@dataclass(frozen=True)
class Run:
    """A sampler, run on its own time grid (``sampler.times(steps)``), and the step counts to try."""

    sampler: Sampler
    steps: tuple[int, ...]
    variant: str = ""  # tells the run apart from the sampler's others: its name is "<sampler.name>_<variant>"
    exact: bool = True
    stepwise: bool = True  # False: a deterministic sampler with memory, its law propagated over the whole grid

    @property
    def name(self) -> str:
        return f"{self.sampler.name}_{self.variant}" if self.variant else self.sampler.name


def runs(quick: bool) -> list[Run]:
    few = (4, 8, 16) if quick else (4, 8, 16, 33, 67)
    many = (10, 25, 50, 100, 200)
    multistep = (12, 24, 48) if quick else (12, 24, 36, 48, 96)
    return [
        Run(euler_maruyama, (100, 1000) if quick else (50, 100, 200, 500, 1000)),
        Run(exponential_ancestral, (10, 50) if quick else many),
        Run(exponential_deterministic, (10, 50) if quick else many),
        Run(exponential_multistep.configure(order=2), multistep, "2", stepwise=False),
        Run(exponential_multistep, multistep, stepwise=False),
        Run(heun_ode, (6, 12, 25) if quick else (6, 12, 25, 50, 100)),
        Run(rk3_ode, few),
        Run(predictor_corrector, (6, 25) if quick else (6, 12, 25), exact=False),
    ]


class Counter:
    """Wraps a model and counts its calls (one call = one evaluation of the whole batch)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.model(x, t)


def make_problem(setting: Setting) -> tuple[StochasticHeatSDE, GaussianOracle]:
    basis = PeriodicBasis(2)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.5, tau=3.0), kappa=setting.kappa)
    mean = None
    if setting.name == "default":
        u = torch.arange(16, dtype=torch.float64) / 16
        mean = 0.5 * (torch.sin(2 * math.pi * u)[:, None] * torch.cos(4 * math.pi * u)[None, :])[None]
    return sde, GaussianOracle(sde, setting.data, mean=mean)


class Target:
    """The data law at one resolution and the metrics against it."""

    def __init__(self, oracle: GaussianOracle, resolution: int) -> None:
        basis = oracle.basis
        self.basis, self.grid = basis, basis.grid(resolution)
        self.mult = basis.multiplicity(self.grid)
        self.var = oracle.data_variance(self.grid)
        field = torch.zeros((1, *self.grid), dtype=torch.float64) if oracle.mean is None else oracle.mean
        self.mean = basis.forward(basis.resample(field, self.grid))
        zero = torch.zeros((), dtype=torch.float64)
        self.scale = float(gaussian_w2(self.mean, self.var, zero, zero, self.mult))  # sqrt(E‖x_0‖²)
        self.spectrum = self._spectrum(self.mean, self.var)
        # the exact law at t = 1 (O1), where every run starts, and what starting from the prior costs
        a1 = oracle.sde.mean_factor(1.0, self.grid)
        self.initial_mean = a1 * self.mean
        self.initial_variance = oracle.marginal_variance(1.0, self.grid)
        gain = (self.var / self.initial_variance).sqrt()  # the exact flow map x_0 - m = gain (x_1 - a_1 m)
        prior = oracle.sde.prior_variance(self.grid)
        self.prior_floor = self.errors(self.mean - gain * self.initial_mean, gain**2 * prior)

    def _spectrum(self, mean: torch.Tensor, var: torch.Tensor):
        # a field whose coefficients are sqrt(E|c_k|²) has the law's mean radial spectrum
        second = (mean.abs() ** 2 + var).sqrt()
        second = second.to(torch.complex128 if mean.is_complex() else torch.float64)
        return radial_spectrum(self.basis.inverse(second, self.grid)[None], self.basis)

    def errors(self, mean: torch.Tensor, var: torch.Tensor) -> dict[str, float]:
        w2 = float(gaussian_w2(mean, var, self.mean, self.var, self.mult)) / self.scale
        kmax = float(self.spectrum[0][-1])
        spec = spectrum_error(self._spectrum(mean, var), self.spectrum, kmax=kmax) if math.isfinite(w2) else math.inf
        return {"w2": w2, "spectrum": spec}


def measure(run: Run, sde, oracle, target: Target, steps: int, *, mc_samples: int, seed: int,
            times: torch.Tensor | None = None) -> dict:
    """Errors of ``run`` with ``steps`` steps (on ``times`` if given, else its own grid), started from the exact law
    of ``x_1`` and from the prior."""
    counter = Counter(oracle)
    times = run.sampler.times(steps) if times is None else times
    resolution = target.grid
    start = time.perf_counter()
    row = {"steps": steps, "w2_from_prior": None}
    for origin in ("exact", "prior") if run.exact else ("exact",):
        counter.calls = 0
        if run.exact:
            initial = {}
            if origin == "exact":
                initial = dict(initial_mean=target.initial_mean, initial_variance=target.initial_variance)
            mean, var = gaussian_sampler_law(run.sampler, counter, sde, times, resolution=resolution,
                                             stepwise=run.stepwise, **initial)
        else:
            generator = torch.Generator().manual_seed(seed)
            if origin == "exact":
                x0 = oracle.sample_data(mc_samples, resolution, generator=generator, dtype=torch.float64)
                x, _ = sde.marginal_sample(x0, 1.0, generator=generator)
            else:
                x = sde.prior_sample(mc_samples, resolution, generator=generator, dtype=torch.float64)
            mean, var = empirical_mode_variances(run.sampler(counter, sde, x, times, generator=generator), sde.basis)
        errors = target.errors(mean, var)
        row.update({"nfe": counter.calls, "w2" if origin == "exact" else "w2_from_prior": errors["w2"]})
        if origin == "exact":
            row["spectrum"] = errors["spectrum"]
    row["seconds"] = time.perf_counter() - start
    return row


OPTIMISED_STEPS = (10, 16)
"""Step counts of the default sampler on grids optimised against its exact law (issue 18's targets: 16 evaluations
beat Euler–Maruyama with 1000, 10 are within 2× of it)."""


OPTIMISED = (Run(exponential_multistep, OPTIMISED_STEPS, "optimised", stepwise=False),
             Run(exponential_corrected, OPTIMISED_STEPS, "optimised", stepwise=False))
"""The samplers measured on grids optimised against their own exact law."""


def optimised_grids(sde, oracle, resolutions, *, corrector: bool) -> dict[int, dict]:
    """Per step count: one grid optimised for the setting's centred data spectrum at all ``resolutions`` jointly (as
    ``train`` stores for a run: its Wiener-skip spectrum, the training grid and a 4× finer one), with its timing."""
    out = {}
    for steps in OPTIMISED_STEPS:
        targets = [GaussianTarget(g, oracle.data_variance(g)[None]) for g in (oracle.basis.grid(r) for r in resolutions)]
        start = time.perf_counter()
        result = optimise_times(sde, targets, steps=steps, corrector=corrector)
        out[steps] = {"times": result.times, "seconds": time.perf_counter() - start}
    return out


def check_targets(entry: dict, name: str) -> dict:
    """Issue 18's targets on one setting and resolution for the run ``name``, for the exact-start ``w2`` and the
    end-to-end ``w2_from_prior``."""
    rows = {r["steps"]: r for r in entry["samplers"][name]}
    out = {}
    for key in ("w2", "w2_from_prior"):
        em = entry["em1000_w2" if key == "w2" else "em1000_w2_from_prior"]
        out[key] = {"em1000": em, "16": rows[16][key], "10": rows[10][key], "16_beats_em1000": rows[16][key] <= em,
                    "10_within_2x_em1000": rows[10][key] <= 2 * em}
    return out


def mc_floor(oracle: GaussianOracle, target: Target, num: int, seed: int) -> dict[str, float]:
    data = oracle.sample_data(num, target.grid, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return target.errors(*empirical_mode_variances(data, oracle.basis))


def grid_sweep(sde, oracle, target: Target, *, steps: int) -> list[dict]:
    """W2 of the default sampler with ``steps`` steps over the power grid's ``rho`` and ``t_end`` (justifies
    :func:`default_times`)."""
    rows = []
    for rho in (2.0, 2.5, 3.0, 4.0):
        for t_end in (1e-3, 5e-4, 2e-4):
            mean, var = gaussian_sampler_law(
                exponential_multistep, oracle, sde, power_times(steps, rho=rho, t_end=t_end), resolution=target.grid,
                initial_mean=target.initial_mean, initial_variance=target.initial_variance, stepwise=False,
            )
            rows.append({"rho": rho, "t_end": t_end, **target.errors(mean, var)})
    return rows


def plot(document: dict, path: Path) -> None:
    """W2 against NFE: one panel per setting (columns) and resolution (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(document["settings"])
    resolutions = list(document["settings"][settings[0]]["resolutions"])
    fig, axes = plt.subplots(len(resolutions), len(settings), figsize=(4.2 * len(settings), 3.4 * len(resolutions)), squeeze=False)
    for column, setting in enumerate(settings):
        for row, res in enumerate(resolutions):
            ax, block = axes[row][column], document["settings"][setting]["resolutions"][res]
            for label, rows in block["samplers"].items():
                rows = [r for r in rows if r["w2"] is not None and r["w2"] < 1]
                if rows:
                    ax.loglog([r["nfe"] for r in rows], [r["w2"] for r in rows], "o-", ms=3, label=label)
            ax.axhline(block["em1000_w2"], color="k", ls="--", lw=0.8, label="Euler–Maruyama, 1000 steps")
            ax.axvline(NFE_BUDGET, color="gray", ls=":", lw=0.8)
            if "mc_floor" in block:
                ax.axhline(block["mc_floor"]["w2"], color="gray", ls="-.", lw=0.8, label="MC floor (PC)")
            ax.set_title(f"{setting}, {res}²", fontsize=9)
            ax.set_xlabel("model evaluations (NFE)")
            ax.set_ylabel("relative W2 to the data law")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return f"{'-':>9s}" if value is None else f"{value:9.2e}"


def _finite(value):
    """JSON-safe copy: non-finite floats (a diverged explicit sampler) become null, keys become strings."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _row(setting: str, res: int, name: str, r: dict) -> str:
    """One printed row: a sampler at one step count."""
    return (f"{setting:8s} {res:4d} {name:32s} {r['steps']:5d} {r['nfe']:5d} {r['w2']:9.2e} {r['spectrum']:9.2e} "
            f"{_fmt(r['w2_from_prior'])}")


def best_within_budget(entry: dict, setting: str, res: int) -> None:
    """Per metric, the best sampler within :data:`NFE_BUDGET` evaluations (not the Monte Carlo predictor-corrector)
    against Euler–Maruyama with 1000 steps (issue 4's target), into ``entry``."""
    em1000 = next(r for r in entry["samplers"]["euler_maruyama"] if r["steps"] == 1000)
    entry["em1000_w2"], entry["em1000_w2_from_prior"] = em1000["w2"], em1000["w2_from_prior"]
    candidates = [(name, r) for name, rows in entry["samplers"].items() if name != "predictor_corrector"
                  for r in rows if r["nfe"] <= NFE_BUDGET]
    for key in ("w2", "w2_from_prior"):
        name, best = min(candidates, key=lambda item: item[1][key])
        met = best[key] <= em1000[key]
        entry[f"best_within_budget_{key}"] = {"sampler": name, "met": met, **best}
        print(f"{setting:8s} {res:4d} [{key}] best ≤ {NFE_BUDGET} NFE: {name} ({best['nfe']} NFE) {best[key]:.2e} "
              f"vs EM-1000 {em1000[key]:.2e} → {'met' if met else 'NOT met'}")


def resolution_entry(setting: Setting, sde, oracle, grids: dict, res: int, *, quick: bool) -> dict:
    """Every sampler at every step count on the ``res²`` grid, the floors, and the issues' targets (printed)."""
    target = Target(oracle, res)
    entry = {"samplers": {}, "prior_floor": target.prior_floor}
    mc_samples = (256 if quick or res > 32 else 2048) if setting.name == "default" else 0
    measured = [(run, run.steps, None) for run in runs(quick) if run.exact or mc_samples]
    measured += [(run, OPTIMISED_STEPS, grids[run.name]) for run in OPTIMISED]
    for run, steps, grid in measured:
        rows = [measure(run, sde, oracle, target, n, mc_samples=0 if grid else mc_samples, seed=1,
                        times=grid[n]["times"] if grid else None) for n in steps]
        entry["samplers"][run.name] = rows
        for r in rows:
            print(_row(setting.name, res, run.name, r))
    if mc_samples:
        entry["mc_floor"] = floor = {"samples": mc_samples, **mc_floor(oracle, target, mc_samples, seed=2)}
        print(f"{setting.name:8s} {res:4d} {'(MC floor, exact draws)':44s} {floor['w2']:9.2e} {floor['spectrum']:9.2e}")
    print(f"{setting.name:8s} {res:4d} {'(prior floor: exact flow from the prior)':64s} {target.prior_floor['w2']:9.2e}")
    best_within_budget(entry, setting.name, res)
    for suffix, optimised in zip(("", "_corrected"), OPTIMISED):
        entry[f"issue18_targets{suffix}"] = targets = check_targets(entry, optimised.name)
        for key, t in targets.items():
            print(f"{setting.name:8s} {res:4d} [{key}] {optimised.name}: 16 NFE {t['16']:.2e}, 10 NFE "
                  f"{t['10']:.2e} vs EM-1000 {t['em1000']:.2e} → 16 beats it: "
                  f"{'met' if t['16_beats_em1000'] else 'NOT met'}; "
                  f"10 within 2×: {'met' if t['10_within_2x_em1000'] else 'NOT met'}")
    return entry


def setting_block(setting: Setting, resolutions: tuple[int, ...], *, quick: bool) -> dict:
    """One setting's results at every resolution (and, in the full run, the default sampler's grid sweep)."""
    sde, oracle = make_problem(setting)
    block = {"kappa": setting.kappa, "data": repr(setting.data), "noise": repr(sde.covariance), "resolutions": {}}
    grids = {run.name: optimised_grids(sde, oracle, resolutions, corrector=run.sampler.method.corrector)
             for run in OPTIMISED}
    block["optimised_grids"] = {name: {n: {"times": g["times"].tolist(), "seconds": g["seconds"]} for n, g in by.items()}
                                for name, by in grids.items()}
    for res in resolutions:
        block["resolutions"][res] = resolution_entry(setting, sde, oracle, grids, res, quick=quick)
    if not quick and setting.name != "ddo":
        block["default_sampler_grid_sweep_48_steps_32"] = sweep = grid_sweep(sde, oracle, Target(oracle, 32), steps=48)
        print(f"{setting.name:8s}   32 default sampler, 48 steps, W2 over (rho, t_end): "
              + ", ".join(f"({r['rho']}, {r['t_end']:g}) {r['w2']:.1e}" for r in sweep))
    return block


def stability() -> dict:
    """The explicit baseline's stability limit on a finer grid with stronger heat (κ = 1e-3, 128²)."""
    sde, oracle = make_problem(Setting("heat", 1e-3, Matern(alpha=2.0, tau=3.0)))
    target = Target(oracle, 128)
    every = runs(False)
    rows = {run.name: measure(run, sde, oracle, target, n, mc_samples=0, seed=0)
            for run, n in ((every[0], 1000), (every[4], 48), (every[6], 16))}
    for name, r in rows.items():
        print(_row("κ=1e-3", 128, name, r))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="16² and 32², default setting, fewer step counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    resolutions = (16, 32) if args.quick else (32, 128)
    settings = SETTINGS[:1] if args.quick else SETTINGS
    document = {
        "description": __doc__.split("\n\n")[0],
        "method": "exact per-mode law propagation (gaussian_sampler_law) except predictor_corrector (Monte Carlo)",
        "nfe_budget": NFE_BUDGET,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "settings": {},
    }
    start = time.perf_counter()
    print(f"{'setting':8s} {'res':>4s} {'sampler':32s} {'steps':>5s} {'NFE':>5s} {'W2':>9s} {'spec err':>9s} {'W2 prior':>9s}")
    for setting in settings:
        document["settings"][setting.name] = setting_block(setting, resolutions, quick=args.quick)
    if not args.quick:
        document["stability_kappa_1e-3_128"] = stability()
    document["seconds"] = time.perf_counter() - start
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "sampler_convergence_quick" if args.quick else "sampler_convergence"
    (RESULTS / f"{stem}.json").write_text(json.dumps(_finite(document), indent=1))
    plot(_finite(document), RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.json/.png in {document['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
