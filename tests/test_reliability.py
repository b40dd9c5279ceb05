"""Reliability: run directories that cannot be clobbered, resumes that cannot lie, limits checked before work,
interrupts that save, full disks that say so, checkpoint and config documents of the wrong shape, and command-line
messages that name the option at fault — never a traceback (issue 17). The processes that are killed or race
for a directory are in test_faults.py."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import sys
from collections import namedtuple

import numpy as np
import pytest
import torch

import hilbert_diffusion.checkpoint as checkpoint_module
import hilbert_diffusion.cli as cli
import hilbert_diffusion.resources as resources
from hilbert_diffusion import GaussianRandomField, Matern, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.checkpoint import CheckpointError, list_checkpoints, load
from hilbert_diffusion.cli import main
from hilbert_diffusion.interrupts import Interrupted, InterruptGuard, TrainingInterrupted
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.resources import DiskFullError, ResourceError
from hilbert_diffusion.resume import PROBE_TOLERANCE, ResumeMismatch, check_resume, data_probe, data_sha256
from hilbert_diffusion.rundir import RunDirectory, RunDirectoryBusy
from hilbert_diffusion.training import TrainConfig, train

TINY = ScoreFNOConfig(hidden_channels=4, n_layers=1, n_modes=4, embedding_dim=8)
SDE = StochasticHeatSDE(basis=PeriodicBasis(1), covariance=Matern(alpha=1.0, tau=3.0))
DATA = GaussianRandomField(PeriodicBasis(1), Matern(alpha=1.5, tau=5.0)).sample(16, 16, generator=torch.Generator().manual_seed(0))
FAST = dict(batch_size=16, warmup_steps=1, figure_samples=0)
TRAIN = ["train", "--data", "grf:dim=1,alpha=1.5", "--num", "16", "--resolution", "16", "--batch-size", "16",
         "--width", "4", "--modes", "4", "--quiet"]


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A 2-step command-line run (no figures) to resume, and its config file."""
    root = tmp_path_factory.mktemp("cli_run")
    config = root / "config.json"
    config.write_text(json.dumps({"train": {"figure_samples": 0}}))
    assert main([*TRAIN, "--out", str(root / "run"), "--steps", "2", "--config", str(config)]) == 0
    return root / "run", config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-step run directory to copy (a checkpoint to edit)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=out, progress=False)
    return out


def _checkpoint_copy(trained, tmp_path):
    """A copy of the trained run and the path of its checkpoint.json."""
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run", list_checkpoints(tmp_path / "run")[-1] / "checkpoint.json"


def _resign(document: dict) -> dict:
    """``document`` with its content hash recomputed: an edit the hash cannot catch, only the schema."""
    body = {k: v for k, v in document.items() if k != "content_sha256"}
    document["content_sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return document


# ------------------------------------------------------------------------------------ 1. the lock
def test_a_second_trainer_on_a_held_directory_is_refused_naming_the_holder(tmp_path):
    with RunDirectory(tmp_path / "run").acquire() as held:
        assert held.held and (tmp_path / "run" / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(RunDirectoryBusy, match=f"in use by another training \\(pid {os.getpid()}"):
            train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=tmp_path / "run")
        assert not list_checkpoints(tmp_path / "run")
    train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=tmp_path / "run", progress=False)


# ------------------------------------------------------------------------------------ 2. resume rules
@pytest.mark.parametrize("change,field", [
    (["--data", "grf:dim=1,alpha=2.5"], "data.spec.kwargs.spectrum.alpha"),
    (["--num", "12"], "data.num"),
    (["--seed", "3"], "data.spec.kwargs.seed"),
    (["--width", "8"], "model.config.hidden_channels"),
    (["--kappa-nyquist", "1"], "sde.kappa"),
    (["--batch-size", "8"], "train.batch_size"),
    (["--multires", "16,24"], "train.resolutions"),
    (["--flip-axes", "0"], "train.flip_axes"),
    (["--mode-weighting"], "train.mode_weighting"),
    (["--translate", "1"], "train.translate"),
], ids=["other data", "fewer fields", "other seed", "model", "sde", "batch", "multires", "flips", "mode weighting",
        "translations"])
