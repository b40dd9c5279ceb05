"""The benchmarks cannot rot: every module is registered with the runner, every ``--quick`` mode runs
through it and writes its result; and the Quadratic benchmark's own tools are exact where the answer
is known (the closed-form denoiser against brute-force quadrature of the posterior, the cosine-series
interpolant, the shape statistics of real curves).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the benchmarks are a folder of scripts at the repository root, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import quadratic as qb
from benchmarks import run as runner
from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.datasets import quadratic
from hilbert_diffusion.training import TrainConfig, train


def test_every_benchmark_module_is_registered() -> None:
    # gpu_smoke is a self-check for a CUDA machine (its CPU path is tested in test_execution.py), not a benchmark;
    # modules named _* are helpers of one benchmark
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("[!_]*.py")} - {"run", "gpu_smoke"}
    assert set(runner.names()) == scripts
    assert len(runner.names()) == len(set(runner.names()))


def test_every_quick_mode_runs_through_the_runner(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--results", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary_quick.json").read_text())
    entries = {e["name"]: e for e in summary["benchmarks"]}
    assert list(entries) == runner.names()
    for name, entry in entries.items():
        assert entry["status"] == "ok", (name, entry["error"])
        assert (tmp_path / f"{name}_quick.json").exists()

    document = json.loads((tmp_path / "quadratic_quick.json").read_text())
    rows = document["rows"]
    assert entries["quadratic"]["headline"]["nfe"] == rows["model"]["nfe"] <= qb.NFE_BUDGET
    for row in rows.values():
        for power in row["power"].values():
            assert all(0 <= p <= 100 for p in power["values"])
    # the exact denoiser through the quick sampler draws curves of the data's shape: a = ±1, no residual
    exact = rows["exact_denoiser"]["shape"]
    assert exact["rms_residual"] < 1e-3 and exact["rms_abs_a_minus_1"] < 1e-2
    assert 0.35 < exact["fraction_a_positive"] < 0.65
    assert {"model_50", "model_200", "irregular_points", "model_hdm_1"} <= set(rows)
    assert (tmp_path / "quadratic_quick.png").stat().st_size > 0


def _brute_force_posterior_mean(y, alpha, v, p, c, *, mean: float) -> torch.Tensor:
    """E[x_0 | y] by quadrature over β on a fine grid, for each sign a (independent of the closed form)."""
    sigma = 1 / qb.SCALE
    beta = torch.linspace(-mean - 10 * sigma, -mean + 10 * sigma, 20001, dtype=torch.float64)
    log_prior = -0.5 * ((beta + mean) / sigma) ** 2
    logs, means = [], []
    for sign in (1.0, -1.0):
        x0 = sign * p[..., None] + beta * c[..., None]  # (1, n, B)
        log_lik = -0.5 * ((y[..., None] - alpha[..., None] * x0) ** 2 / v[..., None]).sum(dim=(-3, -2))  # (batch, B)
        log_w = log_lik + log_prior
        logs.append(torch.logsumexp(log_w, dim=-1))
        w = torch.softmax(log_w, dim=-1)
        means.append(sign * p + (w @ beta)[:, None, None] * c)
    weights = torch.softmax(torch.stack(logs), dim=0)
    return weights[0][:, None, None] * means[0] + weights[1][:, None, None] * means[1]


def test_quadratic_denoiser_is_the_exact_posterior_mean() -> None:
    basis = NeumannBasis(1, lengths=20.0)
    grid = (16,)
    sde = qb.make_sde(basis, grid, kappa_nyquist=0.25)
    mean, std = 0.05, 0.8
    denoiser = qb.QuadraticDenoiser(sde, mean=mean, std=std)
    x0 = (quadratic(6, 16, seed=3).data.to(torch.float64) - mean) / std
    generator = torch.Generator().manual_seed(0)
    p, c = denoiser._profiles(grid)
    for t in (0.02, 0.2, 0.5, 0.7, 0.95):
        xt, _ = sde.marginal_sample(x0, t, generator=generator)
        times = torch.full((6,), t, dtype=torch.float64)
        exact = basis.forward(denoiser(xt, times))
        y = basis.forward(xt)
        alpha, v = sde.mean_factor(times, grid), sde.variance(times, grid)
        reference = _brute_force_posterior_mean(y, alpha, v, p, c, mean=mean)
        assert torch.allclose(exact, reference, rtol=1e-6, atol=1e-8), t
    # per-sample times give the same answer as a shared time
    times = torch.tensor([0.1, 0.1, 0.6, 0.6, 0.9, 0.9], dtype=torch.float64)
    xt, _ = sde.marginal_sample(x0, times, generator=generator)
    for i in range(0, 6, 2):
        shared = denoiser(xt[i : i + 2], times[i : i + 2])
        single = torch.cat([denoiser(xt[j : j + 1], times[j : j + 1]) for j in (i, i + 1)])
        assert torch.allclose(shared, single, rtol=1e-12, atol=1e-12)
    # at t → 0 the posterior is certain: the denoiser returns the clean curve
    xt, _ = sde.marginal_sample(x0, 1e-6, generator=generator)
    assert torch.allclose(denoiser(xt, torch.full((6,), 1e-6, dtype=torch.float64)), x0, atol=1e-3)


def test_cosine_interpolant_is_exact_at_nodes_and_for_band_limited_series() -> None:
    n = 12
    nodes = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    curves = torch.randn(3, 1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(qb.cosine_interpolant(curves, nodes), curves, atol=1e-12)
    series = lambda u: 0.3 + torch.cos(3 * math.pi * u) - 0.5 * torch.cos(7 * math.pi * u)
    u = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    values = qb.cosine_interpolant(series(nodes).reshape(1, 1, n), u)
    assert torch.allclose(values[0, 0], series(u), atol=1e-12)


def test_shape_statistics_of_real_curves() -> None:
    data = quadratic(400, 50, seed=7)
    stats = qb.shape_statistics(data.data, qb.grid_points(data.basis, (50,)))
    assert stats["rms_residual"] < 1e-5 and stats["rms_abs_a_minus_1"] < 1e-4
    assert abs(stats["fraction_a_positive"] - 0.5) < 0.1  # 400 fair coins: 4 standard deviations
    assert abs(stats["std_50b"] - 1) < 0.15  # ε ~ N(0, 1): sd of the sample sd ≈ 1/sqrt(800)


def test_darcy_error_rate_is_their_thresholded_pixel_fraction() -> None:
    """Darcy's inverse metric is DiffusionPDE's and FunDPS's error rate of the thresholded ``a``, not an L² error."""
    from benchmarks.pde_inverse import error_rate

    generator = torch.Generator().manual_seed(0)
    truth = torch.where(torch.rand(3, 8, 8, generator=generator) > 0.5, 12.0, 3.0)
    estimate = truth + 4.0 * (torch.rand(3, 8, 8, generator=generator) - 0.5)  # within ±2: thresholds back to truth
    assert torch.equal(error_rate(estimate, truth), torch.zeros(3, dtype=torch.float64))
    flipped = truth.clone()
    flipped[0, :2, :3] = 15.0 - flipped[0, :2, :3]  # 6 of 64 nodes swapped between the two values
    assert torch.allclose(error_rate(flipped, truth), torch.tensor([6 / 64, 0.0, 0.0], dtype=torch.float64))


