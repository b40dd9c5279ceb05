"""Forward processes: linear SPDEs diagonal in a spectral basis, solved exactly per mode.

The general process (one Ornstein–Uhlenbeck process per coefficient, ``A = -Δ``)::

    dX_t = -½ (β(t) I + h(t) A) X_t dt + sqrt(g(t)) dW^Q_t                                  (1)

with decay ``β``, heat ``h`` and noise ``g`` schedules and a trace-class ``Q e_k = q_k e_k``. Writing
``Φ_k(t) = B(t) + H(t) λ_k`` (``B, H`` the integrals of ``β, h``)::

    a_k(t) = exp(-½ Φ_k(t))                                                                (2)
    v_k(t) = q_k ∫₀ᵗ g(s) exp(-(Φ_k(t) - Φ_k(s))) ds                                      (3)
    x_k(t) | x_k(0) ~ N(a_k(t) x_k(0), v_k(t))                                            (4)
    x_k(t) | x_k(s) ~ N((a_k(t)/a_k(s)) x_k(s), v_k(t) - (a_k(t)/a_k(s))² v_k(s))         (5)

:class:`StochasticHeatSDE` is the case ``g = β``, ``h = κ β``, where (3) is closed form:
``v_k = q̃_k (1 - a_k²)``, ``q̃_k = q_k / (1 + κ λ_k)``. ``κ = 0`` is DDO's coloured-noise VP process,
``κ > 0`` HDM's heat process. Other schedules (IHDM-style strong dissipation with little noise)
use :class:`DiagonalSDE`, which evaluates (3) by exponential quadrature on a time grid.

Time runs on ``[0, 1]``. ``t`` is a float or a tensor of shape ``(batch,)``; per-mode quantities come
back shaped ``(batch, 1, *coefficient_shape)`` so they broadcast against ``(batch, channels, ...)``
coefficients (or ``coefficient_shape`` for a scalar ``t``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .bases import Grid, SpectralBasis
from .noise import Matern, Spectrum, require_trace_class

__all__ = [
    "Schedule",
    "LinearSchedule",
    "CosineSchedule",
    "ConstantSchedule",
    "GeometricSchedule",
    "ScaledSchedule",
    "DiagonalSDE",
    "StochasticHeatSDE",
    "default_sde",
]


# --------------------------------------------------------------------------------------- schedules
class Schedule(ABC):
    """A non-negative rate ``β(t)`` on ``[0, 1]`` with its exact integral ``B(t) = ∫₀ᵗ β``."""

    @abstractmethod
    def rate(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def integral(self, t: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class LinearSchedule(Schedule):
    """``β(t) = β_min + t (β_max - β_min)`` (score-SDE's VP schedule; ``B(1) ≈ 10`` by default)."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def rate(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integral(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)


@dataclass(frozen=True)
class CosineSchedule(Schedule):
    """Nichol & Dhariwal's cosine schedule in continuous time, ``exp(-B(t)) = cos²θ(t) / cos²θ(0)``
    with ``θ`` linear from ``π/2 · s/(1+s)`` to the angle where ``B(1) = total``."""

    s: float = 0.008
    total: float = 10.0

    def _angles(self) -> tuple[float, float]:
        theta0 = 0.5 * math.pi * self.s / (1 + self.s)
        theta1 = math.acos(math.cos(theta0) * math.exp(-0.5 * self.total))
        return theta0, theta1

    def rate(self, t: Tensor) -> Tensor:
        theta0, theta1 = self._angles()
        return 2 * (theta1 - theta0) * torch.tan(theta0 + t * (theta1 - theta0))

    def integral(self, t: Tensor) -> Tensor:
        theta0, theta1 = self._angles()
        return -2 * torch.log(torch.cos(theta0 + t * (theta1 - theta0)) / math.cos(theta0))


@dataclass(frozen=True)
class ConstantSchedule(Schedule):
    """``β(t) = value``."""

    value: float = 1.0

    def rate(self, t: Tensor) -> Tensor:
        return torch.full_like(t, self.value)

    def integral(self, t: Tensor) -> Tensor:
        return self.value * t


@dataclass(frozen=True)
class GeometricSchedule(Schedule):
    """``β(t) = β_min (β_max / β_min)^t`` (log-spaced, as IHDM's blur sequence and VE noise levels)."""

    rate_min: float = 0.01
    rate_max: float = 10.0

    def rate(self, t: Tensor) -> Tensor:
        return self.rate_min * (self.rate_max / self.rate_min) ** t

    def integral(self, t: Tensor) -> Tensor:
        return (self.rate(t) - self.rate_min) / math.log(self.rate_max / self.rate_min)


@dataclass(frozen=True)
class ScaledSchedule(Schedule):
    """``factor · base(t)``."""

    base: Schedule
    factor: float

    def rate(self, t: Tensor) -> Tensor:
        return self.factor * self.base.rate(t)

    def integral(self, t: Tensor) -> Tensor:
        return self.factor * self.base.integral(t)


# --------------------------------------------------------------------------------------- SDEs
def _time(t: float | Tensor, lam: Tensor) -> Tensor:
    """``t`` as float64 on its own device (a float: the CPU), shaped to broadcast against
    ``(batch, channels, *coefficients)``; checked to lie in ``[0, 1]`` (on an accelerator without a host sync)."""
    t = torch.as_tensor(t, dtype=torch.float64)
    if t.dim() > 1:
        raise ValueError(f"t must be a scalar or a (batch,) tensor, got shape {tuple(t.shape)}.")
    inside = ((t >= 0) & (t <= 1)).all()  # NaN fails both comparisons
    if t.device.type != "cpu":
        torch._assert_async(inside, "t must lie in [0, 1]")
    elif not inside:
        raise ValueError(f"t must lie in [0, 1], got {t.tolist()}.")
    return t.reshape(*t.shape, *([1] * (lam.dim() + 1))) if t.dim() else t


def _together(*times: float | Tensor) -> list[Tensor]:
    """The times as float64 tensors on one device: that of the first time tensor not on the CPU, else the CPU."""
    devices = [t.device for t in times if isinstance(t, Tensor) and t.device.type != "cpu"]
    device = devices[0] if devices else torch.device("cpu")
    return [torch.as_tensor(t, dtype=torch.float64).to(device) for t in times]


@dataclass(frozen=True, kw_only=True)
class DiagonalSDE:
    """Equation (1): decay ``β``, heat ``h`` and noise ``g`` schedules, noise covariance ``Q``.

    ``v_k(t)`` (equation 3) is computed once per grid on ``quadrature_steps`` panels of ``[0, 1]`` by
    the exponential rule ``∫_panel g e^{-(Φ(b) - Φ(s))} ds ≈ G_panel (1 - e^{-ΔΦ}) / ΔΦ``, which is exact
    when ``g`` is constant or proportional to ``dΦ/dt`` and stable for stiff (high) modes.
    """

    basis: SpectralBasis
    covariance: Spectrum
    decay: Schedule
    noise: Schedule
    heat: Schedule | None = None
    quadrature_steps: int = 2000
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        require_trace_class(self.covariance, self.basis, "the forward SPDE's noise")

    # -- per-mode coefficients ----------------------------------------------------------------
    def eigenvalues(self, grid: Grid) -> Tensor:
        return self.basis.eigenvalues(grid)

    def _modes(self, t: float | Tensor, grid: Grid) -> tuple[Tensor, Tensor]:
        """``(t, λ)``: ``t`` shaped by :func:`_time` and the eigenvalues of ``grid``, both on ``t``'s device."""
        lam = self.eigenvalues(grid)
        lam = lam.to(t.device) if isinstance(t, Tensor) else lam
        return _time(t, lam), lam

    def q(self, grid: Grid) -> Tensor:
        """``q_k`` of the driving noise."""
        return self.covariance(self.eigenvalues(grid))

    def _phi(self, t: Tensor, lam: Tensor) -> Tensor:
        phi = self.decay.integral(t)
        if self.heat is not None:
            phi = phi + self.heat.integral(t) * lam
        return phi

    def _phi_rate(self, t: Tensor, lam: Tensor) -> Tensor:
        rate = self.decay.rate(t)
        if self.heat is not None:
            rate = rate + self.heat.rate(t) * lam
        return rate

    def mean_factor(self, t: float | Tensor, grid: Grid) -> Tensor:
        """``a_k(t) = exp(-½ Φ_k(t))`` (equation 2)."""
        t, lam = self._modes(t, grid)
        return torch.exp(-0.5 * self._phi(t, lam))

    def variance(self, t: float | Tensor, grid: Grid) -> Tensor:
        """``v_k(t)``, the variance of ``x_k(t) | x_k(0)`` (equation 3)."""
        t, lam = self._modes(t, grid)
        knots, v_knots = self._variance_table(grid, lam.device)
        steps = len(knots) - 1
        index = torch.clamp((t * steps).floor().long(), 0, steps - 1)
        v_start = v_knots[index.reshape(-1)].reshape(*index.shape[: index.dim() - lam.dim()], *lam.shape)
        return self._propagate(v_start, knots[index.reshape(-1)].reshape(index.shape), t, lam)  # no host sync

    def _panel(self, s: Tensor, t: Tensor, lam: Tensor) -> Tensor:
        """``∫_s^t g(r) e^{-(Φ(t) - Φ(r))} dr / q`` by the exponential rule."""
        d_phi = self._phi(t, lam) - self._phi(s, lam)
        g_int = self.noise.integral(t) - self.noise.integral(s)
        small = d_phi.abs() < 1e-8
        ratio = torch.where(small, 1 - 0.5 * d_phi, -torch.expm1(-d_phi) / torch.where(small, 1.0, d_phi))
        return g_int * ratio

    def _propagate(self, v_start: Tensor, start: Tensor, t: Tensor, lam: Tensor) -> Tensor:
        decay = torch.exp(-(self._phi(t, lam) - self._phi(start, lam)))
        return decay * v_start + self.covariance(lam) * self._panel(start, t, lam)

    def _variance_table(self, grid: Grid, device: torch.device) -> tuple[Tensor, Tensor]:
        """``v_k`` at the quadrature knots, built on the CPU once per grid and copied once per device."""
        if (grid, device) not in self._cache:
            self._cache[grid, device] = tuple(v.to(device) for v in self._variance_table_cpu(grid))
        return self._cache[grid, device]

    def _variance_table_cpu(self, grid: Grid) -> tuple[Tensor, Tensor]:
        if grid not in self._cache:
            lam = self.eigenvalues(grid)
            knots = torch.linspace(0, 1, self.quadrature_steps + 1, dtype=torch.float64)
            values = [torch.zeros_like(lam)]
            for a, b in zip(knots[:-1], knots[1:]):
                values.append(self._propagate(values[-1], a, b, lam))
            self._cache[grid] = (knots, torch.stack(values))
        return self._cache[grid]

    # -- transitions --------------------------------------------------------------------------
    def transition(self, s: float | Tensor, t: float | Tensor, grid: Grid) -> tuple[Tensor, Tensor]:
        """Factor and variance of ``x(t) | x(s)``, ``s ≤ t`` (equation 5)."""
        s, t = _together(s, t)
        (tt, lam), (ss, _) = self._modes(t, grid), self._modes(s, grid)
        ratio = torch.exp(-0.5 * (self._phi(tt, lam) - self._phi(ss, lam)))  # a_t / a_s without 0/0
        var = self.variance(t, grid) - ratio**2 * self.variance(s, grid)
        return ratio, var.clamp_min(0)

    def bridge(self, s: float | Tensor, t: float | Tensor, grid: Grid) -> tuple[Tensor, Tensor, Tensor]:
        """``q(x_s | x_t, x_0) = N(c_t x_t + c_0 x_0, var)`` per mode, ``s < t``: returns ``(c_t, c_0, var)``.

        ``c_t = (a_t/a_s) v_s / v_t``, ``c_0 = a_s v_{s→t} / v_t``, ``var = v_s v_{s→t} / v_t``
        (Gaussian conditioning of (4) and (5); DDPM's posterior with per-mode ``a``, ``v``).
        """
        s, t = _together(s, t)
        ratio, v_st = self.transition(s, t, grid)
        v_s, v_t = self.variance(s, grid), self.variance(t, grid)
        v_t = v_t.clamp_min(torch.finfo(v_t.dtype).tiny)
        return ratio * v_s / v_t, self.mean_factor(s, grid) * v_st / v_t, v_s * v_st / v_t

    def prior_variance(self, grid: Grid) -> Tensor:
        """Per-mode variance of the prior ``N(0, v(1))``: the law of ``x_1`` when ``a(1) x_0`` is negligible."""
        return self.variance(1.0, grid)

    # -- sampling in grid space ---------------------------------------------------------------
    def white_coefficients(self, like: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Coefficients of fresh white noise for fields shaped like ``like`` (``E|ξ_k|² = 1``)."""
        grid = self.basis.grid_of(like)
        batch = like.shape[: like.dim() - self.basis.ndim]
        white = self.basis.white_noise(batch, grid, generator=generator, dtype=like.dtype, device=like.device)
        return self.basis.forward(white)

    def marginal_sample(
        self, x0: Tensor, t: float | Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Draw ``x_t ~ N(a(t) x_0, v(t))`` (equation 4); returns ``(x_t, n)`` with ``x_t = a x_0 + n``."""
        grid = self.basis.check_field(x0, "x0")
        a = self.mean_factor(t, grid).to(x0.device, x0.dtype)
        sd = self.variance(t, grid).sqrt().to(x0.device, x0.dtype)
        noise = self.basis.inverse(sd * self.white_coefficients(x0, generator=generator), grid)
        return self.basis.inverse(a * self.basis.forward(x0), grid) + noise, noise

    def transition_sample(
        self, x_s: Tensor, s: float | Tensor, t: float | Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw ``x_t`` given ``x_s`` (equation 5)."""
        grid = self.basis.check_field(x_s, "x_s")
        ratio, var = (v.to(x_s.device, x_s.dtype) for v in self.transition(s, t, grid))
        c = ratio * self.basis.forward(x_s) + var.sqrt() * self.white_coefficients(x_s, generator=generator)
        return self.basis.inverse(c, grid)

    def bridge_sample(
        self, x_t: Tensor, x0: Tensor, s: float | Tensor, t: float | Tensor, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw ``x_s ~ q(x_s | x_t, x_0)``."""
        grid = self.basis.check_field(x_t, "x_t")
        if self.basis.check_field(x0, "x0") != grid or x0.shape != x_t.shape:
            raise ValueError(f"x0 {tuple(x0.shape)} and x_t {tuple(x_t.shape)} must have the same shape.")
        c_t, c_0, var = (v.to(x_t.device, x_t.dtype) for v in self.bridge(s, t, grid))
        c = c_t * self.basis.forward(x_t) + c_0 * self.basis.forward(x0)
        c = c + var.sqrt() * self.white_coefficients(x_t, generator=generator)
        return self.basis.inverse(c, grid)

    def prior_sample(
        self,
        num: int,
        resolution: int | Sequence[int],
        *,
        channels: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``num`` draws of the prior at any resolution, shape ``(num, channels, *grid)``."""
        return self.basis.sample_gaussian(num, resolution, lambda grid: self.prior_variance(grid).sqrt(),
                                          channels=channels, generator=generator, dtype=dtype, device=device)

    # -- scores and the reverse process ------------------------------------------------------
    def score_coefficients(self, x: Tensor, t: float | Tensor, denoised: Tensor) -> Tensor:
        """``∂_k log p_t(x) = -(x_k - a_k D_k) / v_k`` from a denoiser output ``D ≈ E[x_0 | x_t]``."""
        grid = self.basis.grid_of(x)
        a = self.mean_factor(t, grid).to(x.device, x.dtype)
        v = self.variance(t, grid).to(x.device, x.dtype)
        return -(self.basis.forward(x) - a * self.basis.forward(denoised)) / v

    def score(self, x: Tensor, t: float | Tensor, denoised: Tensor) -> Tensor:
        """The L² score ``∇ log p_t(x)`` as a grid field (unbounded as the grid is refined)."""
        return self.basis.inverse(self.score_coefficients(x, t, denoised), self.basis.grid_of(x))

    def reverse_drift(
        self, x: Tensor, t: float | Tensor, denoised: Tensor, *, probability_flow: bool = False
    ) -> Tensor:
        """Drift of the reverse-time SDE in forward time ``t`` (to be integrated from 1 down to 0),
        ``dx_k = [-½ (β + h λ_k) x_k - g q_k ∂_k log p_t(x)] dt + sqrt(g q_k) dw̄_k``
        (probability-flow ODE: the score term halved and no noise).
        """
        grid = self.basis.grid_of(x)
        tt, lam = self._modes(t, grid)
        linear = (0.5 * self._phi_rate(tt, lam)).to(x.device, x.dtype)
        diffusion = (self.noise.rate(tt) * self.covariance(lam)).to(x.device, x.dtype)
        weight = 0.5 if probability_flow else 1.0
        c = -linear * self.basis.forward(x) - weight * diffusion * self.score_coefficients(x, t, denoised)
        return self.basis.inverse(c, grid)

    def diffusion_variance_rate(self, t: float | Tensor, grid: Grid) -> Tensor:
        """``g(t) q_k``: the per-mode variance rate of the noise in (1)."""
        t, lam = self._modes(t, grid)
        return self.noise.rate(t) * self.covariance(lam)


@dataclass(frozen=True, kw_only=True)
class StochasticHeatSDE(DiagonalSDE):
    """The stochastic heat equation ``dX = -½ β(t) (I + κ A) X dt + sqrt(β(t)) dW^Q``.

    Closed form: ``a_k = exp(-½ (1 + κ λ_k) B(t))``, ``v_k = q̃_k (1 - a_k²)``, ``q̃_k = q_k / (1 + κ λ_k)``;
    the terminal law ``N(0, Q (I + κ A)^(-1))`` is trace class. ``κ = 0``: DDO; ``κ > 0``: HDM.
    """

    decay: Schedule = field(default_factory=LinearSchedule)
    noise: Schedule = field(init=False, default=None)
    heat: Schedule | None = field(init=False, default=None)
    kappa: float = 0.0

    def __post_init__(self) -> None:
        if self.kappa < 0:
            raise ValueError(f"kappa must be ≥ 0 (it scales the dissipation -κΔ), got {self.kappa}.")
        object.__setattr__(self, "noise", self.decay)
        object.__setattr__(self, "heat", ScaledSchedule(self.decay, self.kappa) if self.kappa else None)
        super().__post_init__()

    def stationary_variance(self, grid: Grid) -> Tensor:
        """``q̃_k = q_k / (1 + κ λ_k)``: the per-mode variance of the terminal law."""
        return self._stationary(self.eigenvalues(grid))

    def _stationary(self, lam: Tensor) -> Tensor:
        return self.covariance(lam) / (1 + self.kappa * lam)

    def variance(self, t: float | Tensor, grid: Grid) -> Tensor:
        t, lam = self._modes(t, grid)
        return -self._stationary(lam) * torch.expm1(-self._phi(t, lam))  # q̃ (1 - a²)


def default_sde(basis: SpectralBasis, grid: Sequence[int], *, kappa_nyquist: float = 0.0,
                alpha: float | None = None, tau_ratio: float = 0.5) -> StochasticHeatSDE:
    """The toolkit's default forward process for data on ``grid`` of ``basis``: the stochastic heat SPDE
    with a linear β schedule (0.1 → 20), Matérn noise of smoothness ``α = d/2 + ½`` (trace class) and
    ``τ = tau_ratio · sqrt(λ_1)`` (in units of the domain's lowest non-zero eigenvalue, so the noise's
    correlation length follows the domain), and heat ``κ`` set so that ``κ λ_max = kappa_nyquist`` at
    the training grid (the finest trained mode dissipates at ``1 + kappa_nyquist`` times the mean's rate).

    ``kappa_nyquist = 0`` (the function's default) is DDO's coloured-noise process: every mode then shares
    ``a(t)``, which makes sequential Monte Carlo inpainting exact (``restoration.filtering_smc``);
    ``kappa_nyquist > 0`` gives HDM's heat process (restoration: ``twisted_smc``, asymptotically exact under heat
    too, or ``covariance_guidance``, exact for Gaussian data). The command line picks it per domain (``cli.DEFAULT_HEAT``, measured by
    ``benchmarks/heat_default.py`` and, for images, ``benchmarks/images.py --kappa-nyquist``)."""
    if kappa_nyquist < 0 or not tau_ratio > 0:
        raise ValueError(f"default_sde needs kappa_nyquist ≥ 0 and tau_ratio > 0, got {kappa_nyquist} and {tau_ratio}.")
    lam = basis.eigenvalues(tuple(grid))
    lam1 = float(lam[lam > 0].min())
    alpha = alpha if alpha is not None else basis.ndim / 2 + 0.5
    covariance = Matern(alpha=alpha, tau=tau_ratio * math.sqrt(lam1))  # τ in units of sqrt(λ_1)
    kappa = kappa_nyquist / float(lam.max())  # κ λ_max = kappa_nyquist
    return StochasticHeatSDE(basis=basis, covariance=covariance, decay=LinearSchedule(0.1, 20.0), kappa=kappa)