def test_resume_refuses_any_change_of_data_model_sde_or_fixed_options(cli_run, capsys, change, field):
    run, config = cli_run
    argv = [*TRAIN, "--out", str(run), "--steps", "3", "--config", str(config), "--resume"]
    option, *value = change  # an option and its value, or a flag
    if option in argv:
        argv[argv.index(option) + 1] = value[0]
    else:
        argv += [option, *value]
    assert main(argv) == 2
    err = _err(capsys)
    assert "cannot resume" in err and field in err and "may change" in err
    assert [p.name for p in list_checkpoints(run)] == ["checkpoint-00000002"]  # nothing rewritten


def test_resume_refuses_a_data_file_whose_content_changed(cli_run, tmp_path, capsys):
    path = tmp_path / "fields.npy"
    np.save(path, DATA.numpy())
    argv = ["train", "--data", str(path), "--out", str(tmp_path / "run"), "--batch-size", "16", "--width", "4",
            "--modes", "4", "--quiet", "--checkpoint-every", "0", "--config", str(cli_run[1])]
    assert main([*argv, "--steps", "1"]) == 0
    np.save(path, DATA.numpy() * 2)  # same grid, same path, other fields
    assert main([*argv, "--steps", "2", "--resume"]) == 2
    err = _err(capsys)
    assert "data.sha256" in err
    np.save(path, DATA.numpy())
    assert main([*argv, "--steps", "2", "--resume", "--lr", "1e-3", "--checkpoint-every", "1",
                 "--max-minutes", "5"]) == 0  # what may change on resume


def test_a_resume_accepts_the_same_fields_rounded_otherwise_and_refuses_one_changed_field(tmp_path):
    """Fields generated by an FFT on another number of threads (torchrun sets OMP_NUM_THREADS=1) differ in the
    last bits: the hash differs, the probes agree to ~1e-7, and the resume goes on. One field of 16 replaced moves
    the probes by ~1/√16 and is refused naming the hash; so is any change for a checkpoint stored before probes."""
    def record(fields, *, probe=True):
        content = {"sha256": data_sha256(fields), **({"probe": data_probe(fields)} if probe else {})}
        return {"data": {"num": fields.shape[0], "grid": list(fields.shape[2:]), **content}}

    rounded = torch.nextafter(DATA, torch.full_like(DATA, float("inf")))  # every value one float32 ULP up
    assert data_sha256(rounded) != data_sha256(DATA)
    rms = data_probe(DATA)[0]
    shift = max(abs(a - b) for a, b in zip(data_probe(rounded), data_probe(DATA)))
    assert 0 < shift < rms * PROBE_TOLERANCE / 10
    check_resume(record(DATA), record(rounded), tmp_path)  # no error
    changed = DATA.clone()
    changed[0] = DATA[1]
    assert min(abs(a - b) for a, b in zip(data_probe(changed)[1:], data_probe(DATA)[1:])) > 1000 * rms * PROBE_TOLERANCE
    for stored, given in [(record(DATA), record(changed)), (record(DATA, probe=False), record(rounded))]:
        with pytest.raises(ResumeMismatch) as refused:
            check_resume(stored, given, tmp_path)
        assert refused.value.field == "data.sha256"


