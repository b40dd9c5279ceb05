"""Covariance-aware guidance against the exact Gaussian posterior: with the exact denoiser its conditional denoiser
is E[x_0 | x_t, y] exactly, so the sample mean matches the posterior mean to Monte Carlo error and the spread matches
the posterior's to the 100-step sampler's own floor — for masks, super-resolution, block averages and noisy blur, with
and without heat (mode-dependent a_k). Channel-wise masks: the observed channel is conditioned, an independent one
keeps its prior law."""

from __future__ import annotations

import pytest
import torch

from hilbert_diffusion import GaussianOracle, Matern, NeumannBasis, StochasticHeatSDE, exact_gaussian_posterior
from hilbert_diffusion.restoration import (
    BlockAverage,
    HeatBlur,
    Mask,
    SpectralDownsample,
    box_mask,
    covariance_guidance,
    filtering_smc,
    random_mask,
)

BASIS = NeumannBasis(1)
DRAWS = 128


def _oracle(kappa: float) -> GaussianOracle:
    sde = StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=3.0), kappa=kappa)
    return GaussianOracle(sde, Matern(alpha=2.0, tau=5.0))


OPERATORS = {
    "random 20%": lambda: random_mask(BASIS, 64, observed_fraction=0.2, generator=torch.Generator().manual_seed(1)),
    "box": lambda: box_mask(BASIS, 64, low=0.3, high=0.6),
    "spectral ×4": lambda: SpectralDownsample(basis=BASIS, resolution=16),
    "block ×4": lambda: BlockAverage(basis=BASIS, resolution=16),
    "noisy blur": lambda: HeatBlur(basis=BASIS, time=1e-3, noise_std=0.01),
}


