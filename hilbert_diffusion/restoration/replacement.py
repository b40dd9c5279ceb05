"""Replacement methods: condition the reverse process by overwriting the observed part of the state.

* :data:`repaint` — the observed part replaced by its forward-noised value after each bridge step, with
  RePaint's resampling jumps (Lugmayr et al. 2022);
* :data:`ddnm` — null-space projection of the denoised estimate, ``x̂_0 = D + A⁺ Λ (y - A D)`` (Wang et al. 2023;
  ``Λ < 1`` is DDNM⁺'s rule for ``σ_y > 0``), then the bridge step.

For an operator diagonal in the basis and a model diagonal too (the Gaussian oracle) the observed and unobserved
modes are independent and both are exact up to the bridge discretisation; for masks and block averages they are
not (``benchmarks/restoration_exact.py``: 15–60 % off in the mean).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..engine import Method, Run, Sampler
from ..times import power_times

__all__ = ["RePaint", "DDNM", "repaint", "ddnm", "RESTORATION_STEPS"]

RESTORATION_STEPS = 100
"""Default steps of the restoration methods (on ``power_times``)."""


@dataclass(frozen=True)
class RePaint(Method):
    """Bridge step, then ``x_s ← (I - A⁺A) x_s + A⁺A x̃_s`` with ``x̃_s ~ N(a_s A⁺y, v_s)``; ``resample = U > 1``
    repeats each step ``U`` times, jumping back ``s → t`` by the forward transition in between (jump length 1)."""

    resample: int = 1
    conditional: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.resample, int) or self.resample < 1:
            raise ValueError(f"resample must be a positive int (RePaint's U), got {self.resample!r}.")

    def evaluations(self, steps: int) -> int:
        return self.resample * steps

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        for r in range(self.resample):
            if r > 0:
                denoised = run.denoise(x, t)
            x_s = run.bridge_sample(x, denoised, s, t)
            noised, _ = run.sde.marginal_sample(run.known.expand_as(x_s), s, generator=run.generator)
            x_s = run.project_observed(x_s, noised)
            x = run.sde.transition_sample(x_s, s, t, generator=run.generator) if r < self.resample - 1 else x_s
        return x


@dataclass(frozen=True)
class DDNM(Method):
    """``x̂_0 = D + A⁺ Λ_t (y - A D)``, then ``x_s ~ q(x_s | x_t, x̂_0)``; see :data:`ddnm`."""

    conditional: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        operator, y = run.observation()
        residual = y - operator.forward(denoised)
        if operator.noise_std > 0:
            residual = _limit_carried_noise(run, residual, s, t)
        return run.bridge_sample(x, denoised + run.pinv(residual), s, t)


def _limit_carried_noise(run: Run, residual: Tensor, s: float, t: float) -> Tensor:
    """DDNM⁺'s ``Λ_t`` (their eq. 19): scale the residual so that the observation noise carried into ``x_s`` never
    exceeds the step's own noise, ``λ = min(1, σ_s / (c_0 σ_y / s_k))``."""
    operator, basis, sde = run.operator, run.basis, run.sde
    singular = operator.observation_multiplier(run.grid)
    if singular is None:  # not diagonal: compare pointwise standard deviations
        _, c_0, var = sde.bridge(s, t, run.grid)
        volume = float(basis.weights(run.grid).expand(run.grid).sum())
        pointwise = math.sqrt(float((basis.multiplicity(run.grid) * var).sum()) / volume)
        return residual * min(1.0, pointwise / (float(c_0.max()) * operator.noise_std))
    # per mode: the noise σ_y² W / s² carried by A⁺ against the bridge variance
    _, c_0, var = sde.bridge(s, t, operator.observation_grid(run.grid))
    observation_weight = float(operator.observation_weights(run.grid).mean())
    carried = c_0 * operator.noise_std * math.sqrt(observation_weight) / singular
    scale = (var.sqrt() / carried.clamp_min(torch.finfo(torch.float64).tiny)).clamp_max(1.0)
    return operator.apply_observed(residual, scale, run.grid)


repaint = Sampler("repaint", RePaint(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Replacement with RePaint's resampling (Lugmayr et al. 2022), in the SDE's basis: per step the unconditional
bridge step, then the observed part replaced by the forward-noised observation ``x̃_s ~ N(a_s A⁺y, v_s)``.
``σ_y`` is ignored (the observation is treated as exact). ``resample · steps`` model evaluations.
``y``: ``(batch or 1, channels, *observation_grid)``."""

ddnm = Sampler("ddnm", DDNM(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Null-space projection of the denoised estimate (DDNM, Wang et al. 2023), then the bridge step.

``x̂_0 = D + A⁺ Λ_t (y - A D)``, ``D = D(x_t, t)``, then ``x_s ~ q(x_s | x_t, x̂_0)``. For ``σ_y = 0``, ``Λ_t = I``
and every sample satisfies ``A x_0 = y`` (on the modes ``A⁺`` inverts). For ``σ_y > 0`` (DDNM⁺) ``Λ_t`` scales each
singular direction so the carried observation noise never exceeds the bridge's: per mode for an operator diagonal in
the basis (``operator.observation_multiplier``), else with the pointwise standard deviations of both noises.
One model evaluation per step. ``y``: ``(batch or 1, channels, *observation_grid)``."""
