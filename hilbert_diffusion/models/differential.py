"""A differential kernel on a box: learned finite differences divided by the grid spacing, resolution-free.

Liu-Schiaffini et al., "Neural Operators with Localized Integral and Differential Kernels" (ICML 2024,
arXiv 2402.16845), §3: a convolution whose stencil sums to zero, divided by the spacing ``h``, converges to a
directional derivative as the grid is refined, so it is a local operator that stays the same operator at every
resolution. Here the stencil is taken along each grid axis ``a`` (``r = kernel_size // 2`` neighbours each side)::

    (D u)(x) = Σ_a Σ_{0<|j|≤r} W_{a,j} (u(x + j h_a e_a) − u(x)) / h_a                   (D1)
             → Σ_a (Σ_j j W_{a,j}) ∂_a u                    as h → 0 (Taylor: the symmetric part is O(h))

``W_{a,j}`` are channel matrices (one matrix product on the stacked differences), so any rank and channel count
work, and anisotropic grids too (each axis has its own ``h_a``). The zero-sum property is built in: a constant field
gives zero. Points beyond the walls come from the extension the domain's basis implies (:func:`extend`):
periodic wrap for Fourier modes, even reflection about the wall half a cell beyond the first cell centre for the
Neumann cosines (DCT-II), odd reflection about the wall point for the Dirichlet sines (DST-I).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..bases import DirichletBasis, Grid, NeumannBasis, PeriodicBasis, SpectralBasis

__all__ = ["DifferentialKernel", "extend", "grid_spacing"]


def grid_spacing(basis: SpectralBasis, grid: Grid) -> tuple[float, ...]:
    """``h_a``, the distance between neighbouring grid points along each axis (box: ``L/N``, Dirichlet ``L/(N+1)``)."""
    return tuple(float(points[1] - points[0]) for points in basis.axis_points(grid))


def extend(x: Tensor, basis: SpectralBasis, axis: int, width: int) -> Tensor:
    """``x`` with ``width`` points added at both ends of grid axis ``axis`` (a dim of ``x``), as the basis extends
    its fields beyond the box: periodic, even about cell-centred walls (Neumann), odd about the wall (Dirichlet)."""
    n = x.shape[axis]
    if width > n:
        raise ValueError(f"a stencil of {width} points beyond the walls needs at least as many grid points, got {n}.")
    head, tail = x.narrow(axis, 0, width), x.narrow(axis, n - width, width)
    if isinstance(basis, PeriodicBasis):
        return torch.cat([tail, x, head], axis)
    if isinstance(basis, NeumannBasis):  # u(-½h - s) = u(-½h + s): x[-1-i] = x[i]
        return torch.cat([head.flip(axis), x, tail.flip(axis)], axis)
    if isinstance(basis, DirichletBasis):  # u(-s) = -u(s), the wall point stored nowhere: x[-1] = 0, x[-1-i] = -x[i-1]
        zero = x.narrow(axis, 0, 1).new_zeros(())
        wall = zero.expand_as(x.narrow(axis, 0, 1))
        left = [-x.narrow(axis, 0, width - 1).flip(axis), wall]
        right = [wall, -x.narrow(axis, n - width + 1, width - 1).flip(axis)]
        return torch.cat([*left, x, *right], axis)
    raise TypeError(f"differential kernels need a box basis (periodic, Neumann or Dirichlet), got {type(basis).__name__}.")


class DifferentialKernel(nn.Module):
    """The operator (D1): ``(batch, in_channels, *grid) → (batch, out_channels, *grid)`` on ``basis``'s box.

    Args:
        basis: the domain (fixes the spacing and the extension beyond the walls).
        in_channels, out_channels: channel counts.
        kernel_size: odd stencil width along each axis (3: nearest neighbours).
        zero_init: start as the zero operator (the surrounding network starts as it would without it).
    """

    def __init__(self, basis: SpectralBasis, in_channels: int, out_channels: int, *, kernel_size: int = 3,
                 zero_init: bool = False) -> None:
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {kernel_size}.")
        if min(in_channels, out_channels) < 1:
            raise ValueError(f"channel counts must be positive, got {in_channels} and {out_channels}.")
        self.basis = basis
        self.radius = kernel_size // 2
        self.offsets = [j for j in range(-self.radius, self.radius + 1) if j != 0]
        fan_in = in_channels * basis.ndim * len(self.offsets)
        self.weight = nn.Parameter(torch.empty(out_channels, fan_in))
        if zero_init:
            nn.init.zeros_(self.weight)
        else:
            nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def differences(self, x: Tensor) -> Tensor:
        """``(u(x + j h_a e_a) − u(x)) / h_a`` for every axis ``a`` and offset ``j``, stacked on the channel axis:
        ``(batch, in_channels · ndim · (kernel_size − 1), *grid)``."""
        grid = self.basis.grid_of(x)
        out = []
        for a, h in enumerate(grid_spacing(self.basis, grid)):
            dim = x.dim() - self.basis.ndim + a
            wide = extend(x, self.basis, dim, self.radius)
            out += [(wide.narrow(dim, self.radius + j, grid[a]) - x) / h for j in self.offsets]
        return torch.cat(out, 1)

    def forward(self, x: Tensor) -> Tensor:
        d = self.differences(x)
        flat = torch.matmul(self.weight.to(d.dtype), d.reshape(d.shape[0], d.shape[1], -1))
        return flat.reshape(d.shape[0], -1, *d.shape[2:])
