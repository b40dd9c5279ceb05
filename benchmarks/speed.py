"""Speed as ratios measured in one run: the toolkit's overhead over the raw model.

Model: the trained-size :class:`~hilbert_diffusion.models.fno.ScoreFNO` of ``benchmarks/resolution_transfer.py``
(hidden 32, 4 layers, 12 modes, embedding 64) on the periodic unit square with the command line's forward
process (:func:`hilbert_diffusion.cli.default_sde`), data: Matérn GRFs at 32². Three measurements:

1. **Training**: steps/s of :func:`~hilbert_diffusion.training.train` (batch 32 at 32², in memory, no
   progress bar; per-step times from its ``callback``) against two bare loops on the same batch shapes with
   the same model and AdamW: ``bare_dsm`` — the same denoising loss (:func:`~hilbert_diffusion.losses.denoising_loss`,
   time and noise draws included) + backward + step; ``bare_fno`` — the model's forward on a fixed ``(x_t, t)``
   batch, an MSE against a fixed target, backward, step (nothing but the network and the optimiser).
   ``ratio = steps/s of train() / steps/s of the bare loop`` (target ≥ 0.9). The trainer's extras are the EMA
   update, gradient clipping, the learning-rate schedule and ``loss.item()``.
2. **Sampling**: wall time of the default sampler (:func:`~hilbert_diffusion.sampling.sample`: exponential
   3M on ``default_times(48)``, 48 model evaluations) at 64², batch 16, against ``NFE ×`` the model's own forward
   time on the same shapes (``model(x, t)`` under ``no_grad``). ``ratio = NFE × forward / sampler time``
   (target ≥ 0.9, i.e. the sampler adds at most 10 %).
3. **Peak memory** of sampling (default sampler, batch 8) at 256² against 64²: each in a fresh subprocess,
   the peak resident set size (it sees torch's C++ allocations; ``tracemalloc`` does not). Linux: the peak
   (``VmHWM`` of ``/proc/self/status``) is reset by writing ``5`` to ``/proc/self/clear_refs`` after the
   model is built, so ``peak`` is the process's peak during sampling and ``increment = peak - RSS before
   sampling`` the memory sampling itself needed. Elsewhere ``resource.getrusage(RUSAGE_SELF).ru_maxrss``
   (peak over the whole process, import included) is used, as the JSON's ``method`` says.

4. **Forward** (issue 18): the default score operator (``ScoreFNOConfig()``) built for the 32² SDE, one forward at
   128², batch 8: neuraloperator's own path (``model.lean = False``) against the lean one
   (:mod:`hilbert_diffusion.models.lean_fno`, the same function), ``speedup = time(neuraloperator) / time(lean)``, the
   largest output difference, and each path's shares of FFT, spectral product, 1×1 channel products and everything
   else (one profiled forward; labels by ``record_function``).
5. **Few steps** (issue 18): sampling wall time (64², batch 16) with 48 evaluations on ``default_times(48)`` against
   16 on the grid a run stores (``spectrum_times``), ``ratio = time(48) / time(16)``.
6. **Execution** (issue 19): bf16 autocast and ``torch.compile`` against eager fp32, on this benchmark's model, SDE
   and data (``execution_resolutions``), is its own benchmark, ``benchmarks/speed_execution.py`` (compiling alone
   takes minutes on a busy CPU).

Timings alternate between the variants and are repeated; medians are reported. The machine is shared,
so its load average (``os.getloadavg``) is stored before and after.

    OMP_NUM_THREADS=1 python benchmarks/speed.py [--quick]

writes ``benchmarks/results/speed.json`` (``--quick``: ``speed_quick.json``: a smaller model, 16² training,
sampling at 32², memory at 32² vs 16²; under a minute) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from hilbert_diffusion import Matern, PeriodicBasis
from hilbert_diffusion.cli import default_sde
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.losses import denoising_loss
from hilbert_diffusion.models.fno import EmpiricalSpectrum, ScoreFNOConfig
from hilbert_diffusion.models.lean_fno import CHANNEL_PRODUCT, FFT, SPECTRAL_PRODUCT
from hilbert_diffusion.optimal_times import spectrum_times
from hilbert_diffusion.sampling import default_times, sample
from hilbert_diffusion.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"
BASIS = PeriodicBasis(2)
TARGET = 0.9


@dataclass(frozen=True)
class Setting:
    model: ScoreFNOConfig
    train_resolution: int
    train_batch: int
    train_steps: int  # per timed round
    rounds: int
    sample_resolution: int
    sample_batch: int
    forward_repeats: int
    memory_resolutions: tuple[int, int]
    memory_batch: int
    forward_resolution: int
    forward_batch: int
    execution_resolutions: tuple[int, ...]  # benchmarks/speed_execution.py's forward grids


FULL = Setting(
    model=ScoreFNOConfig(hidden_channels=32, n_layers=4, n_modes=12, embedding_dim=64),
    train_resolution=32, train_batch=32, train_steps=25, rounds=3,
    sample_resolution=64, sample_batch=16, forward_repeats=20,
    memory_resolutions=(64, 256), memory_batch=8, forward_resolution=128, forward_batch=8,
    execution_resolutions=(64, 128),
)
QUICK = Setting(
    model=ScoreFNOConfig(hidden_channels=16, n_layers=2, n_modes=6, embedding_dim=32),
    train_resolution=16, train_batch=16, train_steps=20, rounds=2,
    sample_resolution=32, sample_batch=8, forward_repeats=10,
    memory_resolutions=(16, 32), memory_batch=4, forward_resolution=32, forward_batch=4,
    execution_resolutions=(16, 32),
)
SKIP = 3  # first steps of each round not timed (allocation, lazy caches)


def build(setting: Setting, resolution: int):
    """The SDE, a freshly initialised model (last layer randomised so that the backbone is not a
    no-op) and normalised training data at ``resolution``²."""
    sde = default_sde(BASIS, (setting.train_resolution,) * 2)
    data = gaussian_random_fields(256, resolution, spectrum=Matern(alpha=2.0, tau=3.0), basis=BASIS, seed=0).data
    data = (data - data.mean()) / data.std()
    spectra = EmpiricalSpectrum.estimate(data, BASIS)
    torch.manual_seed(0)
    model = setting.model.build(sde, channels=1, data_spectrum=spectra)
    with torch.no_grad():
        for p in model.fno.projection.fcs[-1].parameters():
            p.normal_(0, 0.02)
    return sde, model, data, spectra


# --------------------------------------------------------------------------------------- training
def time_train(setting: Setting, data, sde) -> list[float]:
    stamps: list[float] = []
    config = TrainConfig(steps=setting.train_steps, batch_size=setting.train_batch, warmup_steps=5,
                         checkpoint_every=0, figure_samples=0, seed=0, optimised_steps=0)
    train(data, sde=sde, model=setting.model, config=config, progress=False,
          callback=lambda step, loss: stamps.append(time.perf_counter()))
    return [b - a for a, b in zip(stamps[SKIP:], stamps[SKIP + 1:])]


def time_bare_dsm(setting: Setting, data, sde, spectra) -> list[float]:
    torch.manual_seed(0)
    net = setting.model.build(sde, channels=1, data_spectrum=spectra).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(setting.train_steps):
        start = time.perf_counter()
        batch = data[torch.randint(data.shape[0], (setting.train_batch,), generator=generator)]
        loss = denoising_loss(net, batch, sde, weight=net.loss_weight, generator=generator).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[SKIP:]


def time_bare_fno(setting: Setting, data, sde, spectra) -> list[float]:
    torch.manual_seed(0)
    net = setting.model.build(sde, channels=1, data_spectrum=spectra).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = data[: setting.train_batch]
    t = torch.rand(setting.train_batch, dtype=torch.float64) * 0.99 + 0.01
    x_t = x + torch.randn_like(x)
    times = []
    for _ in range(setting.train_steps):
        start = time.perf_counter()
        loss = nn.functional.mse_loss(net(x_t, t), x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[SKIP:]


# --------------------------------------------------------------------------------------- sampling
def time_sampling(setting: Setting, model, sde) -> dict:
    n = setting.sample_resolution
    calls = []

    def counted(x_t, t_batch):
        calls.append(len(t_batch))
        return model(x_t, t_batch)

    sample(counted, sde, num=setting.sample_batch, resolution=n, generator=torch.Generator().manual_seed(1))
    nfe = len(calls)  # the default sampler's model evaluations
    x = sde.prior_sample(setting.sample_batch, n, generator=torch.Generator().manual_seed(0))
    t = torch.full((setting.sample_batch,), 0.5, dtype=torch.float64)
    forwards, samplers = [], []
    with torch.no_grad():
        model(x, t)  # warm the per-grid caches
        for _ in range(setting.rounds):
            for _ in range(setting.forward_repeats):
                start = time.perf_counter()
                model(x, t)
                forwards.append(time.perf_counter() - start)
            start = time.perf_counter()
            sample(model, sde, num=setting.sample_batch, resolution=n, generator=torch.Generator().manual_seed(1))
            samplers.append(time.perf_counter() - start)
    forward = statistics.median(forwards)
    sampler = statistics.median(samplers)
    return {"resolution": n, "batch": setting.sample_batch, "nfe": nfe, "forward_seconds_median": forward,
            "sampler_seconds_median": sampler, "sampler_seconds_all": samplers,
            "ratio": nfe * forward / sampler, "overhead_fraction": sampler / (nfe * forward) - 1}


# --------------------------------------------------------------------------------------- forward
def _labelled(module: nn.Module, label: str) -> list:
    """Forward hooks that wrap every call of ``module`` in ``record_function(label)``; returns the handles."""
    def enter(m, args):
        m._speed_label = record_function(label)
        m._speed_label.__enter__()

    def leave(m, args, out):
        m._speed_label.__exit__(None, None, None)

    return [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]


def _shares(model, x, t) -> dict[str, float]:
    """One profiled forward: the shares of FFT, spectral product, channel products and everything else.

    Lean path: its own labels (:mod:`hilbert_diffusion.models.lean_fno`). neuraloperator's path: the same labels put
    on its modules by hooks — ``SpectralConv`` (FFTs, shifts, zero spectrum and contraction; the contraction
    ``_contract`` is subtracted from it), every ``Conv1d`` (the 1×1 channel products)."""
    from neuralop.layers.spectral_convolution import SpectralConv

    handles, wrapped = [], []
    if not model.lean:
        for module in model.modules():
            if isinstance(module, SpectralConv):
                handles += _labelled(module, "spectral_conv")
                inner = module._contract
                module._contract = lambda *a, _inner=inner, **k: _timed(_inner, SPECTRAL_PRODUCT, *a, **k)
                wrapped.append((module, inner))
            elif isinstance(module, nn.Conv1d):
                handles += _labelled(module, CHANNEL_PRODUCT)
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("forward"):
            model(x, t)
    for handle in handles:
        handle.remove()
    for module, inner in wrapped:
        module._contract = inner
    totals = {e.key: e.cpu_time_total for e in prof.key_averages()}
    total = totals["forward"]
    product = totals.get(SPECTRAL_PRODUCT, 0.0)
    fft = totals.get(FFT, 0.0) + max(totals.get("spectral_conv", 0.0) - product, 0.0)
    parts = {"fft": fft / total, "spectral_product": product / total,
             "channel_products": totals.get(CHANNEL_PRODUCT, 0.0) / total}
    parts["everything_else"] = 1 - sum(parts.values())
    return parts


def _timed(function, label, *args, **kwargs):
    with record_function(label):
        return function(*args, **kwargs)


def time_forward(setting: Setting, sde, spectra) -> dict:
    """The default score operator (``ScoreFNOConfig()``: hidden 32, 4 layers, 12 modes, embedding 128; quick: the
    quick model) on the 32²-trained SDE, forward at ``forward_resolution``² with batch ``forward_batch``: neuraloperator's
    path against the lean one, alternating, medians; the outputs' largest difference; the shares of each path."""
    config = ScoreFNOConfig() if setting is FULL else setting.model
    torch.manual_seed(0)
    model = config.build(sde, channels=1, data_spectrum=spectra).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))  # every layer does something (FiLM and the last layer start at zero)
    n = setting.forward_resolution
    x = torch.randn(setting.forward_batch, 1, n, n, generator=torch.Generator().manual_seed(0))
    t = torch.linspace(0.05, 0.95, setting.forward_batch, dtype=torch.float64)
    seconds: dict[str, list[float]] = {"neuraloperator": [], "lean": []}
    outputs = {}
    with torch.no_grad():
        for _ in range(setting.rounds * 3):
            for name, lean in (("neuraloperator", False), ("lean", True)):
                model.lean = lean
                start = time.perf_counter()
                outputs[name] = model(x, t)
                seconds[name].append(time.perf_counter() - start)
    shares = {}
    for name, lean in (("neuraloperator", False), ("lean", True)):
        model.lean = lean
        shares[name] = _shares(model, x, t)
    median = {k: statistics.median(v[1:]) for k, v in seconds.items()}
    return {"resolution": n, "batch": setting.forward_batch, "model": {k: v for k, v in vars(config).items()},
            "seconds_median": median, "seconds_all": seconds, "speedup": median["neuraloperator"] / median["lean"],
            "max_abs_difference": float((outputs["lean"] - outputs["neuraloperator"]).abs().max()),
            "output_scale": float(outputs["neuraloperator"].abs().max()), "shares": shares}


