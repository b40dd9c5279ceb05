"""Execution on any device, in bf16, compiled (:mod:`hilbert_diffusion.execution`).

There is no GPU where the suite runs. Device-following is checked on PyTorch's ``meta`` device: a meta tensor has a
shape and a device but no values, and any operation mixing it with a CPU tensor fails ("Tensor on device cpu is not
on the expected device meta") exactly as mixing a CPU and a CUDA tensor does. A whole sampler, DDNM/RePaint/DPS and
the training loss with its backward pass running on meta inputs and returning meta outputs is the proof that no tensor
along those paths is pinned to the CPU. What meta cannot run (value-dependent control flow: SMC's resampling, the
covariance guidance's observed-index lookup) is not covered here.
"""

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from hilbert_diffusion import (
    DiagonalSDE,
    LinearSchedule,
    Matern,
    PeriodicBasis,
    StochasticHeatSDE,
    TrainConfig,
    default_sde,
    denoising_loss,
    train,
)
from hilbert_diffusion import restoration, sampling
from hilbert_diffusion.cli import main
from hilbert_diffusion.distributed import DistributedContext
from hilbert_diffusion.execution import accelerate, on_device, resolve_device
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.restoration import Mask

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks are a folder of scripts at the repository root, not installed
    sys.path.insert(0, str(ROOT))

META = torch.device("meta")
GRID = (16, 16)


def _model(sde, *, random: bool = True, seed: int = 0):
    """A small ScoreFNO; ``random`` gives every weight (the zero-initialised projection too) a random value, so the
    network's output is not zero."""
    torch.manual_seed(seed)
    model = ScoreFNOConfig(hidden_channels=8, n_modes=6, n_layers=1, embedding_dim=16).build(
        sde, channels=1, data_spectrum=Matern(alpha=2.0, tau=3.0))
    if random:
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module")
def sde():
    return default_sde(PeriodicBasis(2), GRID)


SAMPLERS = ["exponential_multistep", "exponential_corrected", "euler_maruyama", "heun_ode", "rk3_ode", "exponential_ancestral",
            "exponential_deterministic", "predictor_corrector"]


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_runs_on_the_device_of_its_input(sde, name):
    sampler = getattr(sampling, name)
    model = _model(sde, random=False).to(META)
    x = torch.zeros(2, 1, *GRID, device=META)
    out = sampler(model, sde, x, sampler.times(3), generator=torch.Generator().manual_seed(0))  # CPU draws, moved
    assert out.device == META and out.shape == x.shape


@pytest.mark.parametrize("name", ["ddnm", "repaint", "dps"])
def test_restoration_runs_on_the_device_of_its_input(sde, name):
    method = getattr(restoration, name)
    observed = torch.zeros(GRID, dtype=torch.bool)
    observed[::2] = True
    x, y = torch.zeros(2, 1, *GRID, device=META), torch.zeros(2, 1, *GRID, device=META)
    out = method(_model(sde, random=False).to(META), sde, x, method.times(3), operator=Mask(
        basis=sde.basis, observed=observed, noise_std=0.1), y=y, generator=torch.Generator().manual_seed(0))
    assert out.device == META and out.shape == x.shape


def test_the_training_loss_and_its_gradient_follow_the_device(sde):
    model = _model(sde).to(META)
    x0 = torch.zeros(3, 1, *GRID, device=META)
    t = torch.full((3,), 0.5, dtype=torch.float64, device=META)
    loss = denoising_loss(model, x0, sde, t=t, weight=model.loss_weight, generator=torch.Generator().manual_seed(0))
    loss.sum().backward()
    assert loss.device == META and all(p.grad.device == META for p in model.parameters())


@pytest.mark.parametrize("process", ["heat", "diagonal"])
def test_sde_coefficients_are_computed_on_the_device_of_t(process):
    basis = PeriodicBasis(2)
    if process == "heat":
        sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=2.0, tau=3.0), kappa=0.01)
    else:  # the variance by quadrature: its table is copied to the device once
        sde = DiagonalSDE(basis=basis, covariance=Matern(alpha=2.0, tau=3.0), decay=LinearSchedule(),
                          noise=LinearSchedule(), quadrature_steps=50)
    t = torch.full((2,), 0.5, dtype=torch.float64, device=META)
    outputs = [sde.mean_factor(t, (8, 8)), sde.variance(t, (8, 8)), *sde.transition(0.25, t, (8, 8)),
               *sde.bridge(0.25, t, (8, 8)), sde.diffusion_variance_rate(t, (8, 8))]
    assert all(o.device == META for o in outputs)
    assert sde.variance(0.5, (8, 8)).device == torch.device("cpu")  # a float time: the CPU, as before


def test_bf16_changes_only_the_network(sde):
    """A fresh model's network outputs exactly zero (zero-initialised projection), so its output is the Wiener skip
    alone: bit-identical in bf16, which shows the preconditioning and the skip stay in full precision. With random
    weights bf16 differs from fp32, and by little."""
    x, t = torch.randn(4, 1, *GRID, generator=torch.Generator().manual_seed(1)), torch.linspace(0.1, 0.9, 4)
    for random in (False, True):
        model = _model(sde, random=random)
        with torch.no_grad():
            fp32 = model(x, t)
            bf16 = accelerate(model, bf16=True)(x, t)
        error = float((bf16 - fp32).norm() / fp32.norm())
        assert bf16.dtype == torch.float32
        assert (error == 0.0) if not random else (0 < error < 2e-2), (random, error)


