"""Twisted sequential Monte Carlo over the reverse process: asymptotically exact posterior sampling for linear
observations under any diagonal SDE, heat included (mode-dependent ``a_k(t)``), in the spirit of the Twisted
Diffusion Sampler (Wu et al. 2023) with covariance guidance's Gaussian twist and no gradient through the model.

At a step ``t → s`` with ``D = D(x_t)`` the model's denoiser, the step's Gaussian picture of the unknown ``x_0`` is
``x_0 | x_t ~ N(D, Σ_t)``, ``Σ_t`` per mode the exact posterior covariance of Gaussian data with the data spectrum
``c_k`` (``s_k = c_k v_k / (a_k² c_k + v_k)``, as in covariance guidance); with the bridge ``q(x_s | x_t, x_0)`` and
``y = A x_0 + σ_y ε`` it is a joint Gaussian of ``(x_0, x_s, y)`` given ``x_t``. From it:

    p_θ(x_s | x_t)   = N(c_t x_t + c_0 D, var + c_0² Σ_t)                  the model's reverse kernel      (W1)
    p̃_t(y | x_t)     = N(y; A D, A Σ_t Aᵀ + σ_y² I)                        the twist                       (W2)
    q(x_s | x_t, y)  = ∫ q(x_s | x_t, x_0) N(x_0; D_y, Σ_t − Σ_t Aᵀ K_t⁻¹ A Σ_t) dx_0      the proposal    (W3)
    g_t(y | x_s, x_t) = N(y; A m, A P Aᵀ + σ_y² I),  x_0 | x_s, x_t ~ N(m, P) per mode                       (W4)

with ``K_t = A Σ_t Aᵀ + σ_y² I`` and ``D_y = D + Σ_t Aᵀ K_t⁻¹ (y − A D)`` (covariance guidance's denoiser). Bayes in the
joint gives ``p_θ(x_s | x_t) g_t(y | x_s, x_t) = p̃_t(y | x_t) q(x_s | x_t, y)``, so the twisted-SMC weight of a move
``p_θ(x_s | x_t) p̃_s(y | x_s) / (p̃_t(y | x_t) q(x_s | x_t, y))`` is

    w = p̃_s(y | x_s) / g_t(y | x_s, x_t)                                                                       (W5)

a ratio of two Gaussians in the observation space, evaluated when the next step has ``D(x_s)``. The last step into
``s = 0`` draws ``x_0`` from the proposal itself, where ``g_t(y | x_0, x_t) = p(y | x_0)`` is the exact likelihood:
its weight is 1 (for ``σ_y = 0`` the proposal satisfies ``A x_0 = y`` and the weight is the ``σ_y → 0`` limit of
``N(y; A x_0, σ_y²) / N(y; A x_0, σ_y²)``). The first step's weight is ``p̃_T(y | x_T)``. The normalising constants
of (W2) and (W4) are the same for every particle of a step and cancel.

The particle system targets ``p(x_0 | y)`` under the path law of the reverse kernels (W1) (which converge to the
reverse SDE's as the steps shrink, the ``c_0² Σ_t`` term being second order), for every twist, so the sampler is
exact as ``particles → ∞`` for non-Gaussian data too; the twist only sets the weights' variance. For Gaussian data
with the data spectrum and the exact denoiser, (W2) is ``p(y | x_t)`` and (W4) is ``p(y | x_s)`` exactly: every
weight is 1 and each particle is an exact posterior draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..engine import Run, Sampler
from ..noise import Spectrum
from ..seeding import draw_device
from ..times import power_times
from .covariance_guidance import _posterior, data_spectrum
from .replacement import RESTORATION_STEPS
from .resampling import ParticleMethod, effective_size, resample_degenerate
from .vectors import _Linear, _to_vector

__all__ = ["TwistedSMC", "twisted_smc"]

_F64 = torch.float64


@dataclass
class _Twisted:
    """The carry: particles ``(filters · particles, C, *grid)``, their log-weights ``(filters, particles)``, the
    log of (W4) at each particle (to divide out at the next step) and the run's observation-space constants."""

    algebra: _Linear
    y: Tensor  # (filters · particles, C, n_obs), float64
    spectrum: Tensor  # c_k per channel, (C, *modes)
    state: Tensor
    log_weights: Tensor
    log_proposal: Tensor  # log g_t(y | x_s, x_t) per particle (W4); 0 before the first step
    dtype: torch.dtype = field(default=torch.float32)
    ess: list[float] = field(default_factory=list)  # the mean effective sample size per step (a diagnostic)


