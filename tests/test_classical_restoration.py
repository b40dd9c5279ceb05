"""The classical baselines are exact where the answer is known: band-limited fields come back from zero-padding,
constants from bicubic upsampling, a linear ramp from biharmonic inpainting (it is biharmonic), and a step from TV
inpainting when the hidden band lies on one side of the jump."""

import pytest
import torch

from hilbert_diffusion.bases import NeumannBasis, PeriodicBasis
from hilbert_diffusion.datasets import gaussian_random_fields
from hilbert_diffusion.restoration.classical import bicubic, biharmonic, total_variation, zero_padding


@pytest.mark.parametrize("basis", [NeumannBasis(2), PeriodicBasis(2), NeumannBasis(1)], ids=repr)
def test_zero_padding_returns_band_limited_fields(basis) -> None:
    fine = gaussian_random_fields(3, 8, basis=basis, seed=0).data.double()
    band_limited = basis.resample(basis.resample(fine, (4,) * basis.ndim), (8,) * basis.ndim)
    coarse = basis.resample(band_limited, (4,) * basis.ndim)
    assert torch.allclose(zero_padding(coarse, 8, basis).double(), band_limited, atol=1e-6)


def test_bicubic_keeps_constants_and_refuses_other_grids() -> None:
    assert torch.allclose(bicubic(torch.full((2, 1, 4, 4), 0.3), 8), torch.full((2, 1, 8, 8), 0.3), atol=1e-6)
    with pytest.raises(ValueError, match="2-D images"):
        bicubic(torch.zeros(2, 1, 4), 8)


def test_biharmonic_and_tv_inpainting_are_exact_on_their_own_solutions() -> None:
    pytest.importorskip("skimage")
    x = torch.linspace(0.1, 0.9, 16)
    ramp = x.expand(16, 16)[None, None].repeat(2, 1, 1, 1)
    observed = torch.ones(16, 16, dtype=torch.bool)
    observed[5:11, 5:11] = False
    assert torch.allclose(biharmonic(ramp * observed, observed), ramp, atol=1e-4)
    step = torch.where(x > 0.5, 0.8, 0.2).expand(16, 16)[None, None]
    hidden_left = torch.ones(16, 16, dtype=torch.bool)
    hidden_left[4:12, 1:5] = False  # all on the 0.2 side: the flat fill has zero variation inside
    filled = total_variation(step * hidden_left, hidden_left, iterations=600)
    assert torch.allclose(filled, step, atol=2e-3)
