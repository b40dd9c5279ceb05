"""Data that do not fit in memory (issue 20): lazy sources (memory-mapped .npy, .npy shards, HDF5 in the
PDEBench and The Well layouts), the streaming statistics, the shuffled and sharded loader, resume with lazy
data, the held-out split, metrics.jsonl and TensorBoard, and the errors on bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hilbert_diffusion import GaussianRandomField, Matern, NeumannBasis, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.checkpoint import read_checkpoint
from hilbert_diffusion.data_statistics import StreamingStatistics, stream_statistics
from hilbert_diffusion.datasets.hdf5 import open_hdf5
from hilbert_diffusion.datasets.lazy import open_npy, open_shards
from hilbert_diffusion.datasets.spec import dataset_from_spec
from hilbert_diffusion.loader import NormalisedFields, ShuffledBatches, epoch_order, global_batch, split_rows
from hilbert_diffusion.models.fno import EmpiricalSpectrum, ScoreFNOConfig, clean_state_dict
from hilbert_diffusion.normalization import Normalization
from hilbert_diffusion.resume import ResumeMismatch
from hilbert_diffusion.tracking import read_metrics
from hilbert_diffusion.training import TrainConfig, train

MODEL = ScoreFNOConfig(hidden_channels=8, n_layers=1, n_modes=4, embedding_dim=8)
SDE = StochasticHeatSDE(basis=NeumannBasis(1), covariance=Matern(alpha=1.0, tau=3.0))


def _fields(num: int = 24, channels: int = 2, size: int = 16, seed: int = 0) -> np.ndarray:
    """Smooth fields with channel means and scales far from (0, 1), float32."""
    x = GaussianRandomField(PeriodicBasis(1), Matern(alpha=1.5, tau=5.0)).sample(
        num, size, channels=channels, generator=torch.Generator().manual_seed(seed))
    return (x * torch.tensor([3.0, 0.5][:channels]).reshape(1, -1, 1) + torch.tensor([10.0, -2.0][:channels])
            .reshape(1, -1, 1)).numpy().astype(np.float32)


def _config(**options) -> TrainConfig:
    return TrainConfig(**{"steps": 4, "batch_size": 5, "warmup_steps": 2, "checkpoint_every": 2, "figure_samples": 0,
                          "optimised_steps": 0} | options)


# ----------------------------------------------------------------------------------------- sources
def test_memory_mapped_npy_and_shards_read_the_rows_asked_for(tmp_path):
    """Rows in any order and repeated, float64 files as float32, head() and the spec grammar; shards read as
    the concatenation of their files."""
    data = _fields().astype(np.float64)
    np.save(tmp_path / "a.npy", data)
    lazy = dataset_from_spec(f"{tmp_path / 'a.npy'}:mmap=true")
    assert lazy.shape == data.shape and lazy.basis == NeumannBasis(1)
    rows = [5, 0, 5, 23]
    assert torch.equal(lazy.read(rows), torch.from_numpy(data[rows].astype(np.float32)))
    assert torch.equal(lazy.head(3).read([2]), torch.from_numpy(data[[2]].astype(np.float32)))
    (tmp_path / "shards").mkdir()
    for i, part in enumerate(np.array_split(data.astype(np.float32), [7, 8])):
        np.save(tmp_path / "shards" / f"part{i}.npy", part)
    shards = dataset_from_spec(str(tmp_path / "shards"), num=20)
    assert shards.shape == (20, 2, 16)
    assert torch.equal(shards.read([19, 6, 7, 8, 0]), torch.from_numpy(data[[19, 6, 7, 8, 0]].astype(np.float32)))
    np.save(tmp_path / "shards" / "part9.npy", data[:2, :1])
    with pytest.raises(ValueError, match="'part9.npy' holds fields \\(1, 16\\) but 'part0.npy' holds \\(2, 16\\)"):
        open_shards(tmp_path / "shards")
    coarse = open_npy(tmp_path / "a.npy").resample(8)  # band-limited on reading, as FieldDataset.resample
    assert torch.allclose(coarse.read([1]), NeumannBasis(1).resample(torch.from_numpy(data[[1]]).float(), (8,)))


def _rss_file_kib() -> int:
    return int(next(line for line in open("/proc/self/status") if line.startswith("RssFile:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="RssFile is Linux's")
def test_memory_mapped_reads_do_not_stay_resident(tmp_path):
    """Reading all of a 32 MiB memory-mapped file, in order and at random, leaves its pages unmapped: the
    process' file-backed resident memory grows by less than 4 MiB (it grew by the whole file before the
    pages around each read were released, the kernel's fault-around mapping neighbours along)."""
    np.save(tmp_path / "big.npy", np.ones((2048, 1, 64, 64), np.float32))
    lazy = open_npy(tmp_path / "big.npy")
    lazy.read([0])
    before = _rss_file_kib()
    for start in range(0, 2048, 256):
        assert float(lazy.read(range(start, start + 256)).sum()) == 256 * 4096
    lazy.read(torch.randperm(2048)[:512])
    assert _rss_file_kib() - before < 4096


