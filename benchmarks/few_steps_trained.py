"""Issue 18 on a trained model, quick form: HDM's Quadratic MMD power with 16 evaluations against 48.

The quick Quadratic model of ``benchmarks/quadratic.py`` (its ``quick`` plan, more training steps: ``--steps``) is
trained once; ``train`` stores the default sampler's 16-step grid optimised against the exact law of its data
spectrum. Three samplings of the same model, each with ``--repetitions`` fresh repetitions (new generated curves,
new real curves, new permutations; 10 vs 10, HDM's protocol): the 3M sampler on ``default_times(48)`` (the previous
default), on the stored optimised 16-step grid (the new default), and on ``default_times(16)`` (the same count on
the old grid). The question is whether 16 evaluations on the optimised grid are within the noise of 48.

    OMP_NUM_THREADS=1 python benchmarks/few_steps_trained.py [--quick] [--steps 1500] [--repetitions 10]

writes ``benchmarks/results/few_steps_trained.json`` (``--quick``: 40 training steps, 2 repetitions of 60 curves,
``few_steps_trained_quick.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.quadratic import Sampling, fresh_repetitions, generate, plans, train_model
from hilbert_diffusion.sampling import default_times, exponential_multistep

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="training steps of the quick Quadratic model")
    parser.add_argument("--repetitions", type=int, default=10)
    parser.add_argument("--curves", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="40 training steps, 2 repetitions of 60 curves")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.repetitions, args.curves = 40, 2, 60
    torch.set_num_threads(1)
    plan = plans()["quick"]
    plan = dataclasses.replace(plan, train=dataclasses.replace(plan.train, steps=args.steps))
    run, timing = train_model(plan, save=None)
    stored = run.config["times"]
    samplings = {
        "3M, default_times(48)": Sampling("3M 48", exponential_multistep, default_times(48)),
        "3M, optimised grid (16)": Sampling("3M 16 opt", exponential_multistep, torch.tensor(stored["times"])),
        "3M, default_times(16)": Sampling("3M 16", exponential_multistep, default_times(16)),
    }
    rows = {}
    for name, sampling in samplings.items():
        start = time.perf_counter()

        def draw(num: int, resolution: int, generator: torch.Generator, sampling=sampling) -> torch.Tensor:
            return generate(run, run.model, sampling, num=num, resolution=resolution, generator=generator)[0]

        outcome = fresh_repetitions(draw, resolution=plan.num_points, repetitions=args.repetitions, curves=args.curves)
        rows[name] = {"evaluations": len(sampling.times) - 1, "power_10v10": outcome["powers"]["10v10"],
                      "seconds": time.perf_counter() - start}
        power = outcome["powers"]["10v10"]
        print(f"{name:28s} {len(sampling.times) - 1:3d} evaluations: power {power['mean']:.1f} ± {power['ci95']:.1f}")
    document = {"description": __doc__.split("\n\n")[0], "training": timing, "training_steps": args.steps,
                "repetitions": args.repetitions, "curves": args.curves, "stored_grid": stored, "rows": rows,
                "platform": platform.platform(), "torch": torch.__version__}
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("few_steps_trained_quick.json" if args.quick else "few_steps_trained.json")
    out.write_text(json.dumps(document, indent=1, default=float))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
