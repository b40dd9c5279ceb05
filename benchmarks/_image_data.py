"""The data sets of :mod:`benchmarks.images` (issue 15): built-in, no downloads — procedural shapes, LFW faces and
photograph patches from scikit-image, scikit-learn's digits, Darcy's coefficient and Navier–Stokes vorticity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from hilbert_diffusion.bases import NeumannBasis, PeriodicBasis, SpectralBasis
from hilbert_diffusion.datasets import darcy, digits, faces, navier_stokes, photo_patches, shapes
from hilbert_diffusion.restoration.darcy import HIGH, LOW
from hilbert_diffusion.training import TrainConfig

__all__ = ["DataSet", "DATASETS"]


@dataclass(frozen=True)
class DataSet:
    """A data set of the benchmark: ``load(resolution, split, num)`` gives up to ``num`` fields ``(num, 1, n, n)`` of
    the ``"train"`` or ``"test"`` split; ``images``: values in ``[0, 1]``, drawn in grey and restored against the
    image baselines; ``interpolated_2x``: the held-out fields at 2× are coarser images resized (faces are 25², digits
    8²), not data at that grid, so the 2× statistics compare samples with an interpolation kernel, not with a law;
    ``flip_axes``: the mirror symmetries of the law, used to augment training (``TrainConfig.flip_axes``);
    ``val_fraction``: the share of the training fields held out to stop early (``TrainConfig.keep_best``, the held-out
    loss every 250 steps: the model kept is the best so far, also along the learning curve)."""

    load: Callable[[int, str, int], Tensor]
    resolution: int  # the training grid
    basis: SpectralBasis = NeumannBasis(2)  # the unit square with reflecting walls
    images: bool = True
    train_num: int = 1000  # fields to train on (at most: faces have 80, digits 1438)
    interpolated_2x: bool = False
    flip_axes: tuple[int, ...] = ()
    val_fraction: float = 0.0

    def train_config(self, config: TrainConfig) -> TrainConfig:
        """``config`` with this data set's augmentation and early stopping."""
        if not self.val_fraction:
            return replace(config, flip_axes=self.flip_axes)
        return replace(config, flip_axes=self.flip_axes, val_fraction=self.val_fraction, keep_best=True,
                       checkpoint_every=250)


def _faces(resolution: int, split: str, num: int) -> Tensor:
    """The LFW faces; held out: the 20 test faces and their mirror images."""
    data = faces(resolution=resolution, split=split).data
    return (torch.cat([data, data.flip(-1)]) if split == "test" else data)[:num]


def _darcy_coefficient(resolution: int, split: str, num: int) -> Tensor:
    """DiffusionPDE's Darcy coefficient (a thresholded GRF, ``a ∈ {LOW, HIGH}``) as ``(a − LOW) / (HIGH − LOW)``:
    two values, 0 and 1, with sharp interfaces; held out: another seed."""
    pairs = darcy(num, resolution, high=HIGH, low=LOW, seed=0 if split == "train" else 1, progress=False).data
    return (pairs[:, :1] - LOW) / (HIGH - LOW)


def _vorticity(resolution: int, split: str, num: int) -> Tensor:
    """Navier–Stokes vorticity at ``T = 20`` (FNO's set-up, ``ν = 1e-3``, solved at 64²); held out: another seed."""
    return navier_stokes(num, resolution, solver_resolution=64, seed=0 if split == "train" else 1, progress=False).data


#: the data sets by name.
DATASETS: dict[str, DataSet] = {
    # procedural: 20000 to train on, since 1000 are memorised at small t within 30 CPU-minutes (README)
    "shapes": DataSet(lambda n, split, num: shapes(num, n, split=split).data, 32, train_num=20000),
    # 80 faces are memorised within minutes (README): each is also trained on as its mirror image (held out: both
    # too), and 8 of them choose when to stop
    "faces": DataSet(_faces, 24, interpolated_2x=True, flip_axes=(1,), val_fraction=0.1),
    "patches": DataSet(lambda n, split, num: photo_patches(num, n, split=split).data, 32),
    "digits": DataSet(lambda n, split, num: digits(resolution=n, split=split).data[:num], 16, train_num=2000,
                      interpolated_2x=True),
    "darcy": DataSet(_darcy_coefficient, 32),
    "vorticity": DataSet(_vorticity, 32, PeriodicBasis(2), images=False),
}
