"""Real images that ship inside installed packages (nothing is downloaded): scikit-learn's handwritten digits,
scikit-image's faces (a subset of Labeled Faces in the Wild) and patches of scikit-image's photographs.

All are grey, ``(num, 1, S, S)`` float32 in ``[0, 1]`` on ``NeumannBasis(2)`` (the unit square with reflecting
walls, as :func:`~.files.load_images`), with a ``split``: ``"train"`` or ``"test"``, disjoint by construction.

* :func:`digits` — the 1797 8×8 digits (values 0–16 scaled to [0, 1]), resized to ``S`` (default 16) bilinearly;
  a seeded 80/20 split of the images.
* :func:`faces` — the 100 faces of ``skimage.data.lfw_subset`` (25×25), resized to ``S`` (default 24); a seeded
  80/20 split of the faces.
* :func:`photo_patches` — square patches of ``patch`` pixels (default 64) cut at seeded random places and resized
  to ``S`` (default 32): the training split from :data:`TRAIN_PHOTOS`, the test split from
  :data:`TEST_PHOTOS`, a photograph never used in training.

Resizing uses an antialiased bilinear filter (no overshoot: values stay in ``[0, 1]``). scikit-image and
scikit-learn are optional: ``pip install 'hilbert_diffusion[images]'``.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
from torch import Tensor

from ..bases import NeumannBasis
from .base import FieldDataset, dataset_spec, field_generator, grid_coordinates

__all__ = ["digits", "faces", "photo_patches", "TRAIN_PHOTOS", "TEST_PHOTOS", "TEST_FRACTION"]

#: scikit-image photographs the training patches are cut from.
TRAIN_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "coins")
#: the photograph the test patches are cut from (never used for training).
TEST_PHOTOS = ("camera",)
#: share of the digits and of the faces held out as the test split.
TEST_FRACTION = 0.2
_FACES = 100  # lfw_subset: the first 100 images are faces, the next 100 are not


def _require(module: str, package: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ValueError(f"the {what} data set needs {package}; install it with "
                         f"pip install 'hilbert_diffusion[images]'.") from err


def _check(name: str, split: str, resolution: int) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"{name}: split={split!r}; write split=train or split=test.")
    if resolution < 2:
        raise ValueError(f"{name}: resolution must be ≥ 2, got {resolution}.")


def _resize(images: Tensor, resolution: int) -> Tensor:
    """``(num, h, w)`` → ``(num, 1, S, S)``, antialiased bilinear (convex weights: the range is kept)."""
    x = images[:, None].to(torch.float32)
    if tuple(x.shape[-2:]) == (resolution, resolution):
        return x.contiguous()
    out = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                                          antialias=True)
    return out.clamp(0.0, 1.0)


def _split_rows(count: int, split: str, seed: int, num: int | None) -> np.ndarray:
    """Indices of the ``split`` of ``count`` items: a seeded permutation, its last ``TEST_FRACTION`` the test."""
    order = np.random.default_rng(seed).permutation(count)
    cut = count - int(round(TEST_FRACTION * count))
    rows = order[:cut] if split == "train" else order[cut:]
    if num is not None:
        if num < 1 or num > len(rows):
            raise ValueError(f"num={num}, but the {split} split has {len(rows)} images; ask for 1–{len(rows)}.")
        rows = rows[:num]
    return np.sort(rows)


def _dataset(data: Tensor, name: str, spec: dict) -> FieldDataset:
    basis = NeumannBasis(2)
    return FieldDataset(data=data.float(), basis=basis, name=name, spec=spec,
                        coordinates=grid_coordinates(basis, tuple(data.shape[2:])))


def digits(num: int | None = None, resolution: int = 16, *, seed: int = 0, split: str = "train") -> FieldDataset:
    """scikit-learn's handwritten digits (1797 images of 8×8, values 0–16) as ``(num, 1, S, S)`` in ``[0, 1]``.

    Args:
        num: the first ``num`` images of the split (default: all; train 1438, test 359).
        resolution: pixels per side (the 8×8 originals resized bilinearly).
        seed: seed of the train/test permutation.
        split: ``"train"`` or ``"test"``.
    """
    _check("digits", split, resolution)
    sklearn_datasets = _require("sklearn.datasets", "scikit-learn", "digits")
    images = torch.from_numpy(sklearn_datasets.load_digits().images / 16.0)
    rows = _split_rows(len(images), split, seed, num)
    spec = dataset_spec(digits, num=num, resolution=resolution, seed=seed, split=split)
    return _dataset(_resize(images[rows], resolution), "digits", spec)


def faces(num: int | None = None, resolution: int = 24, *, seed: int = 0, split: str = "train") -> FieldDataset:
    """The 100 faces of scikit-image's LFW subset (25×25 grey) as ``(num, 1, S, S)`` in ``[0, 1]``.

    Args:
        num: the first ``num`` faces of the split (default: all; train 80, test 20).
        resolution: pixels per side.
        seed: seed of the train/test permutation.
        split: ``"train"`` or ``"test"``.
    """
    _check("faces", split, resolution)
    skimage_data = _require("skimage.data", "scikit-image", "faces")
    images = torch.from_numpy(np.asarray(skimage_data.lfw_subset()[:_FACES], dtype=np.float64))
    rows = _split_rows(_FACES, split, seed, num)
    spec = dataset_spec(faces, num=num, resolution=resolution, seed=seed, split=split)
    return _dataset(_resize(images[rows], resolution), "faces", spec)


def _grey_photo(name: str) -> Tensor:
    """The scikit-image photograph ``name`` as ``(h, w)`` float64 grey in ``[0, 1]`` (ITU-R 601 luma)."""
    skimage_data = _require("skimage.data", "scikit-image", "patches")
    image = np.asarray(getattr(skimage_data, name)(), dtype=np.float64) / 255.0
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114])  # Y' = 0.299 R + 0.587 G + 0.114 B
    return torch.from_numpy(image)


def photo_patches(num: int = 1000, resolution: int = 32, *, patch: int = 64, seed: int = 0,
                  split: str = "train") -> FieldDataset:
    """Square patches of scikit-image's photographs as ``(num, 1, S, S)`` in ``[0, 1]``.

    Args:
        num: number of patches.
        resolution: pixels per side of the output.
        patch: side of each patch in the photograph's pixels (then resized to ``resolution``).
        seed: seed of the per-patch streams (patch ``i`` depends only on ``(seed, i)``).
        split: ``"train"`` (patches of :data:`TRAIN_PHOTOS`) or ``"test"`` (of :data:`TEST_PHOTOS`).
    """
    _check("patches", split, resolution)
    if num < 1 or patch < 2:
        raise ValueError(f"patches needs num ≥ 1 and patch ≥ 2, got num={num}, patch={patch}.")
    photos = [_grey_photo(name) for name in (TRAIN_PHOTOS if split == "train" else TEST_PHOTOS)]
    smallest = min(min(p.shape) for p in photos)
    if patch > smallest:
        raise ValueError(f"patch={patch} is larger than the smallest photograph ({smallest} pixels); ask for less.")
    cuts = []
    for i in range(num):
        generator = field_generator(seed, i)
        photo = photos[int(torch.randint(len(photos), (1,), generator=generator))]
        top = int(torch.randint(photo.shape[0] - patch + 1, (1,), generator=generator))
        left = int(torch.randint(photo.shape[1] - patch + 1, (1,), generator=generator))
        cuts.append(photo[top : top + patch, left : left + patch])
    spec = dataset_spec(photo_patches, num=num, resolution=resolution, patch=patch, seed=seed, split=split)
    return _dataset(_resize(torch.stack(cuts), resolution), "patches", spec)