def test_resume_help_lists_what_may_change(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # no line breaks inside option names
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--steps", "--lr", "--checkpoint-every", "--max-minutes"):
        assert option in text.split("may change")[0].split("--resume")[-1]


# ------------------------------------------------------------------------------------ 3. --out checked first
def _no_data(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("data were loaded before --out was checked")

    monkeypatch.setattr(cli, "dataset_from_spec", refuse)


@pytest.mark.parametrize("kind", ["regular file", "below a file", "read-only"])
def test_an_unusable_out_is_refused_before_any_work(tmp_path, monkeypatch, capsys, kind):
    _no_data(monkeypatch)
    (tmp_path / "file").write_text("x")
    out = {"regular file": tmp_path / "file", "below a file": tmp_path / "file" / "run"}.get(kind, tmp_path / "ro")
    if kind == "read-only":  # a read-only mount (root ignores chmod): the write probe fails with EROFS
        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, "Read-only file system")

        monkeypatch.setattr("hilbert_diffusion.rundir.tempfile.mkstemp", read_only)
    assert main([*TRAIN, "--out", str(out), "--steps", "1"]) == 2
    err = _err(capsys)
    assert f"--out {out}" in err and ("not a directory" in err or "not writable" in err)
    assert "Read-only" in err or kind != "read-only"


# ------------------------------------------------------------------------------------ 4. memory limits
def test_requests_beyond_the_machine_are_refused_before_allocating(tmp_path, monkeypatch, capsys):
    _no_data(monkeypatch)
    assert main(["train", "--data", "grf", "--resolution", "100000", "--out", str(tmp_path / "r")]) == 2
    err = _err(capsys)
    assert "needs about" in err and "PB" in err and "available" in err and "--resolution" in err
    monkeypatch.setattr(resources, "available_memory", lambda: 50_000_000)  # a machine with 50 MB free
    assert main([*TRAIN, "--out", str(tmp_path / "r2"), "--num", "100000", "--steps", "1"]) == 2
    assert "50 MB are available" in _err(capsys)
    assert main(["data", "grf", "--num", "100000", "--resolution", "64", "--out", str(tmp_path / "d.npy")]) == 2
    assert "lower --num or --resolution" in _err(capsys)


def test_sampling_beyond_memory_names_the_batch_that_fits(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(resources, "available_memory", lambda: 200_000_000)
    out = tmp_path / "s.npy"
    assert main(["sample", "oracle", "--resolution", "256", "--num", "64", "--out", str(out)]) == 2
    err = _err(capsys)
    fits = int(err.split("use --batch-size ")[1].split()[0])
    assert 1 <= fits < 64 and not out.exists()
    assert main(["sample", "oracle", "--resolution", "100000", "--num", "2", "--out", str(out)]) == 2
    assert "output fields alone need" in _err(capsys)


def test_a_checkpoint_claiming_absurd_sizes_is_refused_before_building(trained, tmp_path):
    run, path = _checkpoint_copy(trained, tmp_path)
    original = json.loads(path.read_text())
    claims = {"channels": ({"channels": 10**9}, "one per channel"),
              "width": ({"config": {**original["model"]["config"], "hidden_channels": 10**7}}, "needs about")}
    for edit, message in claims.values():
        document = json.loads(json.dumps(original))
        document["model"].update(edit)
        path.write_text(json.dumps(_resign(document)))
        with pytest.raises((CheckpointError, ResourceError), match=message):
            load(run)


# ------------------------------------------------------------------------------------ 5. signals
def test_a_first_signal_is_deferred_and_a_second_stops_at_once():
    with InterruptGuard() as guard:
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested and guard.signum == signal.SIGTERM
        with pytest.raises(Interrupted) as stop:
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_and_writes_a_checkpoint(tmp_path, signum, code):
    def send(step, loss):
        if step == 3:
            os.kill(os.getpid(), signum)

    config = TrainConfig(steps=50, checkpoint_every=0, **FAST)
    with pytest.raises(TrainingInterrupted) as stop:
        train(DATA, sde=SDE, model=TINY, config=config, out_dir=tmp_path, progress=False, callback=send)
    assert stop.value.exit_code == code and stop.value.step == 3
    assert stop.value.checkpoint == list_checkpoints(tmp_path)[-1] and load(tmp_path).step == 3
    assert train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=5, checkpoint_every=0, **FAST), out_dir=tmp_path,
                 resume=True, progress=False).step == 5


