"""Trainer and checkpoints: exact resume, atomic and verified checkpoints, load from the directory
alone, normalisation, schedule, multi-resolution batches, the sphere, and that training learns."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import pytest
import torch
from torch import Tensor, nn

from hilbert_diffusion import (
    GaussianOracle,
    GaussianRandomField,
    Matern,
    PeriodicBasis,
    SphereBasis,
    StochasticHeatSDE,
    from_config,
    to_config,
)
from hilbert_diffusion.checkpoint import CheckpointError, list_checkpoints, load, read_checkpoint
from hilbert_diffusion.losses import StratifiedTime
from hilbert_diffusion.models.fno import ScoreFNO, ScoreFNOConfig
from hilbert_diffusion.models.sphere import SphericalScoreConfig
from hilbert_diffusion.training import Normalization, TrainConfig, train

TINY = ScoreFNOConfig(hidden_channels=8, n_layers=1, n_modes=4, embedding_dim=8)
FAST = dict(batch_size=4, warmup_steps=2, figure_samples=0, sample_steps=4, optimised_steps=0)


def _setup(channels: int = 1, num: int = 64, n: int = 16):
    basis = PeriodicBasis(1)
    cov = Matern(alpha=1.5, tau=5.0)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.0, tau=3.0))
    data = 3.0 + 2.0 * GaussianRandomField(basis, cov).sample(num, n, channels=channels, generator=torch.Generator().manual_seed(0))
    return basis, cov, sde, data


class _Stop(Exception):
    pass


def test_resume_is_bit_exact(tmp_path):
    """6 steps at once == 3 steps, a crash at step 4 (losing at most one checkpoint interval), a resume
    from the step-3 checkpoint and 3 more steps: identical raw weights, EMA weights and optimiser state.
    Multi-resolution batches and the cosine schedule are on, so every random draw and the schedule
    position must be restored."""
    _, _, sde, data = _setup(channels=2)
    config = TrainConfig(steps=6, checkpoint_every=3, resolutions=(16, 32), **FAST)
    train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path / "a", progress=False)

    def crash(step, loss):
        if step == 4:
            raise _Stop

    with pytest.raises(_Stop):
        train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path / "b", progress=False, callback=crash)
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["checkpoint-00000003"]
    resumed = train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path / "b", resume=True, progress=False)
    assert resumed.step == 6
    a, b = read_checkpoint(tmp_path / "a"), read_checkpoint(tmp_path / "b")
    assert a.step == b.step == 6
    assert a.tensors.keys() == b.tensors.keys() and any(k.startswith("ema.") for k in a.tensors)
    for name in a.tensors:
        assert torch.equal(a.tensors[name], b.tensors[name]), name
    opt_a, opt_b = a.training_state()["optimizer"]["state"], b.training_state()["optimizer"]["state"]
    for key in opt_a:
        for field in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a[key][field], opt_b[key][field])
    assert torch.equal(a.training_state()["generator"], b.training_state()["generator"])
    # a different seed does change the weights (the comparison above can fail)
    train(data, sde=sde, model=TINY, config=TrainConfig(steps=6, seed=1, resolutions=(16, 32), **FAST),
          out_dir=tmp_path / "c", progress=False)
    c = read_checkpoint(tmp_path / "c")
    assert not all(torch.equal(a.tensors[k], c.tensors[k]) for k in a.tensors)


def test_load_rebuilds_the_run_from_the_directory_alone(tmp_path):
    basis, _, sde, data = _setup()
    config = TrainConfig(steps=4, checkpoint_every=0, **{**FAST, "figure_samples": 2})
    run = train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path, progress=False)
    loaded = load(tmp_path)
    assert loaded.step == 4 and to_config(loaded.sde) == to_config(sde)
    assert loaded.normalization == run.normalization
    x, t = torch.randn(3, 1, 32), torch.tensor([0.1, 0.5, 0.9])
    assert torch.equal(loaded.model(x, t), run.model(x, t))  # EMA weights, and at another resolution
    raw = load(tmp_path, ema=False)
    assert not torch.equal(raw.model(x, t), loaded.model(x, t))
    samples = loaded.sample(2, 48, steps=4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, 1, 48) and torch.isfinite(samples).all()
    from PIL import Image

    with Image.open(tmp_path / "samples" / "step_00000004.png") as image:
        assert image.size[0] > 100
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "samples")


def test_corrupt_checkpoints_are_refused_with_clear_messages(tmp_path):
    _, _, sde, data = _setup()
    train(data, sde=sde, model=TINY, config=TrainConfig(steps=2, **FAST), out_dir=tmp_path, progress=False)
    folder = list_checkpoints(tmp_path)[-1]
    (tmp_path / ".tmp-checkpoint-leftover").mkdir()  # what a killed writer leaves: ignored
    assert load(tmp_path).step == 2
    weights = folder / "weights.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[: len(original) // 2])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load(tmp_path)
    weights.write_bytes(original)
    config_file = folder / "checkpoint.json"
    document = json.loads(config_file.read_text())
    edited = {**document, "step": 99}
    config_file.write_text(json.dumps(edited))
    with pytest.raises(CheckpointError, match="edited"):
        load(tmp_path)
    config_file.write_text(json.dumps(document)[:-20])
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(tmp_path)
    future = {**document, "version": 99}
    config_file.write_text(json.dumps(future))
    with pytest.raises(CheckpointError, match="version"):
        load(tmp_path)
    config_file.write_text(json.dumps(document))
    (folder / "training_state.pt").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load(tmp_path)


def test_resume_and_out_dir_guards(tmp_path):
    basis, _, sde, data = _setup()
    with pytest.raises(ValueError, match="no checkpoint to resume"):
        train(data, sde=sde, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=tmp_path, resume=True)
    train(data, sde=sde, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="already holds a run"):
        train(data, sde=sde, model=TINY, config=TrainConfig(steps=1, **FAST), out_dir=tmp_path)
    other = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.0, tau=3.0), kappa=0.1)
    with pytest.raises(ValueError, match="SDE or model config differs"):
        train(data, sde=other, model=TINY, config=TrainConfig(steps=2, **FAST), out_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="grid axes"):
        train(data[:, 0], sde=sde, model=TINY, config=TrainConfig(steps=1, **FAST))


def test_normalization_and_schedule():
    basis, _, _, data = _setup(channels=2, num=256)
    norm = Normalization.fit(data, basis=basis)
    assert norm.mean[0] == pytest.approx(3.0, abs=0.3) and norm.std[0] == pytest.approx(float(data[:, 0].std()), rel=1e-3)
    encoded = norm.encode(data)
    torch.testing.assert_close(encoded.mean(dim=(0, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.decode(encoded), data, atol=1e-5, rtol=0)
    assert Normalization.fit(data, basis=basis, enabled=False) == Normalization((0.0, 0.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="constant"):
        Normalization.fit(torch.ones(4, 1, 8), basis=basis)
    config = TrainConfig(steps=100, lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert config.learning_rate(0) == pytest.approx(0.1)
    assert config.learning_rate(9) == pytest.approx(1.0)
    assert config.learning_rate(55) == pytest.approx(0.55, abs=0.02)
    assert config.learning_rate(99) == pytest.approx(0.1, abs=1e-3)
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="optimised_steps must be 0"):
        TrainConfig(optimised_steps=2)
    stored = TrainConfig(resolutions=(16, (8, 12)), time_sampler=StratifiedTime(0.01))
    assert from_config(json.loads(json.dumps(to_config(stored)))) == stored
    architecture = ScoreFNOConfig(n_modes=(4, 6), wiener_skip=False)
    assert from_config(json.loads(json.dumps(to_config(architecture)))) == architecture


@dataclass(frozen=True)
class _Recording:
    """A model config whose model records the grids it is called on (multi-resolution check)."""

    seen: list

    def build(self, sde, *, channels, data_spectrum):
        seen = self.seen

        class Recorder(ScoreFNO):
            def forward(self, x, t):
                seen.append(x.shape[-1])
                return super().forward(x, t)

        return Recorder(sde, channels=channels, data_spectrum=data_spectrum, config=TINY)


def test_multiresolution_batches():
    _, _, sde, data = _setup()
    seen: list[int] = []
    train(data, sde=sde, model=_Recording(seen), config=TrainConfig(steps=12, resolutions=(8, 16, 32), **FAST), progress=False)
    assert set(seen) == {8, 16, 32}


@pytest.fixture
def trained_fields(monkeypatch) -> list[Tensor]:
    """The clean batches :func:`train` computes its loss on, recorded as it trains (after augmentation)."""
    import hilbert_diffusion.training as training

    clean: list[Tensor] = []
    original = training.denoising_loss

    def recording(model, x0, *args, **kwargs):
        clean.append(x0.detach().clone())
        return original(model, x0, *args, **kwargs)

    monkeypatch.setattr(training, "denoising_loss", recording)
    return clean


def test_flip_axes_mirror_each_field_with_probability_one_half(trained_fields):
    """``flip_axes=(1,)`` on 2-D fields: every trained field is its original or its left–right mirror (never an
    up–down one), and the mirror occurs with probability ½ per field: 200 fields within 4.5 binomial σ of 100."""
    clean = trained_fields
    basis = PeriodicBasis(2)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=2.0, tau=3.0))
    field = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    data = field.repeat(4, 1, 1, 1)
    config = TrainConfig(steps=50, flip_axes=(1,), normalize=False, **FAST)
    train(data, sde=sde, model=TINY, config=config, progress=False)
    fields = torch.cat(clean)[:, 0]
    assert len(fields) == 200
    same = (fields == field[0, 0]).flatten(1).all(1)
    mirrored = (fields == field[0, 0].flip(-1)).flatten(1).all(1)
    assert bool((same ^ mirrored).all())
    assert abs(int(mirrored.sum()) - 100) <= 4.5 * 50 ** 0.5
    with pytest.raises(ValueError, match="grid is 2-D; give axes below 2"):
        train(data, sde=sde, model=TINY, config=TrainConfig(steps=1, flip_axes=(2,), **FAST), progress=False)
    with pytest.raises(ValueError, match="distinct grid axes"):
        TrainConfig(flip_axes=(1, 1))


def test_translate_trains_on_shifted_fields_and_is_refused_where_it_cannot_apply(trained_fields):
    """``translate=1`` on the torus: every trained field is a cyclic shift of the one field by at most a pixel per
    axis, and the unshifted field is among them; on the sphere the trainer refuses it in one line."""
    clean = trained_fields
    sde = StochasticHeatSDE(basis=PeriodicBasis(2), covariance=Matern(alpha=2.0, tau=3.0))
    field = torch.arange(64, dtype=torch.float32).reshape(1, 1, 8, 8)
    train(field.repeat(4, 1, 1, 1), sde=sde, model=TINY, config=TrainConfig(steps=10, translate=1, normalize=False,
                                                                           **FAST), progress=False)
    rolls = {(r, c): field[0, 0].roll((r, c), (0, 1)) for r in (-1, 0, 1) for c in (-1, 0, 1)}
    found = [[s for s, rolled in rolls.items() if torch.equal(f, rolled)] for f in torch.cat(clean)[:, 0]]
    assert all(len(f) == 1 for f in found) and [(0, 0)] in found
    sphere = StochasticHeatSDE(basis=SphereBasis(), covariance=Matern(alpha=2.0, tau=3.0))
    with pytest.raises(ValueError, match="not on SphereBasis; set translate=0"):
        train(torch.zeros(4, 1, 8, 16), sde=sphere, model=TINY, config=TrainConfig(steps=1, translate=1, **FAST),
              progress=False)


def test_keep_best_returns_the_checkpoint_of_the_lowest_held_out_loss(tmp_path):
    """``keep_best``: the returned model is the EMA of the checkpoint whose logged held-out loss is the lowest, and
    ``out/best`` holds it; a resumed run keeps comparing against that loss (the best of both legs), and a run that
    is not resumed starts its own best."""
    from hilbert_diffusion.checkpoint import checkpoint_step
    from hilbert_diffusion.tracking import read_metrics

    _, _, sde, data = _setup(num=40)
    config = TrainConfig(steps=12, checkpoint_every=2, keep_checkpoints=20, val_fraction=0.25, keep_best=True, **FAST)
    legs = ((12, 0.1), (24, 0.1), (28, 1e-6))  # high learning rates: the held-out loss goes up and down; the last
    for steps, lr in legs:  # leg barely moves from step 24, which is worse than an earlier best
        run = train(data, sde=sde, model=TINY, config=replace(config, steps=steps, lr=lr), out_dir=tmp_path / "r",
                    resume=steps > 12, progress=False)
        logged = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path / "r") if "val_loss" in r}
        assert sorted(logged) == list(range(2, steps + 1, 2))
        best = min(logged, key=logged.get)
        assert run.step == best and load(tmp_path / "r" / "best").step == best == checkpoint_step(run.path)
        stored = read_checkpoint(tmp_path / "r" / f"checkpoint-{best:08d}").prefixed("ema")
        assert all(torch.equal(v, stored[k]) for k, v in run.model.state_dict().items() if k in stored)
        assert best < steps, "the test needs a best that is not the end of the leg"
    assert best <= 24, "the last leg must not find a better checkpoint: it checks that resuming keeps the old best"
    train(data, sde=sde, model=TINY, config=replace(config, steps=2), out_dir=tmp_path / "new", progress=False)
    assert load(tmp_path / "new" / "best").step == 2
    with pytest.raises(ValueError, match="not a checkpoint-<step> folder"):
        checkpoint_step(tmp_path / "r" / "best")
    with pytest.raises(ValueError, match="set val_fraction > 0"):
        TrainConfig(keep_best=True)
    with pytest.raises(ValueError, match="give an out_dir"):
        train(data, sde=sde, model=TINY, config=replace(config, steps=1), progress=False)


def test_keep_best_without_a_finite_held_out_loss_returns_the_final_model(tmp_path, monkeypatch, capsys):
    """``keep_best`` when every held-out loss is NaN: no checkpoint is best, so the final model is returned (its
    checkpoint saved) with a one-line note, instead of failing at the end of a finished run."""
    import hilbert_diffusion.training_hooks as hooks

    monkeypatch.setattr(hooks, "held_out_loss", lambda *args, **kwargs: float("nan"))
    _, _, sde, data = _setup(num=40)
    config = TrainConfig(steps=4, checkpoint_every=2, val_fraction=0.25, keep_best=True, **FAST)
    run = train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path, progress=False)
    assert run.step == 4 and load(tmp_path).step == 4
    assert "no held-out loss was finite" in capsys.readouterr().err


@pytest.mark.parametrize("gamma", [True, 0.5])
def test_mode_weighting_trains_and_measures_the_wiener_filter_at_one(tmp_path, gamma):
    """``mode_weighting`` (γ = 1, or ½): the baseline the trainer reports (the Wiener filter of the estimated
    spectrum) scores about 1 on Gaussian data under the per-mode loss (L3), and the held-out loss is measured the
    same way: about 1 after training too, since on Gaussian data the Wiener filter is already the best denoiser.
    An exponent outside [0, 1] is refused."""
    with pytest.raises(ValueError, match="an exponent in"):
        TrainConfig(mode_weighting=1.5)
    basis, cov, sde, _ = _setup()
    data = GaussianRandomField(basis, cov).sample(256, 32, generator=torch.Generator().manual_seed(1))
    config = TrainConfig(steps=40, mode_weighting=gamma, val_fraction=0.25, checkpoint_every=20, **FAST)
    run = train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path, progress=False)
    assert abs(run.config["wiener_loss"] - 1) < 0.1
    from hilbert_diffusion.tracking import read_metrics

    held_out = [r["val_loss"] for r in read_metrics(tmp_path) if "val_loss" in r]
    assert len(held_out) == 2 and all(abs(v - 1) < 0.15 for v in held_out)


def test_training_learns_towards_the_oracle():
    """100 steps of the plain (no-skip) model on 1-D Gaussian data cut its mean-square distance to the
    exact denoiser, E‖D - D*‖² (the excess loss over the oracle's, by Pythagoras), to below 15% of the
    untrained model's (measured 4-6% for two seeds; 26-30% after 60 steps), on fresh fields, t ∈ [0.02, 1]."""
    basis, cov, sde, _ = _setup()
    data = GaussianRandomField(basis, cov).sample(512, 32, generator=torch.Generator().manual_seed(1))
    model = ScoreFNOConfig(hidden_channels=16, n_layers=2, n_modes=8, embedding_dim=16, wiener_skip=False)
    config = TrainConfig(steps=100, lr=3e-3, normalize=False, edm_weighting=False, ema_decay=0.9, **{**FAST, "batch_size": 16})
    run = train(data, sde=sde, model=model, config=config, progress=False)
    untrained = model.build(sde, channels=1, data_spectrum=run.model.data_spectrum)
    oracle = GaussianOracle(sde, cov)
    gen = torch.Generator().manual_seed(2)
    test = GaussianRandomField(basis, cov).sample(256, 32, generator=gen)
    t = torch.linspace(0.02, 1.0, 256, dtype=torch.float64)
    x_t, _ = sde.marginal_sample(test, t, generator=gen)
    with torch.no_grad():
        best = oracle(x_t, t)
        trained = float(basis.norm(run.model(x_t, t) - best).pow(2).mean())
        initial = float(basis.norm(untrained(x_t, t) - best).pow(2).mean())
    assert trained < 0.15 * initial


def test_sphere_model_trains_saves_and_loads(tmp_path):
    basis = SphereBasis()
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=2.0, tau=3.0))
    data = GaussianRandomField(basis, Matern(alpha=2.5, tau=4.0)).sample(16, 8, generator=torch.Generator().manual_seed(0))
    model = SphericalScoreConfig(hidden_channels=8, n_layers=1, degrees=4, embedding_dim=8)
    run = train(data, sde=sde, model=model, config=TrainConfig(steps=2, **FAST), out_dir=tmp_path, progress=False)
    loaded = load(tmp_path)
    x, t = torch.randn(2, 1, 16, 32), torch.tensor([0.3, 0.7])  # evaluated at a finer grid than trained
    assert torch.equal(loaded.model(x, t), run.model(x, t))
    assert not any("_SHT_cache" in k for k in read_checkpoint(tmp_path).tensors)


