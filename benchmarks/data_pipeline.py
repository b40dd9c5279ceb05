"""Training from files larger than memory: steps/s against the in-memory path, and peak memory against file size.

Data: ``(num, 1, 64, 64)`` float32 fields (standard normal values; the content does not change the speed) in
a small file (64 MiB) and a large one (≥ 2 GiB), each written to the system's temporary folder twice — as a
``.npy`` file read memory-mapped (``FILE.npy:mmap=true``) and as HDF5 (one chunk per field,
``FILE.h5:key=fields``) — and removed afterwards. Model: the same small score FNO for every case (hidden 16,
2 layers, 8 modes, batch 16 at 64²: a small model, so that a slow reader would show in the steps/s). Cases,
each in a fresh subprocess so that its peak resident memory is its own:

* ``memory`` — the small file loaded into memory (``np.load``), the baseline;
* ``mmap`` / ``hdf5`` at both sizes — the same training reading batches lazily (``LazyFields``), after the
  streaming pass for the normalisation and the data spectrum.

Per case: the median time of a training step (from ``train``'s callback, the first steps dropped), the time to
read a batch (100 random batches read as training reads them, after training: the reader's share of a step), the
setup time (from the call of ``train`` to its first step: for lazy data mostly the streaming statistics pass), and the
process' peak RSS (``VmHWM``; imports, statistics pass and training included). Reported:
``ratio = steps/s(lazy) / steps/s(memory)`` (target ≥ 0.9) and ``rss_ratio = peak RSS on the large file / on the
small file`` (target: independent of size, ≈ 1). ``Setting.rounds`` repeats the cases in alternation (medians
over the rounds). The files were just written, so they are read from the page cache; a cold read from a real
disk adds that disk's latency. ``--quick``: tiny files at 16², a few steps, in this process (seconds; the test
suite runs it).

    OMP_NUM_THREADS=1 python benchmarks/data_pipeline.py [--quick]

writes ``benchmarks/results/data_pipeline[_quick].json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.9


@dataclass(frozen=True)
class Setting:
    """Grid, file sizes (fields), training steps and batch, and the rounds over the cases."""

    resolution: int
    small_fields: int
    large_fields: int
    steps: int
    skip: int  # first steps not timed
    batch: int
    rounds: int


FULL = Setting(resolution=64, small_fields=4096, large_fields=131_072, steps=30, skip=5, batch=16, rounds=3)
QUICK = Setting(resolution=16, small_fields=64, large_fields=512, steps=6, skip=2, batch=4, rounds=1)


def _write(folder: Path, name: str, num: int, setting: Setting) -> dict[str, Path]:
    """``name.npy`` and ``name.h5`` holding the same ``num`` fields, written in blocks (never all in memory)."""
    import h5py

    shape = (num, 1, setting.resolution, setting.resolution)
    npy, h5 = folder / f"{name}.npy", folder / f"{name}.h5"
    array = np.lib.format.open_memmap(npy, mode="w+", dtype=np.float32, shape=shape)
    rng = np.random.default_rng(0)
    with h5py.File(h5, "w") as file:
        dataset = file.create_dataset("fields", shape=shape, dtype=np.float32, chunks=(1, *shape[1:]))
        for start in range(0, num, 4096):
            block = rng.standard_normal((min(4096, num - start), *shape[1:]), dtype=np.float32)
            array[start : start + len(block)] = block
            dataset[start : start + len(block)] = block
    array.flush()
    del array
    return {"npy": npy, "h5": h5}


def _peak_kib() -> int | None:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def run_case(kind: str, path: str, quick: bool) -> dict:
    """Train on ``path`` read as ``kind`` (``memory``, ``mmap``, ``hdf5``); time per step and peak RSS."""
    from hilbert_diffusion.cli import default_sde
    from hilbert_diffusion.datasets.spec import dataset_from_spec
    from hilbert_diffusion.loader import NormalisedFields
    from hilbert_diffusion.normalization import Normalization
    from hilbert_diffusion.models.fno import ScoreFNOConfig
    from hilbert_diffusion.training import TrainConfig, train

    setting = QUICK if quick else FULL
    torch.set_num_threads(1)
    spec = {"memory": path, "mmap": f"{path}:mmap=true", "hdf5": f"{path}:key=fields"}[kind]
    dataset = dataset_from_spec(spec)
    data = dataset.data if kind == "memory" else dataset
    sde = default_sde(dataset.basis, dataset.grid)
    times: list[float] = [time.perf_counter()]
    config = TrainConfig(steps=setting.steps, batch_size=setting.batch, warmup_steps=2, checkpoint_every=0,
                         figure_samples=0, optimised_steps=0)
    model = ScoreFNOConfig(hidden_channels=16, n_layers=2, n_modes=8, embedding_dim=32)
    train(data, sde=sde, model=model, config=config, progress=False,
          callback=lambda step, loss: times.append(time.perf_counter()))
    steps = np.diff(times[1:])[setting.skip :]
    reader = NormalisedFields(data, range(len(dataset)), Normalization.identity(dataset.channels))  # what train reads
    draws = [torch.randint(len(reader), (setting.batch,), generator=torch.Generator().manual_seed(i)) for i in range(100)]
    start = time.perf_counter()
    for index in draws:
        reader.raw(index)
    return {"kind": kind, "file_bytes": Path(path).stat().st_size, "step_seconds_median": float(np.median(steps)),
            "setup_seconds": times[1] - times[0], "read_ms_per_batch": (time.perf_counter() - start) * 10,
            "peak_rss_mib": (_peak_kib() or 0) / 1024}


def _case_in_subprocess(kind: str, path: Path, quick: bool) -> dict:
    command = [sys.executable, __file__, "--case", kind, str(path)] + (["--quick"] if quick else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(folder: Path, setting: Setting, quick: bool) -> dict[str, list[dict]]:
    small = _write(folder, "small", setting.small_fields, setting)
    large = _write(folder, "large", setting.large_fields, setting)
    cases = [("memory", "small", small["npy"]), ("mmap", "small", small["npy"]), ("mmap", "large", large["npy"]),
             ("hdf5", "small", small["h5"]), ("hdf5", "large", large["h5"])]
    rows: dict[str, list[dict]] = {}
    for _ in range(setting.rounds):  # alternate: a change of machine load hits every case alike
        for kind, size, path in cases:
            row = run_case(kind, str(path), quick) if quick else _case_in_subprocess(kind, path, quick)
            rows.setdefault(f"{kind}_{size}", []).append(row)
    return rows


def summarise(rows: dict[str, list[dict]]) -> dict:
    out = {}
    for name, runs in rows.items():
        step = statistics.median(r["step_seconds_median"] for r in runs)
        out[name] = {"file_gib": runs[0]["file_bytes"] / 2**30, "step_seconds": step, "steps_per_second": 1 / step,
                     "setup_seconds": statistics.median(r["setup_seconds"] for r in runs),
                     "read_ms_per_batch": statistics.median(r["read_ms_per_batch"] for r in runs),
                     "peak_rss_mib": max(r["peak_rss_mib"] for r in runs), "runs": runs}
    base = out["memory_small"]["step_seconds"]
    for name, row in out.items():
        row["ratio_vs_memory"] = base / row["step_seconds"]
    for kind in ("mmap", "hdf5"):
        out[f"{kind}_large"]["rss_ratio_large_over_small"] = (out[f"{kind}_large"]["peak_rss_mib"]
                                                              / out[f"{kind}_small"]["peak_rss_mib"])
    return out


def headline(document: dict) -> dict:
    cases = document["cases"]
    return {"mmap_ratio": round(cases["mmap_large"]["ratio_vs_memory"], 3),
            "hdf5_ratio": round(cases["hdf5_large"]["ratio_vs_memory"], 3),
            "mmap_rss_ratio": round(cases["mmap_large"]["rss_ratio_large_over_small"], 3),
            "hdf5_rss_ratio": round(cases["hdf5_large"]["rss_ratio_large_over_small"], 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny files, in this process (seconds)")
    parser.add_argument("--case", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], args.case[1], args.quick)))
        return 0
    setting = QUICK if args.quick else FULL
    load_before, wall = list(os.getloadavg()), time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="hd_data_pipeline_"))
    try:
        cases = summarise(measure(folder, setting, args.quick))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lazy = [cases[f"{k}_large"] for k in ("mmap", "hdf5")]
    document = {
        "description": "training steps/s reading lazily vs in memory (target >= 0.9) and peak RSS vs file size",
        "command": f"OMP_NUM_THREADS=1 python benchmarks/data_pipeline.py{' --quick' if args.quick else ''}",
        "setting": vars(setting), "model": "ScoreFNOConfig(hidden_channels=16, n_layers=2, n_modes=8, embedding_dim=32)",
        "peak_rss_method": "in this process (ru of the whole run)" if args.quick else "VmHWM of a fresh subprocess per case",
        "cases": cases,
        "passes": {"speed": all(c["ratio_vs_memory"] >= TARGET for c in lazy)},
        "wall_seconds": round(time.monotonic() - wall, 1),
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "load_average_before": load_before, "load_average_after": list(os.getloadavg())},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"data_pipeline{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(document, indent=1))
    print(f"{'case':14s} {'file GiB':>9s} {'steps/s':>8s} {'× memory':>9s} {'read ms':>8s} {'setup s':>8s} "
          f"{'peak RSS MiB':>13s}")
    for name, row in cases.items():
        print(f"{name:14s} {row['file_gib']:9.3f} {row['steps_per_second']:8.2f} {row['ratio_vs_memory']:9.3f} "
              f"{row['read_ms_per_batch']:8.2f} {row['setup_seconds']:8.1f} {row['peak_rss_mib']:13.0f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
