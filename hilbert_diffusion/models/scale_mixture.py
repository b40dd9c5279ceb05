"""A Gaussian scale mixture: the simplest prior that is not Gaussian, with its exact denoiser and no network.

Natural images are not one stationary Gaussian: a flat patch of sky and a patch of foliage share a spectrum's shape but
not its amplitude. The scale mixture draws a field as ``x = s g`` with ``g ~ N(0, C)`` (the per-mode channel
covariance of :class:`~.cross_spectrum.ChannelCovariance`) and one amplitude ``s`` per field from a discrete law
``P(s = s_j) = π_j`` (Wainwright & Simoncelli 2000, here global per field). Under a diagonal forward process
(``x_t,k = a_k x_0,k + n_k``, ``n_k ~ N(0, v_k)``) its posterior mean is exact and closed-form::

    log p(x_t | s) = −½ Σ_k m_k (x_kᴴ Σ_k(s)⁻¹ x_k + log det Σ_k(s)),   Σ_k(s) = a_k² s² C_k + v_k I         (S1)
    w_j(x_t) = π_j p(x_t | s_j) / Σ_i π_i p(x_t | s_i)                                                     (S2)
    E[x_0 | x_t] = Σ_j w_j(x_t) s_j² C_k a_k Σ_k(s_j)⁻¹ x_k                                                 (S3)

(``m_k`` the basis' multiplicity: real coefficients count once, complex ones twice.) The denoiser is therefore
amplitude-adaptive: it reads the amplitude off the noisy field and applies the Wiener filter of that amplitude. With
one scale it is :class:`~.cross_spectrum.ChannelGaussianDenoiser`.

With a covariance that couples channels, (S1)–(S3) are applied in each mode's eigenbasis of ``C_k``, where ``Σ_k(s)``
is diagonal; :func:`mixture_gain` is the diagonal form, shared with the score operators' amplitude-adaptive skip
(``amplitude_classes`` of :class:`~.fno.ScoreFNOConfig`).

* :class:`ScaleMixture` — the scales and weights, fitted to the fields' whitened energies (:func:`whitened_energy`)
  by equal-count classes;
* :func:`mixture_gain` — (S1)–(S3) for channel-diagonal variances, one ``t`` per field;
* :class:`ScaleMixtureDenoiser` — the exact denoiser as a model: ``model(x_t, t) -> E[x_0 | x_t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..sde import DiagonalSDE

if TYPE_CHECKING:  # cross_spectrum imports fno, whose skip imports this module
    from .cross_spectrum import ChannelCovariance

__all__ = ["ScaleMixture", "ScaleMixtureDenoiser", "mixture_gain", "whitened_energy"]


@dataclass(frozen=True)
class ScaleMixture:
    """Amplitudes ``scales`` (positive) with probabilities ``weights`` (summing to 1) of ``x = s g``, ``g ~ N(0, C)``."""

    scales: tuple[float, ...]
    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.scales or len(self.scales) != len(self.weights):
            raise ValueError(f"a scale mixture needs as many weights as scales (at least one), got {len(self.scales)} "
                             f"scales and {len(self.weights)} weights.")
        if min(self.scales) <= 0 or min(self.weights) < 0 or abs(sum(self.weights) - 1) > 1e-9:
            raise ValueError(f"scales must be positive and weights a probability vector, got {self.scales} and "
                             f"{self.weights}.")

    @classmethod
    def from_energies(cls, energies: Tensor, *, bins: int = 16) -> ScaleMixture:
        """From the fields' whitened energies ``ŝ²`` (:func:`whitened_energy`): ``bins`` equal-count classes, a class's
        scale the root of its mean ``ŝ²``. Each ``ŝ²`` carries a relative error of about ``sqrt(2 / modes)``,
        negligible on image grids."""
        groups = energies.to(torch.float64).sort().values.tensor_split(min(bins, len(energies)))
        return cls(scales=tuple(float(g.mean().clamp_min(1e-300).sqrt()) for g in groups),
                   weights=tuple(len(g) / len(energies) for g in groups))

    @classmethod
    def fit(cls, data: Tensor, covariance: ChannelCovariance, basis: SpectralBasis, *, bins: int = 16) -> ScaleMixture:
        """From centred fields ``(num, channels, *grid)`` and their covariance: :meth:`from_energies` of
        :func:`whitened_energy` (1 on average when ``covariance`` was estimated from the same fields)."""
        grid = basis.check_field(data, "data")
        rotation, variances = _eigenbasis(covariance, basis, grid)
        energies = [whitened_energy(_rotate(basis.forward(chunk.to(torch.float64)), rotation), variances,
                                    basis.multiplicity(grid)) for chunk in data.split(256)]
        return cls.from_energies(torch.cat(energies), bins=bins)


def whitened_energy(coefficients: Tensor, variances: Tensor, multiplicity: Tensor) -> Tensor:
    """Per field, ``Σ_k m_k Σ_c |x_ck|² / c_ck / (channels Σ_k m_k)`` for coefficients ``(num, channels, *modes)`` and
    channel-diagonal variances broadcastable to them: 1 in expectation for a draw of ``N(0, diag c)``."""
    m = multiplicity.to(torch.float64)
    ratio = coefficients.abs().square() / variances.clamp_min(torch.finfo(torch.float64).tiny)
    return (m * ratio).flatten(1).sum(1) / (coefficients.shape[1] * float(m.sum()))


def mixture_gain(coefficients: Tensor, variances: Tensor, a: Tensor, v: Tensor, multiplicity: Tensor,
                 scales: Tensor, weights: Tensor) -> Tensor:
    """The per-field, per-mode gain ``Σ_j w_j(x_t) s_j² a_k c_k / σ_k²(s_j)`` of (S1)–(S3) for channel-diagonal
    variances: ``E[x_0 | x_t]``'s coefficients are ``gain · coefficients``. ``coefficients``: ``(batch, channels,
    *modes)``; ``variances`` ``c``, ``a`` and ``v`` broadcastable to it (``a``, ``v`` may differ per field);
    ``scales`` and ``weights`` the mixture's, as 1-D tensors (a model's buffers: no host round trip)."""
    tiny = torch.finfo(torch.float64).tiny
    power, m = coefficients.abs().square(), multiplicity.to(torch.float64)
    log_like, gains = [], []
    for s in scales.to(power.device, torch.float64):
        sigma2 = (a**2 * s**2 * variances + v).clamp_min(tiny)  # (S1), per channel
        log_like.append(-0.5 * (m * (power / sigma2 + sigma2.log().expand_as(power))).flatten(1).sum(1))
        gains.append(a * s**2 * variances / sigma2)
    prior = weights.to(power.device, torch.float64).clamp_min(tiny).log()
    w = torch.softmax(torch.stack(log_like, 1) + prior, dim=1)  # (S2), (batch, scales)
    stacked = torch.stack([g.expand_as(power) for g in gains], 1)  # (batch, scales, channels, *modes)
    return (w.reshape(*w.shape, *[1] * (power.dim() - 1)) * stacked).sum(1)  # (S3)


def _eigenbasis(covariance: ChannelCovariance, basis: SpectralBasis, grid: Grid) -> tuple[Tensor, Tensor]:
    """Per mode, the eigenvectors ``(*modes, C, C)`` and eigenvalues ``(C, *modes)`` of ``C_k``."""
    c = covariance.matrix(basis, grid).movedim(0, -1).movedim(0, -1)  # (*modes, C, C)
    variances, rotation = torch.linalg.eigh(c)
    return rotation, variances.movedim(-1, 0).clamp_min(0)


def _rotate(coefficients: Tensor, rotation: Tensor, *, back: bool = False) -> Tensor:
    """Coefficients ``(batch, C, *modes)`` into each mode's eigenbasis (``Uᴴ x``), or ``back`` (``U y``)."""
    u = rotation.to(coefficients.dtype)
    pattern = "...ij,b...j->b...i" if back else "...ji,b...j->b...i"
    return torch.einsum(pattern, u, coefficients.movedim(1, -1)).movedim(-1, 1)