def test_state_dict_has_no_callables():
    """neuraloperator's state_dict carries '_metadata' (constructor kwargs with callables); the
    checkpoint stores a clean tensor dict that loads back strictly."""
    _, cov, sde, _ = _setup()
    model = TINY.build(sde, channels=1, data_spectrum=cov)
    assert "_metadata" in model.state_dict()
    from hilbert_diffusion.models.fno import clean_state_dict

    clean = clean_state_dict(model)
    assert "_metadata" not in clean and all(isinstance(v, torch.Tensor) for v in clean.values())
    fresh = TINY.build(sde, channels=1, data_spectrum=cov)
    fresh.load_state_dict(clean, strict=True)
    assert isinstance(fresh, nn.Module)


def test_train_from_a_numpy_array_with_the_default_sde_in_a_few_lines():
    """``hd.train(array, sde=hd.default_sde(basis, grid))``: a numpy array trains exactly like the tensor."""
    import numpy as np

    import hilbert_diffusion as hd

    basis, _, _, data = _setup(num=16)
    sde = hd.default_sde(basis, (16,))
    config = TrainConfig(steps=2, **FAST)
    from_array = hd.train(data.numpy().astype(np.float64), sde=sde, model=TINY, config=config, progress=False)
    from_tensor = hd.train(data, sde=sde, model=TINY, config=config, progress=False)
    assert from_array.step == 2
    for (name, a), (_, b) in zip(from_array.model.named_parameters(), from_tensor.model.named_parameters()):
        assert torch.equal(a, b), name


