"""Twisted SMC under heat (mode-dependent a_k(t)) against exact posteriors.

Gaussian data: the twist is p(y | x_t) and the proposal p(x_s | x_t, y) exactly, so every weight is 1 (the effective
sample size equals the particle count) and the draws match the exact posterior's mean and covariance to Monte Carlo
error, on a mask and on block averaging, noiseless and noisy (filtering_smc refuses both under heat).

Non-Gaussian data: a two-component Gaussian mixture ``π_j N(±m, C)``, whose exact denoiser is the
responsibility-weighted pair of Gaussian denoisers and whose posterior given ``y = A x + σ_y ε`` is the mixture of the
components' Gaussian posteriors with weights ``∝ π_j N(y; A m_j, A C Aᵀ + σ_y² I)``. The weight of a component is
estimated without bias from draws by the mean responsibility ``E[p(j | x_0) | y] = p(j | y)``. Covariance guidance
(the Gaussian twist alone, and the twisted sampler with one particle) misses it; the weighted particles recover it.
"""

from __future__ import annotations

import math

import pytest
import torch

from hilbert_diffusion import GaussianOracle, Matern, NeumannBasis, StochasticHeatSDE, exact_gaussian_posterior
from hilbert_diffusion.engine import Run
from hilbert_diffusion.models.gaussian import _grid_covariance_columns
from hilbert_diffusion.restoration import (
    BlockAverage,
    Mask,
    box_mask,
    covariance_guidance,
    default_method,
    filtering_smc,
    observation_matrix,
    twisted_smc,
)

BASIS = NeumannBasis(1)
HEAT = {"heat ¼": 0.25, "heat 25": 25.0}


def _sde(kappa_nyquist: float, n: int) -> StochasticHeatSDE:
    kappa = kappa_nyquist / float(BASIS.eigenvalues(BASIS.grid(n)).max())  # κ λ_max = kappa_nyquist
    return StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=3.0), kappa=kappa)


def _run_with_carry(method, model, sde, x, times, operator, y, seed):
    """The engine's loop, keeping the final carry (its per-step effective sample sizes)."""
    run = Run(model, sde, x, times, generator=torch.Generator().manual_seed(seed), operator=operator, y=y)
    carry = method.start(run)
    for t, s in zip(run.times[:-1].tolist(), run.times[1:].tolist()):
        carry = method.advance(run, carry, method.position(carry), run.denoise(method.position(carry), t), s, t)
    return method.finish(run, carry), carry


