"""PDE residuals (restoration/residual.py): zero on the generators' exact pairs, nonzero off them, exact autograd
gradients, and O(h²) convergence on smooth continuous pairs."""

import math

import pytest
import torch

from hilbert_diffusion.datasets import darcy
from hilbert_diffusion.datasets.elliptic import solve_darcy, solve_dirichlet, zero_boundary
from hilbert_diffusion.datasets.pde_pairs import diffusionpde_source
from hilbert_diffusion.restoration import DarcyResidual, DirichletResidual

KINDS = {
    "poisson": (DirichletResidual(), lambda a: (a, solve_dirichlet(a))),
    "helmholtz": (DirichletResidual(shift=1.0), lambda a: (zero_boundary(a), solve_dirichlet(zero_boundary(a), shift=1.0))),
    "darcy": (DarcyResidual(), lambda s: ((a := torch.where(s >= 0, 12.0, 3.0).double()), solve_darcy(a))),
}


def exact_pairs(name: str, resolution: int) -> torch.Tensor:
    source = diffusionpde_source(3, resolution, seed=0).double()
    return torch.stack(KINDS[name][1](source), dim=1)


@pytest.mark.parametrize("resolution", [16, 33])
@pytest.mark.parametrize("name", list(KINDS))
def test_zero_on_exact_pairs_and_not_off_them(name, resolution):
    residual, _ = KINDS[name]
    pairs = exact_pairs(name, resolution)
    scale = residual(torch.stack([pairs[:, 0], torch.zeros_like(pairs[:, 1])], dim=1)).abs().amax((1, 2))  # |f|
    assert (residual(pairs).abs().amax((1, 2)) / scale).max() < 1e-8
    assert (residual.norm(pairs) / residual.norm(pairs * torch.tensor([1.0, 0.0]).view(2, 1, 1))).max() < 1e-8
    bumped = pairs.clone()
    bumped[:, 1, resolution // 2, resolution // 3] += 0.01 * pairs[:, 1].abs().max()
    assert (residual(bumped).abs().amax((1, 2)) / scale).min() > 1e-3


def test_zero_on_the_stored_darcy_data():
    pairs = darcy(2, 16, seed=3, use_cache=False, progress=False).data.double()  # stored in float32
    scale = DarcyResidual().norm(torch.stack([pairs[:, 0], torch.zeros_like(pairs[:, 1])], dim=1))
    assert (DarcyResidual().norm(pairs) / scale).max() < 1e-5


@pytest.mark.parametrize("name", list(KINDS))
def test_autograd_gradient_matches_finite_differences(name):
    residual, _ = KINDS[name]
    x = exact_pairs(name, 8)[:1] + 0.1 * torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(lambda f: residual.norm(f).square(), (x.requires_grad_(),))


def test_normalised_residual_decodes_first():
    residual = KINDS["poisson"][0]
    pairs = exact_pairs("poisson", 16) + torch.rand(3, 2, 16, 16, dtype=torch.float64)  # R ≠ 0
    mean, std = (0.3, -2.0), (1.5, 0.25)
    encoded = (pairs - torch.tensor(mean, dtype=torch.float64).view(2, 1, 1)) / torch.tensor(std, dtype=torch.float64).view(2, 1, 1)
    assert residual(pairs).abs().max() > 1
    assert torch.allclose(residual.normalised(mean, std)(encoded), residual(pairs), atol=1e-9)


def _smooth_pair(name: str, size: int) -> tuple[torch.Tensor, object]:
    """A smooth continuous pair sampled on the grid (vertices for Dirichlet, cell centres for Darcy) and the
    residual whose PDE it solves: u = sin(πx) sin(2πy), a = (Δ + c) u; Darcy a = 2 + xy, f = −∇·(a∇u)."""
    if name == "darcy":
        points = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    else:
        points = torch.linspace(0, 1, size, dtype=torch.float64)
    x, y = torch.meshgrid(points, points, indexing="ij")
    pi = math.pi
    u = torch.sin(pi * x) * torch.sin(2 * pi * y)
    if name != "darcy":
        shift = KINDS[name][0].shift
        return torch.stack([(shift - 5 * pi**2) * u, u])[None], KINDS[name][0]

    def source(x, y):  # −∇·(a∇u) = −a Δu − ∇a·∇u
        u = torch.sin(pi * x) * torch.sin(2 * pi * y)
        grad_a_grad_u = y * pi * torch.cos(pi * x) * torch.sin(2 * pi * y) + x * 2 * pi * torch.sin(pi * x) * torch.cos(2 * pi * y)
        return 5 * pi**2 * (2 + x * y) * u - grad_a_grad_u

    return torch.stack([2 + x * y, u])[None], DarcyResidual(source=source)


@pytest.mark.parametrize("name", list(KINDS))
def test_residual_converges_at_second_order(name):
    norms = []
    for size in (17, 33, 65):
        pair, residual = _smooth_pair(name, size)
        norms.append(float(residual.norm(pair)))
    rates = [math.log2(norms[i] / norms[i + 1]) for i in range(2)]
    assert norms[0] > 1e-3 and all(1.7 < r < 2.5 for r in rates), (norms, rates)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="u_channel=2"):
        DirichletResidual(u_channel=2)(torch.zeros(1, 2, 8, 8))
    with pytest.raises(ValueError, match="square grid"):
        DirichletResidual()(torch.zeros(1, 2, 8, 6))
    with pytest.raises(ValueError, match="normalisation has 3 channels"):
        DirichletResidual().normalised((0, 0, 0), (1, 1, 1))(torch.zeros(1, 2, 8, 8))


