"""Spectral bases: exact round trips, Parseval, analytic eigenpairs, quadrature, band-limited resampling."""

import math

import pytest
import torch

from hilbert_diffusion import DirichletBasis, NeumannBasis, PeriodicBasis, SphereBasis

BOX_CASES = [
    (PeriodicBasis(1), (16,)),
    (PeriodicBasis(1, lengths=3.0), (15,)),
    (PeriodicBasis(2), (8, 10)),
    (PeriodicBasis(3), (6, 7, 8)),
    (NeumannBasis(1), (17,)),
    (NeumannBasis(2, lengths=(1.0, 2.0)), (8, 9)),
    (DirichletBasis(1), (13,)),
    (DirichletBasis(2), (7, 8)),
]
ALL_CASES = BOX_CASES + [(SphereBasis(), (8, 16)), (SphereBasis(), (12, 24))]
IDS = [f"{type(b).__name__}{g}" for b, g in ALL_CASES]


def _field(basis, grid, seed=0):
    x = torch.randn(3, 2, *grid, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    if isinstance(basis, SphereBasis):  # the grid has more points than harmonics: project to the band
        x = basis.inverse(basis.forward(x), grid)
    return x


@pytest.mark.parametrize("basis,grid", ALL_CASES, ids=IDS)
def test_round_trip_and_parseval(basis, grid):
    x = _field(basis, grid)
    c = basis.forward(x)
    assert c.shape == (3, 2, *basis.coefficient_shape(grid))
    assert torch.linalg.vector_norm(basis.inverse(c, grid) - x) <= 1e-10 * torch.linalg.vector_norm(x)
    energy, norm2 = basis.coefficient_energy(c, grid), basis.norm(x) ** 2
    assert torch.allclose(energy, norm2, rtol=1e-10, atol=0)


@pytest.mark.parametrize("basis,grid", ALL_CASES, ids=IDS)
def test_white_noise_coefficients_have_unit_variance(basis, grid):
    w = basis.white_noise((4000,), grid, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    power = basis.forward(w).abs().pow(2).mean(0)
    valid = basis.multiplicity(grid) > 0
    # E|c|² = 1 per coefficient; 4000 draws: relative MC error ~ sqrt(2/4000) ≈ 0.022 → 6 sigma
    assert (power[valid] - 1).abs().max() < 0.14


def _eigenfunction(basis, grid, k):
    """Analytic grid values of the eigenfunction with integer wavenumbers ``k`` (a cosine/sine product)."""
    axes = []
    for n, L, kk in zip(grid, basis.lengths, k):
        if isinstance(basis, PeriodicBasis):
            x = torch.arange(n, dtype=torch.float64) * L / n
            axes.append(torch.cos(2 * math.pi * kk * x / L))
        elif isinstance(basis, NeumannBasis):
            x = (torch.arange(n, dtype=torch.float64) + 0.5) * L / n
            axes.append(torch.cos(math.pi * kk * x / L))
        else:
            x = torch.arange(1, n + 1, dtype=torch.float64) * L / (n + 1)
            axes.append(torch.sin(math.pi * kk * x / L))
    f = axes[0]
    for a in axes[1:]:
        f = f[..., None] * a
    return f


@pytest.mark.parametrize("basis,grid", BOX_CASES, ids=IDS[: len(BOX_CASES)])
def test_eigenvalues_match_analytic_modes(basis, grid):
    """A single analytic mode lands on coefficients whose λ is the analytic one, and the field is an
    eigenfunction of the discrete Laplacian ``inverse(λ forward(f))`` with that eigenvalue."""
    k = [1 if isinstance(basis, DirichletBasis) else 0] * basis.ndim
    k[-1] = 2
    f = _eigenfunction(basis, grid, k)
    c = basis.forward(f)
    lam = basis.eigenvalues(grid)
    factor = 2 * math.pi if isinstance(basis, PeriodicBasis) else math.pi
    expected = sum((factor * kk / L) ** 2 for kk, L in zip(k, basis.lengths))
    support = c.abs() > 1e-9 * c.abs().max()
    assert support.any()
    assert torch.allclose(lam[support], torch.full_like(lam[support], expected), rtol=1e-12)
    minus_laplacian_f = basis.apply_diagonal(f, lam)
    assert torch.allclose(minus_laplacian_f, expected * f, atol=1e-9 * expected)


def test_sphere_eigenvalues_on_known_harmonics():
    basis, grid = SphereBasis(), (16, 32)
    from torch_harmonics.quadrature import legendre_gauss_weights

    cost, _ = legendre_gauss_weights(16, -1, 1)
    cos_theta = torch.flip(torch.as_tensor(cost, dtype=torch.float64), (0,))[:, None]
    phi = torch.arange(32, dtype=torch.float64)[None, :] * 2 * math.pi / 32
    sin_theta = (1 - cos_theta**2).sqrt()
    lam = basis.eigenvalues(grid)
    for field, degree in [(cos_theta.expand(16, 32), 1), (sin_theta * torch.cos(phi), 1), (3 * cos_theta**2 - 1 + 0 * phi, 2),
                          (sin_theta**2 * torch.sin(2 * phi), 2)]:
        c = basis.forward(field)
        support = c.abs() > 1e-10
        assert torch.all(lam[support] == degree * (degree + 1))
        assert torch.allclose(basis.inverse(c, grid), field, atol=1e-12)


@pytest.mark.parametrize("basis,grid", ALL_CASES, ids=IDS)
def test_quadrature_integrates_constants_and_low_modes(basis, grid):
    volume = 4 * math.pi if isinstance(basis, SphereBasis) else math.prod(basis.lengths)
    one = torch.ones(grid, dtype=torch.float64)
    if isinstance(basis, DirichletBasis):  # the trapezoid rule with zero walls: second order
        exact = math.prod(2 * L / math.pi for L in basis.lengths)  # ∫ Π sin(π x_i / L_i)
        fine = tuple(2 * n + 1 for n in grid)  # halves the spacing L/(n+1)
        errors = [abs(basis.integrate(_eigenfunction(basis, g, [1] * basis.ndim)).item() - exact) for g in (grid, fine)]
        assert errors[0] / errors[1] == pytest.approx(4.0, rel=0.05)
    else:
        assert basis.integrate(one).item() == pytest.approx(volume, rel=1e-12)


@pytest.mark.parametrize("basis,grid", ALL_CASES, ids=IDS)
def test_resampling_up_then_down_is_identity_and_keeps_low_coefficients(basis, grid):
    x = _field(basis, grid)
    fine = tuple(2 * n for n in grid) if not isinstance(basis, SphereBasis) else (2 * grid[0], 4 * grid[0])
    up = basis.resample(x, fine)
    assert up.shape == (3, 2, *fine)
    assert torch.allclose(basis.resample(up, grid), x, atol=1e-10)
    # coefficients resolved by both grids are kept (Nyquist bins of the periodic box are split/folded)
    c_coarse, c_fine = basis.forward(x), basis.forward(up)
    lam_c, lam_f = basis.eigenvalues(grid), basis.eigenvalues(fine)
    low = 0.25 * lam_c.max()
    keep_c = (lam_c < low) & (basis.multiplicity(grid) > 0)
    keep_f = (lam_f < low) & (basis.multiplicity(fine) > 0)
    assert torch.allclose(
        torch.sort(c_coarse[..., keep_c].abs().flatten()).values,
        torch.sort(c_fine[..., keep_f].abs().flatten()).values,
        atol=1e-10,
    )


def test_resampling_a_band_limited_field_is_exact_interpolation():
    basis = PeriodicBasis(2)
    def f(n):
        x = torch.arange(n, dtype=torch.float64) / n
        return (torch.sin(2 * math.pi * 3 * x)[:, None] * torch.cos(2 * math.pi * 2 * x)[None, :] + torch.cos(2 * math.pi * x)[None, :])
    assert torch.allclose(basis.resample(f(16), 48), f(48), atol=1e-12)
    assert torch.allclose(basis.resample(f(48), 16), f(16), atol=1e-12)
    neumann = NeumannBasis(1)
    xc = lambda n: (torch.arange(n, dtype=torch.float64) + 0.5) / n
    g = lambda n: torch.cos(math.pi * 3 * xc(n)) + 0.5
    assert torch.allclose(neumann.resample(g(16), 40), g(40), atol=1e-12)


def test_norms_are_grid_independent():
    basis = NeumannBasis(2)
    x = _field(basis, (16, 16))
    for n in (32, 64):
        assert torch.allclose(basis.norm(basis.resample(x, n)), basis.norm(x), rtol=1e-10)


def test_equiangular_sphere_is_inexact_as_documented():
    """Clenshaw–Curtis nodes do not integrate products of harmonics exactly (documented in SphereBasis);
    Legendre–Gauss does."""
    grid = (17, 34)
    c = torch.randn(2, 17, 17, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    errors = {}
    for kind in ("legendre-gauss", "equiangular"):
        basis = SphereBasis(grid_type=kind)
        cc = c * basis.multiplicity(grid).clamp_max(1)
        cc[..., 0] = cc[..., 0].real
        errors[kind] = ((basis.forward(basis.inverse(cc, grid)) - cc).abs().max() / cc.abs().max()).item()
    assert errors["legendre-gauss"] < 1e-12
    assert 1e-3 < errors["equiangular"] < 1.0


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: PeriodicBasis(2).grid((8,)), "has 1 axes"),
        (lambda: PeriodicBasis(2).forward(torch.zeros(4)), "trailing grid axes"),
        (lambda: PeriodicBasis(1).grid(1), "too small"),
        (lambda: SphereBasis().grid((8, 8)), "nlon"),
        (lambda: PeriodicBasis(2, lengths=(1.0,)), "one per dimension"),
        (lambda: SphereBasis(grid_type="healpix"), "grid_type"),
    ],
)
def test_bad_input_is_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()
