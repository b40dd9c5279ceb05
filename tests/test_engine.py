"""The one sampling engine: samplers' and restoration methods' stated facts are true, grad mode is part of the
contract, and generation and restoration share one loop."""

import pytest
import torch
from torch import nn

from hilbert_diffusion import GaussianOracle, Matern, NeumannBasis, PeriodicBasis, StochasticHeatSDE
from hilbert_diffusion.engine import Sampler
from hilbert_diffusion.restoration import (
    METHODS,
    Mask,
    SpectralDownsample,
    box_mask,
    covariance_guidance,
    ddnm,
    default_method,
    dps,
    filtering_smc,
    twisted_smc,
    missing_mask,
    random_mask,
    repaint,
)
from hilbert_diffusion.sampling import SAMPLERS, exponential_multistep, power_times, rk3_ode, sample, uniform_times

BASIS = PeriodicBasis(1)
SDE = StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=5.0))
ORACLE = GaussianOracle(SDE, Matern(alpha=2.0, tau=4.0))
MASK = random_mask(BASIS, 16, observed_fraction=0.4, generator=torch.Generator().manual_seed(0))


class _Counting(nn.Module):
    """The oracle behind a module with a parameter (``scale`` = 1): counts the fields it evaluates, carries autograd."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.calls = 0
        self.data_spectrum = ORACLE.data_covariance  # carried like ScoreFNO's (covariance guidance reads it)

    def forward(self, x, t):
        self.calls += x.shape[0]
        return self.scale * ORACLE(x, t)


def _observation():
    x0 = ORACLE.sample_data(1, 16, generator=torch.Generator().manual_seed(1)).double()
    return MASK.forward(x0)


def _run(method, model, *, seed=2, steps=5, **options):
    x = SDE.prior_sample(2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    kwargs = {"operator": MASK, "y": _observation()} if method.conditional else {}
    return method(model, SDE, x, power_times(steps), generator=torch.Generator().manual_seed(seed), **kwargs, **options)


ALL = [pytest.param(m, id=m.name) for m in (*SAMPLERS, *METHODS)]


@pytest.mark.parametrize("method", ALL)
def test_evaluation_count_and_stochasticity_are_what_the_method_states(method):
    model = _Counting()
    first = _run(method, model)  # two outputs: evaluations are counted per output field
    assert model.calls == 2 * method.evaluations(5)
    again, other = _run(method, model), _run(method, model, seed=3)
    assert torch.equal(first, again)  # reproducible for a generator
    assert torch.equal(first, other) != method.stochastic  # the generator matters exactly when stochastic


@pytest.mark.parametrize("method", ALL)
def test_grad_mode_is_part_of_the_contract(method):
    model = _Counting()
    out = _run(method, model)
    assert not out.requires_grad and out.grad_fn is None and torch.is_grad_enabled()
    assert model.scale.grad is None  # nothing accumulates in the model's parameters
    with torch.no_grad():  # DPS differentiates through the model even when the caller disabled grad
        assert torch.equal(_run(method, model), out)
    assert torch.is_grad_enabled()


def test_dps_guidance_moves_the_sample_towards_the_observation():
    y = _observation()
    misfit = lambda out: float((MASK.forward(out) - y).pow(2).sum())
    unguided, guided = _run(dps, ORACLE, steps=20, step_size=0.0), _run(dps, ORACLE, steps=20, step_size=1.0)
    assert misfit(guided) < 0.7 * misfit(unguided)  # measured 0.54


def test_facts_follow_the_options_and_the_default_grids_are_the_samplers_own():
    assert exponential_multistep.order == 3 and exponential_multistep.configure(order=2).order == 2
    assert [s.order for s in SAMPLERS] == [3, 3, 3, 2, 1, 1, 1, 1]  # exponential_corrected: its predictor's order, a bound
    assert rk3_ode.evaluations() == 3 * 16 - 1 and filtering_smc.configure(particles=4).evaluations(10) == 40
    assert repaint.configure(resample=3).evaluations(10) == 30
    for method in (*SAMPLERS, *METHODS):
        times = method.times()
        assert len(times) == method.default_steps + 1 and times[0] == 1 and times[-1] == 0
    model = _Counting()
    sample(model, SDE, num=2, resolution=16, sampler=rk3_ode)  # sample() runs the sampler on its own grid
    assert model.calls == 2 * rk3_ode.evaluations()
    with pytest.raises(ValueError, match="not both"):
        sample(ORACLE, SDE, num=2, resolution=16, steps=4, times=uniform_times(4))
    with pytest.raises(ValueError, match="no option colour"):
        exponential_multistep.configure(colour=1)


def test_conditional_and_unconditional_runs_refuse_the_other_kind():
    x = SDE.prior_sample(1, 16)
    with pytest.raises(ValueError, match="pass operator= and y="):
        ddnm(ORACLE, SDE, x, uniform_times(3))
    with pytest.raises(ValueError, match="unconditional"):
        rk3_ode(ORACLE, SDE, x, uniform_times(3), operator=MASK, y=_observation().float())


def test_restoration_methods_report_every_step_through_the_shared_loop():
    for method in METHODS:
        seen = []
        x = SDE.prior_sample(2, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        method(ORACLE, SDE, x, power_times(4), operator=MASK, y=_observation(),
               callback=lambda i, t, xt, d: seen.append((i, t, xt.shape == d.shape)))
        assert [s[0] for s in seen] == [0, 1, 2, 3] and all(s[2] for s in seen)
        assert [s[1] for s in seen] == pytest.approx(power_times(4)[:-1].tolist())


def test_default_method_is_smc_where_it_is_exact():
    heat = StochasticHeatSDE(basis=BASIS, covariance=Matern(alpha=1.5, tau=5.0), kappa=1e-3)
    spectral = SpectralDownsample(basis=BASIS, resolution=8)
    assert default_method(SDE, MASK) is filtering_smc
    assert default_method(heat, MASK) is twisted_smc and default_method(SDE, spectral) is ddnm
    channel_wise = Mask(basis=BASIS, observed=torch.stack([MASK.observed, ~MASK.observed]))
    assert default_method(SDE, channel_wise) is covariance_guidance


def test_box_masks_take_scalars_and_nan_marks_missing_points():
    basis = NeumannBasis(1)
    assert torch.equal(box_mask(basis, 32, low=0.25, high=0.5).observed, box_mask(basis, 32, low=(0.25,), high=(0.5,)).observed)
    square = box_mask(NeumannBasis(2), 8, low=0.25, high=0.75).observed
    assert int((~square).sum()) == 16  # a scalar corner applies to every axis
    y = torch.arange(8.0).reshape(1, 1, 8)
    y[..., 2:5] = float("nan")
    mask, cleaned = missing_mask(basis, y)
    assert mask.observed.tolist() == [True, True, False, False, False, True, True, True]
    assert torch.isfinite(cleaned).all() and torch.equal(cleaned[mask.observed.expand_as(y)], y[mask.observed.expand_as(y)])
    with pytest.raises(ValueError, match="nothing is observed"):
        missing_mask(basis, torch.full((1, 1, 8), float("nan")))


def test_every_sampler_and_method_is_one_engine_object():
    assert all(isinstance(m, Sampler) for m in (*SAMPLERS, *METHODS))
    assert all(m.conditional for m in METHODS) and not any(s.conditional for s in SAMPLERS)
