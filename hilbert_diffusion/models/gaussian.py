"""Exact Gaussian references, beside the oracle: what every sampler, restoration method and loss is measured against.

When the data are Gaussian, ``N(m, C)`` with ``C`` diagonal in the SDE's basis (:class:`GaussianOracle`):

* :func:`exact_gaussian_posterior` — the posterior under a linear-Gaussian observation, by dense algebra;
* :func:`gaussian_sampler_law` — the exact per-mode law of a sampler's output (no Monte Carlo);
* :func:`gaussian_denoising_loss` — the denoising loss of the exact denoiser (L2 of :mod:`hilbert_diffusion.losses`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..bases import Grid, SpectralBasis
from ..engine import Model, Sampler, validate_times
from ..noise import Spectrum
from ..restoration.operators import ObservationOperator
from ..restoration.vectors import _to_vector, observation_matrix
from ..sde import DiagonalSDE
from .oracle import GaussianOracle

__all__ = ["GaussianPosterior", "exact_gaussian_posterior", "gaussian_sampler_law", "gaussian_denoising_loss"]


# =========================================================================================== posterior
def _grid_covariance_columns(basis: SpectralBasis, fields: Tensor, per_mode_variance: Tensor) -> Tensor:
    """``C f`` for grid vectors ``f`` (rows of ``fields``, ``(m, *grid)``): the grid covariance of the field with
    coefficient variances ``per_mode_variance`` is ``C δ_j = apply_diagonal(δ_j / w_j)`` (see
    ``GaussianRandomField.pointwise_variance``), so ``C f = apply_diagonal(f / w)``."""
    grid = basis.grid_of(fields)
    w = basis.weights(grid).to(device=fields.device, dtype=fields.dtype)
    return basis.apply_diagonal(fields / w, per_mode_variance)


@dataclass(frozen=True)
class GaussianPosterior:
    """The exact posterior of a Gaussian prior under a linear-Gaussian observation, on one grid.

    ``mean``: ``(*batch, channels, *grid)``; ``std``: pointwise standard deviation ``(*grid,)`` (the same for
    every channel and observation); ``covariance``: the grid covariance ``(N, N)`` of the values (float64).
    """

    mean: Tensor
    std: Tensor
    covariance: Tensor


def exact_gaussian_posterior(
    oracle: GaussianOracle,
    operator: ObservationOperator,
    y: Tensor,
    grid: int | Sequence[int],
    *,
    prior_mean: Tensor | None = None,
    prior_variance: Tensor | None = None,
    jitter: float = 1e-11,
) -> GaussianPosterior:
    """The posterior of ``x ~ N(m, C)`` (the oracle's data law) given ``y = A x + σ_y ε``, by dense algebra.

    On the grid ``G`` (``N`` points), with ``C_G`` the covariance of the grid values (columns
    ``C δ_j / w_j``, as ``GaussianRandomField.pointwise_variance``) and ``A`` the Euclidean matrix of the
    operator on observed values::

        K = A C_G Aᵀ + σ_y² I,   mean = m + C_G Aᵀ K⁻¹ (y - A m),   cov = C_G - C_G Aᵀ K⁻¹ A C_G

    For ``σ_y = 0`` this conditions exactly on the observed subspace; ``jitter`` (relative to the mean
    diagonal of ``K``) only guards the Cholesky factorisation. ``y`` is ``(*batch, channels, *g)``. All in
    float64; ``N`` up to a few thousand points.

    ``prior_mean`` (a field ``(channels, *grid)``) and ``prior_variance`` (per-mode variances,
    ``coefficient_shape(grid)``) replace the oracle's ``m`` and ``c_k``: e.g. the law a finite-step sampler
    actually draws from, to separate a conditional method's error from its unconditional sampler's.
    """
    basis = oracle.basis
    grid = basis.grid(grid)
    y = y.to(torch.float64)
    operator._check_observation(y, grid)
    n = math.prod(grid)
    identity = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
    variance = oracle.data_variance(grid) if prior_variance is None else prior_variance.to(torch.float64)
    prior = _grid_covariance_columns(basis, identity, variance).reshape(n, n)
    prior = 0.5 * (prior + prior.T)
    a = observation_matrix(operator, grid)
    k = a @ prior @ a.T
    k = k + (operator.noise_std**2 + jitter * k.diagonal().mean()) * torch.eye(len(k), dtype=torch.float64)
    chol = torch.linalg.cholesky(k)
    gain = torch.cholesky_solve(a @ prior, chol).T  # C_G Aᵀ K⁻¹, (N, n_obs)
    channels = y.shape[y.dim() - basis.ndim - 1]
    if prior_mean is not None:
        mean_field = prior_mean.to(torch.float64).expand(channels, *grid)
    elif oracle.mean is not None:
        mean_field = basis.resample(oracle.mean.to(torch.float64), grid).expand(channels, *grid)
    else:
        mean_field = torch.zeros((channels, *grid), dtype=torch.float64)
    residual = _to_vector(operator, y, grid) - _to_vector(operator, operator.forward(mean_field), grid)
    mean = mean_field + (residual @ gain.T).reshape(*residual.shape[:-1], *grid)
    covariance = prior - gain @ a @ prior
    covariance = 0.5 * (covariance + covariance.T)
    std = covariance.diagonal().clamp_min(0).sqrt().reshape(grid)
    return GaussianPosterior(mean=mean, std=std, covariance=covariance)



# =========================================================================================== sampler law
class _ControlledNoise:
    """The SDE with its white noise replaced by fixed per-sample values (see :func:`gaussian_sampler_law`);
    every other attribute is the wrapped SDE's."""

    def __init__(self, sde: DiagonalSDE, values: Tensor) -> None:
        self._sde = sde
        self._values = values

    def __getattr__(self, name: str):
        return getattr(self._sde, name)

    def white_coefficients(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        template = self._sde.basis.forward(torch.zeros_like(like))
        return template + self._values.to(like.device, like.dtype).reshape(-1, *[1] * (template.dim() - 1))


def gaussian_sampler_law(
    sampler: Sampler,
    model: Model,
    sde: DiagonalSDE,
    times: Tensor,
    *,
    resolution: int | Sequence[int],
    channels: int = 1,
    initial_mean: Tensor | None = None,
    initial_variance: Tensor | None = None,
    stepwise: bool = True,
    **options,
) -> tuple[Tensor, Tensor]:
    """The exact per-mode mean and variance of ``sampler``'s output, for a model linear per mode.

    Valid when the model is affine and diagonal in the basis (the :class:`~hilbert_diffusion.GaussianOracle`)
    and the sampler is a one-step method affine in its state and draws at most one noise per step
    (:func:`euler_maruyama`, :func:`exponential_ancestral`, :func:`exponential_deterministic`,
    :func:`heun_ode`; not :func:`predictor_corrector`, whose step size depends on the state). Then a step
    ``t → s`` maps every coefficient as ``x_s = α x_t + β + C ξ`` and the law ``N(μ, V)`` goes to
    ``N(α μ + β, α² V + C²)``. Each step is run through ``sampler`` itself on the grid ``[t, s]`` with a
    batch of three: ``x = μ`` and ``x = μ + √V`` without noise, and ``x = μ`` with ``ξ = 1`` — which
    yields ``α μ + β``, ``α √V`` and ``C`` exactly (no Monte Carlo error).

    ``stepwise=False`` runs the whole grid in one call instead, with the first two members only: exact for a
    deterministic sampler that carries memory across steps (:func:`exponential_multistep`), wrong for one that
    draws noise.

    ``initial_mean`` (coefficients, ``(channels, *coefficient_shape)``) and ``initial_variance`` (per mode)
    describe the law of ``x`` at ``times[0]``; the default is the prior ``N(0, sde.prior_variance)``.
    Returns ``(mean, variance)`` of the output coefficients, each ``(channels, *coefficient_shape)``
    (``variance`` is ``E|c_k - mean_k|²``).
    """
    times = validate_times(times)
    basis = sde.basis
    grid = basis.grid(resolution)
    template = basis.forward(torch.zeros((3, channels, *grid), dtype=torch.float64))
    mean = template[0] + (0 if initial_mean is None else initial_mean)
    variance = (sde.prior_variance(grid) if initial_variance is None else initial_variance).expand(mean.shape)
    shift = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).reshape(3, *[1] * mean.dim())
    noisy = _ControlledNoise(sde, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    if not stepwise:
        start = torch.stack([mean, mean + variance.sqrt()])
        out = basis.forward(sampler(model, sde, basis.inverse(start, grid), times, **options))
        return out[0], (out[1] - out[0]).abs().pow(2)
    for t, s in zip(times[:-1], times[1:]):
        start = mean + shift * variance.sqrt()
        out = basis.forward(sampler(model, noisy, basis.inverse(start, grid), torch.stack([t, s]), **options))
        mean = out[0]
        variance = (out[1] - out[0]).abs().pow(2) + (out[2] - out[0]).abs().pow(2)
    return mean, variance


# =========================================================================================== loss
def gaussian_denoising_loss(sde: DiagonalSDE, data_covariance: Spectrum, t: float | Tensor, grid: Grid) -> Tensor:
    """The loss (L1, ``w = 1``, one channel) of the exact denoiser of ``N(m, C)`` data at fixed ``t``:
    ``Σ_k m_k c_k v_k / (a_k² c_k + v_k)`` (L2), the trace of the posterior covariance. Float64,
    shape ``t.shape``."""
    basis = sde.basis
    a, v = sde.mean_factor(t, grid), sde.variance(t, grid)
    c = data_covariance(basis.eigenvalues(grid))
    posterior = c * v / (a**2 * c + v).clamp_min(torch.finfo(torch.float64).tiny)
    m = basis.multiplicity(grid)
    per_mode = m * posterior
    return per_mode.flatten(per_mode.dim() - m.dim()).sum(-1).reshape(torch.as_tensor(t).shape)
