"""Denoising score matching in function space.

For a denoiser ``D(x_t, t) ≈ E[x_0 | x_t]`` (the model contract) the loss is::

    L = E_{t ~ p(t)} E_{x_0} E_{x_t | x_0} [ Σ_c w_c(t) ‖D(x_t, t)_c − x_{0,c}‖²_{L²(Ω)} ]          (L1)

    ‖f‖²_{L²(Ω)} = ∫_Ω f² ≈ Σ_j w_j f_j²      (the basis' quadrature: |Ω| × grid mean on a uniform grid)

The norm is that of the *function*, not a sum over grid points, so ``L`` has the same value on every
grid that resolves the data (it would grow like ``N^d`` as a sum). For every positive weight the
minimiser is ``D = E[x_0 | x_t]``; the score follows per mode as ``-(x_k - a_k D_k) / v_k``. Since
``x_t - a x_0 = n`` (the coloured noise) and ``D`` determines the noise estimate ``x_t - a D``, the
loss is also a noise-prediction loss with per-mode weight ``1 / a_k²`` — the denoiser form is used
because its per-mode target is bounded at every ``t`` (``E|x_{0,k}|² = c_k``), while the noise target
of the fine modes vanishes as ``t → 0``.

Time sampling: ``t ~ U[t_min, 1]`` (:class:`UniformTime`) or its stratified version
(:class:`StratifiedTime`, one draw per sub-interval: the same marginal, lower variance of the batch
mean); or log-uniform (:class:`LogUniformTime`, ``p(t) ∝ 1 / t``: every decade of ``t`` equally
often). ``t_min > 0`` keeps the weight of :meth:`PreconditionedScoreOperator.loss_weight` finite.
Weighting: ``w = 1`` is the plain L² error of ``E[x_0|x_t]``; the trainer uses the model's
``loss_weight``, ``w_c(t) = 1 / e_c(t)`` with ``e_c`` the expected error of the Wiener filter of the
estimated data spectrum (EDM's ``1/c_out²`` for the Wiener-skip model; eq. P8 of
:mod:`.models.fno`), which makes every noise level contribute a loss of order one.

The exact denoiser of Gaussian data ``N(0, C)`` has, per mode, error variance equal to the posterior
variance, so (``models.gaussian.gaussian_denoising_loss``)::

    E ‖D*(x_t, t) − x_0‖²_{L²} = Σ_k m_k c_k v_k / (a_k² c_k + v_k)                                 (L2)

Mode weighting (``mode_weight``, the trainer's ``mode_weighting``) measures each mode's error against the Wiener
filter's there, ``p_k = c_k v_k / (a_k² c_k + v_k)``, raised to a power γ ∈ (0, 1]::

    L_modes = Σ_c Σ_k m_k |D̂_k − x̂_{0,k}|² p_{c,k}(t)^-γ  /  Σ_k m_k p_{c,k}(t)^(1-γ)                  (L3)

so the Wiener filter scores 1 at every ``t`` on Gaussian data of its spectrum (by L2, mode by mode). With γ = 1 the
modes' relative errors are averaged: a mode with little energy, such as the fine modes of an edge, counts as much as
one with much; γ → 0 gives back the L² loss weighed per time (P8 of :mod:`.models.fno`). The L² loss (L1) lets a
network's error there grow with almost no cost: on 72 training faces its fine-mode error at t = 0.03 was 2.2× the
Wiener filter's while its total error was 0.9× (README, Benchmarks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .bases import Grid
from .sde import DiagonalSDE

__all__ = ["UniformTime", "StratifiedTime", "LogUniformTime", "denoising_loss"]


def _check_t_min(t_min: float) -> None:
    if not 0 <= t_min < 1:
        raise ValueError(f"t_min must lie in [0, 1), got {t_min}; use e.g. 1e-3.")


@dataclass(frozen=True)
class UniformTime:
    """``t ~ U[t_min, 1]``, shape ``(batch,)``, float64."""

    t_min: float = 1e-3

    def __post_init__(self) -> None:
        _check_t_min(self.t_min)

    def __call__(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        return self.t_min + (1 - self.t_min) * u


@dataclass(frozen=True)
class StratifiedTime:
    """One draw of ``U[t_min, 1]`` in each of ``batch`` equal sub-intervals, in random order."""

    t_min: float = 1e-3

    def __post_init__(self) -> None:
        _check_t_min(self.t_min)

    def __call__(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(batch, generator=generator, dtype=torch.float64)
        order = torch.randperm(batch, generator=generator)
        u = (order.to(torch.float64) + u) / batch
        return self.t_min + (1 - self.t_min) * u


@dataclass(frozen=True)
class LogUniformTime:
    """``log t ~ U[log t_min, 0]``: density ``1 / (t log(1 / t_min))`` on ``[t_min, 1]`` (L3), stratified like
    :class:`StratifiedTime` in ``log t``. Each decade of ``t`` gets the same share of the batch, so the small times
    are trained as often as the large ones. Measured on 1000 shapes (``benchmarks/images.py --log-time``, README) it
    made the held-out error at small ``t`` worse, not better: small ``t`` is where a network memorises its training
    images."""

    t_min: float = 1e-3

    def __post_init__(self) -> None:
        if not 0 < self.t_min < 1:
            raise ValueError(f"t_min must lie in (0, 1) for log-uniform times, got {self.t_min}; use e.g. 1e-3.")

    def __call__(self, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
        u = StratifiedTime(0.0)(batch, generator=generator)  # stratified U[0, 1]
        return self.t_min ** (1 - u)  # (L3)


def denoising_loss(
    model: Callable[[Tensor, Tensor], Tensor],
    x0: Tensor,
    sde: DiagonalSDE,
    *,
    t: Tensor | None = None,
    time_sampler: Callable[..., Tensor] = UniformTime(),
    weight: Tensor | Callable[[Tensor, Grid], Tensor] | None = None,
    mode_weight: Callable[[Tensor, Grid], Tensor] | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample loss (L1), shape ``(batch,)``; average it for the training objective.

    Args:
        model: the denoiser ``model(x_t, t) -> E[x_0 | x_t]``.
        x0: clean data ``(batch, channels, *grid)``.
        sde: the forward process (``x_t ~ N(a x_0, v)`` per mode, equation 4 of :mod:`.sde`).
        t: times ``(batch,)``; drawn from ``time_sampler`` when ``None``.
        weight: ``w_c(t)``: ``None`` (1), a tensor broadcastable to ``(batch, channels)``, or a
            callable ``weight(t, grid) -> (batch, channels)`` such as a model's ``loss_weight``.
        mode_weight: ``mode_weight(t, grid) -> (batch, channels, *coefficients)``, e.g. a model's
            ``mode_loss_weight``: the error is then ``Σ_k w_k |D̂_k − x̂_{0,k}|²`` over the basis coefficients (L3)
            instead of the L² norm.
        generator: random source for ``t`` and the noise.
    """
    basis = sde.basis
    basis.check_field(x0, "x0", finite=False)
    batch = x0.shape[0]
    if t is None:
        t = time_sampler(batch, generator=generator)
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.shape != (batch,):
        raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}.")
    x_t, _ = sde.marginal_sample(x0, t, generator=generator)
    residual = model(x_t, t.to(x0.device)) - x0
    if mode_weight is None:
        error = basis.integrate(residual**2)  # ‖D - x_0‖²_{L²} per channel, (L1)
    else:  # (L3)
        coefficients = basis.forward(residual).abs() ** 2
        w = mode_weight(t, basis.grid_of(x0)).to(coefficients.device, coefficients.dtype)
        error = (w * coefficients).flatten(2).sum(-1)
    if callable(weight):
        weight = weight(t, basis.grid_of(x0))
    if weight is not None:
        error = error * torch.as_tensor(weight).to(error.device, error.dtype)
    return error.sum(-1)


def __getattr__(name: str):  # the exact Gaussian loss lives beside the oracle; the old import path still works
    if name == "gaussian_denoising_loss":
        from .models.gaussian import gaussian_denoising_loss

        return gaussian_denoising_loss
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
