"""Sequential Monte Carlo over the reverse process: filtering posterior sampling (Dou & Song 2024; MCGdiff,
Cardoso et al. 2024), asymptotically exact in the number of particles.

The observation is carried along the forward process as a noiseless observation of an augmented state: with
``y = A x_0 + e``, let the noise ``e`` run its own stationary Ornstein–Uhlenbeck process in the observation space,
``e_t = M_t e + ε_t`` (``M_t = A a_t A⁺``, stationary law ``N(0, σ_y² I)``), so that

    y_t = A x_t + e_t = M_t y + A n_t + ε_t                                                       (F1)

with ``n_t`` the forward noise of ``x``. ``(n_t, ε_t)`` is independent of ``(x_0, e)``, so one exact path ``y_t`` per
output (drawn backwards in time towards ``n_0 = ε_0 = 0``) leaves ``x_0 | y`` unchanged, and each output is one draw
from a particle filter targeting ``p(x_0 | y_{0:T}) = p(x_0 | y)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..engine import Run, Sampler
from ..seeding import draw_device
from ..times import power_times
from .resampling import ParticleMethod, resample_degenerate
from .vectors import _Linear, _to_vector
from .replacement import RESTORATION_STEPS

__all__ = ["FilteringSMC", "filtering_smc"]

_F64 = torch.float64


class _Filter:
    """The observation-space constants of one run and the path ``y_t`` of (F1)."""

    def __init__(self, run: Run, particles: int) -> None:
        operator, y = run.observation()
        self.run, self.particles, self.sigma = run, particles, operator.noise_std
        self.algebra = _Linear(run)
        batch, channels = run.x.shape[:2]
        self.y = _to_vector(operator, y, run.grid).to(_F64).expand(batch, channels, -1)
        self.identity = torch.eye(self.y.shape[-1], dtype=_F64, device=run.x.device)
        self.observation_grid = operator.observation_grid(run.grid)

    def a(self, t: float) -> Tensor | float:
        """The mean factor as it acts on the observation space (``M_t``): per mode, or one number for all."""
        run = self.run
        if run.operator.diagonal:
            return run.sde.mean_factor(t, self.observation_grid).to(run.x.device)
        return float(run.sde.mean_factor(t, run.grid).flatten()[0])

    def white(self, shape: Sequence[int]) -> Tensor:
        where = draw_device(self.run.generator, self.run.x.device)
        return torch.randn(tuple(shape), generator=self.run.generator, dtype=_F64, device=where).to(self.run.x.device)

    def per_particle(self, v: Tensor) -> Tensor:
        """``(batch, ...) -> (batch · particles, ...)``."""
        return v.repeat_interleave(self.particles, dim=0)

    def noise_covariance(self, factor: Tensor | float) -> Tensor:
        """``σ_y² f(M)`` as an ``(n_obs, n_obs)`` matrix (symmetric)."""
        return self.sigma**2 * self.algebra.transport(self.identity[:, None], factor)[:, 0]

    def observed(self, t: float, noise_path: Tensor, obs_path: Tensor | float) -> Tensor:
        """``y_t = M_t y + A n_t + ε_t`` (F1)."""
        return self.algebra.transport(self.y, self.a(t)) + self.algebra.apply(noise_path) + obs_path


@dataclass
class _Particles:
    """The carry of an SMC run: particles, their log-weights and the observation path."""

    filter: _Filter
    state: Tensor  # (batch · particles, channels, *grid), float64
    log_weights: Tensor  # (batch, particles)
    noise_path: Tensor  # n_t per filter, (batch, channels, *grid)
    obs_path: Tensor | float  # ε_t per filter, (batch, channels, n_obs), or 0 without observation noise
    y_t: Tensor  # y_t per filter, (batch, channels, n_obs)
    dtype: torch.dtype = field(default=torch.float32)


@dataclass(frozen=True)
class FilteringSMC(ParticleMethod):
    """Particle filter over the reverse process conditioned on the forward-noised observation path; see
    :data:`filtering_smc`."""

    def start(self, run: Run) -> _Particles:
        """Prior draws at ``times[0]`` (``x`` first), with ``e ~ N(0, σ_y² I)``, conditioned on ``y_T`` exactly (Matheron)."""
        _check_commutes(run)
        filt = _Filter(run, self.particles)
        x, sde, sigma = run.x, run.sde, filt.sigma
        batch = x.shape[0]
        zeros = torch.zeros(x.shape, dtype=_F64, device=x.device)
        t0 = float(run.times[0])
        noise_path, _ = sde.marginal_sample(zeros, t0, generator=run.generator)  # one path per filter, from times[0]
        obs_path = sigma * filt.algebra.transport(filt.white(filt.y.shape), (1 - filt.a(t0) ** 2) ** 0.5) if sigma > 0 else 0.0
        y_t = filt.observed(t0, noise_path, obs_path)
        fresh, _ = sde.marginal_sample(filt.per_particle(zeros), t0, generator=run.generator)
        state = fresh.reshape(batch, self.particles, *x.shape[1:])
        state[:, 0] = x
        state = state.flatten(0, 1)
        initial_variance = sde.variance(t0, run.grid).to(x.device)
        chol = filt.algebra.gain(initial_variance, sigma**2 * filt.identity if sigma > 0 else None)
        innovation = filt.per_particle(y_t) - filt.algebra.apply(state)
        if sigma > 0:
            innovation = innovation - sigma * filt.white(innovation.shape)
        state = state + filt.algebra.correction(innovation, initial_variance, chol)
        log_weights = torch.zeros((batch, self.particles), dtype=_F64, device=x.device)
        return _Particles(filt, state, log_weights, noise_path, obs_path, y_t, x.dtype)

    def position(self, carry: _Particles) -> Tensor:
        return carry.state.to(carry.dtype)

    def advance(self, run: Run, carry: _Particles, x: Tensor, denoised: Tensor, s: float, t: float) -> _Particles:
        """The model's bridge kernel ``x_s ~ N(μ, Σ)`` and the exact reverse kernel of the noise,
        ``e_s ~ N(R e_t, σ_y² (I - R²))`` (``R = M_t M_s⁻¹``), conditioned on ``A x_s + e_s = y_s``: weights
        ``N(y_s; A μ + R e_t, A Σ Aᵀ + σ_y²(I - R²))`` (fully adapted), systematic resampling below
        ``ess_threshold · particles``, then Gaussian conditioning of the proposal draws. Into ``t = 0``, where the
        bridge is deterministic, ``Σ = v_t / a_t²`` (the small-``t`` law of ``x_0 | x_t``) and no noise is added."""
        filt, grid, basis = carry.filter, run.grid, run.basis
        denoised = denoised.to(_F64)
        if s > 0:
            c_t, c_0, var = (q.to(x.device) for q in run.sde.bridge(s, t, grid))
            mean = basis.inverse(c_t * basis.forward(carry.state) + c_0 * basis.forward(denoised), grid)
        else:
            var = (run.sde.variance(t, grid) / run.sde.mean_factor(t, grid) ** 2).to(x.device)
            mean = denoised
        y_s = self._path_step(run, carry, s, t)
        target, extra, ratio = filt.per_particle(y_s), None, None
        if filt.sigma > 0:  # e_s | e_t ~ N(R e_t, σ_y² (I - R²)), R = a_t / a_s per mode of M
            ratio = filt.a(t) / filt.a(s)
            target = target - filt.algebra.transport(filt.per_particle(carry.y_t) - filt.algebra.apply(carry.state), ratio)
            extra = filt.noise_covariance(1 - ratio**2)
        chol = filt.algebra.gain(var, extra)
        mean, target = self._reweight(run, carry, mean, target, chol, s)
        proposal = mean
        if s > 0:
            proposal = mean + basis.inverse(var.sqrt() * run.sde.white_coefficients(mean, generator=run.generator), grid)
        residual = target - filt.algebra.apply(proposal)
        if filt.sigma > 0:
            residual = residual - filt.sigma * filt.algebra.transport(filt.white(residual.shape), (1 - ratio**2) ** 0.5)
        carry.state = proposal + filt.algebra.correction(residual, var, chol)
        carry.y_t = y_s
        return carry

    def _path_step(self, run: Run, carry: _Particles, s: float, t: float) -> Tensor:
        """Draw ``n_s | n_t`` and ``ε_s | ε_t`` backwards towards ``n_0 = ε_0 = 0``; returns ``y_s`` (F1)."""
        filt = carry.filter
        carry.noise_path = run.bridge_sample(carry.noise_path, torch.zeros_like(carry.noise_path), s, t)
        if filt.sigma > 0:  # the bridge of the unit-variance OU towards ε_0 = 0 (per mode of M)
            a_s, a_t = filt.a(s), filt.a(t)
            v_s, v_t, v_st = 1 - a_s**2, 1 - a_t**2, 1 - (a_t / a_s) ** 2
            obs_path = filt.algebra.transport(carry.obs_path, (a_t / a_s) * v_s / v_t)
            carry.obs_path = obs_path + filt.sigma * filt.algebra.transport(filt.white(obs_path.shape), (v_s * v_st / v_t) ** 0.5)
        return filt.observed(s, carry.noise_path, carry.obs_path)

    def _reweight(
        self, run: Run, carry: _Particles, mean: Tensor, target: Tensor, chol: Tensor, s: float
    ) -> tuple[Tensor, Tensor]:
        """Multiply the weights by the predictive likelihood of ``y_s``; resample where the ESS is low."""
        filt, particles = carry.filter, self.particles
        batch = carry.log_weights.shape[0]
        likelihood = filt.algebra.log_likelihood(target - filt.algebra.apply(mean), chol).sum(-1)
        carry.log_weights = carry.log_weights + likelihood.reshape(batch, particles)
        if s == 0:
            return mean, target
        flat, carry.log_weights = resample_degenerate(carry.log_weights, self.ess_threshold, run.generator)
        return (mean, target) if flat is None else (mean[flat], target[flat])


def _check_commutes(run: Run) -> None:
    """The observation path (F1) is exact only if ``A`` commutes with the forward mean factor."""
    operator, sde = run.operator, run.sde
    if operator.diagonal:
        return
    a_all = sde.mean_factor(run.times, run.grid).flatten(1)
    spread = float(((a_all.amax(1) - a_all.amin(1)) / a_all.amax(1)).max())
    if spread > 1e-12:
        raise ValueError(
            f"filtering_smc needs {type(operator).__name__} to commute with the forward mean factor, but a_k(t) differs "
            f"between modes (by {spread:.2g} relative; a heat process, κ > 0). Use twisted_smc (exact under heat), an "
            f"SDE with κ = 0, or an operator diagonal in the basis."
        )


filtering_smc = Sampler("filtering_smc", FilteringSMC(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Sequential Monte Carlo over the reverse process (filtering posterior sampling, Dou & Song 2024).

Each output is one draw from a particle filter of ``particles`` states targeting ``p(x_0 | y)`` through the exact
observation path (F1): start from prior draws conditioned on ``y_T``; per step the model's bridge kernel and the
noise's exact reverse kernel, conditioned on ``y_s`` (fully adapted weights, systematic resampling when the ESS falls
below ``ess_threshold · particles``); output one particle per filter by the final weights (or with ``weighted_mean``
the filter's weighted particle mean, an estimate of ``E[x_0 | y]``, not a draw). Exact as
``particles → ∞`` up to the model's reverse kernels, provided ``A`` commutes with the forward mean factor
(``operator.diagonal`` or ``κ = 0``); otherwise a ValueError. Cost: ``particles · steps`` model evaluations per
output plus an ``n_obs × n_obs`` Cholesky factorisation per step. ``x``: ``(batch, channels, *grid)`` prior draws
(the first particle of each filter); ``y``: ``(batch or 1, channels, *observation_grid)``."""
