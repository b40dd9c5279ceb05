"""Batched solvers of the elliptic problems of DiffusionPDE's static data sets (Huang et al., NeurIPS 2024), on the
``S × S`` vertex grid of the unit square, ``x_i = i h``, ``h = 1/(S-1)``, with ``u = 0`` on the boundary nodes.

* :func:`solve_dirichlet` — ``(Δ_h + c) u = f`` at the interior nodes with the 5-point Laplacian
  ``Δ_h``: Poisson (``c = 0``, their ``generate_poisson.m``) and Helmholtz (``c = k²``, their
  ``generate_inhom_helmholtz.m``, whose boundary rows force ``u = 0`` on the boundary for ``1 + k² < π²``).
  ``Δ_h`` is diagonal in the 2-D sine transform (DST-I) of the interior, so the solve is exact:
  ``û_mn = f̂_mn / (c − μ_m − μ_n)``, ``μ_m = (2 − 2 cos(π m/(S−1))) / h²``.                   (DST solve)
* :func:`solve_darcy` — ``−∇·(a ∇u) = f`` by 5-point finite volumes with arithmetic face averages
  (their ``solve_gwf.m``): ``Σ_nb (a_c + a_nb)/2 · (u_c − u_nb) / h² = f_c``,                        (FV)
  by conjugate gradients preconditioned with the (DST solve) of ``ā(−Δ_h)`` (``ā`` the field's mean coefficient):
  the preconditioned operator's condition number is at most ``max a / min a``, so the iteration count does not grow
  with the grid. Like theirs, the coefficient and the source are first carried from the cell centres of the
  data grid to the vertices by tensor-product not-a-knot cubic splines (MATLAB's ``interp2(..., 'spline')``),
  and the solution back to the cell centres. The solve is differentiable in ``a`` and ``f`` by the adjoint method
  (one more CG solve per backward pass; (FV) is symmetric, so the adjoint system is the same operator):
  ``∂L/∂f = λ``, ``∂L/∂a = −∂_a ⟨λ, A(a) u⟩`` with ``A(a) λ = ∂L/∂u``.                              (adjoint)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["solve_dirichlet", "zero_boundary", "replicate_boundary", "solve_darcy", "spline_matrix", "darcy_operator", "flux_divergence",
           "darcy_transfers"]


def _sine_transform(n: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The orthogonal, symmetric DST-I matrix of size ``n`` (its own inverse)."""
    j = torch.arange(1, n + 1, dtype=torch.float64)
    return (math.sqrt(2.0 / (n + 1)) * torch.sin(math.pi * j[:, None] * j[None, :] / (n + 1))).to(dtype=dtype, device=device)


