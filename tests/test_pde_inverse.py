"""DiffusionPDE's PDE pairs and their sparse-observation inverse problems: the solvers against dense sparse-matrix
solves of the same stencils, the source law against their GRF.m recipe, point observations on any grid, and the
exact Bayes posterior against dense Gaussian conditioning (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hilbert_diffusion.bases import NeumannBasis, PeriodicBasis
from hilbert_diffusion.datasets import darcy, from_spec, helmholtz, navier_stokes_pair, poisson, vorticity_map
from hilbert_diffusion.datasets.elliptic import (darcy_operator, replicate_boundary, solve_darcy, solve_dirichlet,
                                                spline_matrix, zero_boundary)
from hilbert_diffusion.datasets.spec import dataset_from_spec
from hilbert_diffusion.models.linear_pde import LinearGaussianPair
from hilbert_diffusion.restoration.points import PointObservation, diffusionpde_points

F64 = torch.float64


# ----------------------------------------------------------------------------- solvers
def _dense_dirichlet(size: int, shift: float) -> np.ndarray:
    """Their matrix: identity rows on the boundary nodes, the 5-point Laplacian (+ shift) inside."""
    h, n = 1.0 / (size - 1), size * size
    matrix = np.zeros((n, n))
    for i in range(size):
        for j in range(size):
            k = i * size + j
            if i in (0, size - 1) or j in (0, size - 1):
                matrix[k, k] = 1.0
                continue
            matrix[k, k] = -4 / h**2 + shift
            for step in (-1, 1, -size, size):
                matrix[k, k + step] = 1 / h**2
    return matrix


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_dirichlet_solve_equals_dense_stencil(shift):
    size = 9
    f = torch.randn(2, size, size, dtype=F64, generator=torch.Generator().manual_seed(0))
    u = solve_dirichlet(f, shift=shift)
    rhs = f.clone()
    rhs[:, [0, -1], :] = 0
    rhs[:, :, [0, -1]] = 0
    dense = np.linalg.solve(_dense_dirichlet(size, shift), rhs.reshape(2, -1).T.numpy()).T
    assert np.abs(dense - u.reshape(2, -1).numpy()).max() < 1e-12 * np.abs(dense).max()


def test_dirichlet_solve_refuses_an_eigenvalue():
    size = 6
    mu = (2 - 2 * math.cos(math.pi / (size - 1))) * (size - 1) ** 2
    with pytest.raises(ValueError, match="eigenvalue"):
        solve_dirichlet(torch.ones(size, size, dtype=F64), shift=2 * mu)


def test_spline_matrix_is_not_a_knot_interpolation():
    source = (torch.arange(7, dtype=F64) + 0.5) / 7
    target = torch.linspace(0, 1, 7, dtype=F64)
    matrix = spline_matrix(source, target)
    cubic = lambda x: 2 - x + 3 * x**2 - 5 * x**3  # noqa: E731 - a cubic is reproduced exactly, extrapolation included
    assert torch.allclose(matrix @ cubic(source), cubic(target), atol=1e-12)
    assert torch.allclose(spline_matrix(source, source), torch.eye(7, dtype=F64), atol=1e-12)
    # not-a-knot: one cubic on the first two intervals, so a quartic's spline has continuous third derivative there
    data = source**4
    fine = torch.linspace(float(source[0]), float(source[2]), 9, dtype=F64)
    values = spline_matrix(source, fine) @ data
    third = np.diff(values.numpy(), 3)
    assert np.allclose(third, third[0], atol=1e-10)


def test_darcy_solve_equals_dense_finite_volumes():
    size = 8
    g = torch.randn(size, size, dtype=F64, generator=torch.Generator().manual_seed(1))
    a = torch.where(g >= 0, 12.0, 3.0).to(F64)
    u = solve_darcy(a, tolerance=1e-13)
    centres, vertices = (torch.arange(size, dtype=F64) + 0.5) / size, torch.linspace(0, 1, size, dtype=F64)
    to_v, to_c = spline_matrix(centres, vertices), spline_matrix(vertices, centres)
    a_v = to_v @ a @ to_v.T
    interior = (size - 2) ** 2
    dense = torch.stack([darcy_operator(e.reshape(size - 2, size - 2), a_v).reshape(-1)
                         for e in torch.eye(interior, dtype=F64)], dim=1)
    f_v = (to_v @ torch.ones(size, size, dtype=F64) @ to_v.T)[1:-1, 1:-1].reshape(-1)
    inside = torch.linalg.solve(dense, f_v).reshape(size - 2, size - 2)
    expected = to_c @ torch.nn.functional.pad(inside, (1, 1, 1, 1)) @ to_c.T
    assert torch.allclose(u, expected, atol=1e-11 * expected.abs().max())
    assert torch.allclose(dense, dense.T, atol=1e-9)  # the FV operator is symmetric (CG applies)



def test_darcy_solve_gradient_is_the_adjoint_one():
    """The (adjoint) backward pass against finite differences, in ``a`` and ``f`` (float64, CG to 1e-13)."""
    a = 3 + 9 * torch.rand(2, 7, 7, dtype=F64, generator=torch.Generator().manual_seed(2))
    f = torch.rand(2, 7, 7, dtype=F64, generator=torch.Generator().manual_seed(3))
    assert torch.autograd.gradcheck(lambda a, f: solve_darcy(a, f, tolerance=1e-13),
                                    (a.requires_grad_(True), f.requires_grad_(True)), eps=1e-6, atol=1e-7)


def test_darcy_solve_of_a_zero_source_in_a_batch():
    """A field whose source is zero is solved exactly at once; the others of its batch still converge (no 0/0)."""
    a = 3 + 9 * torch.rand(2, 8, 8, dtype=F64, generator=torch.Generator().manual_seed(4))
    f = torch.stack([torch.zeros(8, 8, dtype=F64), torch.ones(8, 8, dtype=F64)])
    u = solve_darcy(a, f, tolerance=1e-13)
    assert torch.equal(u[0], torch.zeros(8, 8, dtype=F64))
    assert torch.allclose(u[1], solve_darcy(a[1], tolerance=1e-13), atol=1e-12)

# ----------------------------------------------------------------------------- data sets
def test_source_law_is_their_grf_recipe():
    """Covariance of the source = their GRF.m: orthonormal idct2 of S τ^(α−1)(π²|k|²+τ²)^(−α/2) ξ, mode (0,0) zero."""
    size, alpha, tau = 6, 2.0, 3.0
    pair = LinearGaussianPair.poisson(size)
    rows = pair.field(torch.eye(size * size, dtype=F64).reshape(-1, size, size))[:, 0].reshape(size * size, -1)
    ours = rows.T @ rows
    n = np.arange(size)
    idct = np.sqrt(2.0 / size) * np.cos(np.pi * (n[:, None] + 0.5) * n[None, :] / size)
    idct[:, 0] /= np.sqrt(2.0)
    k1, k2 = np.meshgrid(n, n, indexing="ij")
    coef = tau ** (alpha - 1) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha / 2)
    variance = (size * coef) ** 2
    variance[0, 0] = 0.0
    basis = np.kron(idct, idct)  # vec(D L Dᵀ) = (D ⊗ D) vec(L), row-major
    theirs = basis @ np.diag(variance.reshape(-1)) @ basis.T
    assert np.abs(ours.numpy() - theirs).max() < 1e-12 * np.abs(theirs).max()


@pytest.mark.parametrize("builder, shift", [(poisson, 0.0), (helmholtz, 1.0)])
def test_linear_pairs_solve_their_equation(builder, shift, tmp_path):
    ds = builder(3, 12, seed=2, cache_dir=tmp_path, progress=False)
    a, u = ds.data[:, 0].double(), ds.data[:, 1].double()
    assert ds.data.shape == (3, 2, 12, 12) and isinstance(ds.basis, NeumannBasis)
    assert torch.allclose(u, solve_dirichlet(a, shift=shift), atol=1e-6 * u.abs().max())
    assert u[:, [0, -1], :].abs().max() == 0 and u[:, :, [0, -1]].abs().max() == 0
    if shift:
        assert a[:, [0, -1], :].abs().max() == 0 and a[:, :, [0, -1]].abs().max() == 0
    assert torch.equal(from_spec(ds.spec, cache_dir=tmp_path, progress=False).data, ds.data)
    assert torch.equal(builder(2, 12, seed=2, cache_dir=tmp_path, progress=False).data, ds.data[:2])  # per-field seeds


def test_filled_helmholtz_sources_solve_the_same_pairs(tmp_path):
    zeros = helmholtz(3, 12, seed=2, cache_dir=tmp_path, progress=False).data.double()
    filled = helmholtz(3, 12, seed=2, filled_boundary=True, cache_dir=tmp_path, progress=False).data.double()
    assert torch.equal(filled[:, 1], zeros[:, 1]) and torch.equal(zero_boundary(filled[:, 0]), zeros[:, 0])
    a = filled[:, 0]
    assert torch.equal(a[:, 0, 1:-1], a[:, 1, 1:-1]) and torch.equal(a[:, 1:-1, -1], a[:, 1:-1, -2])
    assert torch.equal(a[:, 0, 0], a[:, 1, 1]) and a[:, 0].abs().min() > 0


def _wiener_excess(covariance: torch.Tensor, size: int, noise_variance: float) -> float:
    """Mean-square error of the per-mode (DCT) Wiener filter over the exact Gaussian denoiser's, for fields of
    pixel ``covariance`` observed in noise of spectrum ``(1 + λ)⁻¹`` (the trace-class kind) times ``noise_variance``."""
    basis, n = NeumannBasis(2), size * size
    to_modes = basis.forward(torch.eye(n, dtype=F64).reshape(n, size, size)).reshape(n, n).T
    signal = to_modes @ covariance @ to_modes.T
    noise = noise_variance / (1 + basis.eigenvalues((size, size)).flatten())
    exact = torch.trace(signal - signal @ torch.linalg.solve(signal + torch.diag(noise), signal))
    gain = torch.diag(signal) / (torch.diag(signal) + noise)
    residual = torch.eye(n, dtype=F64) - torch.diag(gain)
    wiener = torch.trace(residual @ signal @ residual) + (gain**2 * noise).sum()
    return float(wiener / exact)


def test_filled_sources_are_what_the_wiener_skip_carries():
    """The zeroed boundary is a jump the per-mode Wiener skip cannot carry (2× and more the exact denoiser's error);
    the filled source's skip is within 15 % of exact at 16² (5 % at 32²): the reason `filled_boundary` exists."""
    size, pair = 16, LinearGaussianPair.helmholtz(16)
    n = size * size
    white = torch.eye(n, dtype=F64).reshape(n, size, size)
    source = pair.basis.inverse(white * pair._std(), pair.grid).reshape(n, n)  # rows: the source of each white mode
    for noise_variance in (1e-3, 1e-2, 1e-1):
        for prepare, low, high in ((zero_boundary, 2.5, 10.0), (replicate_boundary, 1.0 - 1e-9, 1.15)):
            fields = prepare(source.reshape(n, size, size)).reshape(n, n)
            assert low < _wiener_excess(fields.T @ fields, size, noise_variance) < high


def test_darcy_pairs(tmp_path):
    ds = darcy(2, 16, seed=0, cache_dir=tmp_path, progress=False)
    a, u = ds.data[:, 0].double(), ds.data[:, 1].double()
    assert set(a.unique().tolist()) <= {3.0, 12.0} and len(a.unique()) == 2
    assert torch.allclose(u, solve_darcy(a), atol=1e-6 * u.abs().max()) and u.min() > -1e-3 * u.max()
    with pytest.raises(ValueError, match="positive coefficient"):
        darcy(2, 16, low=-1.0, use_cache=False, progress=False)


def test_navier_stokes_pair_starts_from_fno_vorticity(tmp_path):
    kwargs = dict(solver_resolution=32, time_step=0.05, horizon=0.2, seed=1, cache_dir=tmp_path, progress=False)
    pair = navier_stokes_pair(2, 16, **kwargs)
    assert pair.data.shape == (2, 2, 16, 16) and isinstance(pair.basis, PeriodicBasis)
    assert not torch.allclose(pair.data[:, 0], pair.data[:, 1])
    zero_time = navier_stokes_pair(2, 16, **{**kwargs, "horizon": 0.0})
    assert torch.allclose(zero_time.data[:, 0], zero_time.data[:, 1], atol=1e-6)



def test_vorticity_map_is_the_pairs_solution_operator(tmp_path):
    """``ω₀ ↦ ω(T)`` remakes the pairs: exactly at the solver's grid, and from the band-limited ``ω₀`` below it (the
    modes the coarse grid drops are what is lost: 0.1 % at 16² of 32²)."""
    options = dict(solver_resolution=32, time_step=0.05, horizon=0.2)
    solve = vorticity_map(**options)
    for resolution, tolerance in ((32, 1e-6), (16, 5e-3)):
        pair = navier_stokes_pair(2, resolution, **options, seed=1, cache_dir=tmp_path, progress=False).data.double()
        error = (solve(pair[:, 0]) - pair[:, 1]).norm() / pair[:, 1].norm()
        assert error < tolerance, (resolution, float(error))
    with pytest.raises(ValueError, match="solver_resolution"):
        solve(torch.zeros(1, 64, 64))

def test_cli_names_the_pairs(tmp_path):
    ds = dataset_from_spec("helmholtz:wavenumber=2", num=2, resolution=8, cache_dir=tmp_path, progress=False)
    assert ds.spec["kwargs"]["wavenumber"] == 2 and ds.data.shape == (2, 2, 8, 8)


# ----------------------------------------------------------------------------- point observations
def test_diffusionpde_points_are_their_indices():
    points = diffusionpde_points(1)
    np.random.seed(1)
    flat = np.random.choice(128**2, 500, replace=False)
    assert points.shape == (500, 2) and np.array_equal(points[:, 0] * 128 + points[:, 1], flat)


def test_points_read_the_same_values_on_any_grid():
    """A band-limited field observed at the points of 32² from its 32², 16² (resampled up) and 64² samplings."""
    basis = NeumannBasis(2)
    fine = basis.resample(torch.randn(3, 2, 16, 16, dtype=F64, generator=torch.Generator().manual_seed(0)), 32)
    indices = torch.tensor([[0, 0], [5, 30], [31, 31], [17, 4]])
    obs = PointObservation(basis=basis, grid=(32, 32), indices=indices, channels=(1,))
    y = obs(fine)
    assert y.shape == (3, 1, 4) and torch.equal(y[:, 0, 1], fine[:, 1, 5, 30])
    assert torch.allclose(obs(basis.resample(fine, 16)), y, atol=1e-12)
    assert torch.allclose(obs(basis.resample(fine, 64)), y, atol=1e-12)
    mask = obs.mask()
    assert mask.sum() == 4 and mask[5, 30]
    same = PointObservation.from_coordinates(basis, 32, obs.coordinates(), channels=(1,))
    assert torch.equal(same.indices, obs.indices)


@pytest.mark.parametrize("make, message", [
    (lambda b: PointObservation.from_coordinates(b, 8, torch.tensor([[0.0625, 1.5]])), "outside the domain"),
    (lambda b: PointObservation.from_coordinates(b, 8, torch.tensor([[0.0625, 0.5]])), "not points of the grid"),
    (lambda b: PointObservation(basis=b, grid=(8, 8), indices=torch.tensor([[0, 8]])), "lie in the grid"),
    (lambda b: PointObservation(basis=b, grid=(8, 8), indices=torch.tensor([[1, 1], [1, 1]])), "repeat"),
    (lambda b: PointObservation(basis=b, grid=(8, 8), indices=torch.tensor([[1, 1]]), channels=(2,))(
        torch.zeros(1, 2, 8, 8)), "channel 2 but the field has 2"),
    (lambda b: PointObservation(basis=b, grid=(8, 8), indices=torch.tensor([[1, 1]])).check_observation(
        torch.zeros(1, 1, 3)), "give y shaped"),
])
def test_point_observation_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make(NeumannBasis(2))


# ----------------------------------------------------------------------------- exact Bayes limit
@pytest.mark.parametrize("factory, direction", [("poisson", 1), ("helmholtz", 0), ("helmholtz", 1)])
def test_exact_posterior_equals_dense_conditioning(factory, direction):
    size = 8
    pair = getattr(LinearGaussianPair, factory)(size)
    n = size * size
    rows = pair.field(torch.eye(n, dtype=F64).reshape(n, size, size)).reshape(n, -1)  # R as rows: x = rows.T ξ
    cov = rows.T @ rows
    indices = torch.tensor([[1, 2], [3, 3], [6, 1], [4, 6], [2, 5], [5, 4]])
    obs = PointObservation(basis=pair.basis, grid=(size, size), indices=indices, channels=(direction,), noise_std=1e-3)
    h = torch.stack([obs(e.reshape(2, size, size)).reshape(-1) for e in torch.eye(2 * n, dtype=F64)], dim=1)
    truth = pair.field(pair.white(2, generator=torch.Generator().manual_seed(3)))
    y = obs.observe(truth, generator=torch.Generator().manual_seed(4))
    gram = h @ cov @ h.T + 1e-6 * torch.eye(len(h), dtype=F64)
    dense_mean = (cov @ h.T @ torch.linalg.solve(gram, y.reshape(2, -1).T)).T
    post = pair.posterior(obs, y, draws=3, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(post.mean.reshape(2, -1), dense_mean, atol=1e-8 * dense_mean.abs().max())
    # Matheron's rule ξ = ξ₀ + Gᵀ K⁻¹ (y − G ξ₀ − σ ε₀) spreads the draws around the mean with
    # R [(I − Gᵀ K⁻¹ G)(I − Gᵀ K⁻¹ G)ᵀ + σ² Gᵀ K⁻² G] Rᵀ: the dense posterior covariance C − C Hᵀ K⁻¹ H C, exactly
    g = pair.observation_rows(obs)
    k_inv = torch.linalg.inv(g @ g.T + 1e-6 * torch.eye(len(g), dtype=F64))
    keep = torch.eye(n, dtype=F64) - g.T @ k_inv @ g
    spread = rows.T @ (keep @ keep.T + 1e-6 * g.T @ k_inv @ k_inv @ g) @ rows
    dense_cov = cov - cov @ h.T @ torch.linalg.solve(gram, h @ cov)
    assert torch.allclose(g, h @ rows.T, atol=1e-12)
    assert torch.allclose(spread, dense_cov, atol=1e-8 * cov.abs().max())
    assert post.draws.shape == (2, 3, 2, size, size)


def test_exact_posterior_draw_error_is_sqrt2_times_mean_error():
    """On 40 Poisson pairs at 32² observed at 60 points of u: E‖draw − x‖² = 2 E‖mean − x‖² (± Monte Carlo)."""
    pair = LinearGaussianPair.poisson(32)
    truth = pair.field(pair.white(40, generator=torch.Generator().manual_seed(0)))
    indices = torch.stack(torch.meshgrid(torch.arange(2, 32, 4), torch.arange(1, 32, 4), indexing="ij"), -1).reshape(-1, 2)
    obs = PointObservation(basis=pair.basis, grid=(32, 32), indices=indices[:60], channels=(1,))
    post = pair.posterior(obs, obs(truth), draws=4, generator=torch.Generator().manual_seed(1))
    mean_sq = ((post.mean[:, 0] - truth[:, 0]) ** 2).sum()
    draw_sq = ((post.draws[:, :, 0] - truth[:, None, 0]) ** 2).sum() / 4
    assert 1.7 < float(draw_sq / mean_sq) < 2.3
    assert torch.allclose(obs(post.draws.flatten(0, 1)), obs(truth).repeat_interleave(4, 0), atol=1e-9)
