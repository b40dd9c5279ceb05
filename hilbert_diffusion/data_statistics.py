"""Normalisation moments and the data spectrum of a training set in one streaming pass.

For data read lazily (:class:`~hilbert_diffusion.datasets.lazy.LazyFields`) the per-channel moments of
:class:`~hilbert_diffusion.normalization.Normalization` and the variance spectrum of the Wiener skip
(:class:`~hilbert_diffusion.models.fno.EmpiricalSpectrum`) are accumulated chunk by chunk, never holding
more than one chunk (about 64 MiB) in memory. Per field ``f`` and channel, with ``V = ∫ w``::

    m_f = ∫ x_f w / V,   s_f = ∫ (x_f - m_f)² w / V                    quadrature mean and spread      (S1)
    mean = E_f m_f,      std² = E_f s_f + Var_f m_f                    the moments of Normalization.fit (S2)

``Var_f m_f`` by Chan et al.'s pairwise update of (count, mean, M2) over chunks. The spectrum of the
*normalised* fields needs the mean before it is known, so the pass keeps the coefficient sums of the
fields shifted by the first chunk's mean ``μ₀`` (``X_f = T(x_f - μ₀)``, ``T`` the basis transform, ``e = T 1``)::

    E_f |T((x_f - mean)/std)|² = (E|X|² - 2 δ Re(ē · E X) + δ² |e|²) / std²,   δ = mean - μ₀     (S3)

which equals the in-memory estimate up to rounding (the shift keeps the cancellation in (S3) small).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .bases import SpectralBasis
from .models.fno import EmpiricalSpectrum
from .normalization import Normalization

__all__ = ["StreamingStatistics", "stream_statistics"]

_CHUNK_BYTES = 1 << 26  # float64 bytes of fields read per chunk


class StreamingStatistics:
    """Accumulates (S1)–(S3) over chunks of fields ``(k, channels, *grid)`` on one grid of ``basis``."""

    def __init__(self, basis: SpectralBasis) -> None:
        self.basis = basis
        self.count, self.grid = 0, None
        self.mean = self.m2 = self.spread = self.shift = self.coeff_sum = self.power_sum = None

    def add(self, fields: Tensor) -> None:
        x = fields.to(torch.float64)
        basis, k = self.basis, x.shape[0]
        grid = basis.grid_of(x)
        if self.grid not in (None, grid):
            raise ValueError(f"a chunk on the grid {grid} after chunks on {self.grid}; stream fields of one grid.")
        self.grid = grid
        volume = basis.weights(grid).expand(grid).sum()
        means = basis.integrate(x) / volume  # (k, channels)                                         (S1)
        spread = basis.integrate((x - means.reshape(*means.shape, *[1] * basis.ndim)) ** 2).sum(0) / volume
        chunk_mean = means.mean(0)
        chunk_m2 = ((means - chunk_mean) ** 2).sum(0)
        if self.count == 0:
            self.mean, self.m2, self.spread = chunk_mean, chunk_m2, spread
            self.shift = chunk_mean.reshape(-1, *[1] * basis.ndim)  # μ₀ of (S3)
        else:  # Chan et al.: merge (n, mean, M2) with the chunk's (k, mean, M2)
            delta = chunk_mean - self.mean
            total = self.count + k
            self.mean = self.mean + delta * (k / total)
            self.m2 = self.m2 + chunk_m2 + delta**2 * (self.count * k / total)
            self.spread = self.spread + spread
        coeffs = basis.forward(x - self.shift)
        self.coeff_sum = coeffs.sum(0) if self.coeff_sum is None else self.coeff_sum + coeffs.sum(0)
        power = (coeffs.abs() ** 2).sum(0)
        self.power_sum = power if self.power_sum is None else self.power_sum + power
        self.count += k

    def moments(self) -> tuple[Tensor, Tensor]:
        """Per-channel ``(mean, std)`` of (S2), float32 as :meth:`FieldDataset.channel_statistics`."""
        if self.count == 0:
            raise ValueError("no fields were streamed; the training set is empty.")
        var = self.spread / self.count + self.m2 / self.count
        return self.mean.float(), var.sqrt().float()

    def power(self, normalization: Normalization) -> Tensor:
        """``E_f |T((x_f - mean)/std)|²`` per channel and coefficient, (S3)."""
        basis, n = self.basis, self.count
        shape = (-1, *[1] * basis.ndim)
        mean = torch.tensor(normalization.mean, dtype=torch.float64).reshape(shape)
        std = torch.tensor(normalization.std, dtype=torch.float64).reshape(shape)
        ones = basis.forward(torch.ones(1, 1, *self.grid, dtype=torch.float64))[0]  # e = T 1
        delta = mean - self.shift
        cross = (ones.conj() * self.coeff_sum).real
        return (self.power_sum / n - 2 * delta * cross / n + delta**2 * ones.abs() ** 2) / std**2

    def spectra(self, normalization: Normalization) -> tuple[EmpiricalSpectrum, ...]:
        """The data spectrum of the normalised fields (:meth:`EmpiricalSpectrum.from_power`)."""
        return EmpiricalSpectrum.from_power(self.power(normalization), self.basis, self.grid)


def stream_statistics(fields, *, basis: SpectralBasis, enabled: bool = True,
                      rows: range | None = None) -> tuple[Normalization, tuple[EmpiricalSpectrum, ...]]:
    """:class:`Normalization` (identity unless ``enabled``) and data spectra of ``fields`` (an object with
    ``read(index)``, ``channels`` and ``grid``: :class:`~hilbert_diffusion.datasets.lazy.LazyFields`), over
    positions ``rows`` (default all), read in order in chunks of about 64 MiB; refused naming the first
    field that holds NaN or inf."""
    rows = range(len(fields)) if rows is None else rows
    statistics = StreamingStatistics(basis)
    chunk = max(1, _CHUNK_BYTES // (8 * fields.channels * math.prod(fields.grid)))
    for start in range(0, len(rows), chunk):
        index = rows[start : start + chunk]
        block = fields.read(list(index))
        finite = torch.isfinite(block.reshape(block.shape[0], -1)).all(1)
        if not bool(finite.all()):
            bad = index[int((~finite).nonzero()[0])]
            raise ValueError(f"{getattr(fields, 'name', 'the data')}: field {bad} holds NaN or inf values; "
                             f"repair or drop it in the file (e.g. np.nan_to_num) before training.")
        statistics.add(block)
    normalization = (Normalization.from_moments(*statistics.moments()) if enabled
                     else Normalization.identity(fields.channels))
    return normalization, statistics.spectra(normalization)
