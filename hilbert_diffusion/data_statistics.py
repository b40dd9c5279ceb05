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

which equals the in-memory estimate up to rounding (the shift keeps the cancellation in (S3) small). Two
accumulations (chunks, or the shares of the ranks under ``torchrun``) merge exactly: Chan's update for the
means, and the other's sums moved to this shift by ``T(x - μ) = T(x - μ') + (μ' - μ) e``.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor

from .bases import SpectralBasis
from .distributed import DistributedContext
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
        """Stream one chunk ``(k, channels, *grid)``."""
        x = fields.to(torch.float64)
        basis = self.basis
        grid = basis.grid_of(x)
        chunk = StreamingStatistics(basis)
        volume = basis.weights(grid).expand(grid).sum()
        means = basis.integrate(x) / volume  # (k, channels)                                         (S1)
        chunk.spread = basis.integrate((x - means.reshape(*means.shape, *[1] * basis.ndim)) ** 2).sum(0) / volume
        chunk.count, chunk.grid, chunk.mean = x.shape[0], grid, means.mean(0)
        chunk.m2 = ((means - chunk.mean) ** 2).sum(0)
        chunk.shift = self.shift if self.count else chunk.mean.reshape(-1, *[1] * basis.ndim)  # μ₀ of (S3)
        coeffs = basis.forward(x - chunk.shift)
        chunk.coeff_sum, chunk.power_sum = coeffs.sum(0), (coeffs.abs() ** 2).sum(0)
        self.merge(chunk)

    def merge(self, other: StreamingStatistics) -> None:
        """Add the fields ``other`` streamed (another chunk, or another rank's share)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.__dict__.update({k: v for k, v in other.__dict__.items() if k != "basis"})
            return
        if other.grid != self.grid:
            raise ValueError(f"fields on the grid {other.grid} after fields on {self.grid}; stream fields of one grid.")
        n, k = self.count, other.count
        delta = other.mean - self.mean  # Chan et al.: merge (n, mean, M2) with (k, mean, M2)
        self.mean = self.mean + delta * (k / (n + k))
        self.m2 = self.m2 + other.m2 + delta**2 * (n * k / (n + k))
        self.spread = self.spread + other.spread
        # other's sums of T(x - μ_o) moved to this shift μ: T(x - μ) = T(x - μ_o) + (μ_o - μ) e
        ones, d = self._ones(), other.shift - self.shift
        self.coeff_sum = self.coeff_sum + other.coeff_sum + k * d * ones
        self.power_sum = (self.power_sum + other.power_sum + 2 * d * (ones.conj() * other.coeff_sum).real
                          + k * d**2 * ones.abs() ** 2)
        self.count = n + k

    def _ones(self) -> Tensor:
        """``e = T 1``, the coefficients of the constant field on this grid."""
        return self.basis.forward(torch.ones(1, 1, *self.grid, dtype=torch.float64))[0]

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
        ones = self._ones()
        delta = mean - self.shift
        cross = (ones.conj() * self.coeff_sum).real
        return (self.power_sum / n - 2 * delta * cross / n + delta**2 * ones.abs() ** 2) / std**2

    def spectra(self, normalization: Normalization) -> tuple[EmpiricalSpectrum, ...]:
        """The data spectrum of the normalised fields (:meth:`EmpiricalSpectrum.from_power`)."""
        return EmpiricalSpectrum.from_power(self.power(normalization), self.basis, self.grid)


def _gathered(statistics: StreamingStatistics, context: DistributedContext) -> StreamingStatistics:
    """Every rank's share merged in rank order (the same result on every rank)."""
    if not context.distributed:
        return statistics
    shares: list[dict | None] = [None] * context.world_size
    dist.all_gather_object(shares, {k: v for k, v in statistics.__dict__.items() if k != "basis"})
    total = StreamingStatistics(statistics.basis)
    for share in shares:
        part = StreamingStatistics(statistics.basis)
        part.__dict__.update(share)
        total.merge(part)
    return total


def stream_statistics(fields, *, basis: SpectralBasis, enabled: bool = True, rows: range | None = None,
                      context: DistributedContext | None = None) -> tuple[Normalization, tuple[EmpiricalSpectrum, ...]]:
    """:class:`Normalization` (identity unless ``enabled``) and data spectra of ``fields`` (an object with
    ``read(index)``, ``channels`` and ``grid``: :class:`~hilbert_diffusion.datasets.lazy.LazyFields`), over
    positions ``rows`` (default all), read in order in chunks of about 64 MiB; refused naming the first
    field that holds NaN or inf. Under ``torchrun`` (a distributed ``context``) each rank reads its contiguous
    share of the rows and the shares are merged."""
    rows = range(len(fields)) if rows is None else rows
    context = context or DistributedContext()
    statistics = StreamingStatistics(basis)
    chunk = max(1, _CHUNK_BYTES // (8 * fields.channels * math.prod(fields.grid)))
    rows = rows[context.shard(len(rows))]
    for start in range(0, len(rows), chunk):
        index = rows[start : start + chunk]
        block = fields.read(list(index))
        finite = torch.isfinite(block.reshape(block.shape[0], -1)).all(1)
        if not bool(finite.all()):
            bad = index[int((~finite).nonzero()[0])]
            raise ValueError(f"{getattr(fields, 'name', 'the data')}: field {bad} holds NaN or inf values; "
                             f"repair or drop it in the file (e.g. np.nan_to_num) before training.")
        statistics.add(block)
    statistics = _gathered(statistics, context)
    normalization = (Normalization.from_moments(*statistics.moments()) if enabled
                     else Normalization.identity(fields.channels))
    return normalization, statistics.spectra(normalization)
