"""A trained run restores in data units: its methods equal the library's engine on encoded observations, decoded,
and keep the observation exactly."""

import pytest
import torch

from hilbert_diffusion import (
    DirichletBasis,
    GaussianOracle,
    Matern,
    PeriodicBasis,
    StochasticHeatSDE,
    ddnm,
    rk3_ode,
    sample,
)
from hilbert_diffusion.normalization import Normalization
from hilbert_diffusion.restoration import BlockAverage, HeatBlur, Mask, SpectralDownsample, box_mask
from hilbert_diffusion.sampling import RUN_SAMPLER
from hilbert_diffusion.trained import TrainedRun

MEAN, STD = 3.0, 2.0


def _run(basis):
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=1.5, tau=5.0))
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=4.0))
    return TrainedRun(model=oracle, sde=sde, normalization=Normalization((MEAN,), (STD,)), step=0), oracle


def _data(oracle, num, grid, seed=0):  # fields in data units
    return MEAN + STD * oracle.sample_data(num, grid, generator=torch.Generator().manual_seed(seed))


def _gen(seed=5):
    return torch.Generator().manual_seed(seed)


def test_sample_is_the_decoded_library_sample():
    run, oracle = _run(PeriodicBasis(1))
    ours = run.sample(3, 24, sampler=rk3_ode, steps=5, generator=_gen())
    theirs = sample(oracle, oracle.sde, num=3, resolution=24, sampler=rk3_ode, steps=5, generator=_gen())
    assert torch.equal(ours, MEAN + STD * theirs)
    assert torch.equal(run.sample(2, 24, generator=_gen()),
                       MEAN + STD * sample(oracle, oracle.sde, num=2, resolution=24, sampler=RUN_SAMPLER,
                                           generator=_gen()))  # no stored grid: the default on its own grid


def test_restoration_encodes_the_observation_through_the_operator():
    """On a Dirichlet domain the blur of the constant mean is not the mean: ``(y - A m)/s`` is the observation of the
    normalised field, which a naive ``(y - m)/s`` is not."""
    basis = DirichletBasis(1)
    run, oracle = _run(basis)
    blur = HeatBlur(basis=basis, time=1e-3)
    y = blur.forward(_data(oracle, 2, 31))
    ours = run.deblur(y, blur_time=1e-3, num=3, method=ddnm, steps=6, generator=_gen())
    mean_field = torch.full((1, 1, 31), MEAN)
    y_model = ((y - blur.forward(mean_field)) / STD).repeat_interleave(3, dim=0)
    generator = _gen()  # one stream: the prior draw, then the method
    x = oracle.sde.prior_sample(6, 31, generator=generator)
    theirs = ddnm(oracle, oracle.sde, x, ddnm.times(6), operator=blur, y=y_model, generator=generator)
    assert torch.allclose(ours, MEAN + STD * theirs, atol=1e-6)
    assert not torch.allclose(blur.forward(mean_field), mean_field)  # the case a naive encoding gets wrong


def test_inpainting_keeps_the_observation_and_nan_marks_the_same_mask():
    basis = PeriodicBasis(2)
    run, oracle = _run(basis)
    truth = _data(oracle, 2, 12)
    mask = box_mask(basis, 12, low=0.25, high=0.75).observed
    filled = run.inpaint(truth, mask, num=3, steps=8, particles=3, generator=_gen())
    assert filled.shape == (6, 1, 12, 12)
    observed = mask.expand(6, 1, 12, 12)
    assert torch.allclose(filled[observed], truth.repeat_interleave(3, dim=0)[observed], atol=1e-4)
    assert filled[~observed].std() > 0.1 * STD  # the hole is filled with draws, not a constant
    holes = torch.where(mask, truth, torch.nan)[:1]
    assert torch.equal(run.inpaint(holes, num=3, steps=8, particles=3, generator=_gen()),
                       run.inpaint(truth[:1], mask, num=3, steps=8, particles=3, generator=_gen()))


@pytest.mark.parametrize("kind", [SpectralDownsample, BlockAverage])
def test_superresolution_is_consistent_with_the_low_grid(kind):
    basis = PeriodicBasis(2)
    run, oracle = _run(basis)
    low = kind(basis=basis, resolution=8).forward(_data(oracle, 2, 16))
    fine = run.superres(low, resolution=16, operator=kind, num=2, steps=8, generator=_gen())
    assert fine.shape == (4, 1, 16, 16)
    reobserved = kind(basis=basis, resolution=8).forward(fine)
    assert torch.allclose(reobserved, low.repeat_interleave(2, dim=0), atol=1e-4)


def test_bad_observations_are_refused_with_the_fix():
    basis = PeriodicBasis(1)
    run, _ = _run(basis)
    with pytest.raises(ValueError, match="add axes"):
        run.inpaint(torch.zeros(16), torch.ones(16, dtype=torch.bool))
    with pytest.raises(ValueError, match="NaN"):
        run.superres(torch.full((1, 1, 8), float("nan")), resolution=16)
    with pytest.raises(ValueError, match="num must be"):
        run.restore(Mask(basis=basis, observed=torch.arange(16) % 2 == 0), torch.zeros(1, 1, 16), num=0)
