"""Run the benchmarks, print a summary table and write ``results/summary[_quick].json``.

    python -m benchmarks [--quick] [--only NAME ...] [--results DIR]
    python benchmarks/run.py [--quick] [--only NAME ...] [--results DIR]

The benchmarks are the modules listed in :data:`BENCHMARKS` (imported explicitly, not discovered). Each
is a script whose ``main(argv)`` accepts ``--quick`` (a CI-sized run) and writes
``RESULTS/<name>[_quick].json`` (plus figures), ``RESULTS`` being a module-level folder,
``benchmarks/results/`` by default; ``--results DIR`` points every module's ``RESULTS`` at ``DIR`` for the
run (the tests use it to keep the repository's results untouched). A module may define
``headline(document) -> dict`` to put its key numbers in the summary.

Per benchmark the summary records its status (``ok``: ``main`` returned 0 or ``None`` and the result
file was written; ``failed``: it raised or returned non-zero, with the end of the traceback;
``no result``: it returned but wrote no result file), its wall time, the result file and the headline.
A summary file that already exists is updated per benchmark, so ``--only`` runs merge into it. The
exit status is 0 only if every benchmark run is ``ok``. Threads: each benchmark sets its own (most call
``torch.set_num_threads(1)``); on a shared machine run with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a file (python benchmarks/run.py): make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import (
    data_pipeline,
    denoiser_vs_oracle,
    few_steps_trained,
    grid_per_resolution,
    heat_default,
    images,
    pde_inverse,
    quadratic,
    resolution_transfer,
    restoration_exact,
    restoration_grids,
    restoration_navier_stokes,
    sampler_convergence,
    speed,
    speed_execution,
)

#: every benchmark, in the order the runner runs them (cheapest first).
BENCHMARKS: tuple[ModuleType, ...] = (
    sampler_convergence,
    grid_per_resolution,
    restoration_exact,
    restoration_grids,
    speed,
    speed_execution,
    data_pipeline,
    denoiser_vs_oracle,
    quadratic,
    few_steps_trained,
    resolution_transfer,
    restoration_navier_stokes,
    pde_inverse,
    heat_default,
    images,
)
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results"


def name_of(module: ModuleType) -> str:
    """The benchmark's name: its module's file name (``benchmarks.quadratic`` → ``quadratic``)."""
    return module.__name__.rsplit(".", 1)[-1]


def names() -> list[str]:
    return [name_of(m) for m in BENCHMARKS]


@contextmanager
def _results_folder(module: ModuleType, folder: Path):
    """Point ``module.RESULTS`` at ``folder`` for the duration of the block."""
    if not hasattr(module, "RESULTS"):
        raise ValueError(f"benchmark {name_of(module)} has no module-level RESULTS folder; define one.")
    previous = module.RESULTS
    module.RESULTS = folder
    try:
        yield
    finally:
        module.RESULTS = previous


def run_one(module: ModuleType, *, quick: bool, results: Path) -> dict:
    """Run one benchmark; returns its summary entry."""
    name = name_of(module)
    result = results / f"{name}{'_quick' if quick else ''}.json"
    entry: dict = {"name": name, "status": "ok", "result": str(result), "error": None, "headline": None}
    started_at = time.time()
    start = time.perf_counter()
    print(f"\n===== {name}{' --quick' if quick else ''} =====", flush=True)
    try:
        with _results_folder(module, results):
            code = module.main(["--quick"] if quick else [])
        if code not in (0, None):
            entry.update(status="failed", error=f"main returned {code!r}")
    except BaseException as err:  # argparse's SystemExit included; KeyboardInterrupt stops the run
        if isinstance(err, KeyboardInterrupt):
            raise
        entry.update(status="failed", error="".join(traceback.format_exception(err))[-2000:])
    entry["seconds"] = round(time.perf_counter() - start, 1)
    if entry["status"] == "ok":
        if not result.exists() or result.stat().st_mtime < started_at - 1:
            entry.update(status="no result", error=f"{result} was not written")
        elif hasattr(module, "headline"):
            try:
                entry["headline"] = module.headline(json.loads(result.read_text()))
            except Exception as err:  # a broken headline must not hide the run's success
                entry["headline"] = {"error": f"{type(err).__name__}: {err}"}
    return entry


def _table(entries: list[dict]) -> str:
    lines = [f"{'benchmark':28s} {'status':9s} {'seconds':>8s}  headline"]
    for e in entries:
        headline = ", ".join(f"{k}={v}" for k, v in (e.get("headline") or {}).items())
        lines.append(f"{e['name']:28s} {e['status']:9s} {e['seconds']:8.1f}  {headline}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="run every benchmark's CI-sized --quick mode")
    parser.add_argument("--only", nargs="+", choices=names(), metavar="NAME",
                        help=f"run only these benchmarks (of: {', '.join(names())})")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help="folder for every result file and the summary (default: benchmarks/results)")
    args = parser.parse_args(argv)
    selected = [m for m in BENCHMARKS if args.only is None or name_of(m) in args.only]
    args.results.mkdir(parents=True, exist_ok=True)
    entries = [run_one(module, quick=args.quick, results=args.results) for module in selected]

    path = args.results / f"summary{'_quick' if args.quick else ''}.json"
    previous = json.loads(path.read_text()).get("benchmarks", []) if path.exists() else []
    ran = {e["name"] for e in entries}
    merged = {e["name"]: e for e in previous if e.get("name") not in ran} | {e["name"]: e for e in entries}
    document = {
        "mode": "quick" if args.quick else "full",
        "command": f"python -m benchmarks{' --quick' if args.quick else ''}"
        + (f" --only {' '.join(args.only)}" if args.only else ""),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "load_average": list(os.getloadavg())},
        "benchmarks": [merged[n] for n in names() if n in merged],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    os.replace(tmp, path)
    print("\n" + _table(entries))
    print(f"wrote {path}")
    return 0 if all(e["status"] == "ok" for e in entries) else 1


if __name__ == "__main__":
    raise SystemExit(main())
