"""Hard data consistency (restoration/consistency.py): with no fit steps it is the ancestral sampler (DPS at ζ = 0) to
the bit; the fit moves only what the observation reads; its draws meet the data where the fit runs to convergence;
and it restores through a nonlinear solver (Darcy's), where DPS's and covariance guidance's linear assumptions fail."""

import pytest
import torch

from hilbert_diffusion import GaussianOracle, Matern, NeumannBasis, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.datasets.elliptic import solve_darcy
from hilbert_diffusion.engine import Run
from hilbert_diffusion.restoration import (SolutionMap, SolverMask, dps, hard_consistency, PointObservation,
                                           diffusionpde_points, random_mask)

F64 = torch.float64
BASIS = PeriodicBasis(1)
SDE = StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=5.0))
ORACLE = GaussianOracle(SDE, Matern(alpha=2.0, tau=4.0))
MASK = random_mask(BASIS, 32, observed_fraction=0.3, generator=torch.Generator().manual_seed(0))


def _draws(method, steps=12, **options):
    y = MASK.forward(ORACLE.sample_data(1, 32, generator=torch.Generator().manual_seed(1)).double())
    x = SDE.prior_sample(4, 32, generator=torch.Generator().manual_seed(2), dtype=F64)
    return y, method(ORACLE, SDE, x, method.times(steps), operator=MASK, y=y, generator=torch.Generator().manual_seed(3),
                     **options)


def test_without_fit_steps_it_is_the_ancestral_sampler():
    assert torch.equal(_draws(hard_consistency, inner_steps=0)[1], _draws(dps, step_size=0.0)[1])


def test_the_fit_moves_only_what_the_observation_reads():
    y, _ = _draws(hard_consistency, steps=2, inner_steps=0)
    x = SDE.prior_sample(4, 32, generator=torch.Generator().manual_seed(4), dtype=F64)
    run = Run(model=ORACLE, sde=SDE, x=x, times=hard_consistency.times(4), operator=MASK, y=y)
    fitted = hard_consistency.method.fit(run, x, 25)
    observed = MASK.observed_points((32,))
    assert torch.equal(fitted[..., ~observed], x[..., ~observed])
    assert float((fitted[..., observed] - x[..., observed]).abs().min()) > 0


def test_the_smoothness_term_smooths_the_fit():
    """λ > 0 lowers the fitted fields' Dirichlet energy against the plain fit from the same start; λ = 0 is the plain
    fit to the bit."""
    y, _ = _draws(hard_consistency, steps=2, inner_steps=0)
    x = SDE.prior_sample(4, 32, generator=torch.Generator().manual_seed(4), dtype=F64)
    run = Run(model=ORACLE, sde=SDE, x=x, times=hard_consistency.times(4), operator=MASK, y=y)
    energy = lambda f: float(f.diff(dim=-1).square().sum())
    plain = hard_consistency.method.fit(run, x, 50)
    zero, smooth = (hard_consistency.configure(smoothness=w).method.fit(run, x, 50) for w in (0.0, 1e-2))
    assert torch.equal(plain, zero)
    assert energy(smooth) < 0.9 * energy(plain)


def test_draws_meet_the_data_when_the_last_fit_converges():
    misfit = lambda y, out: float((MASK.forward(out) - y).norm() / y.norm())
    y, free = _draws(hard_consistency, inner_steps=0)
    _, fitted = _draws(hard_consistency, inner_steps=2, final_steps=200)
    assert misfit(y, free) > 0.3 and misfit(y, fitted) < 1e-3  # measured 2.6 and 5e-5


def test_restores_through_darcys_solver():
    """Points of ``u`` only, read through Darcy's solve: the fit brings the draws' completed ``u`` onto the data."""
    size = 10
    basis = NeumannBasis(2)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=2.0, tau=3.0), kappa=0.0)
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=3.0))
    solution = SolutionMap(solve=lambda a: solve_darcy(a, tolerance=1e-8),
                           prepare=lambda a: 3 + 9 * torch.sigmoid((a - 7.5) / 1.0))
    points = PointObservation(basis=basis, grid=(size, size), channels=(1,),
                              indices=diffusionpde_points(0, count=30, resolution=size))
    operator = SolverMask.of(points.as_mask(2), solution)
    truth = solution.complete(7.5 + 4.5 * oracle.sample_data(1, (size, size), channels=2,
                                                             generator=torch.Generator().manual_seed(5)).double(), 2)
    y = points.scatter(points(truth), 2)
    x = sde.prior_sample(2, (size, size), channels=2, generator=torch.Generator().manual_seed(6), dtype=F64)
    misfit = lambda out: float((points(solution.complete(7.5 + 4.5 * out, 2)) - points(truth)).norm() / points(truth).norm())
    scaled = lambda method, **options: method(oracle, sde, x, method.times(8), operator=operator.normalised((7.5, 0.0), (4.5, 1.0)),
                                              y=operator.encode(y, torch.tensor([7.5, 0.0], dtype=F64).reshape(1, 2, 1, 1),
                                                                torch.tensor([4.5, 1.0], dtype=F64).reshape(1, 2, 1, 1), (size, size)),
                                              generator=torch.Generator().manual_seed(7), **options)
    free, fitted = scaled(hard_consistency, inner_steps=0), scaled(hard_consistency, inner_steps=3, final_steps=150)
    assert misfit(fitted) < 0.1 * misfit(free)


def test_bad_options_are_clear_errors():
    for options, message in (({"inner_steps": -1}, "inner_steps"), ({"final_steps": 1.5}, "final_steps"),
                             ({"learning_rate": 0.0}, "learning_rate"), ({"smoothness": -1.0}, "smoothness")):
        with pytest.raises(ValueError, match=message):
            hard_consistency.configure(**options)