@pytest.mark.parametrize("kappa", [0.0, 1e-3], ids=["no heat", "heat"])
@pytest.mark.parametrize("name", list(OPERATORS))
def test_matches_the_exact_posterior(name, kappa):
    oracle, operator = _oracle(kappa), OPERATORS[name]()
    truth = oracle.sample_data(1, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = operator.observe(truth, generator=torch.Generator().manual_seed(9))
    exact = exact_gaussian_posterior(oracle, operator, y, 64)
    x = oracle.sde.prior_sample(DRAWS, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = covariance_guidance(oracle, oracle.sde, x, covariance_guidance.times(64), operator=operator, y=y,
                              generator=torch.Generator().manual_seed(3))
    error = float((out.mean(0) - exact.mean[0]).norm() / exact.mean.norm())
    hidden = exact.std > 1e-3 * exact.std.max()
    ratio = float((out.std(0)[0][hidden] / exact.std[hidden]).mean())
    assert error < 0.02  # Monte Carlo error of 128 draws: ~0.7 %; SMC with 12 particles is 4–7 % off here
    assert 0.88 < ratio < 1.05  # the 64-step ancestral floor is ~0.94


def test_beats_smc_at_equal_cost_on_a_box():
    """Eight SMC particles × 25 steps (200 evaluations) against 100 steps of guidance (100 evaluations)."""
    oracle, operator = _oracle(0.0), box_mask(BASIS, 64, low=0.3, high=0.6)
    truth = oracle.sample_data(1, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = operator.observe(truth)
    exact = exact_gaussian_posterior(oracle, operator, y, 64)
    x = oracle.sde.prior_sample(64, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    smc = filtering_smc.configure(particles=8)
    errors = {}
    for method, steps in ((covariance_guidance, 100), (smc, 25)):
        out = method(oracle, oracle.sde, x, method.times(steps), operator=operator, y=y,
                     generator=torch.Generator().manual_seed(3))
        errors[method.name] = float((out.mean(0) - exact.mean[0]).norm() / exact.mean.norm())
    assert covariance_guidance.evaluations(100) < smc.evaluations(25)
    assert errors["covariance-guidance"] < 0.5 * errors[smc.name]


def test_channel_wise_mask_conditions_only_the_observed_channel():
    oracle = _oracle(0.0)
    truth = oracle.sample_data(1, 64, channels=2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    observed = torch.zeros(2, 64, dtype=torch.bool)
    observed[0, ::4] = True
    operator = Mask(basis=BASIS, observed=observed)
    y = operator.forward(truth)
    x = oracle.sde.prior_sample(DRAWS, 64, channels=2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = covariance_guidance(oracle, oracle.sde, x, covariance_guidance.times(60), operator=operator, y=y,
                              generator=torch.Generator().manual_seed(3))
    assert torch.allclose(out[:, 0, ::4], truth[:, 0, ::4].expand(DRAWS, -1), atol=1e-9)
    single = Mask(basis=BASIS, observed=observed[0])
    exact = exact_gaussian_posterior(oracle, single, single.forward(truth[:, :1]), 64)
    assert float((out[:, 0].mean(0) - exact.mean[0, 0]).norm() / exact.mean.norm()) < 0.02
    prior_std = oracle.sample_data(4096, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64).std(0)
    assert abs(float(out[:, 1].std(0).mean() / prior_std.mean()) - 1) < 0.1  # the independent channel keeps its prior
    with pytest.raises(ValueError, match="own points"):
        filtering_smc(oracle, oracle.sde, x, filtering_smc.times(4), operator=operator, y=y)


def test_needs_a_data_spectrum():
    oracle = _oracle(0.0)
    operator = box_mask(BASIS, 16, low=0.3, high=0.6)
    x = oracle.sde.prior_sample(1, 16, dtype=torch.float64)
    with pytest.raises(ValueError, match="data_spectrum"):
        covariance_guidance(lambda x, t: oracle(x, t), oracle.sde, x, covariance_guidance.times(3), operator=operator,
                            y=operator.forward(x))
    out = covariance_guidance(lambda x, t: oracle(x, t), oracle.sde, x, covariance_guidance.times(3), operator=operator,
                              y=operator.forward(x), data_spectrum=oracle.data_covariance)
    assert out.shape == x.shape


@pytest.mark.parametrize("kappa", [0.0, 1e-3], ids=["no heat", "heat"])
def test_the_jacobian_route_is_exact_for_an_exact_model(kappa):
    """With jacobian_snr the model's own Tweedie covariance A⁻¹N Jᵀ replaces Σ_t; for the oracle the two agree."""
    oracle, operator = _oracle(kappa), box_mask(BASIS, 64, low=0.3, high=0.6)
    truth = oracle.sample_data(1, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = operator.observe(truth)
    x = oracle.sde.prior_sample(16, 64, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    outputs = [covariance_guidance(oracle, oracle.sde, x, covariance_guidance.times(20), operator=operator, y=y,
                                   generator=torch.Generator().manual_seed(3), jacobian_snr=snr) for snr in (1e-8, 1e300)]
    assert covariance_guidance.configure(jacobian_snr=1e-8).method.requires_grad
    assert not covariance_guidance.method.requires_grad
    assert torch.allclose(outputs[0], outputs[1], atol=1e-8 * float(outputs[1].abs().max()))
    with pytest.raises(ValueError, match="jacobian_snr"):
        covariance_guidance.configure(jacobian_snr=0.0)


# ----------------------------------------------------------------------------- correlated channels
RHO = -0.9


def _joint_problem():
    """A 2-channel Gaussian whose channels are correlated mode by mode, and its exact denoiser."""
    from hilbert_diffusion.models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser

    sde = StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=3.0))
    covariance = ChannelCovariance(spectra=(Matern(alpha=2.0, tau=5.0), Matern(alpha=3.0, tau=4.0, scale=0.5)),
                                   knots=(0.0,), correlations=(((1.0,), (RHO,)), ((RHO,), (1.0,))))
    return sde, covariance, ChannelGaussianDenoiser(sde, covariance)


def test_channel_covariance_carries_the_observation_into_the_other_channel():
    """Observe channel 0 of a jointly Gaussian pair at points: both channels' sample means match the exact posterior
    (dense conditioning of the 2N-dimensional grid Gaussian), the second one only through the cross-covariance."""
    sde, covariance, oracle = _joint_problem()
    n = 32
    c = covariance.matrix(BASIS, (n,))  # (2, 2, n)
    basis_rows = BASIS.inverse(torch.eye(n, dtype=torch.float64), (n,))  # row k = e_k on the grid
    dense = torch.cat([torch.cat([basis_rows.T @ torch.diag(c[i, j]) @ basis_rows for j in range(2)], 1) for i in range(2)])
    truth = (torch.linalg.cholesky(dense + 1e-12 * torch.eye(2 * n, dtype=torch.float64))
             @ torch.randn(2 * n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).reshape(1, 2, n)
    observed = torch.zeros(2, n, dtype=torch.bool)
    observed[0, 1::3] = True
    operator = Mask(basis=BASIS, observed=observed)
    y = operator.forward(truth)
    index = observed.reshape(-1).nonzero()[:, 0]
    exact = (dense[:, index] @ torch.linalg.solve(dense[index][:, index], truth.reshape(-1)[index])).reshape(2, n)
    x = sde.prior_sample(DRAWS, n, channels=2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = covariance_guidance(oracle, sde, x, covariance_guidance.times(64), operator=operator, y=y,
                              generator=torch.Generator().manual_seed(3))  # the denoiser carries its covariance
    for channel in range(2):
        error = float((out[:, channel].mean(0) - exact[channel]).norm() / exact[channel].norm())
        assert error < 0.05, (channel, error)
    independent = covariance_guidance(oracle, sde, x, covariance_guidance.times(64), operator=operator, y=y,
                                      data_spectrum=covariance.spectra, generator=torch.Generator().manual_seed(3))
    assert float((independent[:, 1].mean(0) - exact[1]).norm() / exact[1].norm()) > 0.1  # what the correlation adds


def test_channel_covariance_estimate_recovers_the_correlation():
    from hilbert_diffusion.models.cross_spectrum import ChannelCovariance

    sde, covariance, _ = _joint_problem()
    c = covariance.matrix(BASIS, (32,)).movedim(0, -1).movedim(0, -1)  # (modes, 2, 2)
    white = torch.randn(4000, 32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    coefficients = torch.einsum("kij,nkj->nik", torch.linalg.cholesky(c), white)
    data = BASIS.inverse(coefficients, (32,))
    estimate = ChannelCovariance.estimate(data, BASIS)
    rho = estimate.correlation(BASIS.eigenvalues((32,)))[0, 1]
    assert torch.allclose(rho[1:], torch.full_like(rho[1:], RHO), atol=0.05)
    assert torch.allclose(estimate.matrix(BASIS, (32,))[1, 1][1:] / c[1:, 1, 1], torch.ones(31, dtype=torch.float64), atol=0.2)
