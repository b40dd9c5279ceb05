"""The command line end to end: data → train → sample at a new resolution → restore; and its errors."""

import json
import math

import numpy as np
import pytest
import torch

from hilbert_diffusion import GaussianRandomField, Matern, NeumannBasis, PeriodicBasis, SphereBasis, cli, cli_train
from hilbert_diffusion.checkpoint import read_checkpoint
from hilbert_diffusion.cli import main
from hilbert_diffusion.config import from_config
from hilbert_diffusion.sde import DiagonalSDE


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "grf1d"
    config = tmp_path_factory.mktemp("cfg") / "config.json"
    config.write_text(json.dumps({"model": {"n_layers": 2}, "train": {"warmup_steps": 5, "figure_samples": 2, "sample_steps": 4}}))
    code = main(["train", "--data", "grf:dim=1,alpha=1.5", "--num", "64", "--resolution", "32", "--out", str(out),
                 "--steps", "6", "--batch-size", "8", "--width", "8", "--modes", "8", "--checkpoint-every", "3",
                 "--config", str(config), "--quiet"])
    assert code == 0
    return out


def test_train_writes_checkpoints_figures_and_resumes(run_dir):
    checkpoints = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert checkpoints[-1] == "checkpoint-00000006"
    assert any(run_dir.glob("samples/*.png"))
    assert main(["train", "--data", "grf:dim=1,alpha=1.5", "--num", "64", "--resolution", "32", "--out", str(run_dir),
                 "--steps", "6", "--batch-size", "8", "--width", "8", "--modes", "8", "--quiet"]) == 2  # exists: say so


def _model_config(run):
    return json.loads(sorted(run.glob("checkpoint-*"))[-1].joinpath("checkpoint.json").read_text())["model"]["config"]


def test_walled_domains_get_a_positional_embedding(run_dir, tmp_path):
    """Translation invariance holds on the torus only: on a box with walls the FNO is told where it is."""
    assert _model_config(run_dir)["positional_embedding"] is False
    walled = tmp_path / "neumann"
    assert main(["train", "--data", "grf:dim=1,alpha=1.5,domain=neumann", "--num", "16", "--resolution", "16",
                 "--out", str(walled), "--steps", "1", "--batch-size", "4", "--width", "4", "--modes", "4", "--quiet"]) == 0
    assert _model_config(walled)["positional_embedding"] is True


def _stored_kappa(run) -> float:
    return from_config(read_checkpoint(run).config["sde"], expect=DiagonalSDE).kappa


def test_default_process_per_domain_and_a_resumed_run_keeps_its_own(run_dir, tmp_path, monkeypatch):
    """Without --kappa-nyquist the data's domain picks κ λ_max (DEFAULT_HEAT); a run resumed after the default
    changed keeps the process stored in its checkpoint (so old runs stay loadable and resumable)."""
    lam_max = lambda basis, n: float(basis.eigenvalues((n,)).max())  # noqa: E731
    expected = cli.DEFAULT_HEAT["periodic fields"][0] / lam_max(PeriodicBasis(1), 32)
    assert math.isclose(_stored_kappa(run_dir), expected, rel_tol=1e-12)  # the fixture: 1-D periodic, no --kappa-nyquist
    old = tmp_path / "curves"
    command = ["train", "--data", "grf:dim=1,alpha=1.5,domain=neumann", "--num", "8", "--resolution", "16", "--out",
               str(old), "--batch-size", "4", "--width", "4", "--modes", "4", "--quiet"]
    assert main([*command, "--steps", "1"]) == 0
    before = _stored_kappa(old)
    assert math.isclose(before, cli.DEFAULT_HEAT["curves"][0] / lam_max(NeumannBasis(1), 16), rel_tol=1e-12)
    monkeypatch.setitem(cli.DEFAULT_HEAT, "curves", (cli.DEFAULT_HEAT["curves"][0] + 7.0, "a changed default"))
    assert main([*command, "--steps", "2", "--resume"]) == 0
    assert _stored_kappa(old) == before
    assert cli_train.domain(SphereBasis()) == "sphere" and cli_train.domain(NeumannBasis(2)) == "images"


@pytest.mark.parametrize("resolution", [32, 96])
def test_sample_at_any_resolution(run_dir, tmp_path, resolution):
    out = tmp_path / f"s{resolution}.npy"
    assert main(["sample", str(run_dir), "--resolution", str(resolution), "--num", "3", "--steps", "4",
                 "--out", str(out), "--quiet"]) == 0
    x = np.load(out)
    assert x.shape == (3, 1, resolution) and x.dtype == np.float32 and np.isfinite(x).all()
    assert out.with_suffix(".png").exists()


def test_sampling_is_reproducible_for_a_seed(run_dir, tmp_path):
    for name in ("a", "b"):
        assert main(["sample", str(run_dir), "--resolution", "32", "--num", "2", "--steps", "3", "--sampler", "ancestral",
                     "--seed", "4", "--out", str(tmp_path / f"{name}.npy"), "--quiet"]) == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.fixture()
def fields(tmp_path):
    x = GaussianRandomField(PeriodicBasis(2), Matern(alpha=2.5, tau=7.0)).sample(1, 16, generator=torch.Generator().manual_seed(0))
    np.save(tmp_path / "truth.npy", x.numpy())
    mask = np.ones((16, 16), bool)
    mask[4:12, 4:12] = False
    np.save(tmp_path / "mask.npy", mask)
    np.save(tmp_path / "observed.npy", x.numpy() * mask)
    np.save(tmp_path / "low.npy", PeriodicBasis(2).resample(x, 8).numpy())
    return tmp_path, x.numpy(), mask


