"""Covariance-aware guidance: the conditional denoiser of a linear-Gaussian likelihood, ΠGDM's idea (Song et al. 2023,
"Pseudoinverse-guided diffusion models") written per mode in function space.

Tweedie's formulas per mode (``x_t = A_t x_0 + n``, ``n ~ N(0, N_t)``, ``A_t = diag(a_k)``, ``N_t = diag(v_k)``):
``D = E[x_0 | x_t] = A_t⁻¹ (x_t + N_t ∇log p_t)`` and ``Cov[x_0 | x_t] = A_t⁻¹ N_t Jᵀ`` with ``J = ∂D/∂x_t``.  (T1, T2)
For ``y = H x_0 + σ_y ε`` and ``p(x_0 | x_t) ≈ N(D, Σ_t)`` the conditional denoiser is

    D_y = D + Σ_t Hᵀ K_t⁻¹ (y − H D),    K_t = H Σ_t Hᵀ + σ_y² I,                                              (CG)

and each step draws the bridge ``q(x_s | x_t, x_0 = D_y)``. ``Σ_t`` is the exact posterior covariance of a Gaussian
with the data's per-channel spectrum ``c_k`` (the model's Wiener skip estimates it at training),
``s_k = c_k v_k / (a_k² c_k + v_k)`` per mode and channel, applied to the observation's rows on the grid: for
Gaussian data with that spectrum and the exact denoiser, (CG) is exactly ``E[x_0 | x_t, y]`` (tested against the exact
posterior for masks, super-resolution, block averages and blur, with and without heat). Each step costs one model
evaluation and one ``n_obs × n_obs`` solve; there is no step size to tune. Other channels (a PDE pair's unobserved
field) follow through the model at the next step, which sees the corrected field.

Optionally (``jacobian_snr``) the modes whose signal-to-noise ratio ``a_k² c_k / v_k`` exceeds it take ``Σ_t`` from
the model itself, (T2): ``A_t⁻¹ N_t Jᵀ``, one vector–Jacobian product per step, which also corrects the channels the
model couples to the observed ones within the step. It is exact for an exact model, but a learned network's Jacobian
is not accurate where the SNR is low, and ``A_t⁻¹ N_t`` amplifies its error there: keep ``jacobian_snr`` ≥ 1 for
learned models (measured: unstable below). ``nugget`` adds that fraction of ``K_t``'s mean diagonal to it.

Optionally (``residual``, a :class:`~hilbert_diffusion.restoration.residual.PDEResidual` on the model's fields) the
conditional denoiser then takes one step down the PDE residual's norm ``N = ‖Δ_h⁻¹ R(D_y)‖``, preconditioned by the same
posterior covariance, of the length that removes the fraction ``λ = residual_weight`` of ``N`` to first order,

    D_y ← D_y − λ N Σ_t g / ⟨g, Σ_t g⟩,    g = ∇N,                                                         (CG-R)

so ``λ`` is free of units and grids (``λ = 1``: the linearised residual's zero along ``Σ_t g``). The gradient is taken
at the denoised field, not through the model: no model evaluation; ``Σ_t`` confines the step to what ``x_t`` has not
yet fixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from ..engine import Method, Run, Sampler
from ..noise import Spectrum
from ..times import power_times
from .replacement import RESTORATION_STEPS
from .residual import PDEResidual, check_residual_options
from .vectors import cholesky

__all__ = ["CovarianceGuidance", "covariance_guidance"]


class _Carry(NamedTuple):
    x: Tensor
    rows: Tensor  # Hᵀ e_j on the grid, one per observed entry: (n_obs, channels, *grid), float64
    observed: Tensor  # boolean (channels, *observation grid): the observed entries of y
    spectrum: Tensor  # c_k per channel (channels, *modes), or a channel covariance per mode (channels, channels, *modes)


@dataclass(frozen=True)
class CovarianceGuidance(Method):
    """``x_s ~ q(x_s | x_t, D_y)`` with the conditional denoiser (CG); see :data:`covariance_guidance`. ``data_spectrum``
    may also be a :class:`~hilbert_diffusion.models.cross_spectrum.ChannelCovariance` (read through its ``matrix``)."""

    data_spectrum: Spectrum | Sequence[Spectrum] | None = None
    jacobian_snr: float = math.inf
    nugget: float = 0.0
    residual: PDEResidual | None = None
    residual_weight: float = 1.0
    conditional: ClassVar[bool] = True
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.jacobian_snr > 0 or not (math.isfinite(self.nugget) and self.nugget >= 0):
            raise ValueError(f"jacobian_snr must be > 0 and nugget a finite number ≥ 0, got {self.jacobian_snr}, "
                             f"{self.nugget}.")
        check_residual_options(self.residual, self.residual_weight)

    @property
    def requires_grad(self) -> bool:  # type: ignore[override]
        """Only the Jacobian route differentiates through the model."""
        return math.isfinite(self.jacobian_snr)

    def start(self, run: Run) -> _Carry:
        operator, _ = run.observation()
        if not operator.linear:
            raise ValueError(f"covariance guidance needs a linear observation; {type(operator).__name__} reads through "
                             "a nonlinear solver: restore it with hard_consistency or dps.")
        x = run.x
        obs_grid = operator.observation_grid(run.grid)
        observed = operator.observed_points(run.grid).to(x.device).expand(x.shape[1], *obs_grid)
        count = int(observed.sum())
        units = torch.zeros((count, *observed.shape), dtype=torch.float64, device=x.device)
        units.flatten(1)[torch.arange(count, device=x.device), observed.flatten().nonzero()[:, 0]] = 1
        probe = torch.zeros((count, *x.shape[1:]), dtype=torch.float64, device=x.device, requires_grad=True)
        with torch.enable_grad():
            (rows,) = torch.autograd.grad(operator.forward(probe), probe, grad_outputs=units)  # Hᵀ e_j (K_t is stiff)
        return _Carry(x, rows, observed, data_spectrum(run, self.data_spectrum, mixing=not self.requires_grad))

    def position(self, carry: _Carry) -> Tensor:
        return carry.x

    def finish(self, run: Run, carry: _Carry) -> Tensor:
        return carry.x

    def _gram(self, run: Run, carry: _Carry, posterior: Tensor) -> Tensor:
        """``K_t = H Σ_t Hᵀ + σ_y² I`` over the observed entries (float64), ``Σ_t`` the grid covariance of the per-mode
        posterior variances ``posterior``."""
        columns = _covariance(run, carry.rows, posterior.double())  # Σ_t Hᵀ e_j
        operator = run.observation()[0]
        gram = operator.forward(columns)[:, carry.observed]
        variance = operator.noise_std**2 + self.nugget * float(gram.diagonal().mean())
        return gram + variance * torch.eye(len(gram), dtype=torch.float64, device=gram.device)

    def advance(self, run: Run, carry: _Carry, x: Tensor, denoised: Tensor, s: float, t: float) -> _Carry:
        operator, y = run.observation()
        a, v, c = run.a(t), run.v(t), carry.spectrum
        posterior = _posterior(c, a, v, mixing=c.dim() == run.basis.ndim + 2)  # Cov[x_0 | x_t] of N(0, c), per mode
        residual = (y - operator.forward(denoised.detach()))[:, carry.observed].to(torch.float64)  # (batch, n_obs)
        weights = torch.cholesky_solve(residual.T, cholesky(self._gram(run, carry, posterior))).T  # K_t⁻¹ (y − H D)
        shift = torch.einsum("bj,j...->b...", weights, carry.rows).to(x.dtype)  # Hᵀ K_t⁻¹ (y − H D)
        if not self.requires_grad:
            conditional = self._descend(run, denoised + _covariance(run, shift, posterior), posterior)
            return carry._replace(x=run.bridge_sample(x.detach(), operator.derive(conditional), s, t))  # u = S a
        # (CG) per mode: through the model's Jacobian (T2) where the mode's signal-to-noise ratio a²c/v exceeds
        # jacobian_snr, else through the Gaussian's own posterior covariance s_k (where J = A_t Σ_t N_t⁻¹ they agree).
        visible = a**2 * c > self.jacobian_snr * v
        conditional = denoised.detach() + _covariance(run, shift, torch.where(visible, 0.0, posterior))
        with torch.enable_grad():
            predicted = operator.forward(denoised)
            target = torch.zeros_like(predicted)
            target[:, carry.observed] = weights.to(target.dtype)
            (vjp,) = torch.autograd.grad(predicted, x, grad_outputs=target)  # Jᵀ Hᵀ K_t⁻¹ r
        conditional = conditional + _covariance(run, vjp, torch.where(visible, v / torch.where(visible, a, 1.0), 0.0))
        conditional = self._descend(run, conditional, posterior)
        return carry._replace(x=run.bridge_sample(x.detach(), operator.derive(conditional), s, t))

    def _descend(self, run: Run, conditional: Tensor, posterior: Tensor) -> Tensor:
        """(CG-R): one step down the PDE residual's norm, preconditioned by the posterior covariance (if any)."""
        if self.residual is None or self.residual_weight == 0:
            return conditional
        norm, grad = self.residual.norm_and_gradient(conditional)
        direction = _covariance(run, grad, posterior.to(conditional.dtype))  # Σ_t g
        slope = (grad * direction).flatten(1).sum(-1).clamp_min(1e-30)  # ⟨g, Σ_t g⟩
        length = (self.residual_weight * norm / slope).to(conditional.dtype)
        return conditional - length.view(-1, *[1] * (conditional.dim() - 1)) * direction


