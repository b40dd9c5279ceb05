"""Guidance through the model: diffusion posterior sampling (DPS, Chung et al. 2023), optionally with a PDE
residual term (DiffusionPDE's physics guidance, Huang et al. 2024)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..engine import Method, Run, Sampler
from ..times import power_times
from .replacement import RESTORATION_STEPS
from .residual import PDEResidual, check_residual_options

__all__ = ["DPS", "dps"]


@dataclass(frozen=True)
class DPS(Method):
    """``x_s = bridge(x_t, D(x_t)) - ζ ∇_{x_t} (‖y - A D(x_t, t)‖_g + λ ‖Δ_h⁻¹ R(D(x_t, t))‖)``; see :data:`dps`."""

    step_size: float = 1.0
    residual: PDEResidual | None = None
    residual_weight: float = 1.0
    conditional: ClassVar[bool] = True
    requires_grad: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_size) and self.step_size >= 0):
            raise ValueError(f"step_size (ζ) must be a finite number ≥ 0, got {self.step_size}.")
        check_residual_options(self.residual, self.residual_weight)

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        operator, y = run.observation()
        with torch.enable_grad():
            residual = y - operator.forward(denoised)
            norm = operator.inner(residual, residual, run.grid).flatten(1).sum(-1).clamp_min(1e-30).sqrt()
            if self.residual is not None:  # λ ‖Δ_h⁻¹ R(D)‖: the PDE's residual of the denoised pair (PDEResidual.norm)
                norm = norm + self.residual_weight * self.residual.norm(denoised)
            (grad,) = torch.autograd.grad(norm.sum(), x)
        weights = run.basis.weights(run.grid).to(device=x.device, dtype=x.dtype)
        return run.bridge_sample(x.detach(), denoised.detach(), s, t) - self.step_size * grad / weights


dps = Sampler("dps", DPS(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Diffusion posterior sampling (Chung et al. 2023): likelihood guidance through the model.

Per step ``t → s``: ``x_s = bridge(x_t, D(x_t)) - ζ ∇_{x_t} ‖y - A D(x_t, t)‖_g`` with ``ζ = step_size``, the norm the
observation space's quadrature norm over the observed points and ``∇`` the L² gradient (the Euclidean gradient
divided by the grid weights), so ``ζ`` does not depend on the grid. With ``residual`` (a
:class:`~hilbert_diffusion.restoration.residual.PDEResidual` on the model's normalised fields) the norm of the
denoised pair's PDE residual in the solution's units (``PDEResidual.norm``: ``‖Δ_h⁻¹ R‖``, free of the grid),
weighted by ``residual_weight`` (λ), joins the observation's norm. The gradient is taken through the model by
autograd: one forward and one backward pass per step. ``y``: ``(batch or 1, channels, *observation_grid)``."""