def time_few_steps(setting: Setting, model, sde, spectra) -> dict:
    """Sampling wall time of the 3M sampler on 16 steps optimised for the data spectrum at the training grid and 4×
    finer against ``default_times(48)``, at the sampling benchmark's shapes, alternating, medians (the default, 3M with
    the corrector on a grid for the grid sampled, costs the same per step: one evaluation)."""
    start = time.perf_counter()
    stored = spectrum_times(sde, spectra, (setting.train_resolution,) * 2, steps=16)
    optimise_seconds = time.perf_counter() - start
    grids = {16: torch.tensor(stored["times"], dtype=torch.float64), 48: default_times(48)}
    seconds: dict[int, list[float]] = {16: [], 48: []}
    with torch.no_grad():
        for _ in range(setting.rounds):
            for steps, times in grids.items():
                start = time.perf_counter()
                sample(model, sde, num=setting.sample_batch, resolution=setting.sample_resolution, times=times,
                       generator=torch.Generator().manual_seed(1))
                seconds[steps].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {"resolution": setting.sample_resolution, "batch": setting.sample_batch, "seconds_median": median,
            "seconds_all": seconds, "ratio_48_over_16": median[48] / median[16],
            "optimisation_seconds": optimise_seconds, "stored_grid": stored}


# --------------------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS counter (Linux ≥ 4.0); False where that is impossible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def _memory_child(quick: bool, resolution: int) -> None:
    """Run in a subprocess: print JSON with the RSS before sampling and its peak during sampling (KiB)."""
    setting = QUICK if quick else FULL
    sde, model, _, _ = build(setting, setting.train_resolution)
    x = sde.prior_sample(1, resolution)
    with torch.no_grad():
        model(x, torch.full((1,), 0.5, dtype=torch.float64))  # caches for this grid, tiny batch
    reset = _reset_peak()
    before = _status_kib("VmRSS") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        sample(model, sde, num=setting.memory_batch, resolution=resolution, generator=torch.Generator().manual_seed(0))
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    method = ("VmHWM after resetting it via /proc/self/clear_refs; before = VmRSS" if reset
              else "resource.getrusage(RUSAGE_SELF).ru_maxrss (whole-process peak)")
    print(json.dumps({"resolution": resolution, "rss_before_kib": before, "peak_kib": peak,
                      "seconds": seconds, "method": method,
                      "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def measure_memory(setting: Setting, quick: bool) -> dict:
    out = {}
    for resolution in setting.memory_resolutions:
        cmd = [sys.executable, __file__, "--memory-child", str(resolution)] + (["--quick"] if quick else [])
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["peak_mib"] = row["peak_kib"] / 1024
        row["sampling_increment_mib"] = (row["peak_kib"] - row["rss_before_kib"]) / 1024
        out[str(resolution)] = row
    low, high = (out[str(r)] for r in setting.memory_resolutions)
    pixels = (setting.memory_resolutions[1] / setting.memory_resolutions[0]) ** 2
    return {"method": f"fresh subprocess per resolution; {low['method']}; increment = peak - before",
            "batch": setting.memory_batch, "per_resolution": out,
            "peak_ratio": high["peak_mib"] / low["peak_mib"],
            "increment_ratio": high["sampling_increment_mib"] / max(low["sampling_increment_mib"], 1e-9),
            "pixel_ratio": pixels}


# --------------------------------------------------------------------------------------- main
def time_training(setting, data, sde, spectra) -> dict:
    """Seconds per step of ``train()`` against the bare DSM loop and the bare FNO step, in alternating rounds."""
    timings: dict[str, list[float]] = {"train": [], "bare_dsm": [], "bare_fno": []}
    round_medians: dict[str, list[float]] = {k: [] for k in timings}
    for _ in range(setting.rounds):  # alternate, so a change of machine load hits all three alike
        for name, run in (("train", lambda: time_train(setting, data, sde)),
                          ("bare_dsm", lambda: time_bare_dsm(setting, data, sde, spectra)),
                          ("bare_fno", lambda: time_bare_fno(setting, data, sde, spectra))):
            values = run()
            timings[name] += values
            round_medians[name].append(statistics.median(values))
    per_step = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "resolution": setting.train_resolution, "batch": setting.train_batch,
        "steps_timed": {k: len(v) for k, v in timings.items()},
        "seconds_per_step_median": per_step,
        "round_medians": round_medians,
        "steps_per_second": {k: 1 / v for k, v in per_step.items()},
        "ratio_vs_bare_dsm": per_step["bare_dsm"] / per_step["train"],
        "ratio_vs_bare_fno": per_step["bare_fno"] / per_step["train"],
    }


def print_table(document: dict, setting) -> None:
    """The measurements and their ratios, as printed."""
    training, sampling, memory = document["training"], document["sampling"], document["memory"]
    forward, few_steps = document["forward"], document["sampling_16_vs_48"]
    sps = training["steps_per_second"]
    lo, hi = setting.memory_resolutions
    rows = [
        ("training steps/s: train() / bare DSM loop", f"{sps['train']:.2f} / {sps['bare_dsm']:.2f}",
         training["ratio_vs_bare_dsm"]),
        ("training steps/s: train() / bare FNO fwd+bwd+AdamW", f"{sps['train']:.2f} / {sps['bare_fno']:.2f}",
         training["ratio_vs_bare_fno"]),
        (f"sampling {sampling['resolution']}² b{sampling['batch']}: NFE×forward / sampler",
         f"{sampling['nfe']}×{sampling['forward_seconds_median']*1e3:.1f}ms / {sampling['sampler_seconds_median']:.2f}s",
         sampling["ratio"]),
        (f"peak RSS sampling {hi}² / {lo}² (b{setting.memory_batch})",
         f"{memory['per_resolution'][str(hi)]['peak_mib']:.0f} / {memory['per_resolution'][str(lo)]['peak_mib']:.0f} MiB",
         memory["peak_ratio"]),
        (f"sampling RSS increment {hi}² / {lo}²",
         f"{memory['per_resolution'][str(hi)]['sampling_increment_mib']:.0f} / "
         f"{memory['per_resolution'][str(lo)]['sampling_increment_mib']:.0f} MiB (pixels ×{memory['pixel_ratio']:.0f})",
         memory["increment_ratio"]),
        (f"forward {forward['resolution']}² b{forward['batch']}: neuraloperator / lean",
         f"{forward['seconds_median']['neuraloperator']:.3f}s / {forward['seconds_median']['lean']:.3f}s",
         forward["speedup"]),
        (f"sampling {few_steps['resolution']}² b{few_steps['batch']}: 48 / 16 evaluations (optimised grid)",
         f"{few_steps['seconds_median'][48]:.2f}s / {few_steps['seconds_median'][16]:.2f}s", few_steps["ratio_48_over_16"]),
    ]
    print(f"{'measurement':<52}{'values':<40}{'ratio':>8}")
    for name, values, ratio in rows:
        print(f"{name:<52}{values:<40}{ratio:>8.3f}")
    for name, parts in forward["shares"].items():
        print(f"forward shares ({name}): " + ", ".join(f"{k} {v:.0%}" for k, v in parts.items()))
    print(f"largest output difference lean vs neuraloperator: {forward['max_abs_difference']:.1e} "
          f"(outputs up to {forward['output_scale']:.2f})")
    machine = document["machine"]
    print(f"load average before {machine['load_average_before']}, after {machine['load_average_after']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run (under a minute)")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child is not None:
        _memory_child(args.quick, args.memory_child)
        return 0
    setting = QUICK if args.quick else FULL
    load_before = list(os.getloadavg())
    wall = time.monotonic()
    sde, model, data, spectra = build(setting, setting.train_resolution)

    training = time_training(setting, data, sde, spectra)
    sampling = time_sampling(setting, model.eval(), sde)
    forward = time_forward(setting, sde, spectra)
    few_steps = time_few_steps(setting, model.eval(), sde, spectra)
    memory = measure_memory(setting, args.quick)
    document = {
        "description": "toolkit overhead as ratios measured in one run (targets: training >= 0.9, sampling >= 0.9)",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/speed.py{' --quick' if args.quick else ''}",
        "model": {k: v for k, v in vars(setting.model).items()},
        "training": training,
        "sampling": sampling,
        "forward": forward,
        "sampling_16_vs_48": few_steps,
        "memory": memory,
        "passes": {"training_vs_bare_dsm": training["ratio_vs_bare_dsm"] >= TARGET,
                   "training_vs_bare_fno": training["ratio_vs_bare_fno"] >= TARGET,
                   "sampling": sampling["ratio"] >= TARGET},
        "wall_seconds": round(time.monotonic() - wall, 1),
        "machine": {"threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cpu": platform.machine(), "cores": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": list(os.getloadavg())},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("speed_quick.json" if args.quick else "speed.json")
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1))
    os.replace(tmp, out)
    print_table(document, setting)
    print(f"wrote {out} in {document['wall_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