def _laplacian_symbol(size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``μ_m + μ_n`` for the interior of the ``size²`` vertex grid: the eigenvalues of ``−Δ_h`` (DST solve)."""
    h = 1.0 / (size - 1)
    m = torch.arange(1, size - 1, dtype=torch.float64)
    mu = (2 - 2 * torch.cos(math.pi * m / (size - 1))) / h**2
    return (mu[:, None] + mu[None, :]).to(dtype=dtype, device=device)


def _check_square(x: Tensor, name: str) -> int:
    if x.dim() < 2 or x.shape[-1] != x.shape[-2] or x.shape[-1] < 3:
        raise ValueError(f"{name} must be (..., S, S) with S ≥ 3, got shape {tuple(x.shape)}.")
    return x.shape[-1]


def _interior_solve(f: Tensor, symbol: Tensor) -> Tensor:
    """``u = F⁻¹ (F f / symbol)`` on the interior block ``(..., S-2, S-2)`` with the 2-D DST-I ``F``."""
    s = _sine_transform(f.shape[-1], f.dtype, f.device)
    return s @ ((s @ f @ s) / symbol) @ s


def solve_dirichlet(f: Tensor, *, shift: float = 0.0) -> Tensor:
    """``u`` with ``(Δ_h + shift) u = f`` at the interior nodes and ``u = 0`` on the boundary (DST solve), for
    ``f`` of shape ``(..., S, S)`` on the vertex grid (its boundary values are not used). Exact to round-off."""
    size = _check_square(f, "f")
    symbol = shift - _laplacian_symbol(size, f.dtype, f.device)
    if bool((symbol.abs() < 1e-12 * symbol.abs().max()).any()):
        raise ValueError(f"shift={shift} is an eigenvalue of −Δ_h on this grid: the problem has no unique solution.")
    u = torch.zeros_like(f)
    u[..., 1:-1, 1:-1] = _interior_solve(f[..., 1:-1, 1:-1], symbol)
    return u


def zero_boundary(a: Tensor) -> Tensor:
    """``a`` with its boundary nodes (first and last row and column of the last two axes) set to zero."""
    inside = torch.zeros_like(a)
    inside[..., 1:-1, 1:-1] = a[..., 1:-1, 1:-1]
    return inside


def replicate_boundary(a: Tensor) -> Tensor:
    """``a`` with each boundary node holding its nearest interior node's value (corners their diagonal neighbour's):
    what :func:`zero_boundary` discards, filled without a jump, so ``zero_boundary(replicate_boundary(a)) =
    zero_boundary(a)``."""
    inside = a[..., 1:-1, 1:-1]
    filled = torch.cat([inside[..., :1, :], inside, inside[..., -1:, :]], dim=-2)
    return torch.cat([filled[..., :1], filled, filled[..., -1:]], dim=-1)


# =========================================================================================== splines
def spline_matrix(source: Tensor, target: Tensor) -> Tensor:
    """The ``(len(target), len(source))`` matrix of not-a-knot cubic spline interpolation from the increasing,
    equally spaced points ``source`` to the points ``target`` (extrapolating with the end cubics), float64.

    The spline's second derivatives ``m`` solve ``m_{i−1} + 4 m_i + m_{i+1} = 6 δ²y_i / h²`` inside and
    ``m_0 − 2 m_1 + m_2 = 0 = m_{n−3} − 2 m_{n−2} + m_{n−1}`` (not-a-knot: the third derivative is continuous at
    the second and the second-to-last point); it is linear in the data, so applying it to the identity gives
    the matrix."""
    x = source.to(torch.float64)
    n = len(x)
    if n < 4:
        raise ValueError(f"a not-a-knot cubic spline needs at least 4 points, got {n}.")
    h = float(x[1] - x[0])
    system = torch.zeros(n, n, dtype=torch.float64)
    rhs = torch.zeros(n, n, dtype=torch.float64)
    eye = torch.eye(n, dtype=torch.float64)
    for i in range(1, n - 1):
        system[i, i - 1 : i + 2] = torch.tensor([1.0, 4.0, 1.0], dtype=torch.float64)
        rhs[i] = 6 * (eye[i - 1] - 2 * eye[i] + eye[i + 1]) / h**2
    system[0, :3] = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    system[-1, -3:] = torch.tensor([1.0, -2.0, 1.0], dtype=torch.float64)
    m = torch.linalg.solve(system, rhs)  # (n, n): second derivatives per unit datum
    t = target.to(torch.float64)
    i = ((t - x[0]) / h).floor().long().clamp(0, n - 2)
    d = t - x[i]
    slope = (eye[i + 1] - eye[i]) / h - h * (2 * m[i] + m[i + 1]) / 6
    return eye[i] + slope * d[:, None] + m[i] / 2 * d[:, None] ** 2 + (m[i + 1] - m[i]) / (6 * h) * d[:, None] ** 3


def _transfer(x: Tensor, matrix: Tensor) -> Tensor:
    """The tensor-product interpolation ``M x Mᵀ`` on the last two axes."""
    matrix = matrix.to(dtype=x.dtype, device=x.device)
    return matrix @ x @ matrix.T


def _centres_and_vertices(size: int) -> tuple[Tensor, Tensor]:
    centres = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    return centres, torch.linspace(0.0, 1.0, size, dtype=torch.float64)


def darcy_transfers(size: int) -> tuple[Tensor, Tensor]:
    """The spline matrices of :func:`solve_darcy` on the ``size``-point axis, float64: cell centres → vertices (for
    ``a`` and ``f``) and vertices → cell centres (for ``u``)."""
    centres, vertices = _centres_and_vertices(size)
    return spline_matrix(centres, vertices), spline_matrix(vertices, centres)


# =========================================================================================== Darcy
def darcy_operator(u: Tensor, a: Tensor) -> Tensor:
    """The (FV) operator on the interior nodes: ``(..., S-2, S-2)`` unknowns ``u`` and vertex coefficients ``a``
    ``(..., S, S)`` (boundary values of ``u`` are zero) to ``Σ_nb (a_c + a_nb)/2 (u_c − u_nb) / h²``."""
    return flux_divergence(torch.nn.functional.pad(u, (1, 1, 1, 1)), a)


def flux_divergence(u: Tensor, a: Tensor) -> Tensor:
    """(FV) at the interior nodes for ``u`` and ``a`` both on the whole ``(..., S, S)`` vertex grid (``u``'s
    boundary values as given): ``Σ_nb (a_c + a_nb)/2 (u_c − u_nb) / h²``, shape ``(..., S-2, S-2)``."""
    size = a.shape[-1]
    centre, u_c = a[..., 1:-1, 1:-1], u[..., 1:-1, 1:-1]
    out = torch.zeros_like(u_c)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = a[..., 1 + dx : size - 1 + dx, 1 + dy : size - 1 + dy]
        u_nb = u[..., 1 + dx : size - 1 + dx, 1 + dy : size - 1 + dy]
        out = out + 0.5 * (centre + neighbour) * (u_c - u_nb)
    return out * (size - 1) ** 2


def _conjugate_gradients(a: Tensor, f: Tensor, *, tolerance: float, max_iterations: int) -> Tensor:
    """Batched preconditioned CG for ``darcy_operator(·, a) u = f`` on the interior ``(batch, S-2, S-2)``."""
    symbol = _laplacian_symbol(a.shape[-1], f.dtype, f.device)
    scale = a.mean(dim=(-2, -1), keepdim=True)

    def precondition(r: Tensor) -> Tensor:  # (ā (−Δ_h))⁻¹ r
        return _interior_solve(r, symbol) / scale

    def dot(p: Tensor, q: Tensor) -> Tensor:
        return (p * q).sum(dim=(-2, -1), keepdim=True)

    def ratio(p: Tensor, q: Tensor) -> Tensor:  # p / q, and 0 where q = 0 (a field already solved exactly, f = 0)
        return p / torch.where(q == 0, torch.ones_like(q), q)

    u = precondition(f)
    r = f - darcy_operator(u, a)
    z = precondition(r)
    p, rz = z, dot(r, z)
    target = tolerance * f.flatten(-2).norm(dim=-1)
    for _ in range(max_iterations):
        if bool((r.flatten(-2).norm(dim=-1) <= target).all()):
            return u
        ap = darcy_operator(p, a)
        step = ratio(rz, dot(p, ap))
        u, r = u + step * p, r - step * ap
        z = precondition(r)
        rz_next = dot(r, z)
        p, rz = z + ratio(rz_next, rz) * p, rz_next
    raise ValueError(
        f"Darcy's conjugate gradients did not reach a relative residual of {tolerance:g} in {max_iterations} "
        f"iterations; is the coefficient positive everywhere?"
    )


class _DarcySolve(torch.autograd.Function):
    """``u = A(a)⁻¹ f`` on the interior by CG, with the (adjoint) backward pass: one CG solve of the same operator."""

    @staticmethod
    def forward(ctx, a: Tensor, f: Tensor, tolerance: float, max_iterations: int) -> Tensor:
        u = _conjugate_gradients(a, f, tolerance=tolerance, max_iterations=max_iterations)
        ctx.save_for_backward(a, u)
        ctx.options = (tolerance, max_iterations)
        return u

    @staticmethod
    def backward(ctx, grad_u: Tensor):
        a, u = ctx.saved_tensors
        tolerance, max_iterations = ctx.options
        adjoint = _conjugate_gradients(a, grad_u, tolerance=tolerance, max_iterations=max_iterations)  # A λ = ∂L/∂u
        grad_a = None
        if ctx.needs_input_grad[0]:  # −∂_a ⟨λ, A(a) u⟩: (FV) is linear in a, so autograd of it is exact  (adjoint)
            with torch.enable_grad():
                probe = a.detach().requires_grad_(True)
                (grad_a,) = torch.autograd.grad(darcy_operator(u, probe), probe, grad_outputs=-adjoint)
        return grad_a, adjoint, None, None


def solve_darcy(a: Tensor, f: Tensor | float = 1.0, *, tolerance: float = 1e-10, max_iterations: int = 500) -> Tensor:
    """DiffusionPDE's Darcy solution for coefficients ``a`` at the cell centres of an ``S × S`` grid,
    ``(..., S, S)``: spline ``a`` and ``f`` to the vertices, solve (FV) with ``u = 0`` on the boundary to a relative
    residual ``tolerance``, spline ``u`` back to the cell centres. Returns ``(..., S, S)`` in ``a``'s dtype;
    differentiable in ``a`` and ``f`` by the (adjoint) method (backward: one more solve to the same tolerance)."""
    size = _check_square(a, "a")
    if size < 4:
        raise ValueError(f"the spline transfer needs S ≥ 4, got {size}.")
    to_vertices, to_centres = darcy_transfers(size)
    batch = a.shape[:-2]
    a_v = _transfer(a.reshape(-1, size, size), to_vertices)
    f_grid = torch.as_tensor(f, dtype=a.dtype, device=a.device).expand(a.shape).reshape(-1, size, size)
    f_v = _transfer(f_grid, to_vertices)[..., 1:-1, 1:-1]
    u = _DarcySolve.apply(a_v, f_v, tolerance, max_iterations)
    u = torch.nn.functional.pad(u, (1, 1, 1, 1))
    return _transfer(u, to_centres).reshape(*batch, size, size)
