"""Coloured noise: one measure at every resolution; trace class versus white noise."""

import math

import pytest
import torch

from hilbert_diffusion import (
    GaussianRandomField,
    Matern,
    NeumannBasis,
    PeriodicBasis,
    PowerLaw,
    SphereBasis,
    SquaredExponential,
    StochasticHeatSDE,
    WhiteNoise,
)


def test_spectra_values_and_trace_class_flags():
    lam = torch.tensor([0.0, 1.0, 100.0], dtype=torch.float64)
    assert torch.allclose(Matern(alpha=2, tau=3, scale=2)(lam), 2 * (1 + lam / 9) ** -2)
    assert torch.allclose(PowerLaw(alpha=1.5, lam0=1.0, zero_mode=0.5)(lam), torch.tensor([0.5, 1.0, 1e-3], dtype=torch.float64))
    assert torch.allclose(SquaredExponential(length_scale=0.1)(lam), torch.exp(-0.005 * lam))
    assert Matern(alpha=1.1).is_trace_class(2) and not Matern(alpha=1.0).is_trace_class(2)
    assert PowerLaw(alpha=0.6).is_trace_class(1) and not PowerLaw(alpha=0.5).is_trace_class(1)
    assert SquaredExponential().is_trace_class(3)
    assert not WhiteNoise().is_trace_class(1)


def test_a_field_resampled_to_a_finer_grid_keeps_its_low_coefficients():
    basis = PeriodicBasis(2)
    grf = GaussianRandomField(basis, Matern(alpha=2.5, tau=7))
    x32 = grf.sample(4, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x128 = basis.resample(x32, 128)
    c32, c128 = basis.forward(x32), basis.forward(x128)
    # modes |k| < 16 on every axis: indices 0..15 and -15..-1 on the full axis, 0..15 on the half axis
    low = torch.cat([torch.arange(16), torch.arange(-15, 0)])
    assert torch.allclose(c32[..., low, :16], c128[..., low, :16], atol=1e-12)


def test_per_mode_variances_are_the_same_at_every_resolution():
    basis = PeriodicBasis(2)
    spectrum = Matern(alpha=2.0, tau=5.0)
    grf = GaussianRandomField(basis, spectrum)
    n_samples = 3000
    for n in (16, 32, 64):
        x = grf.sample(n_samples, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
        power = basis.forward(x).abs().pow(2).mean((0, 1))[:6, :6]  # shared low modes
        q = spectrum(basis.eigenvalues(basis.grid(n)))[:6, :6]
        assert ((power / q - 1).abs() < 6 * math.sqrt(2 / n_samples)).all(), n


def test_pointwise_variance_converges_for_trace_class_noise_and_grows_for_white_noise():
    basis = NeumannBasis(1)
    trace_class = GaussianRandomField(basis, Matern(alpha=1.0, tau=4.0))
    white = GaussianRandomField(basis, WhiteNoise())
    sizes = (16, 64, 256)
    colored = [trace_class.pointwise_variance(n).mean().item() for n in sizes]
    whites = [white.pointwise_variance(n).mean().item() for n in sizes]
    trace = trace_class.spectrum.trace(basis, (1024,))  # Σ q_k ≈ ∫ Var x(s) ds on the unit interval
    assert abs(colored[-1] - trace) / trace < 0.02
    assert abs(colored[-1] - colored[-2]) < 0.25 * abs(colored[-2] - colored[0])  # Cauchy: it settles
    assert whites == pytest.approx([16, 64, 256], rel=1e-10)  # 1 / cell size: diverges with the grid


def test_pointwise_variance_formula_matches_monte_carlo():
    basis = PeriodicBasis(1)
    grf = GaussianRandomField(basis, Matern(alpha=1.5, tau=6.0))
    x = grf.sample(20000, 24, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = grf.pointwise_variance(24)
    assert torch.allclose(x.var(0).squeeze(0), exact, rtol=6 * math.sqrt(2 / 20000))


def test_sphere_field_has_the_angular_power_spectrum():
    basis = SphereBasis()
    spectrum = Matern(alpha=1.5, tau=4.0)
    x = GaussianRandomField(basis, spectrum).sample(2000, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grid = basis.grid(12)
    power = basis.forward(x).abs().pow(2).mean((0, 1))
    valid = basis.multiplicity(grid) > 0
    ratio = power[valid] / spectrum(basis.eigenvalues(grid))[valid]
    assert ((ratio - 1).abs() < 6 * math.sqrt(2 / 2000)).all()


def test_generator_makes_sampling_reproducible():
    grf = GaussianRandomField(PeriodicBasis(1), Matern())
    a = grf.sample(3, 32, generator=torch.Generator().manual_seed(7))
    b = grf.sample(3, 32, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b) and a.shape == (3, 1, 32)


def test_white_noise_is_refused_where_trace_class_noise_is_required():
    with pytest.raises(ValueError, match="trace-class"):
        StochasticHeatSDE(basis=PeriodicBasis(2), covariance=WhiteNoise())
    with pytest.raises(ValueError, match="alpha > 1.0"):
        StochasticHeatSDE(basis=PeriodicBasis(2), covariance=Matern(alpha=0.9))
    with pytest.raises(ValueError, match="alpha, tau, scale"):
        Matern(alpha=-1)
