"""Time grids optimised against the exact law of the default sampler on Gaussian data.

For data ``N(m, C)`` with ``C = diag(c_k)`` in the SDE's basis the exact denoiser is affine per mode,
``D_k = m_k + g_k (x_k - a_k m_k)``, ``g_k = a_k c_k / (a_k² c_k + v_k)`` (O2 of :mod:`.models.oracle`), and the
exponential multistep sampler (:data:`~hilbert_diffusion.sampling.exponential_multistep`) is affine in its state.
Its output law is therefore ``N(μ_k, s_k²)`` per mode, computed here in closed form as a differentiable function
of the times (no Monte Carlo, no grid-space transforms)::

    x_out = μ + s ξ per mode, from x_{t_0} ~ N(a m, a² c + v) at t_0 = 1           (the exact law of x_1, O1)
    W2² = Σ_k m_k (|μ_k - m_k|² + (|s_k| - √c_k)²)                                  (Gelbrich, commuting covariances)

:func:`optimise_times` chooses the interior times that minimise that W2 (relative to ``sqrt(E‖x_0‖²)``) for a step
count, an SDE, one or more grids and a data spectrum — for a trained model the spectrum its Wiener skip uses. The
grid is parametrised monotonically: ``log t_i = -Σ_{j ≤ i} (δ + softplus(θ_j))`` (``t_0 = 1``, every increment at least
``δ`` = :data:`MIN_LOG_STEP`,
``t_steps = 0``), started at a few power grids (:data:`STARTS`, the first :func:`~hilbert_diffusion.times.default_times`)
and optimised by L-BFGS with torch autograd through the sampler's own step
(:func:`~hilbert_diffusion.sampling.multistep_update`). With several grids (a training grid and a finer one) the
objective is ``log Σ W2²``, so the hardest grid dominates: on data rougher than the noise a grid optimised at a coarse
grid alone can be worse than the default at a 4× finer one (``benchmarks/sampler_convergence.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import softplus

from .bases import Grid
from .engine import validate_times
from .noise import Spectrum
from .sampling import MultistepMemory, multistep_update
from .sde import DiagonalSDE
from .times import default_times, power_times

__all__ = ["GaussianTarget", "multistep_gaussian_w2", "optimise_times", "OptimisedTimes", "STARTS", "FLOOR",
           "FINER_POINTS", "target_grids", "spectrum_times", "MIN_LOG_STEP"]


@dataclass(frozen=True)
class GaussianTarget:
    """Gaussian data on one grid: per-mode variances ``variance`` ``(channels, *coefficient_shape)`` (float64) and
    optional mean coefficients ``mean`` of the same shape (``None``: centred, as normalised training data)."""

    grid: Grid
    variance: Tensor
    mean: Tensor | None = None


def _flat_modes(sde: DiagonalSDE, target: GaussianTarget, *, forgotten: bool) -> tuple[Tensor, ...]:
    """``(keep, m_k, c_k, mean_k)`` on the kept modes, flattened to ``(channels, modes)``: modes of positive
    multiplicity (the sphere pads with ``m = 0``), and unless ``forgotten``, only those whose ``a_k(1) > 0`` (where
    ``a_k`` underflows — fine grids, strong heat — the mode has forgotten the data and its gradient would be 0·∞).
    ``keep`` indexes the flattened coefficients; for a centred target, modes of equal eigenvalue and variances
    share one entry with their multiplicities summed (their laws are identical), which shortens the loop."""
    grid = target.grid
    mult = sde.basis.multiplicity(grid).to(torch.float64).reshape(-1)
    shape = sde.basis.coefficient_shape(grid)
    c = target.variance.to(torch.float64)
    c = c.expand(*c.shape[: c.dim() - len(shape)], *shape).reshape(-1, mult.numel())
    keep = mult > 0
    if not forgotten:
        keep = keep & (sde.mean_factor(1.0, grid) > 0).expand(shape).reshape(-1)
    keep = keep.nonzero().squeeze(1)
    if target.mean is not None:
        mean = target.mean.reshape(c.shape[0], -1)[:, keep]
        return keep, mult[keep], c[:, keep], mean.to(torch.complex128 if mean.is_complex() else torch.float64)
    lam = sde.basis.eigenvalues(grid).to(torch.float64).expand(shape).reshape(1, -1)
    _, first, inverse = _unique_columns(torch.cat([lam, c])[:, keep])
    weight = torch.zeros(len(first), dtype=torch.float64).index_add_(0, inverse, mult[keep])
    return keep[first], weight, c[:, keep[first]], torch.zeros_like(c[:, keep[first]])


def _unique_columns(columns: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(unique columns, index of each one's first occurrence, inverse)`` of a 2-D tensor."""
    unique, inverse = torch.unique(columns, dim=1, return_inverse=True)
    first = torch.full((unique.shape[1],), columns.shape[1], dtype=torch.long)
    first = first.scatter_reduce(0, inverse, torch.arange(columns.shape[1]), reduce="amin")
    return unique, first, inverse


