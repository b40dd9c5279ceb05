"""Score operators with local structure: differential kernels (Liu-Schiaffini et al. 2024), the local FNO and the
multi-scale operator on the domain's basis — resolution-free, chosen by --arch, recorded in the checkpoint."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hilbert_diffusion.bases import DirichletBasis, NeumannBasis, PeriodicBasis
from hilbert_diffusion.cli import main
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.models.differential import DifferentialKernel, grid_spacing
from hilbert_diffusion.models.fno import EmpiricalSpectrum
from hilbert_diffusion.models.local_fno import ScoreLocalConfig
from hilbert_diffusion.models.multiscale import ScoreMultiScaleConfig
from hilbert_diffusion.noise import Matern
from hilbert_diffusion.sde import default_sde

BASES = [PeriodicBasis(1), NeumannBasis(1), DirichletBasis(1), PeriodicBasis(2), NeumannBasis(2), DirichletBasis(2)]


def _kernel(basis, kernel_size: int) -> DifferentialKernel:
    torch.manual_seed(0)
    return DifferentialKernel(basis, 3, 2, kernel_size=kernel_size).double().requires_grad_(False)


@pytest.mark.parametrize("basis", BASES, ids=lambda b: f"{type(b).__name__}{b.ndim}")
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_differential_kernel_kills_constants_and_differentiates_ramps_exactly_at_every_spacing(basis, kernel_size):
    """(D1) with random weights: a constant field gives 0 everywhere; a ramp ``u = s·x`` gives
    ``Σ_a Σ_j j W_{a,j} s_a`` at every point (inside a torus, where the ramp does not wrap; up to the walls of a box,
    which continue it linearly), the same at every spacing."""
    kernel, r = _kernel(basis, kernel_size), kernel_size // 2
    inside = (..., *[slice(r, -r)] * basis.ndim) if isinstance(basis, PeriodicBasis) else (...,)
    expected = None
    for n in (12, 24):
        grid = basis.grid(n)
        out = kernel(torch.full((1, 3, *grid), 2.5, dtype=torch.float64))
        assert out.shape == (1, 2, *grid) and float(out.abs().max()) < 1e-9
        mesh = torch.meshgrid(*basis.axis_points(grid), indexing="ij")
        slopes = torch.tensor([[1.0, -2.0][: basis.ndim], [0.5, 3.0][: basis.ndim], [-1.0, 0.25][: basis.ndim]])
        ramp = torch.stack([sum(s * x for s, x in zip(row, mesh)) for row in slopes])[None]
        value = kernel(ramp)[inside].flatten(2)[0]  # (out channels, inner points)
        assert float((value - value[:, :1]).abs().max()) < 1e-9  # constant inside
        expected = value[:, 0] if expected is None else expected
        assert torch.allclose(value[:, 0], expected, atol=1e-9)  # the same at both spacings
    offsets = [j for j in range(-r, r + 1) if j != 0]  # the derivative (D1) converges to, by hand
    by_hand = torch.einsum("ocaj,j,ca->o", kernel.weight, torch.tensor(offsets, dtype=torch.float64), slopes.double())
    assert torch.allclose(expected, by_hand, atol=1e-9)


@pytest.mark.parametrize("basis", BASES[:3], ids=lambda b: type(b).__name__)
def test_central_difference_converges_up_to_the_walls(basis):
    """With the central-difference weights the kernel is ``∂_x`` to ``O(h²)`` inside and ``O(h)`` or better at the
    walls (there it is the one-sided difference: the linear continuation), for the basis's first non-constant mode."""
    kernel = DifferentialKernel(basis, 1, 1).double().requires_grad_(False)
    with torch.no_grad():
        kernel.weight.copy_(torch.tensor([-0.5, 0.5]).reshape(1, 1, 1, 2))
    k = 2 * math.pi if isinstance(basis, PeriodicBasis) else math.pi  # the first non-constant mode
    mode, slope = (torch.cos, lambda x: -k * torch.sin(k * x)) if not isinstance(basis, DirichletBasis) else \
        (torch.sin, lambda x: k * torch.cos(k * x))
    errors, inner = [], []
    for n in (16, 32, 64):
        x = basis.axis_points((n,))[0]
        error = (kernel(mode(k * x)[None, None])[0, 0] - slope(x)).abs()
        errors.append(float(error.max()))
        inner.append(float(error[1:-1].max()))
        assert grid_spacing(basis, (n,))[0] == pytest.approx(1 / (n + 1) if isinstance(basis, DirichletBasis) else 1 / n)
    assert errors[0] < 0.4 and errors[1] / errors[0] < 0.55 and errors[2] / errors[1] < 0.55
    assert inner[1] / inner[0] < 0.3 and inner[2] / inner[1] < 0.3


def _random_model(config, basis, fields, train_grid):
    torch.manual_seed(0)
    model = config.build(default_sde(basis, train_grid), channels=1, data_spectrum=EmpiricalSpectrum.estimate(fields, basis))
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    return model


def _disagreement(model, basis, fields, coarse) -> tuple[float, float]:
    with torch.no_grad():
        fine, low = model(fields, 0.5), model(basis.resample(fields, coarse), 0.5)
    return float(low.norm()), float((basis.resample(fine, coarse) - low).norm() / low.norm())