def _pdebench_and_well(path):
    """Small files in the layouts of PDEBench (1-D 'tensor' (N, T, X); 2-D CFD per-variable (N, T, X, Y);
    Darcy 'nu' (N, X, Y) + 'tensor' (N, 1, X, Y)) and The Well (t0_fields/NAME (N, T, X, Y), t1_fields/NAME
    (N, T, X, Y, D)); returns the arrays written."""
    rng = np.random.default_rng(0)
    arrays = {"tensor1d": rng.normal(size=(3, 4, 8)), "density": rng.normal(size=(3, 2, 8, 6)),
              "Vx": rng.normal(size=(3, 2, 8, 6)), "nu": rng.normal(size=(5, 8, 6)),
              "darcy": rng.normal(size=(5, 1, 8, 6)), "velocity": rng.normal(size=(3, 2, 8, 6, 2))}
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    with h5py.File(path / "pdebench_1d.hdf5", "w") as f:
        f["tensor"] = arrays["tensor1d"]
        f["x-coordinate"] = np.linspace(0, 1, 8)
    with h5py.File(path / "pdebench_cfd.hdf5", "w") as f:
        f["density"], f["Vx"] = arrays["density"], arrays["Vx"]
    with h5py.File(path / "pdebench_darcy.hdf5", "w") as f:
        f["nu"], f["tensor"] = arrays["nu"], arrays["darcy"]
    with h5py.File(path / "the_well.hdf5", "w") as f:
        f["t0_fields/density"], f["t1_fields/velocity"] = arrays["density"], arrays["velocity"]
        labelled = f.create_dataset("labelled", data=arrays["velocity"])
        for dim, label in zip(labelled.dims, ("sample", "time", "x", "y", "channel")):
            dim.label = label
    return arrays


def test_hdf5_layouts_of_pdebench_and_the_well(tmp_path):
    """Each layout read through the spec grammar equals the numpy rearrangement to (num, channels, *grid):
    time folded into samples (field n·T + t), datasets stacked as channels, a channel axis moved first,
    axes inferred from HDF5 dimension labels."""
    a = _pdebench_and_well(tmp_path)
    one_d = dataset_from_spec(f"{tmp_path / 'pdebench_1d.hdf5'}:key=tensor,axes=ntx")
    assert one_d.shape == (12, 1, 8)
    assert torch.equal(one_d.read([7]), torch.from_numpy(a["tensor1d"][1, 3][None, None]))
    cfd = dataset_from_spec(f"{tmp_path / 'pdebench_cfd.hdf5'}:key=density+Vx,axes=ntxy")
    expected = np.stack([a["density"], a["Vx"]], axis=2).reshape(6, 2, 8, 6)
    assert cfd.shape == (6, 2, 8, 6) and torch.equal(cfd.read(range(6)), torch.from_numpy(expected))
    darcy = open_hdf5(tmp_path / "pdebench_darcy.hdf5", key="nu+tensor", axes="nxy+ncxy")
    assert torch.equal(darcy.read([4]), torch.from_numpy(np.stack([a["nu"][4], a["darcy"][4, 0]])[None]))
    well = dataset_from_spec(f"{tmp_path / 'the_well.hdf5'}:key=t1_fields/velocity,axes=ntxyc")
    assert torch.equal(well.read([3]), torch.from_numpy(np.moveaxis(a["velocity"][1, 1], -1, 0)[None]))
    labelled = open_hdf5(tmp_path / "the_well.hdf5", key="labelled")  # axes from the dimension labels
    assert labelled.source.axes == ["ntxyc"] and torch.equal(labelled.read([3]), well.read([3]))


