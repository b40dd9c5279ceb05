"""Forward SPDEs: Monte Carlo moments against the closed forms; quadrature against closed forms."""

import math

import pytest
import torch

from hilbert_diffusion import (
    ConstantSchedule,
    CosineSchedule,
    DiagonalSDE,
    GaussianOracle,
    GaussianRandomField,
    GeometricSchedule,
    LinearSchedule,
    Matern,
    NeumannBasis,
    PeriodicBasis,
    ScaledSchedule,
    StochasticHeatSDE,
    from_config,
    to_config,
)

N_MC = 4000
TOL = 6 * math.sqrt(2 / N_MC)  # six standard errors of a variance estimate


def _sdes():
    yield StochasticHeatSDE(basis=PeriodicBasis(1), covariance=Matern(alpha=1.5, tau=6.0))  # DDO (κ = 0)
    yield StochasticHeatSDE(basis=NeumannBasis(2), covariance=Matern(alpha=2.0, tau=4.0), kappa=0.02, decay=CosineSchedule())
    yield DiagonalSDE(  # IHDM-style: strong dissipation, little noise, no decay of the mean mode
        basis=NeumannBasis(1), covariance=Matern(alpha=1.0, tau=3.0), decay=ConstantSchedule(0.0),
        heat=GeometricSchedule(1e-3, 0.2), noise=ConstantSchedule(0.05),
    )


SDES = list(_sdes())
IDS = ["ddo-periodic1d", "hdm-neumann2d-cosine", "ihdm-like"]


def _grid(sde):
    return sde.basis.grid(12)


def _x0(sde, num, seed=0):
    return GaussianRandomField(sde.basis, Matern(alpha=2.0, tau=3.0)).sample(
        1, _grid(sde), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    ).expand(num, -1, *_grid(sde))


def _moments(sde, x):
    return _coefficient_moments(sde.basis.forward(x))


def _coefficient_moments(c):
    mean = c.mean(0)
    return mean, (c - mean).abs().pow(2).mean(0)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
@pytest.mark.parametrize("t", [0.05, 0.5])
def test_marginal_moments_match_closed_form(sde, t):
    grid = _grid(sde)
    x0 = _x0(sde, N_MC)
    xt, noise = sde.marginal_sample(x0, t, generator=torch.Generator().manual_seed(1))
    mean, var = _moments(sde, xt)
    a, v = sde.mean_factor(t, grid), sde.variance(t, grid)
    expected_mean = a * sde.basis.forward(x0[:1])[0]
    assert ((var / v - 1).abs() < TOL).all()  # includes the λ = 0 mode
    assert ((mean - expected_mean).abs() < 6 * (v / N_MC).sqrt()).all()
    assert torch.allclose(xt - noise, sde.basis.apply_diagonal(x0, a))


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_transition_composes_with_the_marginal(sde):
    grid, s, t = _grid(sde), 0.2, 0.6
    x0 = _x0(sde, N_MC)
    xs, _ = sde.marginal_sample(x0, s, generator=torch.Generator().manual_seed(2))
    xt = sde.transition_sample(xs, s, t, generator=torch.Generator().manual_seed(3))
    _, var = _moments(sde, xt)
    assert ((var / sde.variance(t, grid) - 1).abs() < TOL).all()
    ratio, v_st = sde.transition(s, t, grid)  # Chapman–Kolmogorov, exactly
    assert torch.allclose(ratio**2 * sde.variance(s, grid) + v_st, sde.variance(t, grid), rtol=1e-10)
    assert torch.allclose(ratio, sde.mean_factor(t, grid) / sde.mean_factor(s, grid))


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_bridge_is_the_conditional_law_of_the_forward_process(sde):
    """Sample (x_s, x_t) from the forward process; x_s minus the bridge mean must have the bridge variance
    and be uncorrelated with x_t."""
    grid, s, t = _grid(sde), 0.3, 0.5
    x0 = _x0(sde, N_MC)
    xs, _ = sde.marginal_sample(x0, s, generator=torch.Generator().manual_seed(4))
    xt = sde.transition_sample(xs, s, t, generator=torch.Generator().manual_seed(5))
    c_t, c_0, var = sde.bridge(s, t, grid)
    f = sde.basis.forward
    residual = f(xs) - c_t * f(xt) - c_0 * f(x0)
    _, rvar = _coefficient_moments(residual)
    assert ((rvar / var - 1).abs() < TOL).all()
    centred_t = f(xt) - f(xt).mean(0)
    corr = (residual * centred_t.conj()).mean(0).abs() / (var * sde.variance(t, grid)).sqrt()
    assert (corr < 6 / math.sqrt(N_MC)).all()
    # and bridge_sample draws from it
    drawn = sde.bridge_sample(xt, x0, s, t, generator=torch.Generator().manual_seed(6))
    _, dvar = _coefficient_moments(f(drawn) - c_t * f(xt) - c_0 * f(x0))
    assert ((dvar / var - 1).abs() < TOL).all()


