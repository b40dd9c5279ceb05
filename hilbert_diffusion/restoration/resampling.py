"""Particle filters' common parts: their options, systematic resampling where the effective sample size is low, and
each filter's output — one particle drawn by the weights, or the weighted mean of the particles (shared by the particle
samplers of :mod:`.smc` and :mod:`.twisted_smc`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..engine import Method, Run
from ..seeding import draw_device

__all__: list[str] = []


@dataclass(frozen=True)
class ParticleMethod(Method):
    """A conditional method that runs ``particles`` states per output (each a model evaluation per step) and
    resamples a filter when its effective sample size falls below ``ess_threshold · particles``.

    Each output is one particle drawn by the final weights (a posterior draw), or with ``weighted_mean`` the filter's
    self-normalised estimate of the posterior mean, ``Σ_i w_i x_i / Σ_i w_i`` over its particles (not a draw: with
    even weights its variance about ``E[x_0 | y]`` is ``1/particles`` of a draw's, at no extra cost).
    """

    particles: int = 16
    ess_threshold: float = 0.5
    weighted_mean: bool = False
    conditional: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not isinstance(self.particles, int) or self.particles < 1:
            raise ValueError(f"particles must be a positive int, got {self.particles!r}.")
        if not 0 <= self.ess_threshold <= 1:
            raise ValueError(f"ess_threshold must lie in [0, 1], got {self.ess_threshold}.")

    def evaluations(self, steps: int) -> int:
        return self.particles * steps

    def finish(self, run: Run, carry: Any) -> Tensor:
        """Per filter, one particle drawn by the final weights or (``weighted_mean``) their weighted mean."""
        if self.weighted_mean:
            return weighted_mean(carry.state, carry.log_weights).to(carry.dtype)
        return choose(carry.state, carry.log_weights, run.generator).to(carry.dtype)


def systematic_resample(log_weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """Systematic resampling per row of ``log_weights`` ``(filters, particles)``: ancestor indices, same shape."""
    filters, particles = log_weights.shape
    cumulative = torch.softmax(log_weights, dim=1).cumsum(1)
    cumulative[:, -1] = 1.0
    where = draw_device(generator, log_weights.device)
    u = torch.rand((filters, 1), generator=generator, dtype=torch.float64, device=where)
    u = (u + torch.arange(particles, device=where)) / particles
    return torch.searchsorted(cumulative, u.to(cumulative.device)).clamp_max(particles - 1)


def effective_size(log_weights: Tensor) -> Tensor:
    """``1 / Σ_i w_i²`` of the normalised weights per filter: ``(filters, particles) -> (filters,)``."""
    return 1.0 / torch.softmax(log_weights, dim=1).pow(2).sum(1)


def resample_degenerate(
    log_weights: Tensor, threshold: float, generator: torch.Generator | None
) -> tuple[Tensor | None, Tensor]:
    """Resample the filters whose effective sample size is below ``threshold · particles``.

    Returns the flat ancestor index of every particle of the ``(filters · particles)`` stack (``None`` when no
    filter resamples) and the new log-weights (zero in the resampled filters, unchanged in the others).
    """
    filters, particles = log_weights.shape
    resample = effective_size(log_weights) < threshold * particles
    if not bool(resample.any()):
        return None, log_weights
    device = log_weights.device
    ancestors = systematic_resample(log_weights, generator).to(device)
    keep = torch.arange(particles, device=device).expand(filters, particles)
    ancestors = torch.where(resample[:, None], ancestors, keep)
    flat = (ancestors + particles * torch.arange(filters, device=device)[:, None]).flatten()
    return flat, torch.where(resample[:, None], torch.zeros_like(log_weights), log_weights)


def choose(states: Tensor, log_weights: Tensor, generator: torch.Generator | None) -> Tensor:
    """One state per filter drawn by its weights: ``states`` ``(filters · particles, ...)`` -> ``(filters, ...)``."""
    filters, particles = log_weights.shape
    probabilities = torch.softmax(log_weights, dim=1).to(draw_device(generator, "cpu"))
    choice = torch.multinomial(probabilities, 1, generator=generator)[:, 0].to(states.device)
    stacked = states.reshape(filters, particles, *states.shape[1:])
    return stacked[torch.arange(filters, device=states.device), choice]


def weighted_mean(states: Tensor, log_weights: Tensor) -> Tensor:
    """Each filter's weighted mean of its states: ``states`` ``(filters · particles, ...)`` -> ``(filters, ...)``."""
    filters, particles = log_weights.shape
    weights = torch.softmax(log_weights, dim=1).to(device=states.device, dtype=states.real.dtype)
    stacked = states.reshape(filters, particles, *states.shape[1:])
    return torch.einsum("fp,fp...->f...", weights, stacked)