@pytest.mark.parametrize("heat", list(HEAT))
@pytest.mark.parametrize("task", ["box", "block ×4", "noisy block ×4"])
def test_gaussian_data_meets_the_exact_posterior_with_uniform_weights(task, heat):
    n, draws = 32, 1000
    sde = _sde(HEAT[heat], n)
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=5.0))
    operator = (box_mask(BASIS, n, low=0.3, high=0.6) if task == "box" else
                BlockAverage(basis=BASIS, resolution=8, noise_std=0.05 if task.startswith("noisy") else 0.0))
    truth = oracle.sample_data(1, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = operator.observe(truth, generator=torch.Generator().manual_seed(1))
    exact = exact_gaussian_posterior(oracle, operator, y, n)
    x = sde.prior_sample(draws, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    method = twisted_smc.method.__class__(particles=4)
    out, carry = _run_with_carry(method, oracle, sde, x, twisted_smc.times(30), operator, y, seed=3)
    assert min(carry.ess) > 0.999 * 4  # every weight 1: the twist and the proposal are exact for Gaussian data
    samples = out[:, 0]
    assert ((samples.mean(0) - exact.mean[0, 0]).abs() <= 4.5 * exact.std / math.sqrt(draws) + 1e-9).all()
    hidden = exact.std > 1e-3 * exact.std.max()
    assert (samples.std(0)[hidden] / exact.std[hidden]).sub(1).abs().max() < 0.12  # sd of one ratio: 1/√2000 = 2.2 %
    # the covariance as a whole: E‖S − Σ‖_F² = (‖Σ‖_F² + (tr Σ)²) / N for Gaussian draws
    sample_cov = torch.cov(samples.T)
    cov = exact.covariance
    expected = math.sqrt((cov.pow(2).sum() + cov.trace() ** 2) / draws)
    assert float((sample_cov - cov).norm()) < 2.0 * expected
    with pytest.raises(ValueError, match="twisted_smc"):  # the observation path of filtering_smc needs κ = 0
        filtering_smc(oracle, sde, x[:2], twisted_smc.times(4), operator=operator, y=y)


class _Mixture:
    """Exact denoiser of ``Σ_j π_j N(m_j, C)`` (shared ``C``): ``E[x_0 | x_t] = Σ_j p(j | x_t) D_j(x_t)``."""

    def __init__(self, sde, spectrum, means, weights):
        self.parts = [GaussianOracle(sde, spectrum, mean=m[None]) for m in means]
        self.log_prior = torch.tensor(weights, dtype=torch.float64).log()
        self.data_covariance = spectrum  # the component spectrum: the Gaussian twist's covariance

    def responsibilities(self, x, t):
        return torch.softmax(torch.stack([p.log_prob(x, t) for p in self.parts], -1) + self.log_prior, -1)

    def __call__(self, x, t):
        r = self.responsibilities(x, t)
        return sum(r[:, j].reshape(-1, *[1] * (x.dim() - 1)) * part(x, t) for j, part in enumerate(self.parts))

    def posterior_weights(self, operator, y, grid):
        """``p(j | y) ∝ π_j N(y; A m_j, A C Aᵀ + σ_y² I)``."""
        n = math.prod(grid)
        prior = _grid_covariance_columns(BASIS, torch.eye(n, dtype=torch.float64), self.parts[0].data_variance(grid))
        a = observation_matrix(operator, grid)
        k = a @ prior @ a.T + operator.noise_std**2 * torch.eye(len(a), dtype=torch.float64)
        observed = y.flatten()[operator.observed_points(grid).flatten()]
        quadratic = [(observed - a @ p.mean.flatten()) @ torch.linalg.solve(k, observed - a @ p.mean.flatten())
                     for p in self.parts]
        return torch.softmax(-0.5 * torch.stack(quadratic) + self.log_prior, 0)


@pytest.mark.parametrize("heat", list(HEAT))
def test_mixture_prior_weights_are_recovered_where_the_gaussian_twist_fails(heat):
    n, draws, steps = 16, 300, 50
    sde = _sde(HEAT[heat], n)
    grid = BASIS.grid(n)
    bump = torch.cos(math.pi * (torch.arange(n, dtype=torch.float64) + 0.5) / n) + 0.5
    mixture = _Mixture(sde, Matern(alpha=2.0, tau=5.0), [2.0 * bump, -2.0 * bump], [0.85, 0.15])
    observed = torch.zeros(n, dtype=torch.bool)
    observed[[2, 5, 8]] = True
    operator = Mask(basis=BASIS, observed=observed, noise_std=0.5)
    y = torch.zeros(1, 1, n, dtype=torch.float64)
    y[0, 0, observed] = torch.tensor([-1.0, -0.5, 0.3], dtype=torch.float64)  # favours the rarer component
    exact = float(mixture.posterior_weights(operator, y, grid)[0])
    assert 0.15 < exact < 0.35  # a posterior far from both the prior (0.85) and certainty
    x = sde.prior_sample(draws, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    estimates = {}
    for label, sampler, options in (("twisted", twisted_smc, {"particles": 16}), ("one particle", twisted_smc,
                                    {"particles": 1}), ("guidance", covariance_guidance, {})):
        out = sampler(mixture, sde, x, sampler.times(steps), operator=operator, y=y,
                      generator=torch.Generator().manual_seed(3), **options)
        r = mixture.responsibilities(out, 0.0)[:, 0]
        estimates[label] = (float(r.mean()), float(r.std()) / math.sqrt(draws))
    value, error = estimates["twisted"]
    assert abs(value - exact) < 3 * error + 0.02  # 0.02: finite particles and steps (measured 0.26–0.27)
    for label in ("one particle", "guidance"):
        assert estimates[label][0] - exact > 0.1, estimates  # the Gaussian twist alone keeps the prior's favourite


def test_default_method_under_heat():
    n = 16
    operator = box_mask(BASIS, n, low=0.3, high=0.6)
    assert default_method(_sde(0.25, n), operator) is twisted_smc
    assert default_method(_sde(0.0, n), operator) is filtering_smc


def test_bad_options_raise():
    with pytest.raises(ValueError, match="particles"):
        twisted_smc.configure(particles=0)
    with pytest.raises(ValueError, match="ess_threshold"):
        twisted_smc.configure(ess_threshold=1.5)


def test_weighted_mean_output_is_the_average_of_the_filters_exact_draws():
    """``weighted_mean``: each output is its filter's weighted particle mean. For Gaussian data every weight is 1 and
    the particles are independent exact posterior draws, so the outputs centre on the exact posterior mean with
    ``1/√particles`` of its standard deviation — the posterior mean at a quarter of the variance, for the same cost."""
    n, filters, particles = 32, 1000, 4
    sde = _sde(25.0, n)
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=5.0))
    operator = box_mask(BASIS, n, low=0.3, high=0.6)
    truth = oracle.sample_data(1, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = operator.observe(truth)
    exact = exact_gaussian_posterior(oracle, operator, y, n)
    x = sde.prior_sample(filters, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    method = twisted_smc.method.__class__(particles=particles, weighted_mean=True)
    out, carry = _run_with_carry(method, oracle, sde, x, twisted_smc.times(30), operator, y, seed=3)
    assert min(carry.ess) > 0.999 * particles
    means = out[:, 0]
    spread = exact.std / math.sqrt(particles)
    assert ((means.mean(0) - exact.mean[0, 0]).abs() <= 4.5 * spread / math.sqrt(filters) + 1e-9).all()
    hidden = exact.std > 1e-3 * exact.std.max()
    assert (means.std(0)[hidden] / spread[hidden]).sub(1).abs().max() < 0.12
    drawn, _ = _run_with_carry(twisted_smc.method.__class__(particles=particles), oracle, sde, x, twisted_smc.times(30),
                               operator, y, seed=3)
    assert (drawn[:, 0].std(0)[hidden] / exact.std[hidden]).sub(1).abs().max() < 0.12  # without it: one draw each