def test_a_module_instead_of_a_config_is_refused_with_the_way_out():
    _, _, sde, data = _setup(num=8)
    module = TINY.build(sde, channels=1, data_spectrum=Matern(alpha=1.5, tau=5.0))
    with pytest.raises(ValueError, match=r"ScoreFNOConfig\(\.\.\.\).*denoising_loss"):
        train(data, sde=sde, model=module, config=TrainConfig(steps=1, **FAST), progress=False)


def test_the_wiener_baseline_is_the_untrained_model_and_its_expected_loss():
    """The fresh model (zero network, Wiener skip) is the per-mode Wiener filter of the data spectrum; for
    Gaussian data its EDM-weighted loss ``Σ_c ‖D - x_0‖² / e_c(t)`` has expectation ``channels × |Ω|``
    (``E ‖D - x_0‖² = |Ω| e_c`` when the spectrum is the data's), which the stored baseline estimates."""
    from hilbert_diffusion.training_state import _WienerFilter

    basis, cov, sde, _ = _setup()
    data = GaussianRandomField(basis, cov).sample(512, 32, channels=2, generator=torch.Generator().manual_seed(3))
    run = train(data, sde=sde, model=TINY, config=TrainConfig(steps=1, normalize=False, **FAST), progress=False)
    volume = float(basis.weights((32,)).sum())
    assert run.config["wiener_loss"] == pytest.approx(2 * volume, rel=0.1)
    fresh = TINY.build(sde, channels=2, data_spectrum=run.model.data_spectrum)
    x_t, t = data[:8], torch.linspace(0.05, 1.0, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x_t, t), _WienerFilter(sde, list(run.model.data_spectrum))(x_t, t),
                                   atol=1e-5, rtol=1e-4)


