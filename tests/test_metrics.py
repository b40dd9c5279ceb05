"""Tests of the evaluation metrics: closed forms, Parseval, test level and power, reference implementations."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from hilbert_diffusion import DirichletBasis, GaussianRandomField, Matern, NeumannBasis, PeriodicBasis, SphereBasis
from hilbert_diffusion.metrics import (
    empirical_mode_variances,
    gaussian_w2,
    mean_confidence_interval,
    mmd_test_power,
    psnr,
    radial_spectrum,
    relative_l2,
    spectrum_error,
    ssim,
)

F64 = torch.float64


def _box_coordinates(n: int, ndim: int, basis) -> list[torch.Tensor]:
    """Grid coordinates of the basis' grid on the unit box."""
    if isinstance(basis, PeriodicBasis):
        axis = torch.arange(n, dtype=F64) / n
    elif isinstance(basis, NeumannBasis):
        axis = (torch.arange(n, dtype=F64) + 0.5) / n
    else:
        axis = torch.arange(1, n + 1, dtype=F64) / (n + 1)
    return list(torch.meshgrid(*[axis] * ndim, indexing="ij"))


# ------------------------------------------------------------------------------------------ spectra
@pytest.mark.parametrize(
    ("basis", "mode", "shell", "energy"),
    [
        # 2 cos(2π(3x + 4y)): |k| = 5, ‖f‖² = 4 · ½
        (PeriodicBasis(ndim=2), lambda X, Y: 2 * torch.cos(2 * math.pi * (3 * X + 4 * Y)), 5, 2.0),
        # 2 sin(2π(6x - 8y)): |k| = 10
        (PeriodicBasis(ndim=2), lambda X, Y: 2 * torch.sin(2 * math.pi * (6 * X - 8 * Y)), 10, 2.0),
        # cos(3πx) cos(4πy): κ = 5, ‖f‖² = ¼
        (NeumannBasis(ndim=2), lambda X, Y: torch.cos(3 * math.pi * X) * torch.cos(4 * math.pi * Y), 5, 0.25),
        # 3 sin(6πx) sin(8πy): κ = 10, ‖f‖² = 9/4
        (DirichletBasis(ndim=2), lambda X, Y: 3 * torch.sin(6 * math.pi * X) * torch.sin(8 * math.pi * Y), 10, 2.25),
    ],
)
def test_single_mode_lands_in_its_shell_at_every_resolution(basis, mode, shell, energy):
    spectra = []
    for n in (32, 128):
        x = mode(*_box_coordinates(n, 2, basis))[None, None]
        k, e = radial_spectrum(x, basis)
        assert k[shell] == shell  # integer |k| on the unit box
        assert e[shell] == pytest.approx(energy, rel=1e-12)
        assert e.sum() == pytest.approx(energy, rel=1e-12)  # nothing leaks to other shells
        spectra.append(e)
    e32, e128 = spectra
    assert torch.allclose(e32, e128[: len(e32)], atol=1e-12)


def test_shell_index_is_the_wavenumber_norm():
    basis = PeriodicBasis(ndim=2)
    n = 32
    X, Y = _box_coordinates(n, 2, basis)
    x = (torch.cos(2 * math.pi * (3 * X + 4 * Y)) + torch.cos(2 * math.pi * 2 * X))[None, None]
    k, e = radial_spectrum(x, basis)
    assert torch.nonzero(e > 1e-10).flatten().tolist() == [2, 5]
    # a domain of length 2: the same integer mode numbers, wavenumbers halved
    wide = PeriodicBasis(ndim=2, lengths=2.0)
    k2, e2 = radial_spectrum(x, wide)
    assert torch.nonzero(e2 > 1e-10).flatten().tolist() == [2, 5]
    assert k2[5] == pytest.approx(2.5) and e2[5] == pytest.approx(4 * 0.5)  # ‖f‖² scales with the area


