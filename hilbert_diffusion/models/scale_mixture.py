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

* :class:`ScaleMixture` — the scales and weights, :meth:`ScaleMixture.fit` from data (equal-count bins of the fields'
  whitened energies);
* :class:`ScaleMixtureDenoiser` — (S1)–(S3) as a model: ``model(x_t, t) -> E[x_0 | x_t]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..sde import DiagonalSDE
from .cross_spectrum import ChannelCovariance

__all__ = ["ScaleMixture", "ScaleMixtureDenoiser", "whitened_energy"]


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
    def fit(cls, data: Tensor, covariance: ChannelCovariance, basis: SpectralBasis, *, bins: int = 16) -> ScaleMixture:
        """From centred fields ``(num, channels, *grid)``: each field's whitened energy ``ŝ² = Σ_k m_k x_kᴴ C_k⁻¹ x_k /
        (channels Σ_k m_k)`` (its amplitude relative to ``covariance``; 1 on average when ``covariance`` was estimated
        from the same fields), sorted into ``bins`` equal-count bins; a bin's scale is the root of its mean ``ŝ²``.
        The per-field estimate carries a relative error of about ``sqrt(2 / modes)``, negligible on image grids."""
        energies = whitened_energy(data, covariance, basis)
        groups = energies.sort().values.tensor_split(min(bins, len(energies)))
        return cls(scales=tuple(float(g.mean().sqrt()) for g in groups),
                   weights=tuple(len(g) / len(energies) for g in groups))


def _precision_parts(covariance: ChannelCovariance, basis: SpectralBasis, grid: Grid) -> tuple[Tensor, Tensor]:
    """``C_k`` as ``(modes, C, C)`` and the multiplicities ``(modes,)`` of the stored coefficients (padding dropped)."""
    c = covariance.matrix(basis, grid).flatten(2).movedim(-1, 0)
    mult = basis.multiplicity(grid).reshape(-1).to(torch.float64)
    keep = mult > 0
    return c[keep], mult[keep]


def whitened_energy(data: Tensor, covariance: ChannelCovariance, basis: SpectralBasis) -> Tensor:
    """Per field, ``Σ_k m_k x_kᴴ C_k⁻¹ x_k / (channels Σ_k m_k)``: 1 in expectation for a draw of ``N(0, C)``."""
    grid = basis.check_field(data, "data")
    c, mult = _precision_parts(covariance, basis, grid)
    precision = torch.linalg.pinv(c, hermitian=True)
    keep = basis.multiplicity(grid).reshape(-1) > 0
    out = []
    for chunk in data.split(256):
        x = basis.forward(chunk.to(torch.float64)).flatten(2)[..., keep].movedim(-1, 1)  # (n, modes, C)
        quadratic = torch.einsum("nmi,mij,nmj->nm", x.conj(), precision.to(x.dtype), x).real
        out.append((quadratic * mult).sum(1) / (data.shape[1] * mult.sum()))
    return torch.cat(out)


class ScaleMixtureDenoiser(nn.Module):
    """The exact denoiser (S1)–(S3) of the scale mixture of ``N(0, covariance)`` with ``mixture`` under ``sde``. It
    carries ``data_spectrum = covariance`` (the mixture's second moment when ``E s² = 1``), so covariance guidance
    conditions with the Gaussian of the same second-order statistics. Every field of a batch shares one ``t``."""

    def __init__(self, sde: DiagonalSDE, covariance: ChannelCovariance, mixture: ScaleMixture) -> None:
        super().__init__()
        self.sde, self.data_spectrum, self.mixture = sde, covariance, mixture

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        basis = self.sde.basis
        grid = basis.check_field(x, "x")
        c, mult = _precision_parts(self.data_spectrum, basis, grid)
        keep = basis.multiplicity(grid).reshape(-1) > 0
        shape = basis.coefficient_shape(grid)
        a, v = (torch.broadcast_to(f(float(t[0]), grid), shape).reshape(-1)[keep][:, None, None]
                for f in (self.sde.mean_factor, self.sde.variance))
        coefficients = basis.forward(x.to(torch.float64)).flatten(2)  # (batch, C, all modes)
        xk = coefficients[..., keep].movedim(-1, 1)  # (batch, modes, C)
        eye = torch.eye(c.shape[-1], dtype=c.dtype)
        log_like, filtered = [], []
        for s in self.mixture.scales:
            sigma = a**2 * s**2 * c + v * eye  # (S1)
            solved = torch.linalg.solve(sigma.to(xk.dtype), xk[..., None])[..., 0]  # Σ⁻¹ x per mode
            quadratic = (xk.conj() * solved).sum(-1).real
            log_like.append(-0.5 * (mult * (quadratic + torch.linalg.slogdet(sigma).logabsdet)).sum(1))
            filtered.append(torch.einsum("mij,bmj->bmi", (s**2 * a * c).to(xk.dtype), solved))  # s² C a Σ⁻¹ x
        prior = torch.tensor(self.mixture.weights, dtype=torch.float64).clamp_min(1e-300).log()
        w = torch.softmax(torch.stack(log_like, 1) + prior, dim=1)  # (S2), (batch, scales)
        mean = torch.einsum("bs,sbmi->bmi", w.to(xk.dtype), torch.stack(filtered))  # (S3)
        out = torch.zeros_like(coefficients)
        out[..., keep] = mean.movedim(1, -1)
        return basis.inverse(out.reshape(*coefficients.shape[:2], *shape), grid).to(x.dtype)
