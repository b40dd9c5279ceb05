"""Restoration through a known linear solution operator (``ConstrainedMask``): with the exact denoiser of the source's
Gaussian law, covariance guidance on the completed pair is the exact posterior of
:class:`~hilbert_diffusion.models.linear_pde.LinearGaussianPair` (forward and inverse), draws satisfy ``u = S a``
exactly, and the normalised operator is the data-units one seen through per-channel scaling."""

from __future__ import annotations

import pytest
import torch

from hilbert_diffusion import GaussianOracle, Matern, StochasticHeatSDE, default_method
from hilbert_diffusion.models.linear_pde import LinearGaussianPair
from hilbert_diffusion.noise import Spectrum
from hilbert_diffusion.datasets.elliptic import solve_darcy
from hilbert_diffusion.restoration import ConstrainedMask, Mask, SolutionMap, SolverMask, covariance_guidance, dps, hard_consistency
from hilbert_diffusion.restoration.points import PointObservation, diffusionpde_points

F64 = torch.float64
SIZE, POINTS, DRAWS = 12, 12, 256


class _NoMean(Spectrum):
    """The pair's source law: ``q`` with the mean mode zeroed (as the data and the Bayes reference)."""

    def __init__(self, spectrum: Spectrum) -> None:
        self.spectrum = spectrum

    def __call__(self, lam: torch.Tensor) -> torch.Tensor:
        return self.spectrum(lam) * (lam > 0)

    def is_trace_class(self, ndim: int) -> bool:
        return self.spectrum.is_trace_class(ndim)


def _setting(kind: str, channel: int):
    pair = getattr(LinearGaussianPair, kind)(SIZE)
    sde = StochasticHeatSDE(basis=pair.basis, covariance=Matern(alpha=1.5, tau=3.0), kappa=0.0)
    oracle = GaussianOracle(sde, _NoMean(pair.spectrum))  # the exact denoiser of a (u is never read)
    points = PointObservation(basis=pair.basis, grid=pair.grid, channels=(channel,),
                              indices=diffusionpde_points(channel, count=POINTS, resolution=SIZE))
    return pair, oracle, points, ConstrainedMask.of(points.as_mask(2), pair.solution)