def multistep_gaussian_w2(
    sde: DiagonalSDE, times: Tensor, target: GaussianTarget, *, order: int = 3, corrector: bool = False,
    forgotten: bool = True,
) -> Tensor:
    """Relative W2 of ``exponential_multistep`` (``order``, ``corrector``) on ``times`` to ``N(m, C)``, started from the exact
    law of ``x_{times[0]}``; a 0-dim float64 tensor, differentiable in ``times`` (which must end at 0).
    ``forgotten=False`` leaves out the modes whose ``a_k(1)`` underflows (see :func:`_flat_modes`)."""
    return _w2(sde, times, target.grid, _flat_modes(sde, target, forgotten=forgotten), order=order,
              corrector=corrector)


def _w2(sde: DiagonalSDE, times: Tensor, grid: Grid, modes: tuple[Tensor, ...], *, order: int, corrector: bool) -> Tensor:
    if float(times[-1].detach()) != 0:
        raise ValueError("multistep_gaussian_w2 needs a grid ending at t = 0 (the sampler's output).")
    keep, mult, c, m = modes
    shape = (len(times), *sde.basis.coefficient_shape(grid))

    def per_mode(values: Tensor) -> Tensor:  # (steps + 1, 1, kept modes); a mode-independent a(t) is broadcast
        return torch.broadcast_to(values.reshape(len(times), *values.shape[2:]), shape).reshape(len(times), 1, -1)[..., keep]

    a_all, v_all = per_mode(sde.mean_factor(times, grid)), per_mode(sde.variance(times, grid))
    x = torch.stack([a_all[0] * m, (a_all[0] ** 2 * c + v_all[0]).sqrt().to(m.dtype)])  # a mean and a deviation
    memory = MultistepMemory()
    for i in range(len(times) - 1):
        a_t, v_t = a_all[i], v_all[i]
        gain = a_t * c / (a_t**2 * c + v_t)
        denoised = gain * x + torch.stack([m * (1 - gain * a_t), torch.zeros_like(m)])  # O2, affine per mode
        x, memory = multistep_update(x, denoised, a_all[i + 1], a_t, v_all[i + 1], v_t, memory, order=order,
                                     final=i == len(times) - 2, corrector=corrector)
    w2 = (mult * ((x[0] - m).abs() ** 2 + (x[1].abs() - c.sqrt()) ** 2)).sum()
    scale = (mult * (m.abs() ** 2 + c)).sum()
    return (w2 / scale).sqrt()


MIN_LOG_STEP = 1e-2
"""The least ``log t_{i-1} - log t_i`` of an optimised grid. Without it the optimiser merges two times to within
~1e-13, where the multistep divided differences amplify rounding: the law it then optimises is not the engine's."""


def _times(theta: Tensor) -> Tensor:
    """``[1, exp(-cumsum (δ + softplus θ)), 0]``: decreasing from 1 to 0 by at least ``δ`` in ``log t`` for every ``θ``."""
    one = torch.ones(1, dtype=theta.dtype)
    log_t = -torch.cumsum(MIN_LOG_STEP + softplus(theta), 0)
    return torch.cat([one, torch.exp(log_t), torch.zeros(1, dtype=theta.dtype)])


def _theta(times: Tensor) -> Tensor:
    increments = (-torch.diff(times[:-1].log()) - MIN_LOG_STEP).clamp_min(1e-6)  # softplus θ = Δ log t - δ > 0
    return torch.where(increments > 20, increments, torch.log(torch.expm1(increments)))  # softplus⁻¹


@dataclass(frozen=True)
class OptimisedTimes:
    """The result of :func:`optimise_times`: ``times`` (float64, ``steps + 1``, from 1 to 0), and the relative W2 of
    the sampler on them and on ``default_times(steps)``, per target grid."""

    times: Tensor
    w2: tuple[float, ...]
    w2_default: tuple[float, ...]


STARTS: tuple[tuple[float, float], ...] = ((2.5, 5e-4), (1.5, 2e-3), (3.0, 2e-4))
"""``(ρ, t_end)`` of the power grids :func:`optimise_times` starts from (the first is :func:`default_times`)."""


FLOOR = 1e-4
"""The relative W2 at which :func:`optimise_times` stops: a grid this close to the exact law on every target grid is
far inside any trained denoiser's own error (a few per cent, ``benchmarks/denoiser_vs_oracle.py``); going on to 1e-7
costs 4-6× the time and changes no sample a model draws."""

_ROUND = 10  # L-BFGS iterations between checks against the floor


