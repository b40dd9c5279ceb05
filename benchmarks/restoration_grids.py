"""Should restoration use the sampler's optimised 16-step grid? The exact-posterior benchmark on three time grids.

``benchmarks/restoration_exact.py``'s quick form (1-D, 64 points, box / 80 % random / spectral ×4, 4 truths × 64
draws, every method) under ``κ = 0`` and strong heat (``κ λ_max = 25``), run on: the restoration methods' own default
grid (``power_times(100)``, ``RESTORATION_STEPS``), ``power_times(16)``, and the 16-step grid a trained run stores
(:func:`~hilbert_diffusion.optimal_times.spectrum_times` for the oracle's data spectrum: optimised for the
deterministic 3M sampler's exact law). Per row: the mean error and std ratio against the exact posterior, and their
ratios to the default grid's (``mean_ratio``, ``std_ratio_change``) measured in the same run.

    OMP_NUM_THREADS=1 python benchmarks/restoration_grids.py [--quick]

writes ``benchmarks/results/restoration_grids.json`` (``--quick``: ``κ = 0``, the box, 16 draws per truth,
``restoration_grids_quick.json``).
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

from benchmarks import restoration_exact as exact
from hilbert_diffusion.optimal_times import spectrum_times
from hilbert_diffusion.restoration.replacement import RESTORATION_STEPS
from hilbert_diffusion.times import power_times

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = f"power_times({RESTORATION_STEPS}) [default]"
PROCESSES = ("κ=0", "heat 25")


def grids(oracle, grid) -> dict[str, torch.Tensor]:
    optimised = spectrum_times(oracle.sde, [oracle.data_covariance], grid, steps=16)["times"]
    return {DEFAULT: power_times(RESTORATION_STEPS, rho=2.0, t_end=1e-4), "power_times(16)": power_times(16, rho=2.0,
            t_end=1e-4), "optimised 16 (3M's)": torch.tensor(optimised, dtype=torch.float64)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="κ = 0, the box, 16 draws per truth")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started, rows = time.perf_counter(), []
    samples = 16 if args.quick else 64
    for process in PROCESSES[:1] if args.quick else PROCESSES:
        oracle, grid = exact.setting(1, kappa_nyquist=exact.PROCESSES[process])
        for label, times in grids(oracle, grid).items():
            for i, task in enumerate(exact.tasks(1, True)[:1] if args.quick else exact.tasks(1, True)):
                methods = exact.methods(True, 1, heat=exact.PROCESSES[process] > 0)
                exact_rows = exact.run_task(oracle, grid, task, methods, steps=len(times) - 1, truths=4, samples=samples,
                                            seed=100 + i, process=process, times=times)
                rows += [{"process": process, "grid": label, "task": r["task"], "method": r["method"],
                          "mean_error": r["mean_error"], "std_ratio": r["std_ratio"], "nfe": r.get("nfe")}
                         for r in exact_rows if "skipped" not in r]
    base = {(r["process"], r["task"], r["method"]): r for r in rows if r["grid"] == DEFAULT}
    print(f"{'process':8s} {'task':12s} {'method':12s} {'grid':22s} {'mean err':>8s} {'std':>5s} {'mean ×':>7s}")
    for r in rows:
        b = base[r["process"], r["task"], r["method"]]
        r["mean_ratio"] = r["mean_error"] / b["mean_error"]
        r["std_ratio_change"] = r["std_ratio"] / b["std_ratio"]
        print(f"{r['process']:8s} {r['task']:12s} {r['method']:12s} {r['grid']:22s} {r['mean_error']:8.3f} "
              f"{r['std_ratio']:5.2f} {r['mean_ratio']:7.2f}")
    document = {"description": __doc__.split("\n\n")[0], "rows": rows, "seconds": time.perf_counter() - started,
                "platform": platform.platform(), "torch": torch.__version__}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"restoration_grids{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