# ------------------------------------------------------------------------------------ 6. disk full
def test_too_little_free_space_is_reported_before_writing(tmp_path, monkeypatch):
    config = TrainConfig(steps=2, checkpoint_every=1, keep_checkpoints=2, **FAST)
    train(DATA, sde=SDE, model=TINY, config=config, out_dir=tmp_path, progress=False)
    before = [p.name for p in list_checkpoints(tmp_path)]
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DiskFullError) as full:
        train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=4, checkpoint_every=1, keep_checkpoints=2, **FAST),
              out_dir=tmp_path, resume=True, progress=False)
    message = str(full.value)
    assert "disk space ran out" in message and "checkpoint-00000003" in message and str(tmp_path) in message
    assert "1 KB are free" in message and "checkpoint-00000002, is intact" in message
    assert [p.name for p in list_checkpoints(tmp_path)] == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_a_write_failing_with_enospc_keeps_every_complete_checkpoint(tmp_path, monkeypatch, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"train": {"figure_samples": 0}}))
    argv = [*TRAIN, "--out", str(tmp_path / "run"), "--checkpoint-every", "1", "--config", str(config)]
    assert main([*argv, "--steps", "2"]) == 0

    def full_disk(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed (No space left on device)")  # what torch.save raises

    monkeypatch.setattr(checkpoint_module.torch, "save", full_disk)
    assert main([*argv, "--steps", "4", "--resume"]) == 1
    err = _err(capsys)
    (line,) = [line for line in err.splitlines() if line.startswith("hilbert-diffusion")]
    assert "disk space ran out while writing checkpoint-00000003" in line
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["checkpoint-00000001", "checkpoint-00000002"]


def test_stale_temporary_folders_are_removed_on_the_next_start(trained, tmp_path):
    tmp_path, _ = _checkpoint_copy(trained, tmp_path)
    for name in (".tmp-checkpoint-abc", ".stale-checkpoint-def"):  # what a SIGKILL mid-write leaves
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.safetensors").write_bytes(b"partial")
    train(DATA, sde=SDE, model=TINY, config=TrainConfig(steps=2, **FAST), out_dir=tmp_path, resume=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "checkpoint-00000001", "checkpoint-00000002", "metrics.jsonl"]


# ------------------------------------------------------------------------------------ 7. document schemas
SCHEMA_CASES = [
    ("files a list", lambda d: {**d, "files": []}, "files must be a non-empty object"),
    ("step text", lambda d: {**d, "step": "abc"}, "step must be an integer"),
    ("model string", lambda d: {**d, "model": "fno"}, "model must be an object"),
    ("channels text", lambda d: {**d, "model": {**d["model"], "channels": "1"}}, "model.channels must be a positive"),
    ("grid entries", lambda d: {**d, "data": {**d["data"], "grid": ["16"]}}, r"data.grid\[0\]"),
    ("parent path", lambda d: {**d, "files": {"../../etc/passwd": {"sha256": "0" * 64, "bytes": 1}}}, "plain file name"),
    ("absolute path", lambda d: {**d, "files": {"/etc/passwd": {"sha256": "0" * 64, "bytes": 1}}}, "plain file name"),
    ("missing field", lambda d: {k: v for k, v in d.items() if k != "sde"}, "lacks the field 'sde'"),
]


@pytest.mark.parametrize("edit,message", [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES])
def test_checkpoint_documents_of_the_wrong_shape_are_refused_in_one_line(trained, tmp_path, edit, message):
    run, path = _checkpoint_copy(trained, tmp_path)
    path.write_text(json.dumps(_resign(edit(json.loads(path.read_text())))))
    with pytest.raises(CheckpointError, match=message) as refused:
        load(run)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("type_path,message", [
    ("hilbert_diffusion.__main__.main", "not a configuration class"),
    ("hilbert_diffusion.cli.main", "not a configuration class"),
    ("hilbert_diffusion.normalization.Normalization", "where a DiagonalSDE is expected"),
])
def test_a_checkpoint_may_only_build_the_dataclasses_meant_for_it(trained, tmp_path, type_path, message):
    run, path = _checkpoint_copy(trained, tmp_path)
    document = json.loads(path.read_text())
    document["sde"] = {"type": type_path, "mean": [0.0], "std": [1.0]}
    path.write_text(json.dumps(_resign(document)))
    imported = "hilbert_diffusion.__main__" in sys.modules
    with pytest.raises(CheckpointError, match=message):
        load(run)
    assert ("hilbert_diffusion.__main__" in sys.modules) == imported  # refused before importing it


@pytest.mark.parametrize("document,message", [
    ([1, 2], "the document must be an object"),
    ({"train": {"steps": "abc"}}, "train.steps must be of type int, got str 'abc'"),
    ({"model": "fno"}, "model must be an object"),
    ({"sde": "heat"}, "sde must be an object with a \"type\""),
    ({"optimizer": {}}, "unknown keys ['optimizer']"),
    ({"model": {"hidden_channels": 2.5}}, "model.hidden_channels must be of type int"),
])
def test_config_files_of_the_wrong_shape_are_refused_in_one_line(tmp_path, monkeypatch, capsys, document, message):
    _no_data(monkeypatch)
    config = tmp_path / "c.json"
    config.write_text(json.dumps(document))
    assert main([*TRAIN, "--out", str(tmp_path / "run"), "--config", str(config)]) == 2
    err = _err(capsys)
    assert f"--config {config}: " in err and message in err and err.count("\n") == 1


# ------------------------------------------------------------------------------------ 8. messages
@pytest.fixture()
def files(tmp_path):
    np.save(tmp_path / "huge.npy", np.full((4, 1, 16), 1e39))
    np.savez(tmp_path / "two.npz", fields=DATA.numpy(), other=np.zeros(3))
    mask = np.ones((16, 16))
    mask[4:8, 4:8] = 0
    mask[0, 0] = np.nan
    np.save(tmp_path / "nan_mask.npy", mask)
    np.save(tmp_path / "observed.npy", np.zeros((1, 1, 16, 16), np.float32))
    (tmp_path / "truncated.npy").write_bytes((tmp_path / "nan_mask.npy").read_bytes()[:90])
    (tmp_path / "folder").mkdir()
    return tmp_path


INPAINT = ["inpaint", "oracle", "--observed", "{p}/observed.npy", "--out", "{p}/o.npy", "--num", "1", "--steps", "2"]
MESSAGE_CASES = [
    ("float64 overflow", ["train", "--data", "{p}/huge.npy", "--out", "{p}/r"], "overflow to inf in float32"),
    ("npz needs a key", ["train", "--data", "{p}/two.npz", "--out", "{p}/r"], "two.npz:key=fields"),
    ("multires", [*TRAIN, "--out", "{p}/r", "--multires", "16,abc"], "argument --multires: 'abc'"),
    ("flip axes", [*TRAIN, "--out", "{p}/r", "--flip-axes", "1,1"],
     "argument --flip-axes: '1,1' is not a list of distinct"),
    ("mode weighting exponent", [*TRAIN, "--out", "{p}/r", "--mode-weighting", "2"],
     "argument --mode-weighting: must be an exponent in (0, 1], got '2'"),
    ("keep best without held-out fields", [*TRAIN, "--out", "{p}/r", "--keep-best"], "set val_fraction > 0 too"),
    ("flip axis beyond the grid", [*TRAIN, "--out", "{p}/r", "--flip-axes", "3"], "grid is 1-D; give axes below 1"),
    ("mask NaN", [*INPAINT, "--mask", "{p}/nan_mask.npy"], "--mask {p}/nan_mask.npy contains NaN"),
    ("mask missing", [*INPAINT, "--mask", "{p}/nowhere.npy"], "--mask {p}/nowhere.npy does not exist"),
    ("mask truncated", [*INPAINT, "--mask", "{p}/truncated.npy"], "may be truncated"),
    ("max-minutes", [*TRAIN, "--out", "{p}/r", "--max-minutes", "-1"], "argument --max-minutes: must be a positive"),
    ("sample into a folder", ["sample", "oracle", "--resolution", "8", "--num", "1", "--out", "{p}/folder"],
     "--out {p}/folder is a directory"),
    ("one sampling step", ["sample", "oracle", "--resolution", "8", "--num", "1", "--steps", "1", "--out", "{p}/s.npy"],
     "argument --steps: must be an integer ≥ 2"),
    ("one restoration step", [*INPAINT[:-1], "1"], "argument --steps: must be an integer ≥ 2"),
]


@pytest.mark.parametrize("argv,message", [c[1:] for c in MESSAGE_CASES], ids=[c[0] for c in MESSAGE_CASES])
def test_bad_input_messages_name_the_option_and_the_fix(files, capsys, argv, message):
    argv = [a.format(p=files) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    assert code == 2
    assert message.format(p=files) in _err(capsys)


def test_a_file_npz_key_spec_trains_and_a_rerun_names_command_line_options(cli_run, files, capsys):
    argv = ["train", "--data", f"{files}/two.npz:key=fields", "--out", str(files / "r"), "--steps", "1",
            "--batch-size", "16", "--width", "4", "--modes", "4", "--quiet", "--config", str(cli_run[1])]
    assert main(argv) == 0
    assert main(argv) == 2  # the same command again, e.g. with --steps 1
    err = _err(capsys)
    assert "--resume" in err and "--out" in err and "resume=True" not in err and "out_dir" not in err


def test_internal_errors_print_one_line_and_the_debug_hint(monkeypatch, capsys, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(cli, "_load_run", broken)
    argv = ["sample", "oracle", "--resolution", "8", "--num", "1", "--out", str(tmp_path / "s.npy")]
    assert main(argv) == 1
    err = _err(capsys)
    assert err.count("\n") == 1 and "internal error: RuntimeError: something inside broke" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="inside broke"):
        main([*argv, "--debug"])