class ScaleMixtureDenoiser(nn.Module):
    """The exact denoiser (S1)–(S3) of the scale mixture of ``N(0, covariance)`` with ``mixture`` under ``sde``,
    in each mode's eigenbasis of the channel covariance (:func:`mixture_gain`). It carries ``data_spectrum =
    covariance`` (the mixture's second moment when ``E s² = 1``), so covariance guidance conditions with the Gaussian
    of the same second-order statistics. Every field of a batch shares one ``t``."""

    def __init__(self, sde: DiagonalSDE, covariance: ChannelCovariance, mixture: ScaleMixture) -> None:
        super().__init__()
        self.sde, self.data_spectrum, self.mixture = sde, covariance, mixture

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        basis = self.sde.basis
        grid = basis.check_field(x, "x")
        rotation, variances = _eigenbasis(self.data_spectrum, basis, grid)
        a, v = (f(float(t[0]), grid) for f in (self.sde.mean_factor, self.sde.variance))
        y = _rotate(basis.forward(x.to(torch.float64)), rotation)
        gain = mixture_gain(y, variances, a, v, basis.multiplicity(grid), *(
            torch.tensor(values, dtype=torch.float64) for values in (self.mixture.scales, self.mixture.weights)))
        return basis.inverse(_rotate(gain * y, rotation, back=True), grid).to(x.dtype)