# ----------------------------------------------------------------------------------------- statistics
@pytest.mark.parametrize("basis", [NeumannBasis(1), PeriodicBasis(1)])
def test_streaming_statistics_equal_the_in_memory_ones(tmp_path, basis, monkeypatch):
    """One pass in chunks of 7 fields gives Normalization.fit's moments and the spectrum of the normalised
    data (EmpiricalSpectrum.estimate) to float64 rounding, on float64 data with a mean 10× the spread."""
    data = _fields(num=30).astype(np.float64)
    np.save(tmp_path / "a.npy", data)
    monkeypatch.setattr("hilbert_diffusion.data_statistics._CHUNK_BYTES", 7 * 8 * 2 * 16)
    normalization, spectra = stream_statistics(open_npy(tmp_path / "a.npy", basis=basis), basis=basis)
    exact = Normalization.fit(torch.from_numpy(data).float(), basis=basis)
    assert np.allclose(normalization.mean, exact.mean, rtol=1e-6) and np.allclose(normalization.std, exact.std, rtol=1e-6)
    reference = EmpiricalSpectrum.estimate(torch.from_numpy(data).double(), basis)  # raw: identity normalisation
    _, raw = stream_statistics(open_npy(tmp_path / "a.npy", basis=basis), basis=basis, enabled=False)
    for got, want in zip(raw, reference):
        assert np.allclose(got.log_values, want.log_values, rtol=0, atol=1e-12)
    encoded = EmpiricalSpectrum.estimate(exact.encode(torch.from_numpy(data)), basis)
    for got, want in zip(spectra, encoded):
        assert np.allclose(got.log_values, want.log_values, rtol=0, atol=1e-6)
    halves = [StreamingStatistics(basis), StreamingStatistics(basis)]  # two ranks' shares, shifted differently
    halves[0].add(torch.from_numpy(data[:11]))
    halves[1].add(torch.from_numpy(data[11:] + 5.0))
    halves[0].merge(halves[1])
    shifted = np.concatenate([data[:11], data[11:] + 5.0])
    merged = EmpiricalSpectrum.from_power(halves[0].power(Normalization.identity(2)), basis, (16,))
    for got, want in zip(merged, EmpiricalSpectrum.estimate(torch.from_numpy(shifted), basis)):
        assert np.allclose(got.log_values, want.log_values, rtol=0, atol=1e-12)
    mean, std = halves[0].moments()
    exact = Normalization.fit(torch.from_numpy(shifted).float(), basis=basis)
    assert np.allclose(mean, exact.mean, rtol=1e-6) and np.allclose(std, exact.std, rtol=1e-6)


# ----------------------------------------------------------------------------------------- loader
def test_shuffled_epochs_and_rank_shards():
    """Every epoch visits each field once; draws are a pure function of (seed, draw); two ranks' shards of
    the same draws are disjoint and together the global batches; the held-out rows are the last ones."""
    num, batch = 13, 5
    stream = torch.cat([global_batch(0, num, d, batch) for d in range(13)])  # 65 = 5 epochs of 13
    for e in range(5):
        assert sorted(stream[13 * e : 13 * (e + 1)].tolist()) == list(range(num))
    assert torch.equal(stream[:13], epoch_order(0, 0, num)) and not torch.equal(epoch_order(0, 1, num), stream[:13])
    ranks = [ShuffledBatches(num, seed=0, batch_size=batch, start=3, shard=s) for s in (slice(0, 2), slice(2, 5))]
    draws = [iter(r) for r in ranks]
    for d in range(3, 8):
        first, second = next(draws[0]), next(draws[1])
        assert first + second == global_batch(0, num, d, batch).tolist()
    assert split_rows(10, 0.25) == (range(7), range(7, 10)) and split_rows(10, 0.0) == (range(10), range(10, 10))