@pytest.mark.parametrize("config", [
    ScoreLocalConfig(hidden_channels=8, n_modes=8, n_layers=2, positional_embedding=True, wiener_skip=False),
    ScoreMultiScaleConfig(hidden_channels=8, n_modes=8, positional_embedding=True, wiener_skip=False),
], ids=["local", "multiscale"])
def test_local_operators_agree_across_resolutions_and_converge(config):
    """A smooth field on 32², 64² and 128² (random weights, no Wiener skip: the network itself is compared): 64²'s
    output resampled to 32² agrees with 32²'s to 8 % (6 % for this draw; the local FNO: 1 %), and 128²'s with 64²'s better still — the
    differential kernels' symmetric part is ``O(h)`` (D1), so the operator converges as the grid is refined (without
    them the rest agrees to 1 %, as the UNO in test_uno.py). The multi-scale operator converges more slowly: its
    finest up-block differentiates features upsampled from the coarser level, whose band is a fraction of the grid."""
    basis = NeumannBasis(2)
    fields = gaussian_random_fields(2, 128, basis=basis, spectrum=Matern(alpha=4.0, tau=3.0), seed=0).data
    model = _random_model(config, basis, fields, (32, 32))
    norm, coarse = _disagreement(model, basis, basis.resample(fields, (64, 64)), (32, 32))
    _, fine = _disagreement(model, basis, fields, (64, 64))
    local_fno = isinstance(config, ScoreLocalConfig)
    assert norm > 1.0 and coarse < (0.02 if local_fno else 0.08) and fine < (0.6 if local_fno else 0.75) * coarse
    for kernel in (m for m in model.modules() if isinstance(m, DifferentialKernel)):
        kernel.weight.data.zero_()
    assert _disagreement(model, basis, basis.resample(fields, (64, 64)), (32, 32))[1] < 0.01


def test_multiscale_runs_on_odd_grids_and_walls_stay_walls():
    """The multi-scale operator resamples in the basis (cosines at Neumann walls): an odd grid works and agrees with
    the even grid twice as fine; on a periodic box a field and its shift give shifted outputs (no
    positional input) by a multiple of 4 cells (a whole cell of the coarsest of 3 levels): translation equivariance."""
    basis = NeumannBasis(2)
    fields = gaussian_random_fields(1, (62, 66), basis=basis, spectrum=Matern(alpha=4.0, tau=3.0), seed=1).data
    config = ScoreMultiScaleConfig(hidden_channels=4, n_modes=6, local_levels=0, positional_embedding=True,
                                   wiener_skip=False)
    model = _random_model(config, basis, fields, (31, 33))
    assert _disagreement(model, basis, fields, (31, 33))[1] < 0.01
    torus = PeriodicBasis(2)
    field = gaussian_random_fields(1, 24, basis=torus, spectrum=Matern(alpha=3.0, tau=3.0), seed=2).data
    model = _random_model(replace(config, positional_embedding=False, local_levels=1), torus, field, (24, 24))
    with torch.no_grad():
        shifted = model(field.roll((8, -4), (-2, -1)), 0.3)
        assert torch.allclose(shifted, model(field, 0.3).roll((8, -4), (-2, -1)), atol=1e-4)


def test_bad_options_are_refused_in_one_line():
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        ScoreLocalConfig(kernel_size=4)
    with pytest.raises(ValueError, match="domain_padding does not apply"):
        ScoreLocalConfig(domain_padding=0.25)
    with pytest.raises(ValueError, match="local_levels in 0..n_layers"):
        ScoreMultiScaleConfig(n_layers=2, local_levels=3)
    basis = NeumannBasis(2)
    fields = gaussian_random_fields(1, 16, basis=basis, spectrum=Matern(alpha=4.0, tau=3.0), seed=0).data
    model = _random_model(ScoreMultiScaleConfig(hidden_channels=2, n_modes=4, n_layers=4), basis, fields, (16, 16))
    with pytest.raises(ValueError, match="too coarse for 4 levels"):
        model(fields[..., :8, :8], 0.5)


@pytest.mark.parametrize("arch, config_type", [("local", "local_fno.ScoreLocalConfig"),
                                               ("multiscale", "multiscale.ScoreMultiScaleConfig")])
def test_arch_trains_records_itself_and_samples_at_another_resolution(tmp_path, capsys, arch, config_type):
    out, config = tmp_path / arch, tmp_path / "config.json"
    config.write_text(json.dumps({"train": {"figure_samples": 2, "sample_steps": 4, "optimised_steps": 0}}))
    assert main(["train", "--data", "shapes", "--num", "8", "--resolution", "16", "--out", str(out), "--arch", arch,
                 "--steps", "2", "--batch-size", "4", "--width", "4", "--modes", "4", "--layers", "2",
                 "--config", str(config), "--quiet"]) == 0
    stored = json.loads(sorted(out.glob("checkpoint-*"))[-1].joinpath("checkpoint.json").read_text())
    assert stored["model"]["config"]["type"] == f"hilbert_diffusion.models.{config_type}"
    assert stored["model"]["config"]["n_layers"] == 2 and stored["model"]["config"]["positional_embedding"] is True
    samples = tmp_path / "s.npy"
    assert main(["sample", str(out), "--resolution", "24", "--num", "3", "--steps", "4", "--out", str(samples),
                 "--quiet"]) == 0
    array = np.load(samples)
    assert array.shape == (3, 1, 24, 24) and np.isfinite(array).all()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"kernel_size": 4}}))
    assert main(["train", "--data", "shapes", "--num", "8", "--resolution", "16", "--out", str(tmp_path / "x"),
                 "--arch", arch, "--config", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "kernel_size must be odd and at least 3, got 4" in err[-1]
