"""What bf16 autocast and ``torch.compile`` give on this machine, as ratios to eager fp32 measured in the same run
(issue 19; the execution section of the speed benchmarks).

Variants (:func:`hilbert_diffusion.execution.accelerate`): ``fp32`` (eager, the baseline), ``bf16`` (the network under
bfloat16 autocast), ``compile`` (the backbone through ``torch.compile``), ``compile+bf16``. Measured:

* the score model's forward (``no_grad``) at two resolutions (full: 64² and 128², batch 8), the model with every
  weight perturbed so that each layer does something;
* one training step at the training resolution: the denoising loss with the EDM weight, backward, AdamW.

``ratio = median time(fp32) / median time(variant)`` (> 1: the variant is faster), the variants alternating within
each repeat. The first call of a compiled variant (the compilation) is timed apart and reported; so is each
variant's largest difference from fp32 relative to the output's scale.

    OMP_NUM_THREADS=1 python benchmarks/speed_execution.py [--quick]

runs it on ``benchmarks/speed.py``'s model, SDE and data and writes ``benchmarks/results/speed_execution[_quick].json``
(``--quick``: ``speed.py``'s quick sizes, fp32 against bf16 only — compiling alone takes minutes on a busy CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from hilbert_diffusion.execution import accelerate
from hilbert_diffusion.losses import denoising_loss

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {"fp32": (False, False), "bf16": (True, False), "compile": (False, True), "compile+bf16": (True, True)}


def _timed(run: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    """``run()`` and its wall time, waiting for a CUDA device's queued work."""
    start = time.perf_counter()
    out = run()
    if out.is_cuda:
        torch.cuda.synchronize(out.device)
    return out, time.perf_counter() - start


def _medians(run: Callable[[], torch.Tensor], model, repeats: int, variants: tuple[str, ...]) -> dict:
    """Per variant: the first call's seconds, then ``repeats`` alternating timed calls; medians and outputs."""
    first, seconds, outputs = {}, {name: [] for name in variants}, {}
    for name in variants:
        accelerate(model, bf16=VARIANTS[name][0], compile=VARIANTS[name][1])
        outputs[name], first[name] = _timed(run)
    for _ in range(repeats):
        for name in variants:
            accelerate(model, bf16=VARIANTS[name][0], compile=VARIANTS[name][1])
            seconds[name].append(_timed(run)[1])
    accelerate(model, bf16=False, compile=False)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    scale = float(outputs["fp32"].abs().max())
    return {"seconds_median": median, "first_call_seconds": first,
            "ratio_vs_fp32": {name: median["fp32"] / value for name, value in median.items()},
            "max_difference_vs_fp32_relative": {
                name: float((out.float() - outputs["fp32"]).abs().max()) / scale for name, out in outputs.items()}}


def time_execution(build_model: Callable[[], torch.nn.Module], sde, data: torch.Tensor, *,
                   forward_resolutions: tuple[int, ...], forward_batch: int, train_batch: int, repeats: int,
                   device: torch.device = torch.device("cpu"), variants: tuple[str, ...] = tuple(VARIANTS)) -> dict:
    """The section's document: ``build_model()`` gives a fresh score model for the ``sde``; ``data`` trains it; all
    on ``device``; ``variants`` (names of :data:`VARIANTS`, ``"fp32"`` first) are measured."""
    torch.manual_seed(0)
    model = build_model().to(device).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # every layer does something (FiLM and the last layer start at zero)
    out: dict = {"variants": {name: dict(zip(("bf16", "compile"), VARIANTS[name])) for name in variants},
                 "device": str(device), "forward": {}}
    for n in forward_resolutions:
        x = torch.randn(forward_batch, 1, n, n, generator=torch.Generator().manual_seed(0)).to(device)
        t = torch.linspace(0.05, 0.95, forward_batch, dtype=torch.float64, device=device)

        def forward() -> torch.Tensor:
            with torch.no_grad():
                return model(x, t)

        out["forward"][str(n)] = {"batch": forward_batch, **_medians(forward, model, repeats, variants)}
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0)  # the full step's work; the model stays the same
    batch = data[:train_batch].to(device)
    t = torch.linspace(0.05, 0.95, train_batch, dtype=torch.float64, device=device)

    def step() -> torch.Tensor:
        loss = denoising_loss(model, batch, sde, t=t, weight=model.loss_weight,
                              generator=torch.Generator().manual_seed(0)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    out["training_step"] = {"resolution": int(data.shape[-1]), "batch": train_batch,
                            **_medians(step, model, repeats, variants)}
    return out


def rows(section: dict) -> list[tuple[str, str, float]]:
    """Table rows ``(measurement, values, ratio)`` of the section for ``benchmarks/speed.py``'s table."""
    table = []
    parts = [(f"forward {n}² b{part['batch']}", part) for n, part in section["forward"].items()]
    parts.append((f"train step {section['training_step']['resolution']}² b{section['training_step']['batch']}",
                  section["training_step"]))
    for label, part in parts:
        median = part["seconds_median"]
        for name in [name for name in median if name != "fp32"]:
            values = f"{median['fp32'] * 1e3:.1f}ms / {median[name] * 1e3:.1f}ms"
            if "compile" in name:
                values += f" (compiling {part['first_call_seconds'][name]:.0f}s)"
            table.append((f"{label}: fp32 / {name}", values, part["ratio_vs_fp32"][name]))
    return table


def headline(document: dict) -> dict[str, object]:
    """The numbers the runner's summary quotes: each variant's ratio to fp32, forward at the finest grid and step."""
    finest = document["forward"][max(document["forward"], key=int)]
    return {f"{part}_{name}": round(ratios[name], 2)
            for part, ratios in (("forward", finest["ratio_vs_fp32"]),
                                 ("train_step", document["training_step"]["ratio_vs_fp32"]))
            for name in ratios if name != "fp32"}


def main(argv: list[str] | None = None) -> int:
    from benchmarks import speed

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="speed.py's quick sizes, fp32 against bf16 only")
    args = parser.parse_args(argv)
    setting = speed.QUICK if args.quick else speed.FULL
    variants = ("fp32", "bf16") if args.quick else tuple(VARIANTS)  # quick: no compile (minutes on a busy CPU)
    load_before, wall = list(os.getloadavg()), time.monotonic()
    sde, _, data, spectra = speed.build(setting, setting.train_resolution)
    section = time_execution(lambda: setting.model.build(sde, channels=1, data_spectrum=spectra), sde, data,
                             forward_resolutions=setting.execution_resolutions, forward_batch=setting.forward_batch,
                             train_batch=setting.train_batch, repeats=setting.rounds * 3, variants=variants)
    document = {"description": "bf16 autocast and torch.compile against eager fp32, ratios measured in one run "
                               "(> 1: faster than fp32)", "model": dict(vars(setting.model)), **section,
                "wall_seconds": round(time.monotonic() - wall, 1),
                "machine": {"threads": torch.get_num_threads(), "cpu": platform.machine(), "cores": os.cpu_count(),
                            "torch": torch.__version__, "load_average_before": load_before,
                            "load_average_after": list(os.getloadavg())}}
    out = RESULTS / ("speed_execution_quick.json" if args.quick else "speed_execution.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=1))
    print(f"{'measurement':<44}{'values':<44}{'ratio':>8}")
    for name, values, ratio in rows(section):
        print(f"{name:<44}{values:<44}{ratio:>8.3f}")
    print(f"load average before {load_before}, after {document['machine']['load_average_after']}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
