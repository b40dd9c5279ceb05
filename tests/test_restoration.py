"""Zero-shot restoration: operator identities, the exact Gaussian posterior, and the samplers against it."""

import math

import pytest
import torch

from hilbert_diffusion import CosineSchedule, GaussianOracle, Matern, NeumannBasis, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.restoration import (
    BlockAverage,
    HeatBlur,
    Mask,
    SpectralDownsample,
    box_mask,
    ddnm,
    dps,
    exact_gaussian_posterior,
    filtering_smc,
    random_mask,
    repaint,
)
from hilbert_diffusion.sampling import exponential_ancestral, gaussian_sampler_law, power_times, uniform_times


def _problem(ndim=1, resolution=64, kappa=0.0):
    """Gaussian data N(m, C) under a coloured-noise SDE whose noise is rougher than the data (κ = 0: DDO)."""
    basis = PeriodicBasis(ndim)
    grid = basis.grid(resolution)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=ndim / 2 + 0.5, tau=8.0), kappa=kappa, decay=CosineSchedule())
    x = torch.arange(grid[0], dtype=torch.float64) / grid[0]
    mean = (0.5 * torch.sin(2 * math.pi * x)).reshape(1, -1, *[1] * (ndim - 1)).expand(1, *grid)
    return GaussianOracle(sde, Matern(alpha=ndim / 2 + 1.5, tau=8.0), mean=mean.clone()), grid


def _operators(basis, coarse, fine):
    """Operators observing a field on ``fine`` (``coarse`` divides ``fine``)."""
    gen = torch.Generator().manual_seed(0)
    return [
        random_mask(basis, fine, observed_fraction=0.4, generator=gen),
        random_mask(basis, coarse, observed_fraction=0.5, generator=gen),  # a coarse mask on the fine grid
        SpectralDownsample(basis=basis, resolution=coarse),
        BlockAverage(basis=basis, resolution=coarse),
        HeatBlur(basis=basis, time=2e-3),
        HeatBlur(basis=basis, time=2e-3, resolution=coarse),
    ]


def _weighted_error(sample_mean, exact_mean, basis):
    return float(basis.norm(sample_mean - exact_mean).max() / basis.norm(exact_mean).min())


