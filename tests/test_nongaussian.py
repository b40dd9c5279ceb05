"""Non-Gaussian metrics: kurtosis of differences (Gaussian 0, Laplace 3), the one-point law's Wasserstein distance,
spectrum distance, classifier test."""

import math

import pytest
import torch

from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.datasets import gaussian_random_fields, shapes
from hilbert_diffusion.nongaussian import (
    classifier_two_sample_test,
    denoising_gain,
    difference_kurtosis,
    marginal_distance,
    spectrum_distance,
)


def _walks(increments: torch.Tensor) -> torch.Tensor:
    """Fields whose differences along the last axis are exactly ``increments``."""
    return torch.cat([torch.zeros_like(increments[..., :1]), increments.cumsum(-1)], dim=-1)


def test_kurtosis_of_gaussian_and_laplace_differences():
    """Excess kurtosis of N(0, 1) is 0 and of Laplace 3; with n ≈ 2.6·10⁵ differences the Monte-Carlo standard
    errors are about 0.005 (Gaussian, sqrt(24/n)) and 0.1 (Laplace, sqrt((μ₈ − μ₄²)/(n σ⁸)) ≈ sqrt(2484/n))."""
    g = torch.Generator().manual_seed(0)
    gauss = _walks(torch.randn(64, 2, 64, 63, generator=g, dtype=torch.float64))
    laplace = _walks(torch.distributions.Laplace(0.0, 1.0).sample((64, 1, 64, 63)).double())
    k = difference_kurtosis(gauss)
    assert k.shape == (2,) and torch.all(k.abs() < 0.05)
    assert abs(float(difference_kurtosis(laplace)[0]) - 3.0) < 0.5
    # white noise has Gaussian differences along either axis; the walks' vertical differences mix variances
    white = torch.randn(64, 1, 64, 64, generator=g, dtype=torch.float64)
    assert abs(float(difference_kurtosis(white, axis=0)[0])) < 0.05
    assert float(difference_kurtosis(gauss, axis=0).min()) > 0.5
    with pytest.raises(ValueError, match="grid axis"):
        difference_kurtosis(gauss, axis=2)


def test_marginal_distance_has_the_closed_forms_of_the_quantile_coupling():
    """W₁(N(0, 1), N(μ, σ²)) = E|μ + (σ − 1) Z| (|μ| for σ = 1, |σ − 1| sqrt(2/π) for μ = 0), and W₁ from N(0, 1) to
    the two values ±1 is E| |Z| − 1 | = sqrt(2/π) − 1 + 2 ((2Φ(1) − 1) − 2(φ(0) − φ(1))); across grids and counts.
    Monte-Carlo error with 1.6·10⁵ values and 1000 levels: under 0.01."""
    g = torch.Generator().manual_seed(0)
    data = torch.randn(40, 1, 64, 64, generator=g, dtype=torch.float64)
    z = torch.randn(160, 2, 32, 32, generator=g, dtype=torch.float64)
    shifted = torch.cat([z[:, :1] + 0.5, 2.0 * z[:, 1:]], dim=1)
    d = marginal_distance(shifted, data.expand(-1, 2, -1, -1))
    assert d.shape == (2,)
    assert float(d[0]) == pytest.approx(0.5, abs=0.01)
    assert float(d[1]) == pytest.approx(math.sqrt(2 / math.pi), abs=0.015)
    assert float(marginal_distance(z[:, :1], data)[0]) < 0.01
    phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = 0.5 * (1 + math.erf(1 / math.sqrt(2)))
    two_valued = data.sign()  # std 1: the distance is in units of it
    expected = math.sqrt(2 / math.pi) - 1 + 2 * ((2 * cdf - 1) - 2 * (phi(0) - phi(1)))
    assert float(marginal_distance(z[:, :1], two_valued)[0]) == pytest.approx(expected, abs=0.01)
    with pytest.raises(ValueError, match="same channels"):
        marginal_distance(z, data)


def test_spectrum_distance_is_zero_for_the_same_law_across_grids():
    basis = NeumannBasis(2)
    data = gaussian_random_fields(400, 32, basis=basis, seed=1).data
    same = gaussian_random_fields(400, 64, basis=basis, seed=2).data
    doubled = 2.0 * gaussian_random_fields(400, 32, basis=basis, seed=3).data
    assert spectrum_distance(same, data, basis) < 0.1
    assert spectrum_distance(doubled, data, basis) == pytest.approx(2 * 0.6931, abs=0.1)  # |log 4| in energy


def test_classifier_test_is_chance_on_one_law_and_certain_on_two():
    torch.manual_seed(0)
    a, b = shapes(240, 16, seed=1).data, shapes(240, 16, seed=2).data
    same = classifier_two_sample_test(a, b, epochs=5, width=8)
    assert same.tested == 240 and abs(same.accuracy - 0.5) < 0.11  # 3.4 standard errors of 0.032
    noise = b.mean() + b.std() * torch.randn(b.shape, generator=torch.Generator().manual_seed(3))
    different = classifier_two_sample_test(a, noise, epochs=5, width=8)
    assert different.accuracy > 0.95
    with pytest.raises(ValueError, match="same channels"):
        classifier_two_sample_test(a, b[..., :8])


def test_denoising_gain_of_the_gaussian_denoiser_over_none_is_the_wiener_error_ratio() -> None:
    """On Gaussian fields the exact Gaussian denoiser's error is ``Σ m_k c_k v_k / (a_k² c_k + v_k)`` (L2 of
    :mod:`~hilbert_diffusion.losses`) and the zero denoiser's ``Σ m_k c_k``: their ratio per ``t``, to the Monte-Carlo
    error of 400 fields; a model over itself is exactly 1 (the same noise)."""
    from hilbert_diffusion.models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser
    from hilbert_diffusion.normalization import Normalization
    from hilbert_diffusion.sde import default_sde
    from hilbert_diffusion.trained import TrainedRun

    basis = NeumannBasis(2)
    covariance = ChannelCovariance.estimate(gaussian_random_fields(400, 16, basis=basis, seed=6).data, basis)
    c = covariance.matrix(basis, (16, 16))[0, 0]  # the data are drawn from exactly this spectrum
    z = torch.randn(400, 1, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    data = basis.inverse(c.sqrt() * z, (16, 16))
    sde = default_sde(basis, (16, 16))
    identity = Normalization.identity(1)
    exact = TrainedRun(model=ChannelGaussianDenoiser(sde, covariance), sde=sde, normalization=identity, step=0)
    nothing = TrainedRun(model=lambda x, t: torch.zeros_like(x), sde=sde, normalization=identity, step=0)
    times = (0.05, 0.3)
    gains = denoising_gain(exact, nothing, data, times=times)
    m = basis.multiplicity((16, 16))
    for t, gain in zip(times, gains):
        a, v = sde.mean_factor(t, (16, 16)), sde.variance(t, (16, 16))
        expected = float((m * c * v / (a**2 * c + v)).sum() / (m * c).sum())
        assert gain == pytest.approx(expected, rel=0.05)
    assert denoising_gain(exact, exact, data, times=times) == [1.0, 1.0]
