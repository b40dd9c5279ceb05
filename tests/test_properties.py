"""Property-based checks of the foundation over random shapes, dtypes and parameters."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hilbert_diffusion import (
    DirichletBasis,
    GaussianOracle,
    LinearSchedule,
    Matern,
    NeumannBasis,
    PeriodicBasis,
    StochasticHeatSDE,
)

BOXES = st.sampled_from([PeriodicBasis, NeumannBasis, DirichletBasis])
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def fields(draw):
    kind = draw(BOXES)
    ndim = draw(st.integers(1, 3))
    grid = tuple(draw(st.lists(st.integers(2, 12 if ndim < 3 else 6), min_size=ndim, max_size=ndim)))
    lengths = tuple(draw(st.lists(st.floats(0.25, 4.0), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    batch = tuple(draw(st.lists(st.integers(1, 3), min_size=0, max_size=2)))
    seed = draw(st.integers(0, 2**16))
    x = torch.randn(*batch, *grid, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    return kind(ndim, lengths=lengths), grid, x * scale


def _tol(x):
    return 1e-10 if x.dtype == torch.float64 else 2e-5


@SETTINGS
@given(fields())
def test_round_trip_parseval_and_resampling_hold_for_any_box(case):
    basis, grid, x = case
    c = basis.forward(x)
    scale = x.abs().max().item() + 1e-30
    assert ((basis.inverse(c, grid) - x).abs().max() / scale) < _tol(x) * math.prod(grid)
    energy, norm2 = basis.coefficient_energy(c, grid), basis.norm(x) ** 2
    assert torch.allclose(energy, norm2, rtol=_tol(x) * 10, atol=_tol(x) * scale**2)
    fine = tuple(n + 3 for n in grid)
    back = basis.resample(basis.resample(x, fine), grid)
    assert ((back - x).abs().max() / scale) < _tol(x) * 100
    assert torch.allclose(basis.apply_diagonal(x, torch.ones(basis.coefficient_shape(grid))), x, atol=_tol(x) * scale * 10)


@SETTINGS
@given(
    kappa=st.floats(0.0, 0.1),
    beta_max=st.floats(1.0, 30.0),
    alpha=st.floats(1.05, 4.0),
    tau=st.floats(0.5, 20.0),
    t=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5),
    s_frac=st.floats(0.0, 0.999),
)
def test_sde_quantities_are_valid_for_any_parameters(kappa, beta_max, alpha, tau, t, s_frac):
    basis, grid = PeriodicBasis(2), (8, 6)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=alpha, tau=tau), decay=LinearSchedule(0.1, beta_max), kappa=kappa)
    tt = torch.tensor(t, dtype=torch.float64)
    a, v = sde.mean_factor(tt, grid), sde.variance(tt, grid)
    assert ((a > 0) & (a <= 1)).all() and ((v >= 0) & (v <= sde.stationary_variance(grid) * (1 + 1e-12))).all()
    # monotone in t: more time, less signal and more noise
    order = torch.argsort(tt)
    assert (torch.diff(a[order], dim=0) <= 1e-15).all() and (torch.diff(v[order], dim=0) >= -1e-15).all()
    t_max = float(tt.max())
    if t_max > 0:
        s = s_frac * t_max
        c_t, c_0, var = sde.bridge(s, t_max, grid)
        assert torch.isfinite(c_t).all() and torch.isfinite(c_0).all() and (var >= 0).all()
        assert (var <= sde.variance(s, grid) * (1 + 1e-9) + 1e-300).all()  # conditioning reduces variance


@SETTINGS
@given(t=st.floats(1e-3, 1.0), kappa=st.floats(0.0, 0.05), n=st.integers(4, 16))
def test_oracle_denoiser_shrinks_towards_the_mean_and_is_exact_at_small_noise(t, kappa, n):
    sde = StochasticHeatSDE(basis=NeumannBasis(1), covariance=Matern(alpha=1.5, tau=4.0), kappa=kappa)
    oracle = GaussianOracle(sde, Matern(alpha=2.0, tau=3.0))
    x = torch.randn(2, 1, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    d = oracle(x, torch.full((2,), t))
    gain = sde.basis.forward(d) / sde.basis.forward(x) * sde.mean_factor(t, (n,))
    assert (gain.abs() <= 1 + 1e-9).all()  # a c/(a²c + v) · a ∈ [0, 1]
