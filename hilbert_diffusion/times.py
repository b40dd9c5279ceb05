"""Time grids for the reverse process: 1-D float64 tensors decreasing from ``t_start ≤ 1`` to 0.

:func:`uniform_times` (for the many-step baselines and the order tests), :func:`power_times` (EDM's power-``ρ``
spacing applied to ``t``, tuned for few steps) and :func:`default_times` (its tuning for the default sampler).
A grid of ``steps + 1`` times is ``steps`` steps; a one-evaluation-per-step sampler calls the model ``steps`` times.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["uniform_times", "power_times", "DEFAULT_STEPS", "default_times"]


def uniform_times(steps: int, *, t_start: float = 1.0, t_end: float = 0.0) -> Tensor:
    """``steps + 1`` times from ``t_start`` down to 0, uniform in ``t`` (float64, shape ``(steps + 1,)``).

    With ``t_end = 0`` (default) the grid is ``linspace(t_start, 0, steps + 1)``; with ``t_end > 0`` it is
    ``linspace(t_start, t_end, steps)`` followed by a final step to 0. Either way a one-evaluation-per-step
    sampler calls the model ``steps`` times.
    """
    _check_steps(steps)
    _check_span(t_start, t_end)
    if t_end == 0:
        return torch.linspace(t_start, 0.0, steps + 1, dtype=torch.float64)
    if steps < 2:
        raise ValueError(f"steps={steps} leaves no room for t_end={t_end} > 0; use steps ≥ 2 or t_end=0.")
    return torch.cat([torch.linspace(t_start, t_end, steps, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)])


def power_times(steps: int, *, rho: float = 2.0, t_start: float = 1.0, t_end: float = 2e-3) -> Tensor:
    """Few-step grid: EDM's power-``ρ`` spacing (Karras et al. 2022, eq. 5) applied to ``t``, then a step to 0.

    ``t_i = (t_start^{1/ρ} + i/(steps-1) (t_end^{1/ρ} - t_start^{1/ρ}))^ρ`` for ``i = 0..steps-1``, then
    ``t_steps = 0``: ``ρ = 1`` is uniform, larger ``ρ`` concentrates steps near the data, where the
    fine modes are generated. The defaults (``ρ = 2``, ``t_end = 2e-3``) are near the best exact Gaussian W2
    of ``rk3_ode`` with 16 steps and ``heun_ode`` with 25 (benchmarks/sampler_convergence.py).
    ``t_end`` stays fixed as ``steps`` grows, so the error levels off at that of the last step; use
    :func:`uniform_times` for convergence studies. Returns float64 of shape ``(steps + 1,)``.
    """
    _check_steps(steps)
    _check_span(t_start, t_end)
    if t_end <= 0 or steps < 2:
        raise ValueError(
            f"power_times needs t_end > 0 and steps ≥ 2, got t_end={t_end}, steps={steps}; use uniform_times otherwise."
        )
    if rho <= 0:
        raise ValueError(f"rho must be positive, got rho={rho}.")
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    times = (t_start ** (1 / rho) + ramp * (t_end ** (1 / rho) - t_start ** (1 / rho))) ** rho  # EDM eq. (5) in t
    times[0], times[-1] = t_start, t_end
    return torch.cat([times, torch.zeros(1, dtype=torch.float64)])


DEFAULT_STEPS = 48
"""Steps (= model evaluations) of the default sampler, ``exponential_multistep`` on :func:`default_times`."""


def default_times(steps: int = DEFAULT_STEPS) -> Tensor:
    """The default grid of ``sampling.sample``: ``power_times(steps, rho=2.5, t_end=5e-4)``, ``steps`` model evaluations
    with ``exponential_multistep``.

    Chosen from ``benchmarks/sampler_convergence.py`` (exact Gaussian W2 of the 3M sampler over ``ρ`` and ``t_end``):
    at 48 steps it beats Euler–Maruyama with 1000 steps on smooth and rough data, with and without heat, at 32² and 128².
    """
    return power_times(steps, rho=2.5, t_end=5e-4)


def _check_steps(steps: int) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")


def _check_span(t_start: float, t_end: float) -> None:
    if not 0 <= t_end < t_start <= 1:
        raise ValueError(f"need 0 ≤ t_end < t_start ≤ 1, got t_start={t_start}, t_end={t_end}.")