@dataclass(frozen=True)
class TwistedSMC(ParticleMethod):
    """Twisted SMC with covariance guidance's Gaussian twist; see :data:`twisted_smc`. ``data_spectrum`` may be a
    ChannelCovariance, read through its per-channel variances (the twist then ignores the channels' correlation, which
    costs weight variance, not exactness)."""

    particles: int = 8
    data_spectrum: Spectrum | Sequence[Spectrum] | None = None

    def start(self, run: Run) -> _Twisted:
        """``x`` as each filter's first particle, fresh draws of ``N(0, v(times[0]))`` as the others, equal weights."""
        operator, y = run.observation()
        x, p = run.x, self.particles
        algebra = _Linear(run)
        y_vec = _to_vector(operator, y, run.grid).to(_F64).expand(x.shape[0], x.shape[1], -1)
        zeros = torch.zeros((x.shape[0] * p, *x.shape[1:]), dtype=_F64, device=x.device)
        fresh, _ = run.sde.marginal_sample(zeros, float(run.times[0]), generator=run.generator)
        fresh = fresh.reshape(x.shape[0], p, *x.shape[1:])
        fresh[:, 0] = x
        log_weights = torch.zeros((x.shape[0], p), dtype=_F64, device=x.device)
        spectrum = data_spectrum(run, self.data_spectrum).to(_F64)
        if spectrum.dim() == run.basis.ndim + 2:  # a ChannelCovariance: its per-channel variances (any twist is exact)
            spectrum = spectrum.diagonal(0, 0, 1).movedim(-1, 0)
        return _Twisted(algebra, y_vec.repeat_interleave(p, dim=0), spectrum, fresh.flatten(0, 1), log_weights,
                        torch.zeros(x.shape[0] * p, dtype=_F64, device=x.device), x.dtype)

    def position(self, carry: _Twisted) -> Tensor:
        return carry.state.to(carry.dtype)

    def advance(self, run: Run, carry: _Twisted, x: Tensor, denoised: Tensor, s: float, t: float) -> _Twisted:
        """Weight by (W5) with the twist at ``x_t``, resample below ``ess_threshold · particles``, move by (W3) and
        keep (W4) for the next step's weight."""
        sigma = run.observation()[0].noise_std
        denoised = denoised.to(_F64)
        a, v = (q.to(_F64) for q in (run.a(t), run.v(t)))
        covariance = _posterior(carry.spectrum, a, v, mixing=False)  # Σ_t per mode and channel
        gains = _gains(carry.algebra, covariance, sigma)
        twist = _log_gaussian(carry.algebra, carry.y - carry.algebra.apply(denoised), gains)  # (W2)
        filters = carry.log_weights.shape[0]
        carry.log_weights = carry.log_weights + (twist - carry.log_proposal).reshape(filters, self.particles)  # (W5)
        carry.ess.append(float(effective_size(carry.log_weights).mean()))
        flat, carry.log_weights = resample_degenerate(carry.log_weights, self.ess_threshold, run.generator)
        state = carry.state
        if flat is not None:
            state, denoised = state[flat], denoised[flat]
        x0 = self._conditioned(run, carry, denoised, covariance, gains, sigma)  # x_0 ~ N(D_y, Σ_t − …) (W3)
        if s == 0:
            carry.state, carry.log_proposal = x0, torch.zeros_like(carry.log_proposal)
            return carry
        carry.state = run.bridge_sample(state, x0, s, t)
        carry.log_proposal = self._log_proposal(run, carry, state, denoised, covariance, sigma, s, t)
        return carry

    def _conditioned(
        self, run: Run, carry: _Twisted, denoised: Tensor, covariance: Tensor, gains: list[Tensor], sigma: float
    ) -> Tensor:
        """A draw of ``x_0 ~ N(D, Σ_t)`` conditioned on ``A x_0 + σ_y ε = y`` (Matheron's update)."""
        basis = run.basis
        prior = denoised + basis.inverse(covariance.sqrt() * run.sde.white_coefficients(denoised, generator=run.generator),
                                         run.grid)
        residual = carry.y - carry.algebra.apply(prior)
        if sigma > 0:
            where = draw_device(run.generator, residual.device)
            noise = torch.randn(residual.shape, generator=run.generator, dtype=_F64, device=where)
            residual = residual - sigma * noise.to(residual.device)
        return prior + _correction(carry.algebra, residual, covariance, gains)

    def _log_proposal(
        self, run: Run, carry: _Twisted, x_t: Tensor, denoised: Tensor, covariance: Tensor, sigma: float, s: float,
        t: float,
    ) -> Tensor:
        """``log g_t(y | x_s, x_t)`` (W4): per mode ``P = Σ var / (var + c_0² Σ)`` and
        ``m = D + Σ c_0 (x_s − c_t x_t − c_0 D) / (var + c_0² Σ)``."""
        basis = run.basis
        c_t, c_0, var = (q.to(_F64) for q in run.bridge(s, t))
        spread = (var + c_0**2 * covariance).clamp_min(torch.finfo(_F64).tiny)  # > 0 unless a mode has no noise
        innovation = basis.forward(carry.state) - c_t * basis.forward(x_t) - c_0 * basis.forward(denoised)
        mean = denoised + basis.inverse(covariance * c_0 / spread * innovation, run.grid)
        gains = _gains(carry.algebra, covariance * var / spread, sigma)
        return _log_gaussian(carry.algebra, carry.y - carry.algebra.apply(mean), gains)