def data_spectrum(run: Run, spectra: Spectrum | Sequence[Spectrum] | None, *, mixing: bool = True) -> Tensor:
    """The data's per-mode variances at the grid of ``run``: ``c_k`` per channel ``(C, *coefficient shape)``, or per
    mode the channel covariance ``(C, C, *…)`` of a ChannelCovariance (only where ``mixing``); ``spectra=None`` reads
    the model's (ScoreFNO's Wiener-skip estimate, the Gaussian oracle's exact spectrum)."""
    if spectra is None:
        spectra = getattr(run.model, "data_spectrum", None) or getattr(run.model, "data_covariance", None)
    if spectra is None:
        raise ValueError("this method needs the data's variance spectrum: pass data_spectrum= (a Spectrum, one per "
                         "channel or a ChannelCovariance), or use a model that carries one (ScoreFNO, GaussianOracle).")
    channels = run.x.shape[1]
    if hasattr(spectra, "matrix"):  # a ChannelCovariance: channels correlated mode by mode
        if spectra.channels != channels or not mixing:
            raise ValueError(f"a ChannelCovariance of {spectra.channels} channels takes fields of as many channels "
                             f"(got {channels}), and only covariance_guidance's Gaussian route (jacobian_snr = inf) "
                             f"reads it; pass one Spectrum per channel instead.")
        return spectra.matrix(run.basis, run.grid).to(device=run.x.device, dtype=run.x.real.dtype)
    spectra = (spectra,) * channels if isinstance(spectra, Spectrum) else tuple(spectra)
    if len(spectra) != channels:
        raise ValueError(f"data_spectrum has {len(spectra)} entries but the fields have {channels} channels.")
    lam = run.basis.eigenvalues(run.grid)
    return torch.stack([s(lam) for s in spectra]).to(device=run.x.device, dtype=run.x.real.dtype)