def test_oracle_inpainting_keeps_observed_points_and_spreads_in_the_hole(fields):
    path, truth, mask = fields
    out = path / "inpainted.npy"
    assert main(["inpaint", "oracle", "--observed", str(path / "observed.npy"), "--mask", str(path / "mask.npy"),
                 "--num", "6", "--steps", "20", "--out", str(out), "--quiet"]) == 0
    x = np.load(out)
    assert x.shape == (6, 1, 16, 16)
    assert np.allclose(x[:, 0][:, mask], truth[0, 0][mask], atol=1e-4)
    assert x[:, 0][:, ~mask].std(0).mean() > 0.1 * truth.std()
    assert (path / "inpainted.png").exists()


def test_oracle_superresolution_is_consistent_with_the_observation(fields):
    path, truth, _ = fields
    out = path / "sr.npy"
    assert main(["superres", "oracle", "--observed", str(path / "low.npy"), "--resolution", "32", "--num", "4",
                 "--steps", "20", "--out", str(out), "--quiet"]) == 0
    x = torch.as_tensor(np.load(out))
    low = torch.as_tensor(np.load(path / "low.npy"))
    assert x.shape == (4, 1, 32, 32)
    assert torch.allclose(PeriodicBasis(2).resample(x, 8), low.expand(4, -1, -1, -1), atol=1e-4)  # A x = y


@pytest.mark.parametrize(
    "argv,message",
    [
        (["sample", "oracle", "--resolution", "16", "--num", "2", "--out", "x.txt"], "must end in .npy"),
        (["sample", "nowhere", "--resolution", "16", "--num", "2", "--out", "x.npy"], "checkpoint"),
        (["train", "--data", "nope", "--out", "r"], "neither an existing file"),
        (["train", "--data", "grf:colour=red", "--out", "r"], "unexpected keyword"),
        (["sample", "oracle:dim=2,shape=round", "--resolution", "16", "--num", "2", "--out", "x.npy"], "unknown"),
    ],
)
def test_bad_input_is_explained_without_a_traceback(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_inpainting_refuses_a_mask_of_the_wrong_shape(fields, capsys):
    path, _, _ = fields
    np.save(path / "bad_mask.npy", np.ones((8, 8), bool))
    assert main(["inpaint", "oracle", "--observed", str(path / "observed.npy"), "--mask", str(path / "bad_mask.npy"),
                 "--out", str(path / "o.npy"), "--quiet"]) == 2
    assert "--mask has shape (8, 8)" in capsys.readouterr().err


def test_nan_marks_missing_points_and_the_cost_is_printed_and_controllable(fields, capsys):
    path, truth, mask = fields
    np.save(path / "holes.npy", np.where(mask, truth, np.nan).astype(np.float32))
    common = ["--num", "3", "--steps", "10", "--particles", "4", "--quiet"]
    assert main(["inpaint", "oracle", "--observed", str(path / "holes.npy"), "--out", str(path / "a.npy"), *common]) == 0
    printed = capsys.readouterr().err
    assert "filtering_smc, 10 steps: 40 model evaluations per draw, 120 in all" in printed
    assert main(["inpaint", "oracle", "--observed", str(path / "observed.npy"), "--mask", str(path / "mask.npy"),
                 "--out", str(path / "b.npy"), *common]) == 0
    assert np.array_equal(np.load(path / "a.npy"), np.load(path / "b.npy"))  # NaN = the same mask
    assert main(["inpaint", "oracle", "--observed", str(path / "holes.npy"), "--method", "ddnm",
                 "--out", str(path / "c.npy"), *common]) == 2
    assert "--particles sets the particles of --method smc" in capsys.readouterr().err


def test_sample_uses_the_grid_optimised_at_training_and_says_how_many_evaluations(run_dir, tmp_path, capsys):
    from hilbert_diffusion import load
    from hilbert_diffusion.optimal_times import spectrum_times

    stored = json.loads(sorted(run_dir.glob("checkpoint-*"))[-1].joinpath("checkpoint.json").read_text())["times"]
    assert stored["steps"] == 16 and len(stored["times"]) == 17 and stored["w2"][0] < stored["w2_default"][0]
    assert stored["corrector"] and stored["grids"] == [[32]]  # the default sampler's grid, for the training grid
    for extra, said in (([], "16 steps on the grid optimised at training, 16 model evaluations"),
                        (["--resolution", "64"], "16 steps on a grid optimised now for 16 steps of "
                         "exponential_corrected at 64, 16 model evaluations"),
                        (["--steps", "5"], "5 steps on a grid optimised now for 5 steps of exponential_corrected at 32"),
                        (["--sampler", "multistep", "--steps", "4"],
                         "4 steps on a grid optimised now for 4 steps of exponential_multistep at 32, 4 model evaluations"),
                        (["--steps", "2"], "2 steps on exponential_corrected's own grid, 2 model evaluations"),
                        (["--sampler", "ancestral", "--steps", "3"], "3 steps on exponential_ancestral's own grid")):
        assert main(["sample", str(run_dir), "--resolution", "32", "--num", "2", "--out", str(tmp_path / "s.npy"),
                     "--quiet", *extra]) == 0
        assert said in capsys.readouterr().err
    run = load(run_dir)
    times, _ = run.sampling_times()
    assert times.tolist() == stored["times"] and torch.equal(run.sampling_times(resolution=32)[0], times)
    fine, origin = run.sampling_times(resolution=64)
    assert origin.endswith("at 64") and not torch.equal(fine, times)
    assert fine.tolist() == spectrum_times(run.sde, run.model.data_spectrum, (64,), steps=16, corrector=True,
                                           transfer=False)["times"]
    draw = lambda **kw: run.sample(2, 32, generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(draw(), draw(times=times))
