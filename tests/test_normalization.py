"""Normalisation by quadrature: the sphere's moments are area-weighted, not grid averages."""

from __future__ import annotations

import math

import pytest
import torch

from hilbert_diffusion import PeriodicBasis, SphereBasis
from hilbert_diffusion.normalization import Normalization
from hilbert_diffusion.training import Normalization as FromTraining


def test_sphere_fit_is_the_quadrature_mean_and_std():
    """Fields ``c cos²θ`` with ``c ∈ {1, 3}``: the sphere's mean of ``cos²θ`` is 1/3 and of ``cos⁴θ`` 1/5,
    so mean = E c/3 = 2/3 and variance = E[c²/5] - (2/3)² = 1 - 4/9 = 5/9 (Gauss–Legendre is exact here);
    the naive mean over the grid points, crowded towards the poles, is not."""
    basis, grid = SphereBasis(), (8, 16)
    cos, _ = basis._latitude_rule(grid[0])
    field = (cos**2)[:, None].expand(grid).float()
    data = torch.stack([field, 3 * field])[:, None]
    norm = Normalization.fit(data, basis=basis)
    assert norm.mean[0] == pytest.approx(2 / 3, rel=1e-5)
    assert norm.std[0] == pytest.approx(math.sqrt(5 / 9), rel=1e-5)
    assert abs(float(data.mean()) - 2 / 3) > 0.05  # the grid mean is a different (wrong) number
    encoded = norm.encode(data)
    assert float(basis.integrate(encoded.double()).mean()) == pytest.approx(0.0, abs=1e-5)
    torch.testing.assert_close(norm.decode(encoded), data, atol=1e-6, rtol=0)


def test_identity_and_bad_input():
    assert Normalization.identity(3) == Normalization((0.0,) * 3, (1.0,) * 3)
    assert FromTraining is Normalization
    x = torch.randn(2, 3, 8)
    assert torch.equal(Normalization.identity(3).encode(x), x)
    with pytest.raises(ValueError, match="at least one channel"):
        Normalization.identity(0)
    with pytest.raises(ValueError, match="constant"):
        Normalization.fit(torch.zeros(2, 1, 8), basis=PeriodicBasis(1))
    with pytest.raises(ValueError, match="expected"):
        Normalization.identity(2).encode(x)