def _gains(algebra: _Linear, covariance: Tensor, sigma: float) -> list[Tensor]:
    """Per channel, the Cholesky factor of ``A S Aᵀ + σ_y² I`` for the per-mode variances ``covariance`` ``(C, *modes)``."""
    extra = sigma**2 * torch.eye(len(algebra.weights), dtype=_F64, device=covariance.device) if sigma > 0 else None
    return [algebra.gain(variance, extra) for variance in covariance]


def _log_gaussian(algebra: _Linear, residual: Tensor, gains: list[Tensor]) -> Tensor:
    """``Σ_c -½ r_cᵀ K_c⁻¹ r_c`` per particle for residuals ``(n, C, n_obs)``."""
    return sum(algebra.log_likelihood(residual[:, c], chol) for c, chol in enumerate(gains))


def _correction(algebra: _Linear, residual: Tensor, covariance: Tensor, gains: list[Tensor]) -> Tensor:
    """``S_c Aᵀ K_c⁻¹ r_c`` per channel, as fields ``(n, C, *grid)``."""
    return torch.stack([algebra.correction(residual[:, c], covariance[c], chol) for c, chol in enumerate(gains)], dim=1)


twisted_smc = Sampler("twisted_smc", TwistedSMC(), default_steps=RESTORATION_STEPS, grid=power_times)
"""Twisted sequential Monte Carlo (module docstring, eqs. W1–W5): asymptotically exact posterior sampling for linear
observations under any diagonal SDE, heat included.

Each output is one draw from a filter of ``particles`` states: per step the model's denoiser at every particle gives
the Gaussian twist ``p̃_t(y | x_t)`` (covariance guidance's likelihood), the weights (W5), systematic resampling when
the ESS falls below ``ess_threshold · particles``, and the move (W3) — covariance guidance's conditioned denoiser
with its posterior spread, then the bridge. Exact for ``particles → ∞`` up to the model's reverse kernels, for any
data; for Gaussian data with the data spectrum every weight is 1. Cost: ``particles · steps`` model evaluations per
output, no gradient, and two ``n_obs × n_obs`` Cholesky factorisations per step and channel. Options:
``particles``, ``ess_threshold``, ``data_spectrum`` (default: the model's), ``weighted_mean`` (each output the filter's
weighted particle mean, an estimate of ``E[x_0 | y]``, instead of a draw). ``y``: ``(batch or 1, channels,
*observation_grid)``, every channel observed at the same points."""
