"""Datasets: the laws they claim (Quadratic, GRF spectra, FNO initial vorticity), the Navier–Stokes
solver against exact solutions and its convergence order, the user-file loaders and the cache."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from hilbert_diffusion.bases import DirichletBasis, NeumannBasis, PeriodicBasis, SphereBasis
from hilbert_diffusion.datasets import (
    CACHE_ENV,
    FNO_INITIAL_VORTICITY,
    FieldDataset,
    VorticitySolver,
    cached_tensor,
    default_cache_dir,
    fno_forcing,
    fno_initial_vorticity,
    from_array,
    from_spec,
    gaussian_random_fields,
    grid_coordinates,
    load_array,
    load_images,
    navier_stokes,
    quadratic,
    quadratic_curves,
    shallow_water,
    sorted_uniform_points,
    sphere_random_fields,
)
from hilbert_diffusion.datasets.cache import spec_key
from hilbert_diffusion.noise import Matern, SquaredExponential, WhiteNoise

# ----------------------------------------------------------------------------- Quadratic


def _recover_quadratic(ds: FieldDataset) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-curve ``a`` and ``ε`` from ``50 y = a x² + ε`` (two points), and the residual."""
    x = ds.coordinates[..., 0]
    y = 50 * ds.data[:, 0].double()
    a = (y[:, 0] - y[:, x.numel() // 2]) / (x[0] ** 2 - x[x.numel() // 2] ** 2)
    eps = y[:, 0] - a * x[0] ** 2
    residual = y - (a[:, None] * x**2 + eps[:, None])
    return a, eps, residual


def test_quadratic_law():
    ds = quadratic(seed=3)
    assert ds.data.shape == (1000, 1, 100) and ds.data.dtype == torch.float32
    assert isinstance(ds.basis, NeumannBasis) and ds.basis.lengths == (20.0,)
    a, eps, residual = _recover_quadratic(ds)
    # every curve is exactly (a x² + ε)/50 with a = ±1 and ε constant along the curve
    assert torch.allclose(a.abs(), torch.ones_like(a), atol=1e-4)
    assert residual.abs().max() < 1e-3
    # a = ±1 with probability 1/2: binomial(1000, 1/2) within 4 standard deviations (±63)
    assert abs(int((a > 0).sum()) - 500) < 4 * math.sqrt(250)
    # ε ~ N(0, 1): sample mean within 4/sqrt(n), sample variance within 4·sqrt(2/n) of 1
    assert abs(eps.mean().item()) < 4 / math.sqrt(1000)
    assert abs(eps.var().item() - 1.0) < 4 * math.sqrt(2 / 1000)


def test_quadratic_grids_and_resolutions():
    # HDM's points: linspace(-10, 10, n), read as cell centres of a longer Neumann interval
    hdm = quadratic(50, 100, endpoints=True, seed=0)
    assert torch.allclose(hdm.coordinates[:, 0], torch.linspace(-10, 10, 100, dtype=torch.float64), atol=1e-12)
    assert hdm.basis.lengths[0] == pytest.approx(20 * 100 / 99)
    # the default cell-centred grid: x_j = -10 + (j + 1/2) 20/n, the same curves at every resolution
    coarse, fine = quadratic(50, 50, seed=7), quadratic(50, 400, seed=7)
    assert torch.allclose(fine.coordinates[:2, 0], torch.tensor([-10 + 0.025, -10 + 0.075], dtype=torch.float64))
    (a1, e1, _), (a2, e2, _) = _recover_quadratic(coarse), _recover_quadratic(fine)
    assert torch.allclose(a1, a2, atol=1e-4) and torch.allclose(e1, e2, atol=1e-3)
    # irregular sorted points: same law, rows sorted inside [-10, 10]
    pts = sorted_uniform_points(20, 30, generator=torch.Generator().manual_seed(0))
    assert (pts.diff(dim=-1) >= 0).all() and pts.min() >= -10 and pts.max() <= 10
    curves = quadratic_curves(pts, generator=torch.Generator().manual_seed(0))
    y = 50 * curves[:, 0].double()
    a = (y[:, -1] - y[:, 0]) / (pts[:, -1] ** 2 - pts[:, 0] ** 2)
    assert torch.allclose(a.abs(), torch.ones_like(a), atol=1e-3)


# ----------------------------------------------------------------------------- Gaussian random fields


@pytest.mark.parametrize(
    "basis, resolution",
    [(PeriodicBasis(2), 12), (NeumannBasis(1), 24), (DirichletBasis(2), 6), (SphereBasis(), 8)],
)
def test_grf_per_mode_variance(basis, resolution):
    spectrum = Matern(alpha=2.0, tau=3.0)
    n = 4000
    ds = gaussian_random_fields(n, resolution, spectrum=spectrum, basis=basis, seed=1)
    grid = ds.grid
    coeff = basis.forward(ds.data.double())
    ratio = (coeff.abs() ** 2).mean(dim=(0, 1)) / spectrum(basis.eigenvalues(grid))
    if isinstance(basis, SphereBasis):  # only m ≤ l exist
        ratio = ratio[basis._valid(grid).bool()]
    # E|c_k|² = q(λ_k); each estimate is a mean of n (scaled) χ² draws: sd ≤ sqrt(2/n) ≈ 0.022
    assert (ratio - 1).abs().max() < 5 * math.sqrt(2 / n)
    assert abs(ratio.mean().item() - 1) < 0.02


def test_grf_spec_rebuilds_and_rejects_white_noise():
    ds = gaussian_random_fields(5, (8, 12), spectrum=SquaredExponential(0.2), basis=NeumannBasis(2), channels=2, seed=4)
    assert ds.data.shape == (5, 2, 8, 12)
    again = from_spec(ds.spec)
    assert torch.equal(again.data, ds.data) and again.basis == ds.basis
    assert not torch.equal(gaussian_random_fields(5, 8, seed=5).data, gaussian_random_fields(5, 8, seed=6).data)
    with pytest.raises(ValueError, match="trace-class"):
        gaussian_random_fields(2, 8, spectrum=WhiteNoise())


def test_sphere_random_fields_and_coordinates():
    ds = sphere_random_fields(3, 8, seed=2)
    assert ds.data.shape == (3, 1, 8, 16) and isinstance(ds.basis, SphereBasis)
    theta, phi = ds.coordinates[..., 0], ds.coordinates[..., 1]
    assert (theta[1:, 0] > theta[:-1, 0]).all() and 0 < theta.min() and theta.max() < math.pi
    assert torch.allclose(phi[0], 2 * math.pi * torch.arange(16, dtype=torch.float64) / 16)
    # Legendre–Gauss colatitudes integrate cos θ exactly: ∫ cos θ dS = 0 and ∫ cos² θ dS = 4π/3
    w = ds.basis.weights(ds.grid)
    assert abs((w * torch.cos(theta)).sum().item()) < 1e-12
    assert (w * torch.cos(theta) ** 2).sum().item() == pytest.approx(4 * math.pi / 3, rel=1e-12)


# ----------------------------------------------------------------------------- Navier–Stokes


def _grid_xy(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float64) / n
    return x[:, None].expand(n, n), x[None, :].expand(n, n)


def test_fno_initial_vorticity_law_and_forcing():
    # FNO's GaussianRF(alpha, tau): E|c_k|² = σ² (4π²|k|² + τ²)^(-α), σ = τ^((2α - 2)/2)
    lam = torch.linspace(0, 1e4, 50, dtype=torch.float64)
    fno = (7.0 ** (2.5 - 1)) ** 2 * (lam + 49.0) ** (-2.5)
    assert torch.allclose(FNO_INITIAL_VORTICITY(lam), fno, rtol=1e-12)
    w = fno_initial_vorticity(2000, 8, seed=0, dtype=torch.float64)
    assert w.mean(dim=(-2, -1)).abs().max() < 1e-12  # zero mean mode
    basis = PeriodicBasis(2)
    ratio = (basis.forward(w).abs() ** 2).mean(0) / FNO_INITIAL_VORTICITY(basis.eigenvalues((8, 8)))
    assert (ratio.flatten()[1:] - 1).abs().max() < 5 * math.sqrt(2 / 2000)
    # field i depends only on (seed, i): a slice of a larger draw is the same draw
    assert torch.equal(fno_initial_vorticity(3, 8, seed=0, first=2, dtype=torch.float64), w[2:5])
    # forcing 0.1 (sin 2π(x+y) + cos 2π(x+y)): one stored Fourier coefficient, k = (1, 1)
    n = 16
    f_hat = torch.fft.rfft2(fno_forcing(n)) / n**2
    expected = torch.zeros_like(f_hat)
    expected[1, 1] = 0.1 * (0.5 - 0.5j)
    assert torch.allclose(f_hat, expected, atol=1e-15)


def test_taylor_green_decay_exact():
    """Unforced Taylor–Green-type state: ω in one Laplacian eigenspace (|k|² = 25: modes (3, 4) and
    (5, 0)), so u·∇ω ≡ 0 and ω(t) = exp(-ν λ t) ω(0) exactly."""
    n, nu, horizon, h = 32, 1e-2, 0.2, 2e-3
    x, y = _grid_xy(n)
    w0 = torch.sin(2 * math.pi * (3 * x)) * torch.cos(2 * math.pi * (4 * y)) + 0.5 * torch.cos(2 * math.pi * 5 * x)
    solver = VorticitySolver(resolution=n, viscosity=nu, time_step=h)
    assert solver.advection(torch.fft.rfft2(w0)).abs().max() < 1e-10 * torch.fft.rfft2(w0).abs().max()
    w = solver.solve(w0[None], horizon=horizon)[0]
    lam = 4 * math.pi**2 * 25
    steps = round(horizon / h)
    cn = ((1 - 0.5 * h * nu * lam) / (1 + 0.5 * h * nu * lam)) ** steps  # the scheme's own factor
    assert torch.allclose(w, cn * w0, atol=1e-12)
    exact = math.exp(-nu * lam * horizon) * w0
    # CN's error for ẏ = -μy: μ³ h² T / 12 (relative) ≈ 3e-4 here
    assert (w - exact).abs().max() / exact.abs().max() < (nu * lam) ** 3 * h**2 * horizon / 12 * 1.5


def test_forced_eigenmode_exact():
    """With FNO's forcing and ω(0) in the same eigenspace (|k|² = 2), the flow stays there and
    ω(t) = e^(-νλt) ω(0) + (1 - e^(-νλt)) f / (νλ)."""
    n, nu, horizon = 32, 1e-3, 5.0
    x, y = _grid_xy(n)
    w0 = torch.cos(2 * math.pi * (x - y))
    f = fno_forcing(n)
    h = 0.02
    w = VorticitySolver(resolution=n, viscosity=nu, time_step=h).solve(w0[None], horizon=horizon, forcing=f)[0]
    mu = nu * 8 * math.pi**2
    exact = math.exp(-mu * horizon) * w0 + (1 - math.exp(-mu * horizon)) / mu * f
    # only the CN time error μ³ h² T / 12 (relative to the decaying part ω(0) - f/μ) remains: ≈ 2e-7
    bound = mu**3 * h**2 * horizon / 12 * (w0 - f / mu).abs().max()
    assert (w - exact).abs().max() < 1.5 * bound
    assert bound < 1e-6


def test_dealiasing_is_exact_projection():
    """For ω band-limited to |k| ≤ K, the dealiased pseudo-spectral term equals the exact product
    (computed alias-free on a 2N grid) projected onto |k| ≤ K; without the mask, aliases appear."""
    n = 24
    solver = VorticitySolver(resolution=n, viscosity=0.0)
    K = solver.cutoff
    assert 3 * K < n
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(2, n, n, dtype=torch.float64, generator=gen)
    kx = torch.fft.fftfreq(n, 1 / n)[:, None].abs()
    ky = torch.fft.rfftfreq(n, 1 / n)[None, :]
    band = (kx <= K) & (ky <= K)
    w_hat = torch.fft.rfft2(w) * band
    fine = VorticitySolver(resolution=2 * n, viscosity=0.0, dealias=False)
    w_fine = PeriodicBasis(2).resample(torch.fft.irfft2(w_hat, s=(n, n)), 2 * n)
    exact_fine = fine.advection(torch.fft.rfft2(w_fine))  # no aliasing: the product has |k| ≤ 2K < N
    exact = PeriodicBasis(2).resample(torch.fft.irfft2(exact_fine, s=(2 * n, 2 * n)), n)  # back to N (|k| ≤ N/2)
    projected = torch.fft.rfft2(exact) * band
    assert torch.allclose(solver.advection(w_hat), projected, atol=1e-10 * projected.abs().max())
    aliased = VorticitySolver(resolution=n, viscosity=0.0, dealias=False).advection(w_hat)
    assert (aliased - torch.fft.rfft2(exact)).abs().max() > 1e-3 * projected.abs().max()


def _energy_enstrophy(w: torch.Tensor) -> tuple[float, float]:
    w_hat = torch.fft.fft2(w) / w.shape[-1] ** 2
    k = torch.fft.fftfreq(w.shape[-1], 1 / w.shape[-1], dtype=torch.float64)
    lam = 4 * math.pi**2 * (k[:, None] ** 2 + k[None, :] ** 2)
    lam[0, 0] = math.inf
    return float((w_hat.abs() ** 2 / lam).sum()), float((w_hat.abs() ** 2).sum())


def test_inviscid_invariants_and_second_order_convergence():
    n, horizon = 32, 0.5
    w0 = 20 * fno_initial_vorticity(2, n, seed=1, dtype=torch.float64)  # strongly nonlinear: ‖u‖∞ ≈ 1
    w0 = VorticitySolver(resolution=n).solve(w0, horizon=0.0)  # T = 0: the projection onto |k| ≤ K
    # ν = f = 0: the dealiased Galerkin system conserves energy and enstrophy; CN-Heun up to O(h^p)
    e0, z0 = _energy_enstrophy(w0)
    drifts = []
    for h in (2e-3, 1e-3):
        w = VorticitySolver(resolution=n, viscosity=0.0, time_step=h).solve(w0, horizon=horizon)
        e1, z1 = _energy_enstrophy(w)
        drifts.append((abs(e1 - e0) / e0, abs(z1 - z0) / z0))
    assert drifts[0][0] < 1e-6 and drifts[0][1] < 2e-5
    assert drifts[1][0] < drifts[0][0] / 4 and drifts[1][1] < drifts[0][1] / 4
    assert (w - w0).norm() / w0.norm() > 0.5  # ... while the flow changed completely
    # time convergence order 2 with viscosity and forcing
    def run(h: float) -> torch.Tensor:
        return VorticitySolver(resolution=n, viscosity=1e-2, time_step=h).solve(w0, horizon=horizon, forcing=fno_forcing(n))

    ref = run(1.25e-3)
    errors = [(run(h) - ref).norm().item() for h in (2e-2, 1e-2, 5e-3)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(1.8 < p < 2.4 for p in orders), orders


def test_navier_stokes_builder_and_cache(tmp_path):
    kwargs = dict(resolution=16, solver_resolution=32, horizon=0.3, time_step=0.05, seed=3, cache_dir=tmp_path, progress=False)
    ds = navier_stokes(4, batch_size=3, **kwargs)
    assert ds.data.shape == (4, 1, 16, 16) and isinstance(ds.basis, PeriodicBasis)
    # the same as solving by hand and downsampling band-limited
    w0 = fno_initial_vorticity(4, 32, seed=3)
    solver = VorticitySolver(resolution=32, viscosity=1e-3, time_step=0.05)
    by_hand = PeriodicBasis(2).resample(solver.solve(w0, horizon=0.3, forcing=fno_forcing(32, dtype=torch.float32)), 16)
    assert torch.allclose(ds.data[:, 0], by_hand, atol=1e-6)
    files = list(tmp_path.glob("navier_stokes-*.safetensors"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    # the second call reads the cache (batch size is not part of the key), from_spec too
    files[0].touch()
    again = navier_stokes(4, batch_size=4, **kwargs)
    assert torch.equal(again.data, ds.data)
    assert torch.equal(from_spec(ds.spec, cache_dir=tmp_path, progress=False).data, ds.data)
    navier_stokes(4, **{**kwargs, "seed": 4})
    assert len(list(tmp_path.glob("navier_stokes-*.safetensors"))) == 2
    with pytest.raises(ValueError, match="solver_resolution"):
        navier_stokes(2, resolution=64, solver_resolution=32, use_cache=False)


def test_solver_blow_up_is_reported():
    w0 = 200 * fno_initial_vorticity(1, 16, seed=0, dtype=torch.float64)
    with pytest.raises(ValueError, match="smaller time_step"):
        VorticitySolver(resolution=16, viscosity=0.0, time_step=0.5).solve(w0, horizon=50.0)


# ----------------------------------------------------------------------------- shallow water


def test_shallow_water_small(tmp_path):
    state = torch.get_rng_state()
    ds = shallow_water(2, 12, solver_resolution=12, horizon_hours=1.0, seed=1, cache_dir=tmp_path, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random stream is untouched
    assert ds.data.shape == (2, 3, 12, 24) and isinstance(ds.basis, SphereBasis)
    assert torch.isfinite(ds.data).all()
    assert not torch.allclose(ds.data[0], ds.data[1])
    again = shallow_water(2, 12, solver_resolution=12, horizon_hours=1.0, seed=1, use_cache=False, progress=False)
    assert torch.allclose(again.data, ds.data)
    # the solver resolves l < ceil(12/3) = 4 only: the fields are exactly band-limited there
    coeff = ds.basis.forward(ds.data.double())
    assert coeff[..., 4:, :].abs().max() < 1e-6 * coeff.abs().max()


# ----------------------------------------------------------------------------- user files


def test_npy_round_trip(tmp_path):
    array = np.random.default_rng(0).normal(size=(5, 2, 6, 7)).astype(np.float64)
    np.save(tmp_path / "fields.npy", array)
    ds = load_array(tmp_path / "fields.npy")
    assert ds.data.shape == (5, 2, 6, 7) and ds.data.dtype == torch.float32
    assert np.allclose(ds.data.numpy(), array, atol=1e-6)
    assert ds.basis == NeumannBasis(2) and ds.name == "fields"
    assert torch.equal(from_spec(ds.spec).data, ds.data)
    periodic = load_array(tmp_path / "fields.npy", basis=PeriodicBasis(2))
    assert isinstance(periodic.basis, PeriodicBasis)
    np.savez(tmp_path / "pack.npz", train=array[:3], test=array[3:])
    assert load_array(tmp_path / "pack.npz", key="test").data.shape == (2, 2, 6, 7)
    with pytest.raises(ValueError, match="key="):
        load_array(tmp_path / "pack.npz")
    with pytest.raises(ValueError, match="no array 'val'"):
        load_array(tmp_path / "pack.npz", key="val")


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros((4, 16)), "channel axis"),
        (np.zeros((0, 1, 16)), "empty"),
        (np.array([[[0.0, np.nan, 1.0]], [[0.0, 1.0, np.inf]], [[1.0, 2.0, 3.0]]]), "NaN/inf values in 2 of its 3"),
        (np.array([[["a", "b"]]]), "real numbers"),
        (np.zeros((2, 1, 4), dtype=complex), "complex"),
    ],
)
def test_bad_arrays_are_refused(tmp_path, array, match):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=match):
        load_array(tmp_path / "bad.npy")


def test_bad_paths_and_basis_mismatch(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_array(tmp_path / "missing.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read"):
        load_array(tmp_path / "junk.npy")
    with pytest.raises(ValueError, match="1-D"):
        from_array(np.zeros((2, 1, 4, 4)), basis=NeumannBasis(1))
    with pytest.raises(ValueError, match="in-memory"):
        from_spec(from_array(np.zeros((2, 1, 4))).spec)


def test_image_folder(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (20, 10), (255, 0, 51)).save(folder / "a.png")  # wide: centre-cropped
    Image.new("L", (16, 16), 128).save(folder / "b.jpg")
    gradient = np.tile(np.arange(16, dtype=np.uint8) * 16, (16, 1))
    Image.fromarray(gradient).save(folder / "c.PNG")
    (folder / "notes.txt").write_text("ignored")
    ds = load_images(folder, resolution=8)
    assert ds.data.shape == (3, 3, 8, 8) and ds.name == "images"
    assert 0 <= ds.data.min() and ds.data.max() <= 1
    assert torch.allclose(ds.data[0].mean(dim=(-2, -1)), torch.tensor([1.0, 0.0, 0.2]), atol=1 / 255)
    assert torch.allclose(ds.data[1], torch.full((3, 8, 8), 128 / 255), atol=2 / 255)
    assert (ds.data[2, 0].diff(dim=-1) > 0).all()  # the gradient survives resizing, left to right
    assert isinstance(ds.basis, NeumannBasis) and ds.basis.lengths == (1.0, 1.0)
    assert torch.equal(from_spec(ds.spec).data, ds.data)

    grey = tmp_path / "grey"
    grey.mkdir()
    Image.new("L", (12, 6), 255).save(grey / "x.png")
    Image.fromarray((np.full((6, 12), 65535)).astype(np.uint16)).save(grey / "y.png")  # 16-bit
    ds = load_images(grey)  # default size: the first image's, (6, 12)
    assert ds.data.shape == (2, 1, 6, 12)
    assert torch.allclose(ds.data, torch.ones_like(ds.data), atol=1e-6)
    assert ds.basis.lengths == (1.0, 2.0)

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no"):
        load_images(tmp_path / "empty")
    (grey / "z.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="z.png"):
        load_images(grey)


# ----------------------------------------------------------------------------- dataset type and cache


def test_field_dataset_checks_and_resample():
    basis = PeriodicBasis(2)
    with pytest.raises(ValueError, match="num, channels"):
        FieldDataset(data=torch.zeros(3, 8, 8), basis=basis, name="x", spec={})
    ds = gaussian_random_fields(4, 8, basis=basis, seed=0)
    up = ds.resample(16)
    assert up.grid == (16, 16) and up.spec["resamples"] == [[16, 16]]
    assert torch.allclose(up.resample(8).data, ds.data, atol=1e-5)
    down_up = ds.resample(4).resample(8)  # replayed in order: the modes lost at 4 stay lost
    assert torch.equal(from_spec(down_up.spec).data, down_up.data)
    assert not torch.allclose(down_up.data, ds.data, atol=1e-3)
    assert torch.allclose(up.coordinates, grid_coordinates(basis, (16, 16)))
    assert torch.equal(from_spec(up.spec).data, up.data)
    const = FieldDataset(data=torch.full((2, 2, 4, 6), 3.0), basis=NeumannBasis(2), name="c", spec={})
    mean, std = const.channel_statistics()
    assert torch.allclose(mean, torch.tensor([3.0, 3.0])) and torch.allclose(std, torch.zeros(2), atol=1e-6)


def test_cache_directory_and_corruption(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    assert default_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv(CACHE_ENV)
    assert default_cache_dir().name == "hilbert_diffusion"

    calls = []

    def generate():
        calls.append(1)
        return torch.arange(6.0).reshape(2, 3)

    spec = {"builder": "x", "kwargs": {"n": 1}}
    assert spec_key(spec) == spec_key({"kwargs": {"n": 1}, "builder": "x"})
    first = cached_tensor(spec, generate, name="t", cache_dir=tmp_path)
    second = cached_tensor(spec, generate, name="t", cache_dir=tmp_path)
    assert torch.equal(first, second) and len(calls) == 1
    path = next(tmp_path.glob("t-*.safetensors"))
    path.write_bytes(path.read_bytes()[:20])  # a truncated file (e.g. a killed copy)
    with pytest.warns(UserWarning, match="unreadable"):
        third = cached_tensor(spec, generate, name="t", cache_dir=tmp_path)
    assert torch.equal(third, first) and len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached_tensor(spec, generate, name="t", cache_dir=tmp_path)  # repaired
    cached_tensor(spec, generate, name="t", cache_dir=tmp_path, use_cache=False)
    assert len(calls) == 3


def test_different_seeds_give_different_fields_and_streams_do_not_collide():
    from hilbert_diffusion.datasets import field_seed, navier_stokes

    first = navier_stokes(2, 16, solver_resolution=16, horizon=0.5, seed=0, use_cache=False, progress=False).data
    second = navier_stokes(2, 16, solver_resolution=16, horizon=0.5, seed=1, use_cache=False, progress=False).data
    assert not torch.equal(first, second)
    low_bits = {field_seed(seed, index) % 2**32 for seed in range(4) for index in range(64)}
    assert len(low_bits) == 256  # torch's CPU generator keeps the low 32 bits: they must differ too
