"""Augmentation by the law's symmetries (:mod:`hilbert_diffusion.augmentation`): translations that are exact cyclic
shifts on the torus (every field's power spectrum kept to rounding), the even extension at reflecting walls (against
numpy's symmetric padding), every shift in range drawn and none beyond, and one-line refusals."""

from __future__ import annotations

import itertools
import numpy as np
import pytest
import torch

from hilbert_diffusion.augmentation import augment, check_translate
from hilbert_diffusion.bases import DirichletBasis, NeumannBasis, PeriodicBasis
from hilbert_diffusion.training import TrainConfig


def _fields(num: int, *grid: int) -> torch.Tensor:
    return torch.randn(num, 2, *grid, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.mark.parametrize("grid", [(12,), (8, 10)], ids=["1-D", "2-D"])
def test_translation_on_the_torus_is_a_cyclic_shift_keeping_each_power_spectrum(grid):
    """Each field is ``x`` rolled by one shift within ±p per axis (all of them drawn), so every field's power
    spectrum, and with it each mode's variance, is kept to rounding."""
    p = 2
    x = _fields(200, *grid)
    moved = augment(x, PeriodicBasis(len(grid)), translate=p, generator=torch.Generator().manual_seed(1))
    axes = tuple(range(2, x.dim()))
    torch.testing.assert_close(torch.fft.fftn(moved, dim=axes).abs(), torch.fft.fftn(x, dim=axes).abs())
    shifts = list(itertools.product(range(-p, p + 1), repeat=len(grid)))
    seen = set()
    for a, b in zip(x.numpy(), moved.numpy()):
        found = [s for s in shifts if np.array_equal(np.roll(a, s, axis=tuple(range(1, a.ndim))), b)]
        assert len(found) == 1, "not one cyclic shift within ±p"
        seen.add(found[0])
    assert seen == set(shifts)


def test_translation_in_a_box_mirrors_the_field_at_the_walls():
    """``x'[j] = x[j − s]`` with pixels beyond a wall taken from the field's mirror image there (numpy's symmetric
    padding of the cell-centred grid: −1 → 0, n → n − 1); all 2p + 1 shifts occur per axis, and none beyond."""
    p, n = 3, 9
    x = _fields(400, n, 7)
    moved = augment(x, NeumannBasis(2), translate=p, generator=torch.Generator().manual_seed(2))
    padded = np.pad(x.numpy(), [(0, 0), (0, 0), (p, p), (p, p)], mode="symmetric")
    seen = set()
    for a, b in zip(padded, moved.numpy()):
        crops = {(r, c): a[:, p - r: p - r + n, p - c: p - c + 7] for r in range(-p, p + 1) for c in range(-p, p + 1)}
        found = [s for s, crop in crops.items() if np.array_equal(crop, b)]
        assert found, "not a symmetric-padded shift within ±p"
        seen.update(found)
    assert seen == {(r, c) for r in range(-p, p + 1) for c in range(-p, p + 1)}


def test_mirror_images_draw_as_before_and_nothing_is_drawn_for_nothing_asked():
    """Flips alone draw one number per field and axis from the generator (runs trained before translations exist
    resume and repeat exactly); no augmentation leaves the batch and the generator untouched."""
    x = _fields(16, 6, 6)
    generator = torch.Generator().manual_seed(3)
    flipped = augment(x, NeumannBasis(2), flip_axes=(1,), generator=generator)
    expected = torch.Generator().manual_seed(3)
    mirrored = torch.rand(16, generator=expected) < 0.5
    torch.testing.assert_close(flipped, torch.where(mirrored.view(-1, 1, 1, 1), x.flip(-1), x))
    assert torch.equal(generator.get_state(), expected.get_state())
    assert augment(x, NeumannBasis(2), generator=generator) is x
    assert torch.equal(generator.get_state(), expected.get_state())


def test_translations_are_refused_in_one_line_where_they_cannot_apply():
    with pytest.raises(ValueError, match="not on DirichletBasis; set translate=0"):
        check_translate(DirichletBasis(2), 1, (8, 8))
    too_far = r"translate=8 pixels is not smaller than the grid \(8, 16\); give at most 7 \(--translate 7\)"
    with pytest.raises(ValueError, match=too_far):
        check_translate(PeriodicBasis(2), 8, (8, 16))
    check_translate(DirichletBasis(2), 0, (8, 8))  # nothing asked: nothing refused
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="whole number of pixels"):
            TrainConfig(translate=bad)