@pytest.mark.parametrize("kind", ["poisson", "helmholtz"])
@pytest.mark.parametrize("channel", [0, 1], ids=["forward (a observed)", "inverse (u observed)"])
def test_guidance_through_the_solver_is_the_exact_posterior(kind, channel):
    pair, oracle, points, operator = _setting(kind, channel)
    truth = pair.field(pair.white(1, generator=torch.Generator().manual_seed(0)))
    exact = pair.posterior(points, points(truth), draws=DRAWS, generator=torch.Generator().manual_seed(1))
    x = oracle.sde.prior_sample(DRAWS, pair.grid, channels=2, generator=torch.Generator().manual_seed(2), dtype=F64)
    out = operator.project(covariance_guidance(oracle, oracle.sde, x, covariance_guidance.times(64), operator=operator,
                                               y=points.scatter(points(truth), 2), generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(out[:, 1], pair.solve(out[:, 0]), atol=1e-12)  # u = S a exactly
    for c in (0, 1):  # both fields: the posterior mean to Monte Carlo error, the spread to the sampler's floor
        error = float((out[:, c].mean(0) - exact.mean[0, c]).norm() / exact.mean[0, c].norm())
        spread = float(out[:, c].std(0).norm() / exact.draws[0, :, c].std(0).norm())
        assert error < 0.06, (c, error)
        assert 0.85 < spread < 1.05, (c, spread)  # the 64-step ancestral floor is ~0.92


def test_without_the_solver_the_other_field_is_not_conditioned():
    """The control: a plain channel-wise mask with the same (independent-channel) denoiser leaves u at its prior."""
    pair, oracle, points, _ = _setting("poisson", 0)
    truth = pair.field(pair.white(1, generator=torch.Generator().manual_seed(0)))
    exact = pair.posterior(points, points(truth))
    x = oracle.sde.prior_sample(DRAWS, pair.grid, channels=2, generator=torch.Generator().manual_seed(2), dtype=F64)
    out = covariance_guidance(oracle, oracle.sde, x, covariance_guidance.times(64), operator=points.as_mask(2),
                              y=points.scatter(points(truth), 2), generator=torch.Generator().manual_seed(3))
    error = float((out[:, 1].mean(0) - exact.mean[0, 1]).norm() / exact.mean[0, 1].norm())
    assert error > 0.5


def test_normalised_operator_reads_scaled_fields():
    pair, _, points, operator = _setting("helmholtz", 1)
    x = torch.randn(3, 2, SIZE, SIZE, dtype=F64, generator=torch.Generator().manual_seed(4))
    std = (2.0, 0.25)
    scale = torch.tensor(std, dtype=F64).reshape(1, 2, 1, 1)
    assert torch.allclose(operator.normalised((0.0, 0.0), std).forward(x / scale), operator.forward(x) / scale, atol=1e-12)
    assert default_method(StochasticHeatSDE(basis=pair.basis, covariance=Matern(alpha=1.5, tau=3.0), kappa=0.0),
                          operator) is covariance_guidance


def test_bad_input_is_refused_clearly():
    pair, _, points, operator = _setting("poisson", 0)
    with pytest.raises(ValueError, match="distinct channels"):
        SolutionMap(solve=pair.solve, source=1, solution=1)
    with pytest.raises(ValueError, match="both"):
        operator.project(torch.zeros(2, 1, SIZE, SIZE))
    with pytest.raises(ValueError, match="ConstrainedMask.of"):
        ConstrainedMask(basis=pair.basis, noise_std=0.1, mask=points.as_mask(2), solution=pair.solution)
    with pytest.raises(ValueError, match="pseudo-inverse"):
        operator.pseudo_inverse(torch.zeros(1, 2, SIZE, SIZE), pair.grid)
    assert isinstance(points.as_mask(2), Mask)


def test_the_map_in_normalised_units_is_the_data_map_seen_through_the_normalisation():
    solution = LinearGaussianPair.helmholtz(SIZE).solution
    mean, std = (0.3, -0.2), (2.0, 0.25)
    shape = (1, 2, 1, 1)
    encode = lambda f: (f - torch.tensor(mean, dtype=F64).reshape(shape)) / torch.tensor(std, dtype=F64).reshape(shape)
    x = torch.randn(3, 2, SIZE, SIZE, dtype=F64, generator=torch.Generator().manual_seed(5))
    normalised = solution.in_units(mean, std)
    assert torch.allclose(normalised.complete(encode(x), 2), encode(solution.complete(x, 2)), atol=1e-12)
    derived = normalised.complete(encode(x), 2, prepare_source=False)
    assert torch.equal(derived[:, 0], encode(x)[:, 0])  # the source is left as it is
    assert torch.allclose(derived[:, 1], encode(solution.complete(x, 2))[:, 1], atol=1e-12)



def _scaled(mean, std):
    shape = (1, 2, 1, 1)
    return torch.tensor(mean, dtype=F64).reshape(shape), torch.tensor(std, dtype=F64).reshape(shape)


@pytest.mark.parametrize("channel", [0, 1], ids=["forward (a observed)", "inverse (u observed)"])
def test_solver_mask_with_a_linear_solver_restores_as_the_linear_operator(channel):
    """Reading a *linear* solver affinely (SolverMask) is the linear ConstrainedMask: the same misfit ``y − A x`` in
    normalised units for any field, so DPS draws the same fields from the same noise."""
    pair, oracle, points, linear = _setting("helmholtz", channel)
    nonlinear = SolverMask.of(points.as_mask(2), pair.solution)
    mean, std = (0.3, -0.2), (2.0, 0.25)
    m, s = _scaled(mean, std)
    truth = pair.field(pair.white(1, generator=torch.Generator().manual_seed(0)))
    y = points.scatter(points(truth), 2)
    x = torch.randn(3, 2, SIZE, SIZE, dtype=F64, generator=torch.Generator().manual_seed(6))
    misfits = [op.encode(y, m, s, pair.grid) - op.normalised(mean, std).forward(x) for op in (linear, nonlinear)]
    assert torch.allclose(misfits[0], misfits[1], atol=1e-12)
    assert torch.allclose(nonlinear.encode(points.scatter(points(pair.solution.complete(truth, 2)), 2), m, s, pair.grid),
                          nonlinear.normalised(mean, std).forward((truth - m) / s), atol=1e-12)  # zero misfit at the truth
    start = oracle.sde.prior_sample(4, pair.grid, channels=2, generator=torch.Generator().manual_seed(2), dtype=F64)
    draws = [dps(oracle, oracle.sde, start, dps.times(8), operator=op, y=y, generator=torch.Generator().manual_seed(3))
             for op in (linear, nonlinear)]
    assert torch.allclose(draws[0], draws[1], atol=1e-10)


def test_solver_mask_reads_darcy_through_its_adjoint():
    """Through Darcy's (nonlinear) solve: zero misfit at an exact pair, the default method is hard consistency, covariance guidance
    refuses it, and the misfit's gradient in ``a`` is the solver's adjoint one (finite differences)."""
    size = 8
    solution = SolutionMap(solve=lambda a: solve_darcy(a, tolerance=1e-13), prepare=lambda a: a.clamp(3.0, 12.0))
    basis = LinearGaussianPair.poisson(size).basis
    points = PointObservation(basis=basis, grid=(size, size), channels=(1,),
                              indices=diffusionpde_points(0, count=10, resolution=size))
    operator = SolverMask.of(points.as_mask(2), solution)
    a = 3 + 9 * torch.rand(1, size, size, dtype=F64, generator=torch.Generator().manual_seed(7))
    pair = torch.stack([a, solve_darcy(a, tolerance=1e-13)], dim=1)
    y = points.scatter(points(pair), 2)
    mean, std = (7.5, 0.01), (4.5, 0.02)
    m, s = _scaled(mean, std)
    model = operator.normalised(mean, std)
    assert float((operator.encode(y, m, s, operator.basis.grid((size, size))) - model.forward((pair - m) / s)).abs().max()) < 1e-10
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.5, tau=3.0), kappa=0.0)
    assert default_method(sde, operator) is hard_consistency
    oracle = GaussianOracle(sde, Matern(alpha=1.5, tau=3.0))
    with pytest.raises(ValueError, match="restore it with hard_consistency"):
        covariance_guidance(oracle, sde, torch.zeros(1, 2, size, size, dtype=F64), covariance_guidance.times(2),
                            operator=operator, y=y)
    with pytest.raises(ValueError, match="no adjoint"):
        operator.adjoint(y, (size, size))
    probe = (torch.rand(1, 2, size, size, dtype=F64, generator=torch.Generator().manual_seed(8)) - 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: model.forward(x), (probe,), eps=1e-6, atol=1e-6)