def test_sphere_spectrum_is_per_degree():
    from torch_harmonics.quadrature import legendre_gauss_weights

    basis = SphereBasis()
    spectra = []
    for nlat in (8, 16):
        z, _ = legendre_gauss_weights(nlat, -1.0, 1.0)
        z = torch.as_tensor(z, dtype=F64)[:, None]  # cos θ (symmetric fields: node order does not matter)
        lon = 2 * math.pi * torch.arange(2 * nlat, dtype=F64)[None, :] / (2 * nlat)
        x = (1.5 * z**2 - 0.5) + (1 - z**2) * torch.cos(2 * lon)  # P₂(cos θ) + sin²θ cos 2φ: degree 2
        k, e = radial_spectrum(x[None, None], basis)
        assert e[2] == pytest.approx(4 * math.pi / 5 + 16 * math.pi / 15, rel=1e-10)
        assert e.sum() == pytest.approx(float(e[2]), rel=1e-10)
        assert len(k) == nlat
        spectra.append(e)
    assert torch.allclose(spectra[0], spectra[1][:8], atol=1e-10)


@pytest.mark.parametrize(
    ("basis", "resolution"),
    [(PeriodicBasis(ndim=2), 24), (PeriodicBasis(ndim=1), 33), (NeumannBasis(ndim=2), 20),
     (DirichletBasis(ndim=1), 40), (SphereBasis(), 12)],
)
def test_parseval_spectrum_sums_to_norm(basis, resolution):
    grf = GaussianRandomField(basis, Matern(alpha=1.5, tau=4.0))
    x = grf.sample(3, resolution, channels=2, generator=torch.Generator().manual_seed(1), dtype=F64)
    _, e = radial_spectrum(x, basis, partial_shells=True)
    norm2 = basis.norm(x).pow(2).sum(1).mean()
    assert float(e.sum()) == pytest.approx(float(norm2), rel=1e-10)


@pytest.mark.parametrize(("basis", "complete"), [(PeriodicBasis(ndim=2), 16), (NeumannBasis(ndim=2), 32), (DirichletBasis(ndim=2), 33)])
def test_complete_shells_agree_across_grids(basis, complete):
    """A field on 128² and its band-limited restriction to 32² agree on every complete shell of 32²."""
    grf = GaussianRandomField(basis, Matern(alpha=1.2, tau=20.0))
    fine = grf.sample(2, 128, generator=torch.Generator().manual_seed(2), dtype=F64)
    coarse = basis.resample(fine, 32)
    k32, e32 = radial_spectrum(coarse, basis)
    k128, e128 = radial_spectrum(fine, basis)
    assert len(k32) == complete
    assert torch.allclose(e32, e128[:complete], rtol=1e-10, atol=0)
    # the periodic Nyquist shell 16 (aliased ±16, box corners missing) would not agree: it is excluded
    if isinstance(basis, PeriodicBasis):
        _, partial = radial_spectrum(coarse, basis, partial_shells=True)
        assert not math.isclose(float(partial[16]), float(e128[16]), rel_tol=1e-3)


def test_spectrum_error_definition():
    k = torch.arange(10, dtype=F64)
    e = torch.rand(10, generator=torch.Generator().manual_seed(0), dtype=F64) + 0.1
    assert spectrum_error((k, e), (k, e), kmax=9) == 0.0
    assert spectrum_error((k, 3 * e), (k, e), kmax=9) == pytest.approx(math.log(3))
    # only the shared band counts: a coarse spectrum (shells 0..5) against the fine one
    fine = e.clone()
    fine[6:] *= 100
    assert spectrum_error((k[:6], e[:6]), (k, fine), kmax=5) == pytest.approx(0.0, abs=1e-15)
    bumped = e.clone()
    bumped[2] *= math.e  # one shell of four in the band 1..4 off by a factor e
    assert spectrum_error((k, bumped), (k, e), kmax=4) == pytest.approx(math.sqrt(1 / 4))
    with pytest.raises(ValueError, match="kmax"):
        spectrum_error((k[:6], e[:6]), (k, e), kmax=7)


def test_radial_spectrum_rejects_wrong_rank():
    with pytest.raises(ValueError, match="batch, channels"):
        radial_spectrum(torch.zeros(16, 16), PeriodicBasis(ndim=2))