def _weights(run):
    return clean_state_dict(run.model)


def test_resume_with_lazy_data_is_bit_exact(tmp_path):
    """4 steps on a memory-mapped file with one loader worker equal 2 steps + resume + 2 steps bit for bit;
    and the lazy run reads what the in-memory run reads (weights within float32 noise of the statistics)."""
    np.save(tmp_path / "a.npy", _fields())
    lazy = open_npy(tmp_path / "a.npy")
    config = _config(workers=1)
    whole = train(lazy, sde=SDE, model=MODEL, config=config, out_dir=tmp_path / "whole", progress=False)
    train(lazy, sde=SDE, model=MODEL, config=_config(steps=2, workers=1), out_dir=tmp_path / "half", progress=False)
    resumed = train(lazy, sde=SDE, model=MODEL, config=config, out_dir=tmp_path / "half", resume=True, progress=False)
    a, b = _weights(whole), _weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    memory = train(torch.from_numpy(_fields()), sde=SDE, model=MODEL, config=config, progress=False)
    c = _weights(memory)
    assert all(torch.allclose(a[k], c[k], atol=1e-5) for k in a)
    steps = [r["step"] for r in read_metrics(tmp_path / "half") if "loss" in r]
    assert steps == [1, 2, 3, 4]  # the resumed run appended steps 3 and 4 after the checkpoint's 2


def test_validation_loss_and_tensorboard(tmp_path):
    """val_fraction holds out the last fields (never read by training); their loss is logged at each checkpoint
    and equals the EMA model's loss recomputed; TensorBoard's event files hold the logged scalars and figures."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from hilbert_diffusion.training_state import mean_loss

    data = torch.from_numpy(_fields(num=20))
    read = []
    original = NormalisedFields.raw
    NormalisedFields.raw = lambda self, p: read.append((self.rows, torch.as_tensor(p).tolist())) or original(self, p)
    try:
        run = train(data, sde=SDE, model=MODEL, config=_config(val_fraction=0.2, figure_samples=2, sample_steps=2),
                    out_dir=tmp_path / "run", log_dir=tmp_path / "tb", progress=False)
    finally:
        NormalisedFields.raw = original
    trained = {rows.start + i for rows, p in read if rows == range(16) for i in p}
    held_out = {rows.start + i for rows, p in read if rows == range(16, 20) for i in p}
    assert trained == set(range(16)) and held_out == set(range(16, 20))
    records = read_metrics(tmp_path / "run")
    val = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in val] == [2, 4]
    held = NormalisedFields(data, range(16, 20), run.normalization)
    expected = mean_loss(run.model, held, torch.arange(4), SDE, config=_config(),
                         weights={"weight": run.model.loss_weight, "mode_weight": None},
                         generator=torch.Generator().manual_seed(0 + 3))
    assert math.isclose(val[-1]["val_loss"], expected, rel_tol=1e-6)
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    logged = [r for r in records if "loss" in r]
    assert [e.step for e in events.Scalars("train/loss")] == [r["step"] for r in logged] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in logged], rel=1e-6)
    assert [e.step for e in events.Scalars("val/loss")] == [2, 4]
    assert {"train/lr", "train/grad_norm", "train/steps_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Images("samples")] == [4]


# ----------------------------------------------------------------------------------------- bad input
def test_bad_lazy_input_is_refused_clearly(tmp_path):
    """A missing key, a dataset of the wrong rank, a NaN in a file, and a file changed between start and
    resume (a header byte, an appended row) each give one clear error."""
    _pdebench_and_well(tmp_path)
    with pytest.raises(ValueError, match="has no dataset 'u'; it holds"):
        dataset_from_spec(f"{tmp_path / 'pdebench_cfd.hdf5'}:key=u")
    with pytest.raises(ValueError, match=r"rank 4\) but axes='ntx' names 3 axes"):
        dataset_from_spec(f"{tmp_path / 'pdebench_cfd.hdf5'}:key=density,axes=ntx")
    np.save(tmp_path / "flat.npy", np.zeros((4, 8), np.float32))
    with pytest.raises(ValueError, match=r"rank 2\), but fields must be shaped"):
        dataset_from_spec(f"{tmp_path / 'flat.npy'}:mmap=true")
    with pytest.raises(ValueError, match=r"takes the options \['axes', 'key'\]"):
        dataset_from_spec(f"{tmp_path / 'pdebench_cfd.hdf5'}:mmap=true")
    bad = _fields()
    bad[9, 1, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="field 9 holds NaN"):
        train(open_npy(tmp_path / "nan.npy"), sde=SDE, model=MODEL, config=_config(), progress=False)

    np.save(tmp_path / "a.npy", _fields())
    train(open_npy(tmp_path / "a.npy"), sde=SDE, model=MODEL, config=_config(steps=2), out_dir=tmp_path / "run",
          progress=False)
    raw = bytearray((tmp_path / "a.npy").read_bytes())
    raw[200] ^= 1  # one bit of the first field, same size
    (tmp_path / "a.npy").write_bytes(bytes(raw))
    with pytest.raises(ResumeMismatch, match="data.file.header_sha256") as changed:
        train(open_npy(tmp_path / "a.npy"), sde=SDE, model=MODEL, config=_config(), out_dir=tmp_path / "run",
              resume=True, progress=False)
    assert changed.value.field == "data.file.header_sha256"
    np.save(tmp_path / "a.npy", np.concatenate([_fields(), _fields(num=1, seed=1)]))
    with pytest.raises(ResumeMismatch, match="data.num"):
        train(open_npy(tmp_path / "a.npy"), sde=SDE, model=MODEL, config=_config(), out_dir=tmp_path / "run",
              resume=True, progress=False)
    assert json.loads((tmp_path / "run" / "checkpoint-00000002" / "checkpoint.json").read_text())["step"] == 2  # kept


SHARD_WORKER = """
import json, sys
from pathlib import Path

