"""Augmenting training batches with the symmetries of the data's law (``TrainConfig.flip_axes``, ``translate``).

A batch ``(batch, channels, *grid)`` is changed field by field, each with its own random draw from the trainer's
generator, so a run stays reproducible and resumes exactly:

* **mirror images** along chosen grid axes, each with probability ½ — for laws with that mirror symmetry (faces,
  photographs left–right);
* **translations** by a whole number of pixels, uniform in ``[-p, p]`` per grid axis: on the torus a cyclic shift,
  an exact symmetry of a stationary law (vorticity); in a box with reflecting walls (:class:`~.bases.NeumannBasis`)
  the shifted field's pixels beyond a wall are its mirror image there (A1), the field's even extension, which the
  cosine basis assumes — an approximate symmetry, for images whose content may sit a few pixels either way.

Both keep every mode's variance on the torus, and a mirror keeps it in the box too, so the forward process (diagonal
in the modes) is unchanged; a translation in the box changes the fields near the walls, the price of the
augmentation there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .bases import NeumannBasis, PeriodicBasis, SpectralBasis

__all__ = ["augment", "check_translate"]


def check_translate(basis: SpectralBasis, pixels: int, grid: tuple[int, ...]) -> None:
    """Raise a one-line error where ``pixels`` of translation cannot augment fields of ``grid`` on ``basis``."""
    if pixels and not isinstance(basis, (PeriodicBasis, NeumannBasis)):
        raise ValueError(f"TrainConfig.translate shifts fields on the torus or in a box with reflecting walls, not on "
                         f"{type(basis).__name__}; set translate=0 (--translate 0).")
    if pixels >= min(grid, default=pixels + 1):
        raise ValueError(f"TrainConfig.translate={pixels} pixels is not smaller than the grid {grid}; give at most "
                         f"{min(grid) - 1} (--translate {min(grid) - 1}).")


def augment(batch: Tensor, basis: SpectralBasis, *, flip_axes: tuple[int, ...] = (), translate: int = 0,
            generator: torch.Generator | None = None) -> Tensor:
    """``batch`` with each field mirrored along each of ``flip_axes`` with probability ½, then shifted by up to
    ``translate`` pixels per grid axis (module docstring); draws from ``generator`` only for what is asked."""
    first = batch.dim() - basis.ndim  # the first grid dimension
    for axis in flip_axes:
        mirrored = torch.rand(batch.shape[0], generator=generator) < 0.5
        shape = (-1, *(1,) * (batch.dim() - 1))
        batch = torch.where(mirrored.view(shape).to(batch.device), batch.flip(first + axis), batch)
    if translate:
        for dim in range(first, batch.dim()):
            shifts = torch.randint(-translate, translate + 1, (batch.shape[0],), generator=generator)
            batch = _shifted(batch, dim, shifts, periodic=isinstance(basis, PeriodicBasis))
    return batch


def _shifted(batch: Tensor, dim: int, shifts: Tensor, *, periodic: bool) -> Tensor:
    """Field ``i`` of ``batch`` shifted by ``shifts[i]`` pixels along ``dim``: ``x'[j] = x[j − s]``, the source
    index taken modulo ``n`` on the torus, else mirrored at the walls (A1: ``−1 → 0``, ``n → n − 1``)."""
    n = batch.shape[dim]
    source = torch.arange(n)[None, :] - shifts[:, None]  # (batch, n)
    if periodic:
        source = source % n
    else:
        source = torch.where(source < 0, -source - 1, torch.where(source >= n, 2 * n - 1 - source, source))
    shape = [batch.shape[0]] + [1] * (batch.dim() - 1)
    shape[dim] = n
    return torch.gather(batch, dim, source.view(shape).expand(batch.shape).to(batch.device))
