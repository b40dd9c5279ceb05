"""The covariance between channels, per mode: a matrix-valued spectrum ``C_ij(λ) = ρ_ij(λ) √(c_i(λ) c_j(λ))``.

The Wiener skip of a score operator treats channels as independent (one variance spectrum ``c_i`` each). Fields that
come in pairs — a PDE's coefficient and its solution, an initial and a final state — are strongly correlated mode by
mode (``u ≈ −a/λ`` for Poisson), and a restoration that observes one channel learns about the other through that
correlation (:data:`~hilbert_diffusion.restoration.covariance_guidance` with a :class:`ChannelCovariance`). Like
:class:`~hilbert_diffusion.models.fno.EmpiricalSpectrum` it treats the data as isotropic: ``ρ_ij`` is estimated over
the modes of equal eigenvalue (bins of ``log(1 + λ/λ_ref)``), interpolated linearly between them and held constant
beyond, so it is defined at every resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..sde import DiagonalSDE
from ..noise import Spectrum
from .fno import EmpiricalSpectrum

__all__ = ["ChannelCovariance", "ChannelGaussianDenoiser"]


@dataclass(frozen=True)
class ChannelCovariance:
    """Per-mode channel covariance: the spectra ``c_i(λ)`` and correlations ``ρ_ij(λ)`` at ``knots`` (in
    ``u = log(1 + λ/λ_ref)``), ``correlations[i][j]`` one value per knot (``ρ_ii = 1``)."""

    spectra: tuple[Spectrum, ...]
    knots: tuple[float, ...]
    correlations: tuple[tuple[tuple[float, ...], ...], ...]
    lam_ref: float = 1.0

    @property
    def channels(self) -> int:
        return len(self.spectra)

    def correlation(self, lam: Tensor) -> Tensor:
        """``ρ_ij(λ)``, shaped ``(C, C, *lam.shape)``, interpolated linearly in ``u`` (constant beyond the knots)."""
        u = torch.log1p(torch.as_tensor(lam, dtype=torch.float64).clamp_min(0) / self.lam_ref)
        knots = torch.tensor(self.knots, dtype=torch.float64)
        rho = torch.tensor(self.correlations, dtype=torch.float64)  # (C, C, K)
        if len(knots) == 1:
            return rho[..., 0].reshape(*rho.shape[:2], *[1] * u.dim()).expand(*rho.shape[:2], *u.shape)
        index = torch.searchsorted(knots, u.reshape(-1)).clamp(1, len(knots) - 1)
        u0, u1 = knots[index - 1], knots[index]
        share = ((u.reshape(-1).clamp(knots[0], knots[-1]) - u0) / (u1 - u0)).clamp(0, 1)
        values = rho[..., index - 1] + (rho[..., index] - rho[..., index - 1]) * share
        return values.reshape(*rho.shape[:2], *u.shape)

    def matrix(self, basis: SpectralBasis, grid: Grid) -> Tensor:
        """``C_ij`` at the modes of ``grid``: ``(C, C, *coefficient_shape)`` float64 (positive semi-definite per mode)."""
        lam = basis.eigenvalues(grid)
        std = torch.stack([s(lam) for s in self.spectra]).sqrt()
        return self.correlation(lam) * std[:, None] * std[None, :]

    @classmethod
    def estimate(cls, data: Tensor, basis: SpectralBasis, *, bin_width: float = 0.25) -> ChannelCovariance:
        """From fields ``(num, channels, *grid)``: the channels' :class:`EmpiricalSpectrum` and, per bin of modes,
        ``ρ_ij = Σ Re(x_i x̄_j) / √(Σ |x_i|² Σ |x_j|²)`` over samples and the bin's modes (weighted by multiplicity)."""
        spectra = EmpiricalSpectrum.estimate(data, basis, bin_width=bin_width)
        grid = basis.grid_of(data)
        lam = basis.eigenvalues(grid).reshape(-1)
        lam_ref = spectra[0].lam_ref
        mult = basis.multiplicity(grid).reshape(-1)
        keep = mult > 0
        u = torch.log1p(lam[keep] / lam_ref)
        labels, inverse = torch.unique(torch.round(u / bin_width).long(), return_inverse=True)
        channels = data.shape[1]
        sums = torch.zeros(channels, channels, len(labels), dtype=torch.float64)
        for chunk in data.split(256):
            c = basis.forward(chunk.to(torch.float64)).flatten(2)[..., keep]  # (n, C, modes)
            products = torch.einsum("nim,njm->ijm", c, c.conj()).real * mult[keep]
            sums.index_add_(2, inverse, products)
        diagonal = sums.diagonal(dim1=0, dim2=1).T.clamp_min(torch.finfo(torch.float64).tiny)  # (C, K)
        rho = (sums / (diagonal[:, None] * diagonal[None, :]).sqrt()).clamp(-1, 1)
        weight = torch.zeros(len(labels), dtype=torch.float64).index_add_(0, inverse, mult[keep])
        centres = torch.zeros_like(weight).index_add_(0, inverse, mult[keep] * u) / weight
        return cls(spectra=spectra, knots=tuple(centres.tolist()), correlations=tuple(
            tuple(tuple(rho[i, j].tolist()) for j in range(channels)) for i in range(channels)), lam_ref=lam_ref)


class ChannelGaussianDenoiser(nn.Module):
    """The exact denoiser of the centred Gaussian whose coefficients have the per-mode channel covariance
    ``covariance`` under ``sde``: ``D_k = C_k a_k (a_k² C_k + v_k I)⁻¹ x_k`` — the best linear denoiser of data with
    that second-order structure, with no network. It carries ``data_spectrum = covariance``, so covariance guidance
    conditions with the same Gaussian it denoises with."""

    def __init__(self, sde: DiagonalSDE, covariance: ChannelCovariance) -> None:
        super().__init__()
        self.sde, self.data_spectrum = sde, covariance

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        basis = self.sde.basis
        grid = basis.check_field(x, "x")
        c = self.data_spectrum.matrix(basis, grid).movedim(0, -1).movedim(0, -1)  # (*modes, C, C)
        a = torch.broadcast_to(self.sde.mean_factor(float(t[0]), grid), c.shape[:-2])[..., None, None]
        v = torch.broadcast_to(self.sde.variance(float(t[0]), grid), c.shape[:-2])[..., None, None]
        eye = torch.eye(c.shape[-1], dtype=c.dtype)
        gain = a * torch.linalg.solve(a**2 * c + v * eye, c)  # symmetric per mode: C a (a² C + v I)⁻¹
        coefficients = basis.forward(x.to(torch.float64)).movedim(1, -1)  # (batch, *modes, C)
        out = torch.einsum("...ij,b...j->b...i", gain.to(coefficients.dtype), coefficients).movedim(-1, 1)
        return basis.inverse(out, grid).to(x.dtype)