def _posterior(c: Tensor, a: Tensor, v: Tensor, *, mixing: bool) -> Tensor:
    """``Cov[x_0 | x_t]`` per mode for ``x_0 ~ N(0, c)``: ``c v / (a² c + v)`` per channel (``c`` shaped
    ``(C, *modes)``), or ``(I + (a²/v) C)⁻¹ C`` for a channel covariance ``C`` shaped ``(C, C, *modes)``."""
    if not mixing:
        return c * v / (a**2 * c + v)
    a, v = torch.broadcast_to(a, c.shape[2:]), torch.broadcast_to(v, c.shape[2:])
    matrix = c.movedim(0, -1).movedim(0, -1)  # (*modes, C, C)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.solve(eye + (a**2 / v)[..., None, None] * matrix, matrix).movedim(-1, 0).movedim(-1, 0)


def _covariance(run: Run, f: Tensor, variances: Tensor) -> Tensor:
    """``C f`` for Euclidean grid vectors ``f`` ``(n, C, *grid)`` and the grid covariance ``C`` of per-mode
    ``variances`` (per channel ``(C, *modes)``, or channel-mixing ``(C, C, *modes)``):
    ``Cov[x(p_i), x(p_j)] = Σ_k variances_k e_k(p_i) e_k(p_j)``, so ``C f = B(variances · B*(f / w))``."""
    w = run.basis.weights(run.grid).to(device=f.device, dtype=f.dtype)
    if variances.dim() < run.basis.ndim + 2:
        return run.basis.apply_diagonal(f / w, variances)
    coefficients = run.basis.forward(f / w)
    mixed = torch.einsum("ij...,nj...->ni...", variances.to(coefficients.dtype), coefficients)
    return run.basis.inverse(mixed, run.grid)


covariance_guidance = Sampler("covariance-guidance", CovarianceGuidance(), default_steps=RESTORATION_STEPS,
                              grid=power_times)
"""Covariance-aware guidance (module docstring, eq. CG): ``D_y = D + Σ_t Hᵀ K_t⁻¹ (y − H D)`` with the exact Gaussian
posterior covariance of the data spectrum, then the bridge to ``s``. One model evaluation and an ``n_obs × n_obs`` solve
per step; works with channel-wise masks (observe one field of a pair, restore both). Options: ``data_spectrum`` (default:
the model's), ``jacobian_snr`` (the model's Jacobian for modes above that SNR; default never), ``nugget``, ``residual``
and ``residual_weight`` (a PDE residual's preconditioned descent step, eq. CG-R).
``y``: ``(batch or 1, channels, *observation_grid)``."""