@pytest.mark.parametrize("sde", SDES[:2], ids=IDS[:2])
def test_terminal_marginal_equals_the_prior(sde):
    grid = _grid(sde)
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=3.0))
    x0 = oracle.sample_data(N_MC, grid, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    x1, _ = sde.marginal_sample(x0, 1.0, generator=torch.Generator().manual_seed(8))
    _, var = _moments(sde, x1)
    prior = sde.prior_variance(grid)
    assert ((var / prior - 1).abs() < TOL).all()
    _, pvar = _moments(sde, sde.prior_sample(N_MC, grid, generator=torch.Generator().manual_seed(9), dtype=torch.float64))
    assert ((pvar / prior - 1).abs() < TOL).all()
    # the prior of the stochastic heat equation is its stationary law N(0, Q (I + κA)^-1) up to a(1)²
    assert torch.allclose(prior, sde.stationary_variance(grid), rtol=2 * sde.mean_factor(1.0, grid).max().item() ** 2)


def test_high_modes_are_destroyed_first_under_the_heat_process():
    sde = SDES[1]
    a = sde.mean_factor(0.2, (16, 16))
    lam = sde.eigenvalues((16, 16))
    order = torch.argsort(lam.flatten())
    assert (torch.diff(a.flatten()[order]) <= 1e-15).all()
    assert a.flatten()[order[-1]] < 1e-2 * a.flatten()[order[0]]  # the finest mode is gone, the mean is not


@pytest.mark.parametrize("schedule", [LinearSchedule(), CosineSchedule()], ids=["linear", "cosine"])
def test_general_quadrature_reproduces_the_closed_form(schedule):
    basis, grid = PeriodicBasis(2), (16, 16)
    closed = StochasticHeatSDE(basis=basis, covariance=Matern(), decay=schedule, kappa=0.01)
    general = DiagonalSDE(basis=basis, covariance=Matern(), decay=schedule, noise=schedule, heat=ScaledSchedule(schedule, 0.01))
    t = torch.tensor([0.0, 1e-4, 0.013, 0.5, 0.999, 1.0])
    assert torch.allclose(general.variance(t, grid), closed.variance(t, grid), rtol=1e-10, atol=1e-14)
    assert torch.allclose(general.mean_factor(t, grid), closed.mean_factor(t, grid), rtol=1e-12)


def test_quadrature_is_second_order_for_varying_rates():
    """Decay and noise with different time profiles have no closed form: the exponential rule converges
    at second order in the panel width."""
    kwargs = dict(basis=NeumannBasis(1), covariance=Matern(), decay=LinearSchedule(0.1, 20.0),
                  noise=GeometricSchedule(0.5, 30.0), heat=ConstantSchedule(0.01))
    grid, t = (16,), 0.73
    reference = DiagonalSDE(**kwargs, quadrature_steps=20000).variance(t, grid)
    errors = [(DiagonalSDE(**kwargs, quadrature_steps=n).variance(t, grid) - reference).abs().max().item() for n in (100, 200)]
    assert math.log2(errors[0] / errors[1]) == pytest.approx(2.0, abs=0.25)


def test_constant_rates_have_the_ornstein_uhlenbeck_variance():
    sde = DiagonalSDE(basis=PeriodicBasis(1), covariance=Matern(), decay=ConstantSchedule(2.0), noise=ConstantSchedule(3.0))
    grid, t = (8,), 0.37
    q = sde.q(grid)
    assert torch.allclose(sde.variance(t, grid), q * 3.0 * (1 - math.exp(-2.0 * t)) / 2.0, rtol=1e-12)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_variance_solves_its_ode(sde):
    """dv/dt = -(β + hλ) v + g q, checked by central differences."""
    grid, t, h = _grid(sde), 0.4, 1e-5
    lam = sde.eigenvalues(grid)
    dv = (sde.variance(t + h, grid) - sde.variance(t - h, grid)) / (2 * h)
    tt = torch.tensor(t, dtype=torch.float64)
    rate = sde.decay.rate(tt) + (sde.heat.rate(tt) * lam if sde.heat is not None else 0)
    rhs = -rate * sde.variance(t, grid) + sde.noise.rate(tt) * sde.q(grid)
    assert torch.allclose(dv, rhs, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_probability_flow_transports_the_gaussian_marginal(sde):
    """For Gaussian data the PF-ODE velocity per mode is x · ½ d log σ²/dt (σ² the oracle's marginal
    variance, zero mean): the reverse drift with the exact score must equal it."""
    grid, t, h = _grid(sde), 0.35, 1e-5
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=3.0))
    x = torch.randn(2, 1, *grid, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    drift = sde.reverse_drift(x, t, oracle(x, torch.full((2,), t)), probability_flow=True)
    dlog = (oracle.marginal_variance(t + h, grid).log() - oracle.marginal_variance(t - h, grid).log()) / (2 * h)
    assert torch.allclose(drift, sde.basis.apply_diagonal(x, 0.5 * dlog), atol=1e-6)


def test_time_outside_the_unit_interval_is_refused():
    sde = SDES[0]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sde.variance(1.5, (8,))
    with pytest.raises(ValueError, match="kappa"):
        StochasticHeatSDE(basis=PeriodicBasis(1), covariance=Matern(), kappa=-1.0)


@pytest.mark.parametrize("sde", SDES, ids=IDS)
def test_config_round_trip(sde):
    import json

    rebuilt = from_config(json.loads(json.dumps(to_config(sde))))
    assert rebuilt == sde
    grid = _grid(sde)
    assert torch.equal(rebuilt.variance(0.3, grid), sde.variance(0.3, grid))


def test_config_refuses_foreign_classes():
    with pytest.raises(ValueError, match="not part of"):
        from_config({"type": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="incompatible version"):
        from_config({"type": "hilbert_diffusion.noise.NoSuchSpectrum"})