def test_image_benchmark_fields_and_its_kept_runs(tmp_path: Path, monkeypatch) -> None:
    """The physical data sets of ``images.py`` are what they say (Darcy's coefficient two-valued in {0, 1}, held out
    from another seed); the denoising gain of a model over itself is exactly 1 (both see the same noise); the Gaussian
    fit's exact posterior mean from coarse modes scores zero-padding's PSNR; and a run kept with ``--runs`` is loaded,
    not retrained, when scored again (here with another sampler, which draws other samples)."""
    from benchmarks import images

    train, test = (images.DATASETS["darcy"].load(8, split, 6) for split in ("train", "test"))
    assert set(torch.unique(train).tolist()) == {0.0, 1.0} and train.shape == (6, 1, 8, 8)
    assert not any(torch.equal(a, b) for a in train for b in test)
    plan = replace(images.QUICK, kappa_nyquist=25.0)
    control = images.untrained_run(train, plan, images.DATASETS["darcy"].basis, images.GaussianFit())
    assert images.gains(control, control, test) == [1.0] * len(images.GAIN_TIMES)

    monkeypatch.setattr(images, "RESULTS", tmp_path)
    argv = ["--quick", "--datasets", "darcy", "--architectures", "gaussian,fno", "--runs", str(tmp_path / "runs"),
            "--train-images", "12", "--tag", "t"]
    assert images.main(argv) == 0
    result = json.loads((tmp_path / "images_quick_t.json").read_text())["results"]["darcy"]
    assert result["train_images"] == 12 and result["validation_images"] == 0
    assert 0.0 <= result["upsampled_2x"]["c2st"] <= 1.0 and result["upsampled_2x"]["data_kurtosis"] == pytest.approx(
        result["architectures"]["fno"][str(2 * result["resolution"])]["data_kurtosis"])
    n0 = result["resolution"]
    for n, num in zip((n0, 2 * n0), images.QUICK.samples):  # the training fields' own scores, against the same held-out
        own, model = result["training_fields"][str(n)], result["architectures"]["fno"][str(n)]
        assert own["data_kurtosis"] == pytest.approx(model["data_kurtosis"])
        fields = images.DATASETS["darcy"].load(n, "train", num)
        assert own["kurtosis"] == pytest.approx(float(images.difference_kurtosis(fields)[0]))
    first, fit = result["architectures"]["fno"], result["architectures"]["gaussian"]["restoration"]
    for task in ("SR×2 spectral", "SR×4 spectral"):  # the Gaussian's exact posterior mean from coarse modes: zero-padding
        assert fit[task]["exact posterior mean"]["psnr"] == pytest.approx(fit[task]["zero-pad"]["psnr"], abs=1e-3)
    assert all("psnr_infinite_draws" in row["posterior mean"] and row["psnr_gap_stderr"] >= 0
               for row in first["restoration"].values())
    assert images.main([*argv, "--draws", "3", "--sampler", "pc", "--snr", "0.32"]) == 0
    document = json.loads((tmp_path / "images_quick_t.json").read_text())
    again, n0 = document["results"]["darcy"]["architectures"]["fno"], str(result["resolution"])
    assert again["curve"] == first["curve"] and again["train"] == first["train"]
    assert document["config"]["sampler"] == "predictor_corrector, PredictorCorrector(snr=0.32), 12 steps on its own grid"
    assert again[n0]["first"] != first[n0]["first"]
    assert len(first["curve"][-1]["denoising_gain"]) == len(images.GAIN_TIMES)
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["darcy_fno_heat0_n12"]
    assert images.main([*argv, "--mode-weighting", "0.5"]) == 0  # another loss: trained anew beside the first
    kept = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert kept == ["darcy_fno_heat0_n12", "darcy_fno_heat0_n12_modes0.5"]