# ------------------------------------------------------------------------------------------- MMD
def _hdm_reference(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """HDM's K_ID + MMD_K, written out with numpy loops: (bandwidth, unbiased MMD²)."""
    z = np.vstack([x, y])
    n_obs = z.shape[1]
    d = np.array([[np.linalg.norm(a - b) for b in z] for a in z]) / np.sqrt(n_obs)
    gamma = np.median(d[d > 0])
    k = np.exp(-0.5 * d**2 / gamma**2)
    m, n = len(x), len(y)
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    mmd = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean()
    return gamma, mmd


def _quadratic(num: int, generator: torch.Generator, *, sign_prob: float = 0.5) -> torch.Tensor:
    """HDM's Quadratic curves: a·x² + ε on 100 points of [-10, 10], a = ±1, ε ~ N(0, 1) per curve, /50."""
    x = torch.linspace(-10, 10, 100, dtype=F64)
    a = torch.where(torch.rand(num, 1, generator=generator, dtype=F64) < sign_prob, 1.0, -1.0)
    eps = torch.randn(num, 1, generator=generator, dtype=F64)
    return ((a * x**2 + eps) / 50)[:, None, :]


def test_mmd_statistic_and_bandwidth_match_hdm_formula():
    g = torch.Generator().manual_seed(3)
    gen, real = _quadratic(30, g), _quadratic(30, g, sign_prob=0.8)
    result = mmd_test_power(gen, real, sample_size=10, n_permutations=50, generator=g)
    assert result.statistics.shape == (3,) and result.p_values.shape == (3,)
    for t in range(3):
        block = slice(10 * t, 10 * t + 10)
        gamma, mmd = _hdm_reference(gen[block, 0].numpy(), real[block, 0].numpy())
        assert float(result.bandwidths[t]) == pytest.approx(gamma, rel=1e-12)
        assert float(result.statistics[t]) == pytest.approx(mmd, rel=1e-10, abs=1e-14)


def test_mmd_test_has_level_alpha_under_the_null():
    g = torch.Generator().manual_seed(4)
    gen, real = _quadratic(4000, g), _quadratic(4000, g)
    result = mmd_test_power(gen, real, sample_size=10, n_permutations=500, generator=g)
    n = len(result.p_values)
    assert n == 400
    # rejection rate ~ Binomial(400, 0.05)/400: sd 1.09 percentage points; 4 sd
    assert abs(result.power - 5.0) < 4.4
    # permutation p-values are uniform under exchangeability: mean ½ (sd 0.29/sqrt(400) ≈ 0.014)
    assert abs(float(result.p_values.mean()) - 0.5) < 0.06
    assert result.rejected.dtype == torch.bool


def test_mmd_test_detects_a_different_law():
    g = torch.Generator().manual_seed(5)
    # Gaussian fields with a four times shorter correlation length (and the same high-frequency tail)
    basis = PeriodicBasis(ndim=1)
    real = GaussianRandomField(basis, Matern(alpha=1.5, tau=5.0)).sample(1000, 64, generator=g, dtype=F64)
    rough_law = Matern(alpha=1.5, tau=20.0, scale=(5 / 20) ** 3)
    rough = GaussianRandomField(basis, rough_law).sample(1000, 64, generator=g, dtype=F64)
    assert mmd_test_power(rough, real, sample_size=10, generator=g).power > 95
    # mode collapse on Quadratic (every curve opens upward): 10 vs 10 misses it whenever the ten real
    # curves happen to be mostly upward; the strict 100 vs 100 test always sees it
    quadratic, collapsed = _quadratic(1000, g), _quadratic(1000, g, sign_prob=1.0)
    weak = mmd_test_power(collapsed, quadratic, sample_size=10, generator=g)
    strict = mmd_test_power(collapsed, quadratic, sample_size=100, generator=g)
    assert 40 < weak.power < 100
    assert strict.power == 100.0 and len(strict.p_values) == 10


def test_mmd_permutations_are_vectorised():
    g = torch.Generator().manual_seed(6)
    gen, real = _quadratic(1000, g), _quadratic(1000, g)
    mmd_test_power(gen[:20], real[:20], generator=g)  # warm up
    start = time.perf_counter()
    result = mmd_test_power(gen, real, sample_size=10, n_permutations=1000, generator=g)
    elapsed = time.perf_counter() - start
    assert len(result.p_values) == 100
    assert elapsed < 5.0  # ~0.2 s on one core; a Python loop over 10⁵ permutations takes far longer


def test_mmd_bad_input():
    x = torch.zeros(20, 1, 100)
    with pytest.raises(ValueError, match="same grid"):
        mmd_test_power(x, torch.zeros(20, 1, 50))
    with pytest.raises(ValueError, match="n_tests"):
        mmd_test_power(x, x, n_tests=3, sample_size=10)
    with pytest.raises(ValueError, match="identical"):
        mmd_test_power(x, x, sample_size=10)


def test_mean_confidence_interval_student_t():
    values = [4.0, 6.0, 5.0, 7.0, 3.0]
    mean, half = mean_confidence_interval(values)
    # t_{0.975, 4} = 2.776445105...; s = sqrt(2.5)
    assert mean == pytest.approx(5.0)
    assert half == pytest.approx(2.7764451051977987 * math.sqrt(2.5) / math.sqrt(5), rel=1e-9)
    with pytest.raises(ValueError, match="2 repetitions"):
        mean_confidence_interval([1.0])


# -------------------------------------------------------------------------------------- Gaussian W2
def test_w2_one_dimensional_hand_computation():
    # N(1, 4) vs N(3, 1): W2² = (1 - 3)² + (2 - 1)² = 5
    w = gaussian_w2(torch.tensor([1.0]), torch.tensor([4.0]), torch.tensor([3.0]), torch.tensor([1.0]), torch.ones(1))
    assert float(w) == pytest.approx(math.sqrt(5.0))
    # a complex coefficient standing for two real coordinates counts twice
    w2 = gaussian_w2(torch.tensor([1 + 1j]), torch.tensor([4.0]), torch.tensor([0j]), torch.tensor([1.0]), torch.full((1,), 2.0))
    assert float(w2) ** 2 == pytest.approx(2 * (2 + 1))


@pytest.mark.parametrize("basis", [PeriodicBasis(ndim=1), NeumannBasis(ndim=1)])
def test_w2_matches_dense_gelbrich_formula(basis):
    """W2 by modes equals the trace formula for the grid-space Gaussians in the quadrature L² norm."""
    n = 12
    grid = basis.grid(n)
    lam = basis.eigenvalues(grid)
    qa, qb = Matern(alpha=1.0, tau=3.0)(lam), Matern(alpha=2.0, tau=6.0, scale=2.0)(lam)
    w = basis.weights(grid)
    eye = torch.eye(n, dtype=F64)

    def grid_covariance(q: torch.Tensor) -> torch.Tensor:
        # columns: Q δ_j / w_j; x = Q^½ (white noise with covariance diag(1/w))
        return basis.apply_diagonal(eye / w, q).T

    def sqrtm(a: torch.Tensor) -> torch.Tensor:
        val, vec = torch.linalg.eigh((a + a.T) / 2)
        return vec @ torch.diag(val.clamp_min(0).sqrt()) @ vec.T

    # Gaussians on the grid with means in the basis; whiten the quadrature norm: y = sqrt(w) x
    mean_b = torch.sin(2 * math.pi * torch.arange(n, dtype=F64) / n) + 0.3
    sw = torch.diag(w.sqrt())
    a, b = sw @ grid_covariance(qa) @ sw, sw @ grid_covariance(qb) @ sw
    ra = sqrtm(a)
    dense2 = float((w * mean_b**2).sum() + torch.trace(a + b - 2 * sqrtm(ra @ b @ ra)))
    cb = basis.forward(mean_b)
    mode = gaussian_w2(torch.zeros_like(cb), qa, cb, qb, basis.multiplicity(grid))
    assert float(mode) ** 2 == pytest.approx(dense2, rel=1e-8)


def test_empirical_mode_variances_recover_the_spectrum():
    basis = PeriodicBasis(ndim=2)
    spectrum = Matern(alpha=2.0, tau=5.0)
    x = GaussianRandomField(basis, spectrum).sample(2000, 8, generator=torch.Generator().manual_seed(7), dtype=F64)
    mean, var = empirical_mode_variances(x, basis)
    grid = basis.grid(8)
    q = spectrum(basis.eigenvalues(grid))
    m = basis.multiplicity(grid)
    assert mean.shape == var.shape == (1, *basis.coefficient_shape(grid))
    # relative sd of a variance estimate from 2000 samples: sqrt(2/2000) (real) or sqrt(1/2000) (complex)
    assert torch.allclose(var[0], q, rtol=0.15)
    assert (mean.abs()[0] ** 2 < 25 * q / 2000).all()
    # the empirical W2 to the true law is small next to W2 to a different law
    near = float(gaussian_w2(mean, var, torch.zeros_like(mean), q, m))
    far = float(gaussian_w2(mean, var, torch.zeros_like(mean), 2 * q, m))
    assert near < 0.1 * far


# -------------------------------------------------------------------------------------- PSNR / SSIM
def _image_pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = GaussianRandomField(NeumannBasis(ndim=2), Matern(alpha=2.0, tau=8.0)).sample(3, (24, 30), channels=2, generator=g, dtype=F64)
    x = ref + 0.2 * torch.randn(ref.shape, generator=g, dtype=F64) * ref.std()
    return x, ref


def test_psnr_and_ssim_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    x, ref = _image_pair(8)
    data_range = float(ref.max() - ref.min())
    p, s = psnr(x, ref, data_range=data_range), ssim(x, ref, data_range=data_range)
    assert p.shape == s.shape == (3,)
    for i in range(3):
        xi, ri = x[i].numpy(), ref[i].numpy()
        assert float(p[i]) == pytest.approx(peak_signal_noise_ratio(ri, xi, data_range=data_range), rel=1e-10)
        expected = structural_similarity(
            ri, xi, data_range=data_range, channel_axis=0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        assert float(s[i]) == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(ssim(ref, ref, data_range=data_range), torch.ones(3, dtype=F64))
    assert torch.isinf(psnr(ref, ref, data_range=data_range)).all()


def test_posterior_mean_psnr_removes_the_finite_number_of_draws():
    """K = 8 draws ``m + ε`` (ε white, std 0.1) of a posterior whose mean ``m`` misses the truth by white noise of std
    0.05: their average scores 1.8 dB below ``m`` (``10 log10(1 + 0.1² / 8 / 0.05²)``); (M1) recovers ``m``'s PSNR to
    0.15 dB (its standard error is about 0.05 dB on 128² pixels)."""
    from hilbert_diffusion.metrics import posterior_mean_psnr

    g = torch.Generator().manual_seed(3)
    truth = torch.rand(5, 1, 128, 128, generator=g, dtype=F64)
    m = truth + 0.05 * torch.randn(truth.shape, generator=g, dtype=F64)
    draws = m[:, None] + 0.1 * torch.randn(5, 8, 1, 128, 128, generator=g, dtype=F64)
    exact = psnr(m, truth, data_range=1.0)
    assert (psnr(draws.mean(1), truth, data_range=1.0) < exact - 1.5).all()
    assert torch.allclose(posterior_mean_psnr(draws, truth, data_range=1.0), exact, atol=0.15, rtol=0)
    with pytest.raises(ValueError, match="K ≥ 2"):
        posterior_mean_psnr(draws[:, :1], truth, data_range=1.0)
    with pytest.raises(ValueError, match="num, K, channels"):
        posterior_mean_psnr(draws[0], truth, data_range=1.0)


def test_image_metrics_bad_input():
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match="11"):
        ssim(x, x, data_range=1.0)
    with pytest.raises(ValueError, match="num, channels, height, width"):
        psnr(x[0], x[0], data_range=1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(x, x, data_range=0.0)


# ------------------------------------------------------------------------------------------ rel. L²
def test_relative_l2_is_grid_independent():
    basis = PeriodicBasis(ndim=1)
    errors = []
    for n in (16, 256):
        s = torch.arange(n, dtype=F64) / n
        ref = (torch.sin(2 * math.pi * s) + 1.0)[None, None]  # ‖ref‖² = ½ + 1
        x = ref + 0.5 * torch.cos(4 * math.pi * s)  # ‖x - ref‖² = ⅛
        errors.append(float(relative_l2(x, ref, basis)[0]))
    assert errors[0] == pytest.approx(math.sqrt(0.125 / 1.5), rel=1e-12)
    assert errors[1] == pytest.approx(errors[0], rel=1e-12)
    # broadcast a single reference against several samples; Dirichlet weights are not 1/n
    d = DirichletBasis(ndim=1)
    ref = torch.sin(math.pi * torch.arange(1, 32, dtype=F64) / 32)[None, None]
    out = relative_l2(torch.cat([ref, 2 * ref, 0 * ref]), ref, d)
    assert torch.allclose(out, torch.tensor([0.0, 1.0, 1.0], dtype=F64), atol=1e-12)


def test_relative_l2_bad_input():
    basis = PeriodicBasis(ndim=1)
    with pytest.raises(ValueError, match="broadcast"):
        relative_l2(torch.ones(2, 1, 16), torch.ones(3, 1, 16), basis)
    with pytest.raises(ValueError, match="zero norm"):
        relative_l2(torch.ones(2, 1, 16), torch.zeros(1, 1, 16), basis)
