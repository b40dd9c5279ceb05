"""A differential kernel on a box: learned finite differences divided by the grid spacing, resolution-free.

Liu-Schiaffini et al., "Neural Operators with Localized Integral and Differential Kernels" (ICML 2024,
arXiv 2402.16845), §3: a convolution whose stencil sums to zero, divided by the spacing ``h``, converges to a
directional derivative as the grid is refined, so it is a local operator that stays the same operator at every
resolution. Here the stencil is taken along each grid axis ``a`` (``r = kernel_size // 2`` neighbours each side)::

    (D u)(x) = Σ_a Σ_{0<|j|≤r} W_{a,j} (u(x + j h_a e_a) − u(x)) / h_a                   (D1)
             → Σ_a (Σ_j j W_{a,j}) ∂_a u                    as h → 0 (Taylor: the symmetric part is O(h))

``W_{a,j}`` are channel matrices (one matrix product on the stacked differences), so any rank and channel count
work, and anisotropic grids too (each axis has its own ``h_a``). The zero-sum property is built in: a constant field
gives zero. Points beyond the box (:func:`extend`): the periodic wrap on a torus; at walls the linear continuation
of the field (exact for ramps: the kernel is a consistent derivative up to the walls, whatever the features' values
and slopes there).
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
    """``x`` with ``width`` points added at both ends of grid axis ``axis`` (a dim of ``x``): periodic wrap on a torus;
    at walls (Neumann, Dirichlet) the line through the two points nearest the wall, continued.

    Why not the basis's own extension at walls (even for cosines, odd for sines): (D1) acts on the network's hidden
    features, which need not satisfy the walls' condition. An odd extension of a feature that does not vanish at the
    wall jumps there (``D u ~ u / h``: no limit as the grid is refined); an even one of a feature with a slope across
    the wall kinks (an ``O(1)`` error next to it). The linear continuation is exact for every ramp, a consistent
    first-order derivative at every point, and agrees with the odd extension of a field that vanishes at the wall
    (and with the even one of a field flat there) to ``O(h²)``.
    """
    n = x.shape[axis]
    if width > n:
        raise ValueError(f"a stencil reaching {width} points beyond the walls needs as many grid points, got {n}.")
    if isinstance(basis, PeriodicBasis):
        return torch.cat([x.narrow(axis, n - width, width), x, x.narrow(axis, 0, width)], axis)
    if not isinstance(basis, (NeumannBasis, DirichletBasis)):
        raise TypeError(f"differential kernels need a box basis (periodic, Neumann or Dirichlet), got "
                        f"{type(basis).__name__}.")
    steps = torch.arange(1, width + 1, dtype=x.dtype, device=x.device).reshape(-1, *[1] * (x.dim() - 1 - axis))
    first, last = x.narrow(axis, 0, 1), x.narrow(axis, n - 1, 1)
    left = first - steps.flip(0) * (x.narrow(axis, 1, 1) - first)  # farthest first
    right = last + steps * (last - x.narrow(axis, n - 2, 1))
    return torch.cat([left, x, right], axis)


class DifferentialKernel(nn.Module):
    """The operator (D1): ``(batch, in_channels, *grid) → (batch, out_channels, *grid)`` on ``basis``'s box (1-, 2- or
    3-D), computed as one convolution whose stencil is a cross (the axes through the centre) with weights
    ``W_{a,j} / h_a`` on the arms and minus their sum at the centre, on the field extended by :func:`extend`.

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
        if not 1 <= basis.ndim <= 3:
            raise ValueError(f"differential kernels run as torch convolutions, on 1-, 2- or 3-D boxes; got "
                             f"{basis.ndim}-D.")
        self.basis, self.radius = basis, kernel_size // 2
        self.offsets = [j for j in range(-self.radius, self.radius + 1) if j != 0]
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, basis.ndim, len(self.offsets)))
        """``W_{a,j}``: ``(out, in, axis a, offset j)``, the offsets ``-r … -1, 1 … r``."""
        bound = 1 / math.sqrt(in_channels * basis.ndim * len(self.offsets))
        nn.init.zeros_(self.weight) if zero_init else nn.init.uniform_(self.weight, -bound, bound)
        self.register_buffer("stencils", self._stencils(basis.ndim, kernel_size), persistent=False)
        self._convolve = getattr(torch.nn.functional, f"conv{basis.ndim}d")

    def _stencils(self, ndim: int, kernel_size: int) -> Tensor:
        """``(ndim, 2r, k, …, k)``: the stencil of ``u(x + j e_a) − u(x)`` for each axis and offset."""
        out = torch.zeros(ndim, len(self.offsets), *[kernel_size] * ndim)
        centre = [self.radius] * ndim
        for a in range(ndim):
            for index, j in enumerate(self.offsets):
                tap = list(centre)
                tap[a] += j
                out[(a, index, *tap)] += 1.0
                out[(a, index, *centre)] -= 1.0
        return out

    def forward(self, x: Tensor) -> Tensor:
        grid = self.basis.grid_of(x)
        inverse_h = torch.tensor([1 / h for h in grid_spacing(self.basis, grid)], dtype=x.dtype, device=x.device)
        weight = self.weight.to(x.dtype) * inverse_h[:, None]
        kernel = torch.einsum("oiaj,aj...->oi...", weight, self.stencils.to(x.dtype))
        for dim in range(x.dim() - self.basis.ndim, x.dim()):
            x = extend(x, self.basis, dim, self.radius)
        return self._convolve(x, kernel)