def test_a_kept_run_that_stopped_early_is_scored_with_its_best_checkpoint(tmp_path: Path) -> None:
    """Scoring a kept run again loads the early-stopped model it was first scored with (``best/``), not the last
    checkpoint; a folder whose model is not the step its curve.json kept is refused."""
    from benchmarks import images

    spec = images.DATASETS["darcy"]
    data = spec.load(8, "train", 16)
    sde = images.untrained_run(data, images.QUICK, spec.basis, images.GaussianFit()).sde
    config = TrainConfig(steps=12, batch_size=4, lr=0.1, warmup_steps=2, checkpoint_every=2, keep_checkpoints=20,
                         val_fraction=0.25, keep_best=True, figure_samples=0, optimised_steps=0)
    run = train(data, sde=sde, model=images.QUICK.architectures["fno"], config=config, out_dir=tmp_path, progress=False)
    assert run.step < 12, "the test needs a best checkpoint before the last"
    assert images.kept_run(tmp_path, {"steps": 12, "kept_step": run.step}).step == run.step
    with pytest.raises(ValueError, match="kept step 12; delete the folder"):
        images.kept_run(tmp_path, {"steps": 12, "kept_step": 12})


@pytest.mark.parametrize("flags, message", [
    (["--eta", "0.5"], "--eta is the ancestral sampler's: give it with --sampler ancestral, in [0, 1], got 0.5"),
    (["--sampler", "ancestral", "--eta", "1.5"], "in [0, 1], got 1.5"),
    (["--snr", "0.2"], "--snr is the predictor-corrector's"),
    (["--architectures", "fno,unet"], "unknown architectures ['unet']; choose from gaussian,"),
    (["--datasets", "cats"], "unknown data sets ['cats']"),
    (["--particles", "4"], "--particles and --particle-mean are the twisted SMC's: give them with --restorer"),
    (["--particle-mean"], "--particles and --particle-mean are the twisted SMC's"),
    (["--restorer", "twisted-smc", "--particles", "0"], "--particles must be at least 1, got 0"),
    (["--data-only", "--architectures", "fno"], "--data-only scores no model: leave out --architectures"),
    (["--tasks", "box,inpaint"], "unknown restoration tasks ['inpaint']; choose from sr2-block, sr4-block,"),
    (["--tasks", ","], "--tasks names no task; choose from sr2-block,"),
])
def test_image_benchmark_refuses_bad_options_in_one_line(flags: list[str], message: str, capsys) -> None:
    from benchmarks import images

    with pytest.raises(SystemExit) as exit_:
        images.main(["--quick", *flags])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and ": error: " in error and message in error


