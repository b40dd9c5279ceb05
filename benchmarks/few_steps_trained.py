"""Issue 18 on trained models: the default (16 model evaluations on its grid for the grid sampled) against 48 on
``default_times`` (the default before).

* **Quadratic** (HDM's MMD power): the quick Quadratic model of ``benchmarks/quadratic.py`` (its ``quick`` plan, more
  training steps: ``--steps``) is trained once. Samplings of the same model, each with ``--repetitions`` fresh
  repetitions (new generated curves, new real curves, new permutations; 10 vs 10, HDM's protocol): the 3M sampler on
  ``default_times(48)`` (the previous default); the default, ``RUN_SAMPLER`` (3M with the corrector) on the 16-step
  grid ``run.sampling_times`` optimises for the grid sampled; the 3M sampler on its own such grid; and on
  ``default_times(16)`` (the same count on the old grid).
* **Resolution transfer** (``benchmarks/resolution_transfer.py``'s GRF and Navier–Stokes models: trained at 32² with
  the command line's process, ``--seconds`` each): spectrum error (shared band ``0 < k ≤ 15``) at 32² and 128² of
  the 3M sampler on ``default_times(48)`` and of the default at 16 evaluations on its grid for that resolution, drawn
  from the *same* prior fields (so the two differ by the sampler alone), beside ``floor``, the error of as many exact
  draws (GRF) or training fields (NS) — the Monte Carlo noise of the statistic. "Within the noise":
  ``|err16 − err48| ≤ ½ floor``.
* **Wall time** (GRF model, 128², one run, alternating): sampling with 16 against 48 evaluations
  (``wall_ratio = time(48) / time(16)``), and one evaluation with neuraloperator's FNO path against the lean one
  (``per_evaluation_speedup = time(neuraloperator) / time(lean)``, :mod:`hilbert_diffusion.models.lean_fno`).

    OMP_NUM_THREADS=1 python benchmarks/few_steps_trained.py [--quick] [--steps 1500] [--repetitions 30] [--seconds 150]
        [--samples 64 16] [--only quadratic|grf|navier_stokes ...]

writes ``benchmarks/results/few_steps_trained.json`` (``--quick``: 40 training steps, 2 repetitions of 60 curves, the
transfer models trained a few seconds at 16² and sampled at 16² and 32², ``few_steps_trained_quick.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import resolution_transfer as transfer
from benchmarks.quadratic import Sampling, fresh_repetitions, generate, plans, train_model
from hilbert_diffusion.cli import default_sde
from hilbert_diffusion.datasets import gaussian_random_fields, navier_stokes
from hilbert_diffusion.metrics import radial_spectrum, spectrum_error
from hilbert_diffusion.sampling import RUN_SAMPLER, default_times, exponential_multistep
from hilbert_diffusion.training import train

RESULTS = Path(__file__).resolve().parent / "results"


def quadratic_rows(steps: int, repetitions: int, curves: int) -> dict:
    """MMD power (10 vs 10) per sampling of one trained Quadratic model, fresh repetitions."""
    plan = plans()["quick"]
    plan = dataclasses.replace(plan, train=dataclasses.replace(plan.train, steps=steps))
    run, timing = train_model(plan, save=None)
    grid = plan.num_points
    samplings = {
        "3M, default_times(48)": Sampling("3M 48", exponential_multistep, default_times(48)),
        "default: corrected, its grid for the grid sampled (16)":
            Sampling("C 16 opt", RUN_SAMPLER, run.sampling_times(RUN_SAMPLER, resolution=grid)[0]),
        "3M, its grid for the grid sampled (16)":
            Sampling("3M 16 opt", exponential_multistep, run.sampling_times(exponential_multistep, resolution=grid)[0]),
        "3M, default_times(16)": Sampling("3M 16", exponential_multistep, default_times(16)),
    }
    rows = {}
    for name, sampling in samplings.items():
        start = time.perf_counter()

        def draw(num: int, resolution: int, generator: torch.Generator, sampling=sampling) -> torch.Tensor:
            return generate(run, run.model, sampling, num=num, resolution=resolution, generator=generator)[0]

        outcome = fresh_repetitions(draw, resolution=plan.num_points, repetitions=repetitions, curves=curves)
        power = outcome["powers"]["10v10"]
        rows[name] = {"evaluations": len(sampling.times) - 1, "power_10v10": power, "seconds": time.perf_counter() - start}
        print(f"quadratic {name:56s} {len(sampling.times) - 1:3d} evaluations: power {power['mean']:.1f} ± "
              f"{power['ci95']:.1f}", flush=True)
    return {"training": timing, "training_steps": steps, "repetitions": repetitions, "curves": curves,
            "stored_grid": run.config["times"], "rows": rows}


def transfer_model(name: str, setting: transfer.Setting):
    """A resolution-transfer model (as ``benchmarks/resolution_transfer.py`` trains it) and ``(reference, floor)``."""
    n0, basis = setting.train_resolution, transfer.BASIS
    sde = default_sde(basis, (n0, n0))
    if name == "grf":
        data = gaussian_random_fields(setting.num_grf, n0, spectrum=transfer.GRF_SPECTRUM, basis=basis, seed=0).data

        def reference(resolution):
            return transfer.exact_grf_spectrum(resolution)

        def floor_fields(num, resolution):
            return gaussian_random_fields(num, resolution, spectrum=transfer.GRF_SPECTRUM, basis=basis, seed=999).data
    else:
        fields = navier_stokes(**setting.ns_data, progress=False).data
        held = fields[-setting.ns_held_out:]
        data = basis.resample(fields[: -setting.ns_held_out], n0).float()

        def reference(resolution):
            return radial_spectrum(basis.resample(held.to(torch.float64), resolution), basis)

        def floor_fields(num, resolution):
            return basis.resample(data[:num], resolution)
    config = transfer.fit_budget(data, sde, setting)
    start = time.monotonic()
    run = train(data, sde=sde, model=setting.model, config=config, progress=False, max_seconds=setting.seconds)
    return run, reference, floor_fields, {"steps": run.step, "seconds": round(time.monotonic() - start, 1)}


def transfer_rows(name: str, setting: transfer.Setting, resolutions: tuple[int, ...], samples: tuple[int, ...]) -> dict:
    """Spectrum errors of the default (16 evaluations on its grid for the grid sampled) and of the 3M sampler on
    ``default_times(48)`` (the default before issue 18) from the same prior draws."""
    run, reference, floor_fields, training = transfer_model(name, setting)
    kmax = setting.train_resolution // 2 - 1
    rows = []
    for resolution, num in zip(resolutions, samples):
        ref = reference(resolution)
        row = {"resolution": resolution, "samples": num,
               "floor": spectrum_error(radial_spectrum(floor_fields(num, resolution), transfer.BASIS), ref, kmax=kmax)}
        for evaluations, (sampler, times) in samplings(run, resolution).items():
            x, seconds = transfer.draw(run, sampler, times, num, resolution, seed=100)
            row[f"error_{evaluations}"] = spectrum_error(radial_spectrum(x, transfer.BASIS), ref, kmax=kmax)
            row[f"seconds_{evaluations}"] = seconds
        row["within_noise"] = abs(row["error_16"] - row["error_48"]) <= 0.5 * row["floor"]
        rows.append(row)
        print(f"{name:13s} {resolution:4d}² ({num} samples): error 48 {row['error_48']:.4f}, 16 {row['error_16']:.4f}, "
              f"floor {row['floor']:.4f} → within the noise: {row['within_noise']}", flush=True)
    return {"training": training, "stored_grid": run.config["times"], "rows": rows, "run": run}


def samplings(run, resolution: int) -> dict:
    """Evaluations → (sampler, times): the default and the 3M sampler on ``default_times(48)``."""
    return {48: (exponential_multistep, default_times(48)),
            16: (RUN_SAMPLER, run.sampling_times(RUN_SAMPLER, resolution=resolution)[0])}


def wall_times(run, resolution: int, num: int, repeats: int) -> dict:
    """Sampling 16 vs 48 evaluations and one evaluation neuraloperator vs lean, alternating, medians."""
    sampling = {16: [], 48: []}
    for _ in range(repeats):
        for evaluations, (sampler, times) in samplings(run, resolution).items():
            sampling[evaluations].append(transfer.draw(run, sampler, times, num, resolution, seed=7)[1])
    x = run.sde.prior_sample(num, resolution, generator=torch.Generator().manual_seed(0))
    t = torch.full((num,), 0.3)
    forward = {"neuraloperator": [], "lean": []}
    with torch.no_grad():
        for _ in range(3 * repeats):
            for path, lean in (("neuraloperator", False), ("lean", True)):
                run.model.lean = lean
                start = time.perf_counter()
                run.model(x, t)
                forward[path].append(time.perf_counter() - start)
    run.model.lean = True
    median = {k: statistics.median(v) for k, v in {**{f"sampling_{k}": v for k, v in sampling.items()}, **forward}.items()}
    return {"resolution": resolution, "batch": num, "medians": median,
            "wall_ratio_48_over_16": median["sampling_48"] / median["sampling_16"],
            "per_evaluation_speedup": median["neuraloperator"] / median["lean"]}


PARTS = ("quadratic", "grf", "navier_stokes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps of the quick Quadratic model")
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--curves", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=150.0, help="training budget of each transfer model")
    parser.add_argument("--samples", type=int, nargs=2, default=(64, 16), help="samples at 32² and at 128²")
    parser.add_argument("--only", action="append", choices=PARTS,
                        help="run these parts only (repeatable) and keep the others from the previous result")
    parser.add_argument("--quick", action="store_true", help="CI-sized: tiny models, 2 repetitions")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.steps, args.repetitions, args.curves = 40, 2, 60
        setting, resolutions, samples = transfer.QUICK, (16, 32), (8, 4)
    else:
        setting, resolutions = dataclasses.replace(transfer.FULL, seconds=args.seconds), (32, 128)
        samples = tuple(args.samples)
    out = RESULTS / ("few_steps_trained_quick.json" if args.quick else "few_steps_trained.json")
    previous = json.loads(out.read_text()) if args.only and out.exists() else {}
    document = {k: v for k, v in previous.items() if k in (*PARTS, "wall_time")}
    started = time.perf_counter()
    for part in args.only or PARTS:
        if part == "quadratic":
            document[part] = quadratic_rows(args.steps, args.repetitions, args.curves)
            continue
        document[part] = transfer_rows(part, setting, resolutions, samples)
        run = document[part].pop("run")
        if part == "grf":
            document["wall_time"] = wall = wall_times(run, resolutions[-1], 8, repeats=1 if args.quick else 3)
            print(f"wall time at {wall['resolution']}², batch {wall['batch']}: 48 / 16 evaluations "
                  f"{wall['wall_ratio_48_over_16']:.2f}×; one evaluation neuraloperator / lean "
                  f"{wall['per_evaluation_speedup']:.2f}×", flush=True)
    document.update({"description": __doc__.split("\n\n")[0], "seconds": time.perf_counter() - started,
                     "parts_run": args.only or list(PARTS), "platform": platform.platform(), "torch": torch.__version__})
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1, default=float))
    print(f"wrote {out} in {document['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