# ------------------------------------------------------------------------------------------ operators
@pytest.mark.parametrize(
    "basis, coarse, fine",
    [
        (PeriodicBasis(1), (8,), (16,)),
        (NeumannBasis(1), (8,), (24,)),
        (PeriodicBasis(2), (4, 4), (8, 8)),
        (NeumannBasis(2), (4, 4), (12, 12)),
    ],
    ids=["periodic1d", "neumann1d", "periodic2d", "neumann2d"],
)
def test_adjoint_and_pseudo_inverse_identities(basis, coarse, fine):
    """<A x, y>_g = <x, A* y>_G with quadrature on both grids; A A⁺ A = A; A⁺A is an orthogonal projection."""
    gen = torch.Generator().manual_seed(1)
    for op in _operators(basis, coarse, fine):
        x, x2 = torch.randn((2, 3, 2, *fine), generator=gen, dtype=torch.float64)
        ax = op.forward(x)
        y = torch.randn(ax.shape, generator=gen, dtype=torch.float64) * op.observed_points(fine)
        lhs, rhs = op.inner(ax, y, fine), basis.inner(x, op.adjoint(y, fine))
        assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-12), type(op).__name__
        projected = op.pseudo_inverse(ax, fine)
        assert torch.allclose(op.forward(projected), ax, atol=1e-10), type(op).__name__
        assert torch.allclose(op.pseudo_inverse(op.forward(projected), fine), projected, atol=1e-10)  # idempotent
        sym = basis.inner(projected, x2) - basis.inner(x, op.pseudo_inverse(op.forward(x2), fine))
        assert sym.abs().max() < 1e-10, type(op).__name__  # self-adjoint
        if isinstance(op, Mask) and op.grid != fine:  # the quadrature matters: A* = (W/w) A⁺ for a coarse mask
            ratio = math.prod(f // c for f, c in zip(fine, coarse))
            assert torch.allclose(op.adjoint(y, fine), ratio * op.pseudo_inverse(y, fine))


def test_masks_observe_the_same_function_at_two_grids():
    """A mask on a coarse grid reads the same point values of a band-limited field sampled on a finer grid
    (periodic: multiples; Neumann cell centres: odd multiples), and a box covers the same region at every grid."""
    gen = torch.Generator().manual_seed(2)
    cases = [(PeriodicBasis(1), 16, 32), (NeumannBasis(1), 8, 24), (PeriodicBasis(2), 8, 16), (NeumannBasis(2), 4, 12)]
    for basis, coarse, fine in cases:
        mask = random_mask(basis, coarse, observed_fraction=0.5, generator=gen)
        x = torch.randn((2, 1, *basis.grid(coarse)), generator=gen, dtype=torch.float64)
        x_fine = basis.resample(x, fine)
        assert torch.allclose(mask.forward(x_fine), mask.forward(x), atol=1e-12)
        box_coarse = box_mask(basis, coarse, low=[0.25] * basis.ndim, high=[0.75] * basis.ndim)
        box_fine = box_mask(basis, fine, low=[0.25] * basis.ndim, high=[0.75] * basis.ndim)
        hidden_fraction = lambda m: 1 - m.observed.double().mean().item()
        assert hidden_fraction(box_coarse) == pytest.approx(hidden_fraction(box_fine)) == pytest.approx(0.5**basis.ndim)


def test_bad_inputs_raise_clear_errors():
    basis = PeriodicBasis(1)
    with pytest.raises(ValueError, match="does not match the field's grid"):
        random_mask(basis, 12, observed_fraction=0.5).forward(torch.zeros(1, 1, 16))
    with pytest.raises(ValueError, match="finer than the requested output"):
        SpectralDownsample(basis=basis, resolution=32).forward(torch.zeros(1, 1, 16))
    with pytest.raises(ValueError, match="finer than the requested output"):
        random_mask(basis, 32, observed_fraction=0.5).pseudo_inverse(torch.zeros(1, 1, 32), (16,))
    with pytest.raises(ValueError, match="no unknown points"):
        Mask(basis=basis, observed=torch.ones(16, dtype=torch.bool)).forward(torch.zeros(1, 1, 16))
    with pytest.raises(ValueError, match="observes no point"):
        Mask(basis=basis, observed=torch.zeros(16, dtype=torch.bool))
    with pytest.raises(ValueError, match="grid axes"):
        Mask(basis=basis, observed=torch.ones(4, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple"):
        BlockAverage(basis=basis, resolution=6).forward(torch.zeros(1, 1, 16))
    oracle, grid = _problem(resolution=16)
    mask = random_mask(basis, 16, observed_fraction=0.5)
    x = oracle.sde.prior_sample(2, 16)
    with pytest.raises(ValueError, match="observation has grid"):
        ddnm(oracle, oracle.sde, x, uniform_times(4), operator=mask, y=torch.zeros(2, 1, 8))
    heat_oracle, _ = _problem(resolution=16, kappa=0.01)
    with pytest.raises(ValueError, match="commute"):
        filtering_smc(heat_oracle, heat_oracle.sde, x, uniform_times(4), operator=mask, y=torch.zeros(2, 1, 16))


# ------------------------------------------------------------------------------------------ exact posterior
@pytest.mark.parametrize(
    "make",
    [
        lambda b: random_mask(b, 8, observed_fraction=0.5, generator=torch.Generator().manual_seed(3), noise_std=0.2),
        lambda b: SpectralDownsample(basis=b, resolution=4),
        lambda b: BlockAverage(basis=b, resolution=4, noise_std=0.05),
    ],
    ids=["noisy-mask", "spectral", "noisy-block"],
)
def test_exact_posterior_against_monte_carlo(make):
    """Independent check of the dense formula: over joint draws (x, y) from the prior (spectral sampling, not the
    dense covariance), the residual x - E[x | y] has zero mean, is uncorrelated with y, and has the stated
    pointwise variance (all to Monte Carlo error)."""
    oracle, grid = _problem(resolution=8)
    op = make(oracle.basis)
    n = 40000
    x = oracle.sample_data(n, grid, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    y = op.observe(x, generator=torch.Generator().manual_seed(5))
    post = exact_gaussian_posterior(oracle, op, y, grid)
    residual = (x - post.mean)[:, 0].flatten(1)
    std = post.std.flatten()
    assert (residual.mean(0).abs() <= 5 * std / math.sqrt(n) + 1e-9).all()
    unknown = std > 1e-4 * std.max()
    ratio = residual.std(0)[unknown] / std[unknown]
    assert (ratio - 1).abs().max() < 6 * math.sqrt(0.5 / n)
    if (~unknown).any():  # points (spectral: none) determined exactly by a noiseless observation
        assert residual[:, ~unknown].abs().max() < 1e-3 * std.max()
    yc = y[:, 0].flatten(1)
    yc = yc - yc.mean(0)
    correlation = (residual[:, unknown].T @ yc) / n / (residual[:, unknown].std(0)[:, None] * yc.std(0).clamp_min(1e-12))
    assert correlation.abs().max() < 5 / math.sqrt(n)
    # and the test can fail: a prior that is off by 20 % is caught
    wrong = exact_gaussian_posterior(oracle, op, y, grid, prior_variance=1.2 * oracle.data_variance(grid))
    assert ((x - wrong.mean)[:, 0].flatten(1).std(0)[unknown] / wrong.std.flatten()[unknown] - 1).abs().max() > 0.02


# ------------------------------------------------------------------------------------------ samplers
def _moments(sampler, oracle, op, truth, times, n, seed, **options):
    sde = oracle.sde
    gen = torch.Generator().manual_seed(seed)
    x = sde.prior_sample(n, oracle.basis.grid_of(truth), generator=gen, dtype=torch.float64)
    y = op.observe(truth, generator=torch.Generator().manual_seed(seed))
    out = sampler(oracle, sde, x, times, operator=op, y=y, generator=gen, **options)
    assert out.shape == x.shape
    return out.mean(0, keepdim=True), out.std(0)


def _std_ratio(sample_std, exact_std):
    unknown = exact_std > 1e-3 * exact_std.max()
    return math.sqrt(float(sample_std[0][unknown].pow(2).sum() / exact_std[unknown].pow(2).sum()))


def _std_ratio_tolerance(posterior, n):
    """Four standard deviations of the pooled std ratio from ``n`` Gaussian samples: the sum of the sample
    variances over the unknown points has variance ``2 Σ_ij C_ij² / (n - 1)`` (the ratio of stds half its relative error)."""
    unknown = (posterior.std > 1e-3 * posterior.std.max()).flatten()
    cov = posterior.covariance[unknown][:, unknown]
    return 4 * 0.5 * math.sqrt(2 * cov.pow(2).sum() / (n - 1)) / cov.diagonal().sum()


@pytest.mark.parametrize("factor", [2, 4])
def test_spectral_superresolution_is_exact(factor):
    """Replacement in the basis is exact for a diagonal operator: DDNM reproduces, to Monte Carlo error, the exact
    posterior of the law its unconditional sampler draws (computed in closed form by gaussian_sampler_law), and
    the exact posterior itself up to that sampler's discretisation floor (a few % in std at 200 steps)."""
    oracle, grid = _problem()
    basis, sde = oracle.basis, oracle.sde
    op = SpectralDownsample(basis=basis, resolution=grid[0] // factor)
    truth = oracle.sample_data(1, grid, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    times = power_times(200, rho=2.0, t_end=1e-4)
    n = 1000
    mean, std = _moments(ddnm, oracle, op, truth, times, n, seed=7)
    law_mean, law_var = gaussian_sampler_law(exponential_ancestral, oracle, sde, times, resolution=grid)
    y = op.forward(truth)
    sampler_prior = exact_gaussian_posterior(
        oracle, op, y, grid, prior_mean=basis.inverse(law_mean, grid), prior_variance=law_var[0]
    )
    exact = exact_gaussian_posterior(oracle, op, y, grid)
    mc = float(basis.norm(exact.std[None]) / math.sqrt(n) / basis.norm(exact.mean[0]))
    assert _weighted_error(mean, sampler_prior.mean, basis) < 2 * mc
    assert abs(_std_ratio(std, sampler_prior.std) - 1) < _std_ratio_tolerance(sampler_prior, n)
    assert _weighted_error(mean, exact.mean, basis) < 2 * mc + 1e-3
    assert abs(_std_ratio(std, exact.std) - 1) < 0.05


@pytest.mark.parametrize("task", ["box", "random"])
def test_smc_inpainting_meets_the_targets(task):
    """The asymptotically exact sampler reaches ≤ 5 % mean error and a std ratio in [0.85, 1.15] on inpainting,
    with a Monte Carlo floor well below the target; DDNM, an approximation, is measurably off on the same task."""
    oracle, grid = _problem()
    basis = oracle.basis
    op = (
        box_mask(basis, grid, low=[0.25], high=[0.75])
        if task == "box"
        else random_mask(basis, grid, observed_fraction=0.2, generator=torch.Generator().manual_seed(8))
    )
    truth = oracle.sample_data(1, grid, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact = exact_gaussian_posterior(oracle, op, op.forward(truth), grid)
    times = power_times(100, rho=2.0, t_end=1e-4)
    n = 512
    mc = float(basis.norm(exact.std[None]) / math.sqrt(n) / basis.norm(exact.mean[0]))
    assert mc < 0.025
    mean, std = _moments(filtering_smc, oracle, op, truth, times, n, seed=9, particles=12)
    assert _weighted_error(mean, exact.mean, basis) <= 0.05
    assert 0.85 <= _std_ratio(std, exact.std) <= 1.15
    mean, std = _moments(ddnm, oracle, op, truth, times, n, seed=9)
    assert _weighted_error(mean, exact.mean, basis) > 0.15 or not 0.85 <= _std_ratio(std, exact.std) <= 1.15


def test_smc_with_observation_noise_on_a_tiny_grid():
    """σ_y > 0: the noise runs its own stationary OU process in the observation space; the filter matches the
    exact posterior of a noisy half-observed 8-point field (mean to MC error, std to the sampler's floor)."""
    oracle, grid = _problem(resolution=8)
    basis = oracle.basis
    observed = torch.zeros(8, dtype=torch.bool)
    observed[::2] = True
    op = Mask(basis=basis, observed=observed, noise_std=0.3)
    truth = oracle.sample_data(1, grid, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    y = op.observe(truth, generator=torch.Generator().manual_seed(11))
    exact = exact_gaussian_posterior(oracle, op, y, grid)
    n = 2000
    gen = torch.Generator().manual_seed(12)
    x = oracle.sde.prior_sample(n, grid, generator=gen, dtype=torch.float64)
    out = filtering_smc(oracle, oracle.sde, x, power_times(60, rho=2.0, t_end=1e-4), operator=op, y=y, generator=gen, particles=8)
    assert ((out.mean(0) - exact.mean[0]).abs() < 5 * exact.std / math.sqrt(n)).all()
    assert (out.std(0)[0] / exact.std).sub(1).abs().max() < 0.08


def test_samplers_share_the_contract():
    """Every conditional sampler: output shaped like x, y broadcast over the batch, reproducible with a seed,
    the callback called once per step, and σ_y = 0 replacement samplers consistent with the observation."""
    oracle, grid = _problem(resolution=16)
    sde, basis = oracle.sde, oracle.basis
    op = random_mask(basis, grid, observed_fraction=0.5, generator=torch.Generator().manual_seed(13))
    y = op.forward(oracle.sample_data(1, grid, generator=torch.Generator().manual_seed(14)))
    times = uniform_times(6)
    samplers = [(repaint, {"resample": 2}), (ddnm, {}), (dps, {"step_size": 0.5}), (filtering_smc, {"particles": 3})]
    for sampler, options in samplers:
        calls = []
        runs = [
            sampler(oracle, sde, sde.prior_sample(3, grid, generator=torch.Generator().manual_seed(15)), times, operator=op, y=y,
                    generator=torch.Generator().manual_seed(16), callback=lambda i, t, x, d: calls.append(i), **options)
            for _ in range(2)
        ]
        assert runs[0].shape == (3, 1, *grid) and runs[0].dtype == torch.float32
        assert torch.equal(runs[0], runs[1])
        assert calls == list(range(len(times) - 1)) * 2
        if sampler is not dps:
            assert torch.allclose(op.forward(runs[0]), y.expand(3, -1, -1), atol=1e-5)
