"""The exact denoiser of HDM's Quadratic law, a reference of :mod:`benchmarks.quadratic`: driven by the same sampler
as the trained model, it isolates the sampler's own error."""

from __future__ import annotations

import torch
from torch import Tensor

from hilbert_diffusion.bases import NeumannBasis
from hilbert_diffusion.datasets import grid_coordinates
from hilbert_diffusion.datasets.quadratic import QUADRATIC_DOMAIN
from hilbert_diffusion.sde import StochasticHeatSDE

__all__ = ["SCALE", "QuadraticDenoiser", "grid_points"]

SCALE = 50.0  # the data's 1/50


def grid_points(basis: NeumannBasis, grid: tuple[int, ...]) -> Tensor:
    """The ``x`` of each grid point in ``[-10, 10]``, float64 ``(n,)``."""
    return grid_coordinates(basis, grid)[..., 0].to(torch.float64) + QUADRATIC_DOMAIN[0]


class QuadraticDenoiser:
    """The exact denoiser ``E[x_0 | x_t]`` of the Quadratic law in normalised units, at any grid.

    With ``x_0 = (a P + ε/50 - μ) / s`` (``P = x²/50`` on the grid, ``(μ, s)`` the trainer's normalisation),
    write ``x_0 = a p + β c`` with ``p = P/s``, ``c = 1/s`` (constant) and ``β = ε/50 - μ ~ N(-μ, σ²)``,
    ``σ = 1/50``. Per mode ``y_k = α_k x_{0,k} + sqrt(v_k) ξ_k`` (``α = sde.mean_factor``, ``v = sde.variance``),
    so for each sign ``a`` the scalar ``β`` has a Gaussian posterior (precision
    ``π = 1/σ² + Σ α_k² c_k² / v_k``) and integrating it out gives the evidence::

        log p(y | a) = -½ Σ_k r_k² / v_k + ½ b_a² / π + const,   r = y - α (a p - μ c),   b_a = Σ_k α_k c_k r_k / v_k
        E[x_0 | y]   = Σ_a w_a (a p + E[β | a, y] c),          w_a ∝ p(y | a),   E[β | a, y] = -μ + b_a / π

    (the constant is the same for both signs). The model contract: ``(x, t) -> E[x_0 | x_t]``.
    """

    def __init__(self, sde: StochasticHeatSDE, *, mean: float, std: float) -> None:
        if not std > 0:
            raise ValueError(f"std must be positive (the normalisation's standard deviation), got {std}.")
        self.sde, self.mean, self.std = sde, float(mean), float(std)
        self._cache: dict[tuple[int, ...], tuple[Tensor, Tensor]] = {}

    def _profiles(self, grid: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Coefficients of ``p = x²/(50 s)`` and ``c = 1/s`` on ``grid``, each ``(1, 1, n)`` float64."""
        if grid not in self._cache:
            basis = self.sde.basis
            points = grid_points(basis, grid)
            p = basis.forward((points**2 / SCALE / self.std).reshape(1, 1, -1))
            c = basis.forward(torch.full((1, 1, len(points)), 1 / self.std, dtype=torch.float64))
            self._cache[grid] = (p, c)
        return self._cache[grid]

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        basis = self.sde.basis
        grid = basis.grid_of(x)
        p, c = self._profiles(grid)
        t = torch.as_tensor(t, dtype=torch.float64).expand(x.shape[0])
        if bool((t == t[0]).all()):  # one time for the batch (as in every sampler): per-mode values once
            t = t[:1]
        alpha, v = self.sde.mean_factor(t, grid), self.sde.variance(t, grid)  # (batch or 1, 1, n)
        y = basis.forward(x.to(torch.float64))
        precision = SCALE**2 + ((alpha * c) ** 2 / v).flatten(1).sum(-1)
        log_evidence, beta = [], []
        for sign in (1.0, -1.0):
            r = y - alpha * (sign * p - self.mean * c)
            b = (alpha * c * r / v).flatten(1).sum(-1)
            log_evidence.append(-0.5 * (r**2 / v).flatten(1).sum(-1) + 0.5 * b**2 / precision)
            beta.append(-self.mean + b / precision)
        weights = torch.softmax(torch.stack(log_evidence), dim=0)
        shape = (-1, *[1] * (x.dim() - 1))
        denoised = sum(
            weights[i].reshape(shape) * (sign * p + beta[i].reshape(shape) * c) for i, sign in enumerate((1.0, -1.0))
        )
        return basis.inverse(denoised, grid).to(x.dtype)
