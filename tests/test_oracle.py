"""The Gaussian oracle: its score is the gradient of its density, its denoiser is the posterior mean."""

import math

import numpy as np
import pytest
import torch

from hilbert_diffusion import (
    CosineSchedule,
    GaussianOracle,
    Matern,
    NeumannBasis,
    PeriodicBasis,
    StochasticHeatSDE,
)
from hilbert_diffusion.cli import main


def _oracle(basis, *, kappa=0.0, mean=True):
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.5, tau=5.0), kappa=kappa, decay=CosineSchedule())
    grid = basis.grid(10)
    m = None
    if mean:
        m = torch.linspace(-1, 1, math.prod(grid), dtype=torch.float64).reshape(1, *grid).sin()
    return GaussianOracle(sde, Matern(alpha=2.0, tau=4.0), mean=m), grid


def _dense_grid_covariance(basis, grid, per_mode_variance):
    """Grid covariance of the field with the given per-mode variances, built column by column."""
    n = math.prod(grid)
    deltas = torch.eye(n, dtype=torch.float64).reshape(n, *grid) / basis.weights(grid)
    return basis.apply_diagonal(deltas, per_mode_variance).reshape(n, n)


@pytest.mark.parametrize("basis", [NeumannBasis(1), PeriodicBasis(2), NeumannBasis(2)], ids=["neumann1d", "periodic2d", "neumann2d"])
@pytest.mark.parametrize("kappa", [0.0, 0.01])
def test_score_is_the_riesz_gradient_of_the_log_density(basis, kappa):
    oracle, grid = _oracle(basis, kappa=kappa)
    t = torch.full((4,), 0.3)
    x = oracle.sample_data(4, grid, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xt, _ = oracle.sde.marginal_sample(x, t, generator=torch.Generator().manual_seed(1))
    xt.requires_grad_(True)
    grad, = torch.autograd.grad(oracle.log_prob(xt, t).sum(), xt)
    score = oracle.score(xt.detach(), t)
    assert torch.allclose(grad / basis.weights(grid), score, rtol=1e-9, atol=1e-9 * score.abs().max())

    # log_prob is the grid density up to a constant (the Jacobian of the transform): compare differences
    # against a dense multivariate normal built independently from the grid covariance.
    cov = _dense_grid_covariance(basis, grid, oracle.marginal_variance(0.3, grid))
    mean = basis.apply_diagonal(basis.resample(oracle.mean, grid), oracle.sde.mean_factor(0.3, grid)).flatten()
    mvn = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov)
    dense = mvn.log_prob(xt.detach().flatten(1))
    ours = oracle.log_prob(xt.detach(), t)
    # the dense covariance has condition number ~1e9, so its Cholesky loses about 9 digits
    assert torch.allclose(dense - dense[0], ours - ours[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_denoiser_is_the_posterior_mean(t):
    """Monte Carlo over (x_0, x_t): the error of D is orthogonal to functions of x_t, and its mean square
    equals the closed-form posterior variance Σ_k m_k c_k v_k / (a_k² c_k + v_k)."""
    basis = PeriodicBasis(2)
    oracle, grid = _oracle(basis, kappa=0.005)
    n = 8000
    x0 = oracle.sample_data(n, grid, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    xt, _ = oracle.sde.marginal_sample(x0, t, generator=torch.Generator().manual_seed(3))
    error = x0 - oracle(xt, torch.full((n,), t))
    mse = basis.norm(error).pow(2).mean()
    a, v, c = oracle.sde.mean_factor(t, grid), oracle.sde.variance(t, grid), oracle.data_variance(grid)
    closed = (basis.multiplicity(grid) * c * v / (a**2 * c + v)).sum()
    assert mse.item() == pytest.approx(closed.item(), rel=6 * math.sqrt(2 / n))
    # orthogonality to x_t itself, mode by mode (normalised correlation)
    ce, cx = basis.forward(error), basis.forward(xt - xt.mean(0))
    corr = (ce * cx.conj()).mean(0).abs() / (ce.abs().pow(2).mean(0) * cx.abs().pow(2).mean(0)).sqrt()
    assert corr.max() < 6 / math.sqrt(n)
    # a worse (shrunk) estimator has larger error: the test can tell
    worse = basis.norm(x0 - 0.9 * oracle(xt, torch.full((n,), t))).pow(2).mean()
    assert worse > mse


def test_marginal_variance_and_mean_match_monte_carlo():
    basis = NeumannBasis(1)
    oracle, grid = _oracle(basis, kappa=0.02)
    n, t = 8000, 0.4
    x0 = oracle.sample_data(n, grid, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    xt, _ = oracle.sde.marginal_sample(x0, t, generator=torch.Generator().manual_seed(5))
    c = basis.forward(xt)
    var = (c - c.mean(0)).pow(2).mean(0)
    assert ((var / oracle.marginal_variance(t, grid) - 1).abs() < 6 * math.sqrt(2 / n)).all()


def test_oracle_works_at_any_resolution_with_a_mean_given_on_one_grid():
    oracle, _ = _oracle(PeriodicBasis(2))
    for n in (8, 16, 32):
        x = oracle.sample_data(3, n, generator=torch.Generator().manual_seed(0))
        assert x.shape == (3, 1, n, n)
        assert oracle(x, torch.full((3,), 0.5)).shape == x.shape


def test_bad_mean_is_refused():
    sde = StochasticHeatSDE(basis=PeriodicBasis(2), covariance=Matern())
    with pytest.raises(ValueError, match="channels, \\*grid"):
        GaussianOracle(sde, Matern(), mean=torch.zeros(8, 8))
    with pytest.raises(ValueError, match="NaN"):
        GaussianOracle(sde, Matern(), mean=torch.full((1, 8, 8), float("nan")))


@pytest.mark.parametrize("dim,shape", [(2, (5, 1, 16, 16)), (1, (5, 1, 16))])
def test_cli_writes_grf_samples_in_the_array_convention(tmp_path, dim, shape):
    out = tmp_path / "grf.npy"
    assert main(["data", "grf", "--resolution", "16", "--num", "5", "--dim", str(dim), "--out", str(out)]) == 0
    array = np.load(out)
    assert array.shape == shape and array.dtype == np.float32
    assert np.isfinite(array).all() and array.std() > 0


def test_cli_explains_bad_input(tmp_path, capsys):
    assert main(["data", "grf", "--resolution", "16", "--num", "2", "--out", str(tmp_path / "x.txt")]) == 2
    assert "must end in .npy" in capsys.readouterr().err
