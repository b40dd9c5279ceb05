"""Darcy's restoration pieces (``restoration.darcy``): the snaps keep the two values, the solver maps are the
generator's solve, and the model-free inversion recovers a pair from its own complete observation."""

from __future__ import annotations

import pytest
import torch

from hilbert_diffusion.datasets import darcy as darcy_pairs
from hilbert_diffusion.datasets.elliptic import solve_darcy
from hilbert_diffusion.restoration import darcy

F64 = torch.float64


@pytest.fixture(scope="module")
def pairs() -> torch.Tensor:
    return darcy_pairs(2, 12, seed=3, progress=False, use_cache=False).data.double()


def test_snaps_keep_the_two_values() -> None:
    a = torch.tensor([-5.0, 3.0, 7.4, 7.6, 12.0, 40.0], dtype=F64)
    assert torch.equal(darcy.snap(a), torch.tensor([3.0, 3.0, 3.0, 12.0, 12.0, 12.0], dtype=F64))
    soft = darcy.soft_snap(a)
    assert bool((soft > darcy.LOW).all() and (soft < darcy.HIGH).all())  # positive: the solver stays elliptic
    assert torch.allclose(soft[[1, 4]], torch.tensor([3.0, 12.0], dtype=F64), atol=0.1)  # 9 σ(−4.5) = 0.099
    assert torch.allclose(darcy.soft_snap(a, width=1e-3), darcy.snap(a))  # the hard snap as the width → 0


def test_error_rate_counts_thresholded_nodes(pairs: torch.Tensor) -> None:
    a = pairs[:, 0]
    assert torch.equal(darcy.error_rate(a + 1.0, a), torch.zeros(2, dtype=F64))  # within the threshold's margin
    flipped = a.clone()
    flipped[0, :3, :4] = darcy.LOW + darcy.HIGH - flipped[0, :3, :4]  # 12 of 144 nodes swapped
    assert torch.allclose(darcy.error_rate(flipped, a), torch.tensor([12 / 144, 0.0], dtype=F64))


def test_solver_maps_are_the_generators_solve(pairs: torch.Tensor) -> None:
    noisy = pairs.clone()
    noisy[:, 0] += 0.5 * torch.randn(noisy[:, 0].shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    completed = darcy.completion().complete(noisy, 2)
    assert torch.equal(completed[:, 0], pairs[:, 0])  # snapped back to the pair's a
    assert torch.allclose(completed[:, 1], pairs[:, 1], atol=1e-6 * float(pairs[:, 1].abs().max()))
    guided = darcy.guide(tolerance=1e-10).complete(pairs, 2)
    assert torch.allclose(guided[:, 1], solve_darcy(darcy.soft_snap(pairs[:, 0]), tolerance=1e-10), atol=1e-9)


def test_regularised_inversion_recovers_a_fully_observed_pair(pairs: torch.Tensor) -> None:
    """Observing every node of ``a`` (the forward problem) the fit through the solver finds the pair exactly; observing
    every node of ``u`` (the inverse one), all of ``a`` but a few nodes (measured: 0 and 3 of 144). ``u`` is not
    compared there: at 12² three wrong nodes on a bridge of ``a = 12`` change ``u`` by 16 %."""
    forward = darcy.regularised_inversion(lambda x: x[:, 0], pairs[:, 0], (12, 12), steps=300, learning_rate=0.3)
    assert torch.equal(forward[:, 0], pairs[:, 0])
    assert torch.allclose(forward[:, 1], pairs[:, 1], atol=1e-6 * float(pairs[:, 1].abs().max()))
    inverse = darcy.regularised_inversion(lambda x: x[:, 1], pairs[:, 1], (12, 12), steps=500, learning_rate=0.2)
    assert float(darcy.error_rate(inverse[:, 0], pairs[:, 0]).max()) < 0.03
    unfitted = darcy.regularised_inversion(lambda x: x[:, 1], pairs[:, 1], (12, 12), steps=1, learning_rate=0.2)
    assert float(darcy.error_rate(unfitted[:, 0], pairs[:, 0]).min()) > 0.2  # the fit, not the start, finds a


def test_regularised_inversion_rejects_bad_options(pairs: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="steps ≥ 1"):
        darcy.regularised_inversion(lambda x: x[:, 1], pairs[:, 1], (12, 12), steps=0)