import torch
import torch.distributed as dist

from hilbert_diffusion.data_statistics import StreamingStatistics
from hilbert_diffusion.datasets.lazy import open_npy
from hilbert_diffusion.distributed import distributed_context
from hilbert_diffusion.loader import NormalisedFields
from hilbert_diffusion.training import train
from test_data_pipeline import MODEL, SDE, _config

root = Path(sys.argv[1])
context = distributed_context()
read, streamed = [], []  # the positions this rank's loader reads, batch by batch; the fields it streams
original = NormalisedFields.__getitems__
NormalisedFields.__getitems__ = lambda self, p: read.append(list(p)) or original(self, p)
add = StreamingStatistics.add
StreamingStatistics.add = lambda self, fields: streamed.append(fields.clone()) or add(self, fields)
train(open_npy(root / "a.npy"), sde=SDE, model=MODEL, config=_config(), out_dir=root / "two", progress=False)
(root / f"read{context.rank}.json").write_text(json.dumps(read))
torch.save(torch.cat(streamed), root / f"streamed{context.rank}.pt")
dist.destroy_process_group()
"""


def test_two_torchrun_processes_read_disjoint_shards(tmp_path):
    """2 ranks train 4 steps of global batch 5 on 10 fields of a memory-mapped file (2 epochs): each rank's
    loader reads its 2 or 3 rows of every batch only, the two never read the same field within an epoch and
    together read each field once per epoch; for the statistics each streams its half of the file; the weights
    are the one-process run's (float32 all-reduce noise and the merged statistics' rounding)."""
    from test_distributed import _free_port

    np.save(tmp_path / "a.npy", _fields(num=10))
    train(open_npy(tmp_path / "a.npy"), sde=SDE, model=MODEL, config=_config(), out_dir=tmp_path / "one", progress=False)
    (tmp_path / "worker.py").write_text(SHARD_WORKER)
    tests = str(Path(__file__).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([tests, env.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(tmp_path / "worker.py"), str(tmp_path)]
    result = subprocess.run(command, check=False, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reads = [json.loads((tmp_path / f"read{r}.json").read_text()) for r in (0, 1)]
    assert [len(b) for b in reads[0]] == [2] * 4 and [len(b) for b in reads[1]] == [3] * 4
    for epoch in (slice(0, 2), slice(2, 4)):  # draws 0-1 and 2-3: positions 0-9 and 10-19 of the stream
        mine = [sum(reads[r][epoch], []) for r in (0, 1)]
        assert not set(mine[0]) & set(mine[1]) and sorted(mine[0] + mine[1]) == list(range(10))
    halves = [torch.load(tmp_path / f"streamed{r}.pt", weights_only=True) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), torch.from_numpy(_fields(num=10))) and len(halves[0]) == 5
    one, two = read_checkpoint(tmp_path / "one"), read_checkpoint(tmp_path / "two")
    assert max(float((one.tensors[k] - v).abs().max()) for k, v in two.tensors.items()) < 1e-6


def test_command_line_trains_on_hdf5_and_refuses_a_changed_file(tmp_path, capsys):
    """`train --data FILE.h5:key=…,axes=…` with --val-fraction, --keep-best and --log-dir writes a checkpoint,
    metrics.jsonl with held-out losses, event files and the checkpoint of the lowest of them in run/best, which
    `sample` reads; a resume after the file grew is refused in one line, no traceback,
    and the checkpoint is kept."""
    from hilbert_diffusion.cli import main

    _pdebench_and_well(tmp_path)
    spec = f"{tmp_path / 'pdebench_cfd.hdf5'}:key=density+Vx,axes=ntxy"
    argv = ["train", "--data", spec, "--out", str(tmp_path / "run"), "--steps", "2", "--batch-size", "2",
            "--width", "4", "--modes", "2", "--checkpoint-every", "1", "--val-fraction", "0.34", "--log-dir",
            str(tmp_path / "tb"), "--quiet", "--config", str(tmp_path / "c.json"), "--keep-best"]
    (tmp_path / "c.json").write_text(json.dumps({"model": {"n_layers": 1, "embedding_dim": 8},
                                                 "train": {"figure_samples": 0, "optimised_steps": 0}}))
    assert main(argv) == 0
    losses = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path / "run") if "val_loss" in r}
    assert sorted(losses) == [1, 2]
    assert read_checkpoint_steps(tmp_path / "run" / "best") == [min(losses, key=losses.get)]
    assert main(["sample", str(tmp_path / "run" / "best"), "--resolution", "8", "--num", "1", "--steps", "2", "--out",
                 str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape[:2] == (1, 2)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    with h5py.File(tmp_path / "pdebench_cfd.hdf5", "a") as f:
        f["density"][0, 0, 0, 0] = 7.0  # rewrites a byte inside the file: the sampled hash differs
        f["extra"] = np.zeros(3000)  # and the file grows
    capsys.readouterr()
    assert main([*argv[:6], "4", *argv[7:], "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("hilbert-diffusion train: error: cannot resume") and "Traceback" not in err
    assert "data.file.bytes" in err
    assert read_checkpoint_steps(tmp_path / "run") == [1, 2]


def read_checkpoint_steps(run_dir):
    from hilbert_diffusion.checkpoint import list_checkpoints

    return sorted(int(p.name.split("-")[1]) for p in list_checkpoints(run_dir))


def test_a_checkpoint_from_before_val_fraction_resumes_only_without_it():
    """An older checkpoint's train options lack val_fraction: resuming with the default 0 continues, with a held-out
    split it is refused naming the option, and any other option missing from the checkpoint stays refused."""
    from hilbert_diffusion.config import to_config
    from hilbert_diffusion.resume import check_resume

    given = to_config(_config())
    old = {"train": {k: v for k, v in given.items() if k != "val_fraction"}}
    check_resume(old, {"train": given}, Path("run"))
    with pytest.raises(ResumeMismatch, match="train.val_fraction is None in the checkpoint but 0.1"):
        check_resume(old, {"train": to_config(_config(val_fraction=0.1))}, Path("run"))
    with pytest.raises(ResumeMismatch, match="train.grad_clip"):
        check_resume({"train": {k: v for k, v in given.items() if k != "grad_clip"}}, {"train": given}, Path("run"))