def test_bf16_samples_match_fp32_samples(sde):
    """Stated tolerance: with the same seed, 8 steps of the default sampler in bf16 stay within 2 % (relative L²) of
    the fp32 samples on this random-weight model."""
    model = _model(sde)
    x = sde.prior_sample(4, GRID, generator=torch.Generator().manual_seed(2))
    times = sampling.exponential_multistep.times(8)
    fp32 = sampling.exponential_multistep(accelerate(model, bf16=False), sde, x, times)
    bf16 = sampling.exponential_multistep(accelerate(model, bf16=True), sde, x, times)
    error = float((bf16 - fp32).norm() / fp32.norm())
    assert 0 < error < 2e-2, error


def test_bf16_training_starts_where_fp32_does_and_stays_close():
    """The first step's loss is exactly the fp32 one (the network starts at zero), later ones differ but by little;
    the choice is stored in the run config."""
    data = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    sde = default_sde(PeriodicBasis(2), (16, 16))
    model = ScoreFNOConfig(hidden_channels=8, n_modes=6, n_layers=1, embedding_dim=16)
    losses = {}
    for bf16 in (False, True):
        seen = []
        config = TrainConfig(steps=4, batch_size=4, warmup_steps=1, optimised_steps=0, figure_samples=0, bf16=bf16)
        run = train(data, sde=sde, model=model, config=config, progress=False,
                    callback=lambda step, loss: seen.append(loss))
        losses[bf16] = torch.tensor(seen)
    assert run.config["train"]["bf16"] is True
    assert losses[True][0] == losses[False][0]
    relative = (losses[True][1:] - losses[False][1:]).abs() / losses[False][1:]
    assert 0 < relative.max() < 0.05, relative


@pytest.mark.skipif(os.environ.get("HILBERT_DIFFUSION_TEST_COMPILE") != "1", reason=(
    "torch.compile's first call costs 4-25 s on this 2-core CPU (inductor's C++ builds), too slow for the suite; "
    "HILBERT_DIFFUSION_TEST_COMPILE=1 runs it, and benchmarks/speed_execution.py checks compile against eager"))
def test_compile_equals_eager(sde):
    """``torch.compile`` of the backbone gives the eager output to float32 rounding, and switching it off again
    returns to the eager path."""
    model = _model(sde)
    x, t = torch.randn(2, 1, *GRID, generator=torch.Generator().manual_seed(4)), torch.tensor([0.3, 0.7])
    with torch.no_grad():
        eager = model(x, t)
        compiled = accelerate(model, compile=True)(x, t)
        again = accelerate(model, compile=False)(x, t)
    assert torch.allclose(compiled, eager, rtol=1e-4, atol=1e-5 * float(eager.abs().max()))
    assert torch.equal(again, eager)


def test_device_names_are_resolved_or_refused_in_one_line():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu0", "tpu", "meta"):
        with pytest.raises(ValueError, match="use auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    ranks = DistributedContext(rank=1, world_size=2, local_rank=1, device=torch.device("cpu"), backend="gloo")
    assert on_device(ranks, "auto") is ranks and on_device(ranks, "cpu") == ranks
    with pytest.raises(ValueError, match="under torchrun"):
        on_device(dataclasses.replace(ranks, device=torch.device("cuda", 1)), "cpu")


def test_accelerate_refuses_a_model_without_the_switches(sde):
    from hilbert_diffusion import GaussianOracle

    with pytest.raises(ValueError, match="has neither"):
        accelerate(GaussianOracle(sde, Matern(alpha=2.0, tau=3.0)), bf16=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("command", [["sample", "oracle", "--resolution", "8", "--num", "1"],
                                     ["train", "--data", "grf", "--steps", "1"]])
def test_cli_refuses_cuda_where_there_is_none(tmp_path, capsys, command):
    out = tmp_path / ("run" if command[0] == "train" else "x.npy")
    assert main([*command, "--out", str(out), "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CUDA is not available" in err and "--device cpu" in err
    assert not out.exists()


def test_cli_refuses_bf16_and_compile_for_the_oracle(tmp_path, capsys):
    for flag in (["--precision", "bf16"], ["--compile"]):
        assert main(["sample", "oracle", "--resolution", "8", "--num", "1", "--out", str(tmp_path / "x.npy"),
                     "--device", "cpu", "--quiet", *flag]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "has neither: run it in fp32 without compile" in err[-1]
    with pytest.raises(SystemExit) as stop:  # argparse: an unknown precision
        main(["sample", "oracle", "--resolution", "8", "--num", "1", "--out", str(tmp_path / "x.npy"),
              "--precision", "fp16"])
    assert stop.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err


def test_gpu_smoke_runs_its_whole_path_on_the_cpu(tmp_path):
    """``benchmarks/gpu_smoke.py --device cpu --quick``: train, sample at twice the grid, restore, time fp32 against
    bf16 (compile left out: its first call alone costs 30-100 s here), every check passing."""
    from benchmarks import gpu_smoke

    assert gpu_smoke.main(["--device", "cpu", "--quick", "--no-compile", "--results", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "gpu_smoke_quick.json").read_text())
    assert [name for name, check in report["checks"].items() if check["passed"]] == [
        "training loss finite and decreased", "samples finite with a sane spectrum",
        "restoration keeps the observation", "bf16 agrees with fp32"]
    assert report["restore"]["observed_error"] < 1e-3 and report["sample"]["resolution"] == 32
