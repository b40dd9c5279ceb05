"""A Gaussian scale mixture: the simplest prior that is not Gaussian, with its exact denoiser and no network.

Natural images are not one stationary Gaussian: a flat patch of sky and a patch of foliage share a spectrum's shape but
not its amplitude. The scale mixture draws a field as ``x = s g`` with ``g ~ N(0, C)`` (the per-mode channel
covariance of :class:`~.cross_spectrum.ChannelCovariance`) and one amplitude ``s`` per field from a discrete law
``P(s = s_j) = π_j`` (Wainwright & Simoncelli 2000, here global per field); the constant modes (``λ_k = 0``, a field's
mean level) are left unscaled, ``s = 1`` there, since a bright flat patch is not a busy one. Under a diagonal forward process
(``x_t,k = a_k x_0,k + n_k``, ``n_k ~ N(0, v_k)``) its posterior mean is exact and closed-form::

    log p(x_t | s) = −½ Σ_k m_k (x_kᴴ Σ_k(s)⁻¹ x_k + log det Σ_k(s)),   Σ_k(s) = a_k² s² C_k + v_k I         (S1)
    w_j(x_t) = π_j p(x_t | s_j) / Σ_i π_i p(x_t | s_i)                                                     (S2)
    E[x_0 | x_t] = Σ_j w_j(x_t) s_j² C_k a_k Σ_k(s_j)⁻¹ x_k                                                 (S3)

(``m_k`` the basis' multiplicity: real coefficients count once, complex ones twice.) With an amplitude per octave band
of modes (``s → s_b(k)``, ``edges`` of :class:`ScaleMixture`) the same three equations hold mode by mode, and the classes
are fitted to the band energies ``ŝ²_b`` (``d_b`` real degrees of freedom each) by maximising their scaled χ² law::

    log p(ŝ²_b | class j) = −½ d_b (log s²_jb + ŝ²_b / s²_jb) + const                                         (S4)

The denoiser is therefore amplitude-adaptive: it reads the amplitude off the noisy field and applies the Wiener filter
of that amplitude. With one scale it is :class:`~.cross_spectrum.ChannelGaussianDenoiser`.

With a covariance that couples channels, (S1)–(S3) are applied in each mode's eigenbasis of ``C_k``, where ``Σ_k(s)``
is diagonal; :func:`mixture_gain` is the diagonal form, shared with the score operators' amplitude-adaptive skip
(``amplitude_classes`` of :class:`~.fno.ScoreFNOConfig`).

* :class:`ScaleMixture` — the scales and weights, fitted to the fields' whitened energies (:func:`whitened_energy`)
  by equal-count classes (one band) or EM of (S4) (octave bands, :func:`octave_edges`, :func:`band_index`);
* :func:`mixture_gain` — (S1)–(S3) for channel-diagonal variances, one ``t`` per field;
* :class:`ScaleMixtureDenoiser` — the exact denoiser as a model: ``model(x_t, t) -> E[x_0 | x_t]``;
* :func:`mixture_posterior_mean` — the exact posterior mean under a linear observation ``y = A x + σ ε`` (restoration's
  Bayes limit for this prior, and with one class for the Gaussian fit), by dense algebra::

    K_j = A C_j Aᵀ + σ² I,   log p(y | j) = −½ yᵀ K_j⁻¹ y − ½ log det K_j,   E[x | y] = Σ_j p(j | y) C_j Aᵀ K_j⁻¹ y  (S5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..restoration.operators import ObservationOperator
from ..restoration.vectors import _to_vector, observation_matrix
from ..sde import DiagonalSDE
from .gaussian import _grid_covariance_columns

if TYPE_CHECKING:  # cross_spectrum imports fno, whose skip imports this module
    from .cross_spectrum import ChannelCovariance

__all__ = ["ScaleMixture", "ScaleMixtureDenoiser", "band_index", "mixture_gain", "mixture_posterior_mean", "octave_edges",
           "whitened_energy"]


@dataclass(frozen=True)
class ScaleMixture:
    """Amplitudes ``scales`` (positive) with probabilities ``weights`` (summing to 1) of ``x = s g``, ``g ~ N(0, C)``.

    With ``edges`` (``B − 1`` increasing wavenumbers ``√λ``), each class has one amplitude per band of modes
    (``scales[j]`` a tuple of ``B``; band ``b`` holds the modes with ``edges[b−1] ≤ √λ_k < edges[b]``): a class is a
    spectral *shape* as well as a level, so a smooth field and a busy one of the same energy are told apart. Without
    ``edges`` each ``scales[j]`` is one float."""

    scales: tuple
    weights: tuple[float, ...]
    edges: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.scales or len(self.scales) != len(self.weights):
            raise ValueError(f"a scale mixture needs as many weights as scales (at least one), got {len(self.scales)} "
                             f"scales and {len(self.weights)} weights.")
        table = self.table()
        if table.shape[1] != len(self.edges) + 1:
            raise ValueError(f"each class needs one scale per band ({len(self.edges) + 1} for {len(self.edges)} "
                             f"edges), got {table.shape[1]}; pass edges=() for one amplitude per field.")
        if table.min() <= 0 or min(self.weights) < 0 or abs(sum(self.weights) - 1) > 1e-9:
            raise ValueError(f"scales must be positive and weights a probability vector, got {self.scales} and "
                             f"{self.weights}.")
        if list(self.edges) != sorted(set(self.edges)) or (self.edges and self.edges[0] <= 0):
            raise ValueError(f"band edges must be positive and increasing, got {self.edges}.")

    def table(self) -> Tensor:
        """The scales as a float64 tensor ``(classes, bands)``."""
        return torch.tensor(self.scales, dtype=torch.float64).reshape(len(self.scales), -1)

    @classmethod
    def from_energies(cls, energies: Tensor, *, bins: int = 16, dof: Tensor | None = None,
                      edges: tuple[float, ...] = (), iterations: int = 200) -> ScaleMixture:
        """From the fields' whitened energies ``ŝ²`` (:func:`whitened_energy`), ``(num,)`` or per band ``(num,
        bands)``. One band: ``bins`` equal-count classes, a class's scale the root of its mean ``ŝ²`` (each ``ŝ²``
        carries a relative error of about ``sqrt(2 / modes)``, negligible on image grids). Several bands: the coarse
        bands hold few modes, so the classes are the maximum-likelihood mixture of the band energies' scaled χ² laws
        (``dof[b]`` degrees of freedom, eq. S4), by EM from the equal-count classes of the total energy."""
        energies = energies.to(torch.float64)
        if energies.dim() == 2 and energies.shape[1] == 1 and not edges:  # one band
            energies = energies[:, 0]
        if energies.dim() == 1:
            groups = energies.sort().values.tensor_split(min(bins, len(energies)))
            return cls(scales=tuple(float(g.mean().clamp_min(1e-300).sqrt()) for g in groups),
                       weights=tuple(len(g) / len(energies) for g in groups))
        if dof is None or dof.shape != energies.shape[1:]:
            raise ValueError(f"band energies {tuple(energies.shape)} need their degrees of freedom per band, got "
                             f"{None if dof is None else tuple(dof.shape)}.")
        order = (energies * dof).sum(1).argsort()
        groups = order.tensor_split(min(bins, len(energies)))
        responsibility = torch.zeros(len(energies), len(groups), dtype=torch.float64)
        for j, members in enumerate(groups):
            responsibility[members, j] = 1.0
        for _ in range(iterations):
            mass = responsibility.sum(0).clamp_min(1e-12)
            variance = (responsibility.T @ energies / mass[:, None]).clamp_min(1e-300)  # M step: s²_jb
            log_like = -0.5 * (dof * (variance.log()[None] + energies[:, None] / variance[None])).sum(-1)  # (S4)
            responsibility = torch.softmax(log_like + (mass / mass.sum()).log(), dim=1)  # E step
        keep = mass > 0.5  # classes that kept a field
        weights = mass[keep] / mass[keep].sum()
        return cls(scales=tuple(tuple(row) for row in variance[keep].sqrt().tolist()),
                   weights=tuple(weights.tolist()), edges=tuple(float(e) for e in edges))

    @classmethod
    def fit(cls, data: Tensor, covariance: ChannelCovariance, basis: SpectralBasis, *, bins: int = 16,
            bands: int = 1) -> ScaleMixture:
        """From centred fields ``(num, channels, *grid)`` and their covariance: :meth:`from_energies` of
        :func:`whitened_energy` (1 on average when ``covariance`` was estimated from the same fields), in ``bands``
        octave bands (:func:`octave_edges`), the constant modes left out (:func:`band_index`)."""
        grid = basis.check_field(data, "data")
        rotation, variances = _eigenbasis(covariance, basis, grid)
        edges = octave_edges(basis, grid, bands)
        index, m = band_index(basis, grid, edges), basis.multiplicity(grid)
        energies = torch.cat([whitened_energy(_rotate(basis.forward(chunk.to(torch.float64)), rotation), variances, m,
                                              bands=index) for chunk in data.split(256)])
        return cls.from_energies(energies, bins=bins, dof=band_dof(m, index, data.shape[1]), edges=edges)


def octave_edges(basis: SpectralBasis, grid: Grid, bands: int) -> tuple[float, ...]:
    """``bands − 1`` band edges in octaves of the lowest nonzero wavenumber ``κ₁ = min √λ_k > 0``: ``2κ₁, 4κ₁, …``
    (the last band holds every finer mode, so the bands are the same on every grid)."""
    if bands < 1:
        raise ValueError(f"bands must be at least 1, got {bands}.")
    lam = basis.eigenvalues(grid)
    fundamental = float(lam[lam > 0].min().sqrt())
    return tuple(fundamental * 2.0**b for b in range(1, bands))


def band_index(basis: SpectralBasis, grid: Grid, edges: tuple[float, ...] | Tensor) -> Tensor:
    """Each mode's band ``(*modes)``: the number of ``edges`` at or below its wavenumber ``√λ_k``; −1 for the constant
    modes (``λ_k = 0``), which no amplitude scales: a field's mean level is not its texture's amplitude."""
    lam = basis.eigenvalues(grid)
    band = torch.bucketize(lam.clamp_min(0).sqrt(), torch.as_tensor(edges, dtype=torch.float64), right=True)
    return torch.where(lam > 0, band, -1)


def band_dof(multiplicity: Tensor, index: Tensor, channels: int) -> Tensor:
    """Real degrees of freedom per band (:func:`band_index`): ``channels Σ_{k in band} m_k``."""
    scaled = index >= 0
    dof = torch.zeros(int(index.max()) + 1, dtype=torch.float64)
    return channels * dof.index_add_(0, index[scaled], multiplicity.to(torch.float64).expand(index.shape)[scaled])


def whitened_energy(coefficients: Tensor, variances: Tensor, multiplicity: Tensor, *,
                    bands: Tensor | None = None) -> Tensor:
    """Per field, ``Σ_k m_k Σ_c |x_ck|² / c_ck / (channels Σ_k m_k)`` for coefficients ``(num, channels, *modes)`` and
    channel-diagonal variances broadcastable to them: 1 in expectation for a draw of ``N(0, diag c)``. With ``bands``
    (:func:`band_index`), the same per band, ``(num, bands)``, the constant modes left out."""
    m = multiplicity.to(torch.float64)
    ratio = m * coefficients.abs().square() / variances.clamp_min(torch.finfo(torch.float64).tiny)
    if bands is None:
        return ratio.flatten(1).sum(1) / (coefficients.shape[1] * float(m.sum()))
    scaled = bands >= 0
    per_mode = ratio.sum(1)[:, scaled]  # (num, scaled modes)
    total = per_mode.new_zeros(len(per_mode), int(bands.max()) + 1).index_add_(1, bands[scaled], per_mode)
    return total / band_dof(m, bands, coefficients.shape[1])


def mixture_gain(coefficients: Tensor, variances: Tensor, a: Tensor, v: Tensor, multiplicity: Tensor,
                 scales: Tensor, weights: Tensor, *, bands: Tensor | None = None) -> Tensor:
    """The per-field, per-mode gain ``Σ_j w_j(x_t) s_j² a_k c_k / σ_k²(s_j)`` of (S1)–(S3) for channel-diagonal
    variances: ``E[x_0 | x_t]``'s coefficients are ``gain · coefficients``. ``coefficients``: ``(batch, channels,
    *modes)``; ``variances`` ``c``, ``a`` and ``v`` broadcastable to it (``a``, ``v`` may differ per field);
    ``scales`` ``(classes,)`` or ``(classes, bands)`` and ``weights`` ``(classes,)``: the mixture's, as tensors (a
    model's buffers: no host round trip). ``bands``: each mode's band (:func:`band_index`; −1: unscaled, ``s = 1``);
    without it one scale per field multiplies every mode."""
    tiny = torch.finfo(torch.float64).tiny
    power, m = coefficients.abs().square(), multiplicity.to(torch.float64)
    table = scales.to(power.device, torch.float64).reshape(len(scales), -1)
    if bands is None and table.shape[1] > 1:
        raise ValueError(f"scales for {table.shape[1]} bands need each mode's band (bands=band_index(...)).")
    log_like, gains = [], []
    one = table.new_ones(1)
    for s in table:
        s2 = torch.cat([s, one])[bands.to(power.device)] ** 2 if bands is not None else s[0] ** 2  # per mode (S1)
        sigma2 = (a**2 * s2 * variances + v).clamp_min(tiny)  # (S1), per channel
        log_like.append(-0.5 * (m * (power / sigma2 + sigma2.log().expand_as(power))).flatten(1).sum(1))
        gains.append(a * s2 * variances / sigma2)
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
        gain = mixture_gain(y, variances, a, v, basis.multiplicity(grid), self.mixture.table(),
                            torch.tensor(self.mixture.weights, dtype=torch.float64),
                            bands=band_index(basis, grid, self.mixture.edges))
        return basis.inverse(_rotate(gain * y, rotation, back=True), grid).to(x.dtype)


def mixture_posterior_mean(covariance: ChannelCovariance, mixture: ScaleMixture, operator: ObservationOperator, y: Tensor,
                           grid: Grid, *, jitter: float = 1e-10) -> tuple[Tensor, Tensor]:
    """``E[x | y]`` ``(batch, 1, *grid)`` of the scale mixture of the one-channel ``covariance`` (centred) under
    ``y = A x + σ ε`` ``(batch, 1, *g)`` (``operator``'s ``A`` and ``noise_std`` σ), and the classes' posterior
    probabilities ``(batch, classes)`` (S5), in float64. ``jitter`` (relative to the mean diagonal of the Gaussian's
    ``A C Aᵀ``, the same for every class, so that it favours none) regularises noise-free observations. Dense: ``N``
    up to a few thousand points. A :class:`~.cross_spectrum.ChannelGaussianDenoiser`'s prior is ``ScaleMixture((1.0,),
    (1.0,))``."""
    basis = operator.basis
    if covariance.channels != 1:
        raise ValueError(f"mixture_posterior_mean takes one channel, got a covariance of {covariance.channels}; "
                         f"restore each channel of an uncoupled prior on its own.")
    n = math.prod(grid)
    a = observation_matrix(operator, grid)
    bands = band_index(basis, grid, mixture.edges)
    variance = covariance.matrix(basis, grid)[0, 0]
    scales = torch.cat([mixture.table(), torch.ones(len(mixture.scales), 1, dtype=torch.float64)], 1)[:, bands]
    identity = torch.eye(n, dtype=torch.float64).reshape(n, *grid)
    priors = [_grid_covariance_columns(basis, identity, s**2 * variance).reshape(n, n) for s in scales]
    floor = jitter * float((a @ _grid_covariance_columns(basis, identity, variance).reshape(n, n) @ a.T).diagonal().mean())
    vectors = _to_vector(operator, y.to(torch.float64), grid).reshape(len(y), -1)  # (batch, n_obs)
    log_evidence, means = [], []
    for prior in priors:
        prior = 0.5 * (prior + prior.T)
        k = a @ prior @ a.T + (operator.noise_std**2 + floor) * torch.eye(len(a), dtype=torch.float64)
        chol = torch.linalg.cholesky(k)
        solved = torch.cholesky_solve(vectors.T, chol)  # K_j⁻¹ y, (n_obs, batch)
        log_evidence.append(-0.5 * (vectors.T * solved).sum(0) - chol.diagonal().log().sum())  # (S5)
        means.append((prior @ a.T @ solved).T)  # C_j Aᵀ K_j⁻¹ y, (batch, N)
    log_prior = torch.tensor(mixture.weights, dtype=torch.float64).clamp_min(torch.finfo(torch.float64).tiny).log()
    posterior = torch.softmax(torch.stack(log_evidence, 1) + log_prior, dim=1)  # p(j | y)
    mean = torch.einsum("bj,jbn->bn", posterior, torch.stack(means))
    return mean.reshape(len(y), 1, *grid), posterior