@pytest.mark.parametrize("sampler, options", [("dps", {"step_size": 0.5}), ("covariance_guidance", {})])
def test_residual_guidance_lowers_the_residual(sampler, options):
    """DPS and covariance guidance with the PDE residual term (same seeds, same observation) end with a smaller
    residual than without, and a zero weight is exactly the plain method."""
    from hilbert_diffusion import CosineSchedule, GaussianOracle, Matern, NeumannBasis, StochasticHeatSDE
    from hilbert_diffusion import restoration
    from hilbert_diffusion.sampling import power_times

    basis, grid = NeumannBasis(2), (12, 12)
    sde = StochasticHeatSDE(basis=basis, covariance=Matern(alpha=2.0, tau=4.0), decay=CosineSchedule())
    oracle = GaussianOracle(sde, Matern(alpha=3.0, tau=4.0))
    op = restoration.random_mask(basis, grid, observed_fraction=0.3, generator=torch.Generator().manual_seed(1))
    y = op.forward(oracle.sample_data(1, grid, channels=2, generator=torch.Generator().manual_seed(2)))
    residual = DirichletResidual().normalised((0.0, 0.0), (1.0, 1.0 / 121))  # u of Δ_h u = a is ~h² a

    def run(**extra):
        x = sde.prior_sample(4, grid, channels=2, generator=torch.Generator().manual_seed(3))
        return getattr(restoration, sampler)(oracle, sde, x, power_times(20), operator=op, y=y,
                                             generator=torch.Generator().manual_seed(4), **options, **extra)

    plain, guided = run(), run(residual=residual, residual_weight=1.0)
    assert torch.equal(plain, run(residual=residual, residual_weight=0.0))
    assert residual.norm(guided.double()).mean() < 0.8 * residual.norm(plain.double()).mean()


def test_bad_residual_options_are_clear_errors():
    from hilbert_diffusion.restoration import covariance_guidance, dps

    for sampler in (dps, covariance_guidance):
        with pytest.raises(ValueError, match="residual_weight"):
            sampler.configure(residual_weight=-1.0)
        with pytest.raises(ValueError, match="must be a PDEResidual"):
            sampler.configure(residual=lambda x: x)
