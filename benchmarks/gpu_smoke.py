"""The first run on a GPU: train, sample, restore and time on one CUDA device, checking each result (issue 19).

    python benchmarks/gpu_smoke.py                       # one CUDA device, under 5 minutes
    python benchmarks/gpu_smoke.py --device cpu --quick  # the same path on the CPU, small (seconds; the test suite)

1. **Train** a few hundred steps (full: 300 at 64², batch 32, hidden 32, 4 layers, 12 modes) on the built-in ``grf``
   data made non-Gaussian (``tanh(10 g)``) with :func:`~hilbert_diffusion.training.train` on the device. Check: every
   loss finite, and the trained model's loss on held-out fields (fixed times and noise) below the untrained model's,
   the per-mode Wiener filter every run starts from (optimal for Gaussian data, hence the nonlinearity). The quick
   plan (20 steps of a tiny model) improves on it by well under 1 %, too little to judge; it is reported.
2. **Sample** at twice the training resolution (128²) on the device with the default sampler. Check: finite, and the
   samples' radial spectrum within a factor 2.5 (RMS log ratio < ln 2.5) of the data's at 128² on the shells up to
   half the training grid's Nyquist wavenumber, the band a short run learns.
3. **Restore** one held-out field at the training grid, a box of it hidden (:func:`~hilbert_diffusion.restoration.box_mask`),
   by the run's default method. Check: finite, the observed points reproduced (largest error below 1e-3 of the field's
   range), and the hidden box closer to the truth than the prior mean (relative L² < 1).
4. **Speed** (:mod:`benchmarks.speed_execution`): fp32, bf16 and ``torch.compile`` (``--no-compile``: without it) of
   the forward at the sampling resolution and of a training step. Check: each variant's output within its tolerance
   of fp32 (bf16: 5e-2 of the output's scale, compile: 1e-3); the ratios are reported, not judged.

Prints one line per check and writes ``benchmarks/results/gpu_smoke[_quick].json`` (``--results DIR`` elsewhere);
exits 1 if any check fails. Without CUDA (and without ``--device cpu``) it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks.speed_execution import time_execution
from hilbert_diffusion import PeriodicBasis, TrainConfig, default_sde, train
from hilbert_diffusion.datasets.spec import dataset_from_spec
from hilbert_diffusion.execution import resolve_device
from hilbert_diffusion.losses import denoising_loss
from hilbert_diffusion.metrics import radial_spectrum, spectrum_error
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.restoration import box_mask

RESULTS = Path(__file__).resolve().parent / "results"
BASIS = PeriodicBasis(2)  # the built-in grf data's domain
TOLERANCE = {"bf16": 5e-2, "compile": 1e-3}


@dataclass(frozen=True)
class Plan:
    resolution: int
    fields: int
    steps: int
    batch: int
    width: int
    layers: int
    modes: int
    samples: int
    sample_steps: int
    repeats: int
    lr: float


FULL = Plan(resolution=64, fields=512, steps=300, batch=32, width=32, layers=4, modes=12, samples=16,
            sample_steps=32, repeats=5, lr=2e-3)
QUICK = Plan(resolution=16, fields=32, steps=20, batch=4, width=8, layers=1, modes=6, samples=4, sample_steps=6,
             repeats=1, lr=1e-2)


def _architecture(plan: Plan) -> ScoreFNOConfig:
    return ScoreFNOConfig(hidden_channels=plan.width, n_layers=plan.layers, n_modes=plan.modes)


def _fields(num: int, resolution: int, seed: int) -> torch.Tensor:
    """``tanh(10 g)`` of the built-in ``grf`` fields ``g``: non-Gaussian (near ±1 plateaus with sharp fronts), so the
    untrained model — the per-mode Wiener filter of the data spectrum, optimal for Gaussian data — is beaten by
    training, and the loss must fall below it."""
    return torch.tanh(10 * dataset_from_spec("grf", num=num, resolution=resolution, seed=seed).data)


@torch.no_grad()
def _held_out_loss(model, sde, fields: torch.Tensor) -> float:
    """The weighted denoising loss on ``fields`` at fixed times and noise: the same draws for every model compared."""
    t = torch.linspace(0.02, 0.98, len(fields), dtype=torch.float64)
    loss = denoising_loss(model, fields, sde, t=t, weight=model.loss_weight, generator=torch.Generator().manual_seed(3))
    return float(loss.mean())


def _check(report: dict, name: str, passed: bool, detail: str) -> None:
    report["checks"][name] = {"passed": bool(passed), "detail": detail}
    print(f"{'ok  ' if passed else 'FAIL'} {name}: {detail}", flush=True)


def _train(plan: Plan, device: torch.device, report: dict):
    data = _fields(plan.fields + 1, plan.resolution, seed=0)
    sde = default_sde(BASIS, (plan.resolution,) * 2)
    model = _architecture(plan)
    config = TrainConfig(steps=plan.steps, batch_size=plan.batch, lr=plan.lr, warmup_steps=plan.steps // 10, checkpoint_every=0,
                         figure_samples=0, optimised_steps=0)
    losses: list[float] = []
    start = time.perf_counter()
    run = train(data[:-1], sde=sde, model=model, config=config, progress=False, device=device,
                callback=lambda step, loss: losses.append(loss))
    seconds = time.perf_counter() - start
    untrained = _architecture(plan).build(sde, channels=1, data_spectrum=run.model.data_spectrum)
    held_out = _fields(64, plan.resolution, seed=2)
    before, after = (_held_out_loss(model, sde, held_out) for model in (untrained, run.model))
    report["train"] = {"seconds": seconds, "losses": losses, "held_out_loss": {"untrained": before, "trained": after}}
    judged = plan is not QUICK  # the quick plan's improvement is too small to judge (module docstring)
    _check(report, "training loss finite and decreased", all(map(math.isfinite, losses)) and (after < before or not judged),
           f"{len(losses)} steps in {seconds:.1f} s; held-out loss {before:.4g} untrained (the Wiener filter) → "
           f"{after:.4g} trained{'' if judged else ' (quick plan: the decrease is reported, not judged)'}")
    return run, data


def _sample(plan: Plan, device: torch.device, run, report: dict) -> None:
    fine = 2 * plan.resolution
    start = time.perf_counter()
    samples = run.sample(plan.samples, fine, steps=plan.sample_steps, device=device,
                         generator=torch.Generator().manual_seed(1)).cpu()
    seconds = time.perf_counter() - start
    reference = _fields(64, fine, seed=1)
    error = spectrum_error(radial_spectrum(samples, BASIS), radial_spectrum(reference, BASIS), kmax=plan.resolution / 4)
    report["sample"] = {"resolution": fine, "seconds": seconds, "spectrum_error": error}
    _check(report, "samples finite with a sane spectrum", bool(torch.isfinite(samples).all()) and error < math.log(2.5),
           f"{plan.samples} samples at {fine}² in {seconds:.1f} s, RMS log-spectrum ratio {error:.3f} to the data's "
           f"(bound ln 2.5 = {math.log(2.5):.3f})")


def _restore(plan: Plan, device: torch.device, run, truth: torch.Tensor, report: dict) -> None:
    operator = box_mask(BASIS, plan.resolution, low=0.3, high=0.7)
    observed = operator.observed
    y = truth * observed
    start = time.perf_counter()
    restored = run.inpaint(y, observed, num=1, steps=plan.sample_steps, device=device,
                           generator=torch.Generator().manual_seed(2)).cpu()
    span = float(truth.max() - truth.min())
    kept = float(((restored - truth) * observed).abs().max()) / span
    hidden = ~observed
    filled = float(((restored - truth) * hidden).norm() / (truth * hidden).norm())
    report["restore"] = {"seconds": time.perf_counter() - start, "observed_error": kept, "hidden_relative_l2": filled}
    _check(report, "restoration keeps the observation", bool(torch.isfinite(restored).all()) and kept < 1e-3
           and filled < 1, f"observed points off by {kept:.1e} of the range (bound 1e-3), hidden box relative L² "
           f"{filled:.3f} (the prior mean: 1)")


def _speed(plan: Plan, device: torch.device, run, data: torch.Tensor, report: dict, *, compile: bool) -> None:
    variants = ("fp32", "bf16", "compile") if compile else ("fp32", "bf16")
    section = time_execution(lambda: _architecture(plan).build(run.sde, channels=1, data_spectrum=run.model.data_spectrum),
                             run.sde, data, forward_resolutions=(2 * plan.resolution,), forward_batch=plan.samples,
                             train_batch=plan.batch, repeats=plan.repeats, device=device, variants=variants)
    report["speed"] = section
    parts = [*section["forward"].values(), section["training_step"]]
    for name in variants[1:]:
        worst = max(part["max_difference_vs_fp32_relative"][name] for part in parts)
        ratios = ", ".join(f"{part['ratio_vs_fp32'][name]:.2f}×" for part in parts)
        _check(report, f"{name} agrees with fp32", worst < TOLERANCE[name],
               f"largest difference {worst:.1e} of the output's scale (bound {TOLERANCE[name]:g}); speed vs fp32: "
               f"{ratios} (forward {2 * plan.resolution}², training step)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (the path without a GPU)")
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds on a CPU)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON report")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave torch.compile out of the speed check (its first call costs 30-100 s on a busy CPU)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device here (torch.cuda.is_available() is False); nothing to check.")
        return 0
    try:
        device = resolve_device(args.device)
    except ValueError as err:
        print(f"gpu_smoke: error: {err}", file=sys.stderr)
        return 2
    plan = QUICK if args.quick else FULL
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    report: dict = {"device": str(device), "device_name": name, "plan": asdict(plan), "checks": {}}
    wall = time.monotonic()
    print(f"gpu_smoke on {device} ({name}), torch {torch.__version__}", flush=True)
    run, data = _train(plan, device, report)
    _sample(plan, device, run, report)
    _restore(plan, device, run, data[-1:], report)
    _speed(plan, device, run, data[:-1], report, compile=not args.no_compile)
    report["wall_seconds"] = round(time.monotonic() - wall, 1)
    failed = [k for k, v in report["checks"].items() if not v["passed"]]
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / ("gpu_smoke_quick.json" if args.quick else "gpu_smoke.json")
    out.write_text(json.dumps(report, indent=1))
    print(f"{len(report['checks']) - len(failed)} of {len(report['checks'])} checks passed in "
          f"{report['wall_seconds']} s; wrote {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
