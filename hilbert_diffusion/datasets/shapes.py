"""A procedural image set with sharp edges: discs, rotated rectangles and triangles on a dim background.

Each image is a function on the unit square ``[0, 1]²`` (Neumann box, as the other image sets): a background
level ``b ~ U(0, 0.2)`` and 1–3 shapes painted in order (later ones occlude earlier ones), each of constant
intensity ``U(0.3, 1)``. The law is defined without a grid; a grid of ``S × S`` pixels stores each pixel's
mean over ``supersample²`` points at the sub-pixel centres ``x = (j + (s + ½)/m) / S`` (area coverage by
quadrature), so fields are in ``[0, 1]`` and resolution-free: ``S`` pixels with ``m`` sub-points and ``2S``
pixels with ``m/2`` use the same points, and 2×2 block means of the fine image equal the coarse one.

Field ``i`` of the training split depends only on ``(seed, i)``; the test split draws its fields from the
disjoint streams ``(seed, TEST_OFFSET + i)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..bases import NeumannBasis
from .base import FieldDataset, dataset_spec, field_generator, grid_coordinates

__all__ = ["shapes", "render_shapes", "TEST_OFFSET"]

#: first stream index of the test split (training fields use 0, 1, ...).
TEST_OFFSET = 1 << 40
_KINDS = 3  # disc, rectangle, triangle


def _uniform(generator: torch.Generator, low: float, high: float, size: int = 1) -> Tensor:
    return low + (high - low) * torch.rand(size, generator=generator, dtype=torch.float64)


def _inside(kind: int, params: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Indicator of one shape at the points ``(x, y)``; ``params`` are 6 numbers in ``[0, 1]``."""
    cx, cy = 0.15 + 0.7 * params[0], 0.15 + 0.7 * params[1]
    if kind == 0:  # disc of radius 0.08–0.3
        return (x - cx) ** 2 + (y - cy) ** 2 < (0.08 + 0.22 * params[2]) ** 2
    if kind == 1:  # rectangle of half-sides 0.06–0.3, rotated by θ ∈ [0, π)
        angle = math.pi * float(params[4])
        u = (x - cx) * math.cos(angle) + (y - cy) * math.sin(angle)
        v = -(x - cx) * math.sin(angle) + (y - cy) * math.cos(angle)
        return (u.abs() < 0.06 + 0.24 * params[2]) & (v.abs() < 0.06 + 0.24 * params[3])
    # triangle: vertices at radius 0.1–0.35 from the centre, at angles θ, θ + 2π/3 + δ₁, θ + 4π/3 + δ₂
    radius = 0.1 + 0.25 * params[2]
    angles = 2 * math.pi * params[4] + torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    angles = angles + torch.tensor([0.0, 0.6, -0.6], dtype=torch.float64) * (params[5] - 0.5)
    px, py = cx + radius * torch.cos(angles), cy + radius * torch.sin(angles)
    # the same side of all three edges (vertices counter-clockwise): cross products all positive
    sides = [(px[(k + 1) % 3] - px[k]) * (y - py[k]) - (py[(k + 1) % 3] - py[k]) * (x - px[k]) for k in range(3)]
    return (sides[0] > 0) & (sides[1] > 0) & (sides[2] > 0)


def render_shapes(generator: torch.Generator, resolution: int, *, supersample: int = 4) -> Tensor:
    """One image of the law drawn with ``generator``, ``(resolution, resolution)`` float64 in ``[0, 1]``: the
    mean of the picture over ``supersample²`` sub-pixel points per pixel (see the module docstring)."""
    count = int(torch.randint(1, 4, (1,), generator=generator))
    background = float(_uniform(generator, 0.0, 0.2))
    kinds = torch.randint(0, _KINDS, (count,), generator=generator).tolist()
    params = [(float(_uniform(generator, 0.3, 1.0)), torch.rand(6, generator=generator, dtype=torch.float64))
              for _ in range(count)]
    fine = resolution * supersample
    axis = (torch.arange(fine, dtype=torch.float64) + 0.5) / fine  # (j + (s + ½)/m) / S = (j m + s + ½) / (S m)
    # rows are y (the first grid axis), columns x
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    picture = torch.full((fine, fine), background, dtype=torch.float64)
    for kind, (level, shape) in zip(kinds, params, strict=True):
        picture = torch.where(_inside(kind, shape, x, y), level, picture)
    return picture.reshape(resolution, supersample, resolution, supersample).mean(dim=(1, 3))


def shapes(num: int = 1000, resolution: int = 32, *, seed: int = 0, split: str = "train",
           supersample: int = 4) -> FieldDataset:
    """``num`` images of discs, rectangles and triangles, ``(num, 1, S, S)`` in ``[0, 1]`` on
    ``NeumannBasis(2)`` (see the module docstring).

    Args:
        num: number of images.
        resolution: pixels per side ``S`` (any ``≥ 2``: the same images at every resolution).
        seed: seed of the per-image streams.
        split: ``"train"`` or ``"test"`` (disjoint streams, for held-out evaluation).
        supersample: sub-points per pixel and axis (area coverage of the edges).
    """
    if num < 1 or resolution < 2 or supersample < 1:
        raise ValueError(f"shapes needs num ≥ 1, resolution ≥ 2 and supersample ≥ 1, got num={num}, "
                         f"resolution={resolution}, supersample={supersample}.")
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: write split=train or split=test.")
    first = TEST_OFFSET if split == "test" else 0
    images = [render_shapes(field_generator(seed, first + i), resolution, supersample=supersample)
              for i in range(num)]
    data = torch.stack(images)[:, None].float()
    basis = NeumannBasis(2)
    spec = dataset_spec(shapes, num=num, resolution=resolution, seed=seed, split=split, supersample=supersample)
    return FieldDataset(data=data, basis=basis, name="shapes", spec=spec,
                        coordinates=grid_coordinates(basis, basis.grid(resolution)))
