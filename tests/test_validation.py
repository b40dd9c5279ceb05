"""Bad input at every public entry: each case must raise ValueError naming the problem and the fix,
never a deep error from torch."""

import numpy as np
import pytest
import torch

from hilbert_diffusion import (
    DirichletBasis,
    GaussianOracle,
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
from hilbert_diffusion import restoration, sampling
from hilbert_diffusion.datasets import load_array, navier_stokes, quadratic
from hilbert_diffusion.datasets.spec import dataset_from_spec, parse_options

B2 = PeriodicBasis(2)
SDE = StochasticHeatSDE(basis=B2, covariance=Matern(alpha=2.0, tau=3.0))
ORACLE = GaussianOracle(SDE, Matern(alpha=2.5, tau=5.0))
X = torch.zeros(2, 1, 8, 8)
NAN = X.clone().index_fill_(-1, torch.tensor([0]), float("nan"))
TIMES = sampling.uniform_times(4)


def _npy(tmp_path, array, name="a.npy"):
    path = tmp_path / name
    np.save(path, array)
    return path


CASES = [
    # bases
    ("grid rank", lambda: B2.grid((8,)), "has 1 axes"),
    ("grid too small", lambda: PeriodicBasis(1).grid(1), "too small"),
    ("dirichlet empty", lambda: DirichletBasis(1).grid(0), "too small"),
    ("sphere nlon", lambda: SphereBasis().grid((8, 8)), "nlon"),
    ("sphere grid kind", lambda: SphereBasis(grid_type="healpix"), "grid_type"),
    ("lengths count", lambda: NeumannBasis(2, lengths=(1.0, 2.0, 3.0)), "one per dimension"),
    ("lengths sign", lambda: NeumannBasis(1, lengths=-1.0), "positive"),
    ("ndim", lambda: PeriodicBasis(0), "at least 1"),
    ("field rank", lambda: B2.check_field(torch.zeros(8, 8)), "add the missing axes"),
    ("field dtype", lambda: B2.check_field(torch.zeros(1, 1, 8, 8, dtype=torch.long)), "floating point"),
    ("field nan", lambda: B2.check_field(NAN), "NaN"),
    ("field type", lambda: B2.check_field(np.zeros((1, 1, 8, 8))), "torch.Tensor"),
    # noise
    ("matern alpha", lambda: Matern(alpha=0.0), "alpha"),
    ("power law", lambda: PowerLaw(alpha=-1.0), "alpha"),
    ("squared exponential", lambda: SquaredExponential(length_scale=0.0), "length_scale"),
    ("white noise sde", lambda: StochasticHeatSDE(basis=B2, covariance=WhiteNoise()), "trace-class"),
    ("rough noise sde", lambda: StochasticHeatSDE(basis=B2, covariance=Matern(alpha=1.0)), "trace-class"),
    ("grf num", lambda: GaussianRandomField(B2, Matern()).sample(0, 8), "positive"),
    # SDE
    ("kappa", lambda: StochasticHeatSDE(basis=B2, covariance=Matern(), kappa=-0.1), "kappa"),
    ("t range", lambda: SDE.variance(1.2, (8, 8)), r"\[0, 1\]"),
    ("t nan", lambda: SDE.mean_factor(float("nan"), (8, 8)), r"\[0, 1\]"),
    ("t rank", lambda: SDE.variance(torch.zeros(2, 2), (8, 8)), "scalar or a \\(batch,\\)"),
    ("x0 nan", lambda: SDE.marginal_sample(NAN, 0.5), "NaN"),
    ("x0 rank", lambda: SDE.marginal_sample(torch.zeros(8, 8), 0.5), "missing axes"),
    ("bridge shapes", lambda: SDE.bridge_sample(X, torch.zeros(3, 1, 8, 8), 0.2, 0.5), "same shape"),
    ("prior num", lambda: SDE.prior_sample(0, 8), "positive"),
    # oracle
    ("oracle batch of t", lambda: ORACLE(X, torch.full((3,), 0.5)), "one t per field"),
    ("oracle nan", lambda: ORACLE(NAN, torch.full((2,), 0.5)), "NaN"),
    ("oracle mean rank", lambda: GaussianOracle(SDE, Matern(), mean=torch.zeros(8, 8)), "channels"),
    # samplers
    ("times increasing", lambda: sampling.heun_ode(ORACLE, SDE, X, torch.tensor([0.0, 1.0])), "decrease"),
    ("times above one", lambda: sampling.rk3_ode(ORACLE, SDE, X, torch.tensor([1.5, 0.0])), "decrease"),
    ("times one entry", lambda: sampling.exponential_ancestral(ORACLE, SDE, X, torch.tensor([1.0])), "at least 2"),
    ("steps zero", lambda: sampling.uniform_times(0), "steps"),
    ("eta", lambda: sampling.exponential_ancestral(ORACLE, SDE, X, TIMES, eta=2.0), "eta"),
    ("snr", lambda: sampling.predictor_corrector(ORACLE, SDE, X, TIMES, snr=0.0), "snr"),
    ("sample num", lambda: sampling.sample(ORACLE, SDE, num=0, resolution=8), "num"),
    ("sampler nan", lambda: sampling.heun_ode(ORACLE, SDE, NAN, TIMES), "NaN"),
    # restoration
    ("mask shape", lambda: restoration.ddnm(ORACLE, SDE, X, TIMES, operator=restoration.Mask(basis=B2, observed=torch.ones(4, 4, dtype=torch.bool).index_fill_(0, torch.tensor([0]), False)), y=torch.zeros(1, 1, 8, 8)), "grid"),
    ("mask nothing unknown", lambda: restoration.random_mask(B2, 8, observed_fraction=1.0), "fraction"),
    ("observation finer than output", lambda: restoration.SpectralDownsample(basis=B2, resolution=16).observation_grid((8, 8)), "finer"),
    ("noise std", lambda: restoration.SpectralDownsample(basis=B2, resolution=4, noise_std=-1.0), "noise_std"),
    ("blur time", lambda: restoration.HeatBlur(basis=B2, time=0.0), "time"),
    ("smc particles", lambda: restoration.filtering_smc(ORACLE, SDE, X, TIMES, operator=restoration.SpectralDownsample(basis=B2, resolution=4), y=torch.zeros(1, 1, 4, 4), particles=0), "particles"),
    # datasets and specs
    ("quadratic points", lambda: quadratic(10, 1), "num_points"),
    ("unknown data set", lambda: dataset_from_spec("mnist"), "built-in"),
    ("data option syntax", lambda: parse_options("alpha"), "key=value"),
    ("unknown data option", lambda: dataset_from_spec("grf:colour=red"), "unexpected keyword"),
    ("navier-stokes blow-up", lambda: navier_stokes(1, 16, solver_resolution=16, time_step=5.0, horizon=50.0, use_cache=False, progress=False), "time_step"),
]


@pytest.mark.parametrize("call,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    "array,message",
    [
        (np.zeros((4, 8)), "channel axis"),
        (np.zeros((0, 1, 8)), "empty"),
        (np.full((2, 1, 8), np.nan), "NaN"),
        (np.zeros((2, 1, 8), dtype=complex), "complex"),
    ],
    ids=["rank", "empty", "nan", "complex"],
)
def test_bad_arrays_are_refused(tmp_path, array, message):
    with pytest.raises(ValueError, match=message):
        load_array(_npy(tmp_path, array))


def test_a_missing_or_corrupt_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_array(tmp_path / "nope.npy")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="cannot read"):
        load_array(bad)