def test_training_says_why_it_stopped_and_how_it_compares_to_the_wiener_filter(capsys):
    _, _, sde, data = _setup(num=16)
    stopped = train(data, sde=sde, model=TINY, config=TrainConfig(steps=5, **FAST), progress=False, max_seconds=0.0)
    err = capsys.readouterr().err
    assert stopped.step == 0 and "stopped at step 0 of 5: the time limit" in err and "resume" in err
    train(data, sde=sde, model=TINY, config=TrainConfig(steps=3, **FAST), progress=True)
    err = capsys.readouterr().err
    assert "final loss" in err and "× the Wiener filter's" in err and "loss/wiener" in err
    assert "stopped at step" not in err


def test_the_time_limit_is_measured_on_the_clock_given(capsys):
    """A clock that advances one second per reading (0 at the start, then one reading before each step) passes 2.5 s
    at the reading before the third step: 2 steps, whatever the wall clock says."""
    _, _, sde, data = _setup(num=16)
    ticks = iter(range(100))
    stopped = train(data, sde=sde, model=TINY, config=TrainConfig(steps=9, **FAST), progress=False, max_seconds=2.5,
                    clock=lambda: float(next(ticks)))
    assert stopped.step == 2 and "stopped at step 2 of 9" in capsys.readouterr().err


def test_training_figures_are_titled_and_show_real_data(tmp_path, monkeypatch):
    import hilbert_diffusion.training_hooks as hooks

    calls = []
    monkeypatch.setattr(hooks, "save_sample_figure", lambda samples, path, **kw: calls.append((samples, path, kw)))
    _, _, sde, data = _setup(num=16)
    config = TrainConfig(steps=2, **{**FAST, "figure_samples": 2})
    train(data, sde=sde, model=TINY, config=config, out_dir=tmp_path / "my-run", progress=False)
    ((samples, path, kw),) = calls
    assert samples.shape == (2, 1, 16) and path.name == "step_00000002.png"
    assert kw["title"].startswith("my-run · step 2 · loss ") and "× Wiener" in kw["title"]
    assert torch.equal(kw["data"], data[:2])  # real fields, in data units
