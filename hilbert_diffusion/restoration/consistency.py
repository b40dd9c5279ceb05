"""Hard data consistency: the denoised estimate fitted to the observation before each step (ReSample, Song et al.,
ICLR 2024, "Solving inverse problems with latent diffusion models via hard data consistency"; DCDP, Li et al. 2024).

Per step ``t → s``:

    x̂₀ = D(x_t, t)                                                                                (denoise)
    x̂₀* = K Adam steps on ‖y − A(x₀)‖²_g / ‖y‖²_g + λ Σ_axes ‖D_h x₀‖² from x₀ = x̂₀                (fit)
    x_s ~ q(x_s | x_t, x̂₀*)                                                                        (bridge)

The fit is early-stopped (``inner_steps`` steps of size ``learning_rate`` in the model's units), so it moves the
estimate only as far as the data ask and the next denoising pulls it back to the prior; it needs only a differentiable
``A`` — linear or not, e.g. points of a pair read through a nonlinear solver
(:class:`~hilbert_diffusion.restoration.constraint.SolverMask`, Darcy's ``u = S(a)``, where each fit step costs a
solve and its adjoint). Nothing is differentiated through the model: one model evaluation per step, like DPS's
forward pass without its backward one. The fit ignores ``noise_std``: it is meant for exact or nearly exact
observations (the PDE benchmarks' points); with noisy ones only its step count keeps it from fitting the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..engine import Method, Run, Sampler
from ..times import power_times
from .replacement import RESTORATION_STEPS

__all__ = ["HardConsistency", "hard_consistency", "difference_energy"]


def difference_energy(x: Tensor, ndim: int) -> Tensor:
    """``Σ_axes ‖D_h x‖²``: the squared first differences of ``x`` along its last ``ndim`` (grid) axes, summed per field,
    shape ``x.shape[:-ndim]`` — ``≈ h^(2−d) ∫|∇x|²``, a Tikhonov term that is grid-free in 2-D only."""
    axes = range(x.dim() - ndim, x.dim())
    return sum(x.diff(dim=axis).square().sum(tuple(range(-ndim, 0))) for axis in axes)


@dataclass(frozen=True)
class HardConsistency(Method):
    """``x_s ~ q(x_s | x_t, fit(D(x_t, t)))``; see :data:`hard_consistency`."""

    inner_steps: int = 10
    learning_rate: float = 0.1
    final_steps: int | None = None  # fit steps at the last step (to t = 0), default inner_steps
    smoothness: float = 0.0  # λ: weight of the fitted fields' squared first differences, 0 for none
    conditional: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        steps = {"inner_steps": self.inner_steps}
        if self.final_steps is not None:
            steps["final_steps"] = self.final_steps
        for name, value in steps.items():
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int ≥ 0 (fit steps per sampling step), got {value!r}.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a finite number > 0, got {self.learning_rate}.")
        if not (math.isfinite(self.smoothness) and self.smoothness >= 0):
            raise ValueError(f"smoothness (λ) must be a finite number ≥ 0, got {self.smoothness}.")

    def fit(self, run: Run, denoised: Tensor, steps: int) -> Tensor:
        """(fit): ``steps`` Adam steps on the relative misfit (plus the smoothness term), per field, from ``denoised``."""
        operator, y = run.observation()
        x0 = denoised.detach().clone().requires_grad_(True)
        optimiser = torch.optim.Adam([x0], lr=self.learning_rate)
        scale = operator.inner(y, y, run.grid).clamp_min(1e-30)  # ‖y‖²_g per field and channel
        for _ in range(steps):
            with torch.enable_grad():
                residual = y - operator.forward(x0)
                loss = (operator.inner(residual, residual, run.grid) / scale).sum()
                if self.smoothness > 0:  # λ Σ_axes ‖D_h x₀‖²
                    loss = loss + self.smoothness * difference_energy(x0, run.basis.ndim).sum()
                optimiser.zero_grad()
                loss.backward()
            optimiser.step()
        return operator.derive(x0.detach())

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        steps = self.inner_steps if s > 0 or self.final_steps is None else self.final_steps
        return run.bridge_sample(x, self.fit(run, denoised, steps), s, t)  # (bridge)


hard_consistency = Sampler("hard-consistency", HardConsistency(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Hard data consistency (ReSample, Song et al. 2024): at each step the denoised estimate is fitted to ``y`` by
``inner_steps`` Adam steps of size ``learning_rate`` (model units) on ``‖y − A x₀‖²_g / ‖y‖²_g`` (plus ``smoothness`` λ
times the fitted fields' squared first differences, a Tikhonov term for ill-posed ``A``), then bridged to the
next time. Any differentiable ``A``, linear or not (:class:`~hilbert_diffusion.restoration.constraint.SolverMask`);
one model evaluation per step and none differentiated. ``y``: ``(batch or 1, channels, *observation_grid)``."""
