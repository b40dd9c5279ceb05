"""Training faults: non-finite steps are skipped and recovered from; a run killed with SIGKILL resumes
from its last complete checkpoint, losing at most one checkpoint interval."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import hilbert_diffusion.training as training
from hilbert_diffusion import GaussianRandomField, Matern, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.checkpoint import list_checkpoints, load
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


def test_sigkill_mid_run_resumes_from_the_last_complete_checkpoint(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "hilbert_diffusion", "train", "--data", "grf:dim=1,alpha=1.5", "--num", "32",
               "--resolution", "16", "--out", str(out), "--steps", "100000", "--batch-size", "4", "--width", "8",
               "--modes", "4", "--checkpoint-every", "5", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list_checkpoints(out)) < 2 and time.monotonic() < deadline:  # let it write, and be writing
            time.sleep(0.05)
        assert list_checkpoints(out), "no checkpoint appeared within 120 s"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    last = list_checkpoints(out)[-1]
    step = load(out).step  # the newest complete checkpoint loads and verifies its hashes
    assert last.name == f"checkpoint-{step:08d}" and step % 5 == 0
    resumed = subprocess.run([*command[:command.index("--steps") + 1], str(step + 5), *command[command.index("--steps") + 2:],
                              "--resume"], env=env, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert load(out).step == step + 5
