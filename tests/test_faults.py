"""Training faults: non-finite steps are skipped and recovered from; a run killed with SIGKILL or interrupted
with SIGINT at random moments resumes from its last complete checkpoint to the uninterrupted run's weights bit
for bit; two trainers racing for one run directory: one trains, the other is refused."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import hilbert_diffusion.training as training
from hilbert_diffusion import GaussianRandomField, Matern, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.checkpoint import list_checkpoints, read_checkpoint
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.training import TrainConfig, train

TINY = ScoreFNOConfig(hidden_channels=8, n_layers=1, n_modes=4, embedding_dim=8)
SDE = StochasticHeatSDE(basis=PeriodicBasis(1), covariance=Matern(alpha=1.0, tau=3.0))
DATA = GaussianRandomField(PeriodicBasis(1), Matern(alpha=1.5, tau=5.0)).sample(32, 16, generator=torch.Generator().manual_seed(0))


def _inject_nan(monkeypatch, bad_calls):
    """Make the loss NaN on the given (0-based) calls of the loss function."""
    original, calls = training.denoising_loss, {"n": 0}

    def poisoned(*args, **kwargs):
        loss = original(*args, **kwargs)
        calls["n"] += 1
        return loss * float("nan") if calls["n"] - 1 in bad_calls else loss

    monkeypatch.setattr(training, "denoising_loss", poisoned)
    return calls


def _config(**kw):
    return TrainConfig(steps=6, batch_size=4, warmup_steps=1, figure_samples=0, checkpoint_every=2, optimised_steps=0, **kw)


def test_a_non_finite_step_is_skipped_and_reported(monkeypatch, capsys):
    calls = _inject_nan(monkeypatch, {2})
    run = train(DATA, sde=SDE, model=TINY, config=_config(), progress=False)
    assert run.step == 6 and calls["n"] == 7  # one extra batch replaced the poisoned one
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    assert "skipped the update" in capsys.readouterr().out


def test_repeated_failures_restore_the_last_good_state_then_stop(monkeypatch, capsys):
    _inject_nan(monkeypatch, {3, 4, 5})  # three in a row after the step-2 checkpoint: restore step 2
    run = train(DATA, sde=SDE, model=TINY, config=_config(), progress=False)
    assert run.step == 6 and "restored the last good state (step 2)" in capsys.readouterr().out
    _inject_nan(monkeypatch, set(range(100)))  # never recovers: a clear error, not an endless loop
    with pytest.raises(FloatingPointError, match="stays non-finite"):
        train(DATA, sde=SDE, model=TINY, config=_config(), progress=False)


# ------------------------------------------------------------------ random kills and interrupts, and a race
def _train_command(out, steps, config, *, resume):
    return [sys.executable, "-m", "hilbert_diffusion", "train", "--data", "grf:dim=1,alpha=1.5", "--num", "16",
            "--resolution", "16", "--out", str(out), "--steps", str(steps), "--batch-size", "16", "--width", "4",
            "--modes", "4", "--checkpoint-every", "2", "--config", str(config), "--quiet", *(["--resume"] * resume)]


def _newest_step(out):
    found = list_checkpoints(out)
    return int(found[-1].name.split("-")[1]) if found else -1


def _no_figures(tmp_path):
    config = tmp_path / "config.json"
    config.write_text('{"train": {"figure_samples": 0}}')
    return config


def test_random_sigkill_and_sigint_with_resumes_give_the_uninterrupted_weights_bit_for_bit(tmp_path):
    """Four deaths at random moments (SIGKILL: lose the steps since the last checkpoint; SIGINT: finish the step,
    save, exit 130), each followed by a resume: the final weights equal an uninterrupted run's exactly and no
    temporary folder is left behind."""
    import random

    from hilbert_diffusion.cli import main

    steps, config, out, rng = 60, _no_figures(tmp_path), tmp_path / "killed", random.Random(17)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for signum in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL, signal.SIGINT):
        start = _newest_step(out)
        process = subprocess.Popen(_train_command(out, steps, config, resume=start >= 0), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        target, deadline = start + rng.randint(1, 6), time.monotonic() + 60
        while _newest_step(out) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.02))  # anywhere in a step or a checkpoint write
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        if signum == signal.SIGINT and process.returncode != 0:
            assert process.returncode == 130 and "checkpoint written to" in err and "Traceback" not in err, err
    assert 0 <= _newest_step(out) < steps, "every kill should land before the end"
    finished = subprocess.run(_train_command(out, steps, config, resume=True), env=env, capture_output=True, text=True,
                              timeout=120)
    assert finished.returncode == 0, finished.stderr
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    try:
        assert main(_train_command(tmp_path / "whole", steps, config, resume=False)[3:]) == 0
    finally:
        torch.set_num_threads(threads)
    killed, whole = read_checkpoint(out), read_checkpoint(tmp_path / "whole")
    assert killed.step == whole.step == steps and killed.tensors.keys() == whole.tensors.keys()
    for name in whole.tensors:
        assert torch.equal(killed.tensors[name], whole.tensors[name]), name
    assert not [p.name for p in out.iterdir() if p.name.startswith((".tmp-", ".stale-"))]


def test_two_trainers_on_one_directory_exactly_one_runs(tmp_path):
    out, config = tmp_path / "run", _no_figures(tmp_path)
    command = _train_command(out, 100000, config, resume=False)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    try:
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in both) and time.monotonic() < deadline:
            time.sleep(0.02)
        loser, winner = both if both[0].poll() is not None else both[::-1]
        _, err = loser.communicate(timeout=30)
        assert loser.returncode == 2 and f"is in use by another training (pid {winner.pid}" in err, err
        assert "Traceback" not in err
        while _newest_step(out) < 2 and winner.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert winner.poll() is None and _newest_step(out) >= 2  # the winner trains on
        winner.send_signal(signal.SIGINT)
        _, err = winner.communicate(timeout=60)
        assert winner.returncode == 130 and "checkpoint written to" in err, err
    finally:
        for process in both:
            if process.poll() is None:
                process.kill()