def test_image_benchmark_names_kept_runs_by_every_training_choice() -> None:
    """``--translate`` and ``--multires`` reach the training config and the kept run's folder name, so a run kept with
    other choices is never loaded in their place."""
    from benchmarks import images

    parser = images._parser()
    plain = images._plan(parser.parse_args(["--quick"]), parser)
    plan = images._plan(parser.parse_args(["--quick", "--translate", "1", "--multires", "8,16"]), parser)
    assert plan.train.translate == 1 and plan.train.resolutions == (8, 16)
    assert images.run_name("shapes", "fno", plan) == images.run_name("shapes", "fno", plain) + "_shift1_multires8-16"


def test_image_benchmark_sampler_options_reach_the_sampler() -> None:
    """``--eta`` and ``--snr`` configure the sampler every unconditional draw uses, at its own step count."""
    from benchmarks import images

    parser = images._parser()
    plan = images._plan(parser.parse_args(["--quick", "--sampler", "ancestral", "--eta", "0.5"]), parser)
    assert plan.sampler.name == "exponential_ancestral" and plan.sampler.method.eta == 0.5
    assert plan.sampler_steps == 2 * images.QUICK.sampler_steps
    plan = images._plan(parser.parse_args(["--quick", "--sampler", "pc", "--snr", "0.32"]), parser)
    assert plan.sampler.method.snr == 0.32 and plan.sampler_steps == 3 * images.QUICK.sampler_steps
    plan = images._plan(parser.parse_args(["--quick", "--restorer", "twisted-smc", "--particles", "4"]), parser)
    assert plan.restorer.name == "twisted_smc" and plan.restorer.method.particles == 4
    assert not plan.restorer.method.weighted_mean
    plan = images._plan(parser.parse_args(["--quick", "--restorer", "twisted-smc", "--particle-mean"]), parser)
    assert plan.restorer.method.weighted_mean and plan.restorer.method.particles == 8  # the twisted SMC's default
    assert images._plan(parser.parse_args(["--quick"]), parser).restorer.name == "covariance-guidance"


def test_image_benchmark_restores_with_the_twisted_smc(tmp_path: Path, monkeypatch) -> None:
    """``--restorer twisted-smc`` restores the block-mean and mask tasks with the twisted SMC (the JSON names it);
    for the Gaussian fit, whose every SMC weight is 1, its posterior mean lands within 1 dB of the exact one.
    ``--tasks`` runs those named and no other."""
    from benchmarks import images

    monkeypatch.setattr(images, "RESULTS", tmp_path)
    argv = ["--quick", "--datasets", "darcy", "--architectures", "gaussian", "--draws", "8", "--restorer",
            "twisted-smc", "--particles", "2", "--tasks", "random,sr2-block,box", "--tag", "t"]
    assert images.main(argv) == 0
    document = json.loads((tmp_path / "images_quick_t.json").read_text())
    assert document["config"]["restoration"]["tasks"] == ["SR×2 block", "box 25%", "random 70%"]
    assert document["config"]["restoration"]["methods"].startswith("ddnm (spectral), twisted_smc TwistedSMC(")
    rows = document["results"]["darcy"]["architectures"]["gaussian"]["restoration"]
    assert list(rows) == ["SR×2 block", "box 25%", "random 70%"]
    for task in ("SR×2 block", "box 25%", "random 70%"):
        drawn, exact = rows[task]["posterior mean"]["psnr"], rows[task]["exact posterior mean"]["psnr"]
        assert drawn == pytest.approx(exact, abs=1.0)  # 8 draws of 4 steps: measured 0.1–0.7 dB below
