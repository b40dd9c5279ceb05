"""Few-step time grids optimised for the sampled resolution alone, against one grid shared by two (issue 18).

``sampler_convergence.py`` measures one grid per step count optimised against the exact law of the data at two grids
at once (32² and 128²: what a run stored before it optimised for the grid sampled). Here the same samplers run, with
the exact Gaussian oracle, on a grid optimised for the one grid being sampled (what ``TrainedRun.sampling_times``
now gives: :func:`~hilbert_diffusion.optimal_times.optimise_times` with a single target), and on the shared one. Every
W2 is the exact law the engine propagates (``gaussian_sampler_law``, started from the exact law of ``x_1``),
relative to ``sqrt(E‖x_0‖²)``; Euler–Maruyama with 1000 uniform steps is measured in the same run as the baseline.
Targets (issue 18): 16 evaluations beat it, 10 are within 2× of it. Samplers: exponential 3M and 3M with the
exponential-frame corrector (``exponential_corrected``, a trained run's default ``RUN_SAMPLER``), each on grids
optimised for its own law.

    OMP_NUM_THREADS=1 python benchmarks/grid_per_resolution.py [--quick]

prints the table and writes ``benchmarks/results/grid_per_resolution.json`` (``--quick``: the ``default`` setting at
16² and 32², the shared grid optimised for both, ``grid_per_resolution_quick.json``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.sampler_convergence import OPTIMISED, SETTINGS, Run, Target, make_problem, measure
from hilbert_diffusion.optimal_times import GaussianTarget, optimise_times
from hilbert_diffusion.sampling import euler_maruyama

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = (10, 16)


def _grid(sde, oracle, resolutions: tuple[int, ...], *, steps: int, corrector: bool) -> tuple[torch.Tensor, float]:
    """The grid optimised for the data law at ``resolutions`` at once, and the seconds it took."""
    targets = [GaussianTarget(g, oracle.data_variance(g)[None]) for g in (oracle.basis.grid(r) for r in resolutions)]
    start = time.perf_counter()
    times = optimise_times(sde, targets, steps=steps, corrector=corrector).times
    return times, time.perf_counter() - start


def measure_setting(setting, resolutions: tuple[int, int]) -> list[dict]:
    """Rows ``{setting, resolution, sampler, steps, grid, w2, em1000, target_met, seconds}`` for one setting, the
    shared grid optimised for both ``resolutions`` and a grid per resolution."""
    sde, oracle = make_problem(setting)
    targets = {res: Target(oracle, res) for res in resolutions}
    baseline = Run(euler_maruyama, (1000,))
    em = {res: measure(baseline, sde, oracle, t, 1000, mc_samples=0, seed=0)["w2"] for res, t in targets.items()}
    rows = []
    for run in OPTIMISED:
        corrector = run.sampler.method.corrector
        shared = {n: _grid(sde, oracle, resolutions, steps=n, corrector=corrector) for n in STEPS}
        for res, target in targets.items():
            em1000 = em[res]
            for n in STEPS:
                own = _grid(sde, oracle, (res,), steps=n, corrector=corrector)
                for label, (times, seconds) in (("shared", shared[n]), ("this resolution", own)):
                    w2 = measure(run, sde, oracle, target, n, mc_samples=0, seed=0, times=times)["w2"]
                    allowed = em1000 if n == 16 else 2 * em1000
                    rows.append({"setting": setting.name, "resolution": res, "sampler": run.sampler.name, "steps": n,
                                 "grid": label, "w2": w2, "em1000": em1000, "target_met": w2 <= allowed,
                                 "optimise_seconds": seconds})
                    r = rows[-1]
                    print(f"{r['setting']:8s} {res:4d} {r['sampler']:24s} {n:3d} {label:16s} {w2:9.2e} "
                          f"{em1000:9.2e} {'met' if r['target_met'] else 'MISSED':6s} {seconds:5.1f}", flush=True)
    return rows


def targets_met(rows: list[dict]) -> dict[str, str]:
    """``"sampler · grid" → "met/total"`` over the rows."""
    groups: dict[str, list[bool]] = {}
    for r in rows:
        groups.setdefault(f"{r['sampler']} · {r['grid']}", []).append(r["target_met"])
    return {key: f"{sum(met)}/{len(met)}" for key, met in groups.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the default setting at 16² and 32² only")
    quick = parser.parse_args(argv).quick
    torch.set_num_threads(1)
    started = time.perf_counter()
    print(f"{'setting':8s} {'res':>4s} {'sampler':24s} {'NFE':>3s} {'grid':16s} {'W2':>9s} {'EM-1000':>9s} "
          f"{'target':6s} {'opt s':>5s}")
    settings, resolutions = (SETTINGS[:1], (16, 32)) if quick else (SETTINGS, (32, 128))
    rows = [row for setting in settings for row in measure_setting(setting, resolutions)]
    summary = targets_met(rows)
    print("\n".join(f"targets met, {key}: {value}" for key, value in summary.items()))
    out = RESULTS / f"grid_per_resolution{'_quick' if quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"description": __doc__.split("\n\n")[0], "rows": rows, "targets_met": summary,
                               "seconds": time.perf_counter() - started, "platform": platform.platform(),
                               "torch": torch.__version__}, indent=1, ensure_ascii=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