def optimise_times(
    sde: DiagonalSDE,
    targets: Sequence[GaussianTarget],
    *,
    steps: int,
    order: int = 3,
    corrector: bool = False,
    iterations: int = 100,
    floor: float = FLOOR,
) -> OptimisedTimes:
    """The grid of ``steps`` steps (= model evaluations of :data:`~hilbert_diffusion.sampling.exponential_multistep`)
    minimising ``log Σ_targets W2²`` of the sampler's exact output law (:func:`multistep_gaussian_w2`; the hardest grid
    dominates).

    L-BFGS (strong Wolfe line search, ``iterations`` per start) from each power grid of :data:`STARTS`; the best end
    point is returned, and ``default_times(steps)`` itself when nothing beats it, so the result is never worse than
    the default on the summed objective. It stops once the W2 on every target is below ``floor`` (``0``: never). Modes whose mean factor underflows anywhere on ``[0, 1]`` (fine grids with
    strong heat) have forgotten the data and are left out of the objective. A few seconds on one CPU core for a 32²
    grid with its 4× refinement (128²) where the floor is reached; up to 30 s where it is not (rough data)."""
    if not isinstance(steps, int) or steps < 3:
        raise ValueError(f"optimise_times needs steps ≥ 3 (an int), got {steps!r}; use default_times for fewer.")
    if not targets:
        raise ValueError("optimise_times needs at least one GaussianTarget (the data spectrum on a grid).")

    prepared = [(target.grid, _flat_modes(sde, target, forgotten=False)) for target in targets]

    def objective(times: Tensor) -> Tensor:
        return sum(_w2(sde, times, grid, modes, order=order, corrector=corrector) ** 2 for grid, modes in prepared).log()

    enough = 2 * math.log(floor) if floor > 0 else -math.inf  # Σ W2² < floor²: every W2 below the floor
    best = default_times(steps)
    with torch.no_grad():
        best_value = objective(best)
    for rho, t_end in STARTS:
        if best_value < enough:
            break
        times = _descend(objective, power_times(steps, rho=rho, t_end=t_end), iterations, enough=enough)
        with torch.no_grad():
            value = objective(times)
        if torch.isfinite(value) and value < best_value:
            best, best_value = times, value
    times = validate_times(best)
    with torch.no_grad():
        w2 = tuple(float(multistep_gaussian_w2(sde, times, t, order=order, corrector=corrector)) for t in targets)
        w2_default = tuple(float(multistep_gaussian_w2(sde, default_times(steps), t, order=order, corrector=corrector))
                           for t in targets)
    return OptimisedTimes(times=times, w2=w2, w2_default=w2_default)


def _descend(objective, start: Tensor, iterations: int, *, enough: float) -> Tensor:
    """L-BFGS on ``θ`` (:func:`_times`) from ``start``, in rounds of :data:`_ROUND` iterations until ``iterations`` or an
    objective below ``enough``; a non-finite objective (a step into a degenerate grid) reads as a large value, so the
    line search backs off."""
    theta = _theta(start).clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([theta], lr=1.0, max_iter=min(_ROUND, iterations), line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        if not torch.isfinite(theta).all():
            return torch.tensor(1e6, dtype=torch.float64)
        loss = objective(_times(theta))
        if not torch.isfinite(loss):
            return torch.tensor(1e6, dtype=torch.float64)
        loss.backward()
        if not torch.isfinite(theta.grad).all():
            theta.grad.zero_()
        return loss.detach()

    for _ in range(math.ceil(iterations / _ROUND)):  # the history carries over from round to round
        optimiser.step(closure)  # returns the loss at the round's start: the end point is evaluated below
        if not torch.isfinite(theta).all():
            break
        with torch.no_grad():
            if float(objective(_times(theta))) < enough:
                break
    theta = theta.detach()
    return _times(theta) if torch.isfinite(theta).all() else start


FINER_POINTS = 128 * 128
"""The finer grid :func:`spectrum_times` also optimises for: the training grid refined 4× (or 2×) per axis while it
has at most this many points (a grid optimised at the training grid alone can fail finer grids on rough data)."""


def target_grids(sde: DiagonalSDE, grid: Sequence[int]) -> tuple[Grid, ...]:
    """The training ``grid`` and the finest of its 4× and 2× refinements with at most :data:`FINER_POINTS` points."""
    grid = sde.basis.grid(tuple(grid))
    for factor in (4, 2):
        finer = sde.basis.grid(tuple(factor * n for n in grid))
        if math.prod(finer) <= FINER_POINTS:
            return grid, finer
    return (grid,)


def spectrum_times(
    sde: DiagonalSDE,
    spectra: Sequence[Spectrum],
    grid: Sequence[int],
    *,
    steps: int,
    corrector: bool = False,
    transfer: bool = True,
) -> dict:
    """The grid of ``steps`` steps optimised for centred Gaussian data with per-channel ``spectra`` (a trained model's
    Wiener-skip spectrum) on :func:`target_grids` of ``grid`` (``transfer=False``: on ``grid`` alone, the grid to be
    sampled; ``corrector``: for :data:`~hilbert_diffusion.sampling.exponential_corrected`), as the JSON-ready document
    a run stores: ``{"steps", "corrector", "times", "grids", "w2", "w2_default"}`` (W2 per grid, relative, of the
    optimised and default grids)."""
    grids = target_grids(sde, grid) if transfer else (sde.basis.grid(tuple(grid)),)
    targets = [GaussianTarget(g, torch.stack([s(sde.basis.eigenvalues(g)) for s in spectra])) for g in grids]
    result = optimise_times(sde, targets, steps=steps, corrector=corrector)
    return {"steps": steps, "corrector": corrector, "times": result.times.tolist(), "grids": [list(g) for g in grids],
            "w2": list(result.w2), "w2_default": list(result.w2_default)}
