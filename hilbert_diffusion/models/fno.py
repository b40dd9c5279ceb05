"""Time-conditioned FNO score operators with per-mode preconditioning.

The network is the denoiser of the model contract, ``D(x_t, t) ≈ E[x_0 | x_t]``, written as::

    D(x_t, t) = S_t x_t + c_out(t) · F(c_in(t) · x_t, t)                                    (P1)

with ``F`` a neuraloperator FNO (or SFNO on the sphere) whose features are modulated by an embedding
of ``t`` (:mod:`.embedding`). The coefficients come from the SDE's ``a_k(t), v_k(t)`` and an estimate
``c_k`` of the data's variance spectrum (:class:`EmpiricalSpectrum`, one per channel)::

    σ²_k = a_k² c_k + v_k                 per-mode variance of x_t                           (P2)
    g_k  = a_k c_k / σ²_k                 the Wiener gain: E[x_0|x_t] for Gaussian data (O2)   (P3)
    p_k  = c_k v_k / σ²_k                 the Wiener filter's error variance                  (P4)
    c_in  = (Σ_k m_k σ²_k / |Ω|)^(-1/2)   input scaled to unit mean square                    (P5)
    S_t = diag(g_k), c_out = (Σ_k m_k p_k / |Ω|)^(1/2)         ``wiener_skip=True``            (P6)
    S_t = 0,         c_out = (Σ_k m_k c_k / |Ω|)^(1/2)         ``wiener_skip=False``           (P7)
    λ(t) = 1 / (Σ_k m_k p_k / |Ω|)        loss weight (:meth:`~PreconditionedScoreOperator.loss_weight`) (P8)
    μ_k = m_k p̃_k^-γ / Σ_j m_j p̃_j^(1-γ)  per-mode loss weight (``mode_loss_weight``, L3 of :mod:`..losses`) (P9)

Why: this is EDM's preconditioning (Karras et al. 2022, eq. 7) made per mode. With the Wiener skip
the target of ``F``, ``(x_0 - S_t x_t) / c_out``, has unit mean square at every ``t`` for Gaussian
data, so the network only learns the non-Gaussian residual and its loss has the same scale at all
noise levels; the skip is a bounded diagonal operator, exact at every resolution. A zero ``F``
(the initialisation: the last projection layer is zero) is already the Wiener filter of the
estimated spectrum (the best linear denoiser for data with uncorrelated modes).
The plain version (P7) predicts ``x_0`` directly from scaled input; it is kept as the honest
baseline (the Gaussian benchmark is nearly trivial for the Wiener version). Both use the weight
(P8), which measures each noise level's error against the Wiener filter's (for the Wiener variant
it is EDM's ``1/c_out²``); without it the plain model neglects small ``t``, whose absolute errors are
tiny but whose relative errors are not.

With ``amplitude_classes = K > 0`` the skip is amplitude-adaptive: ``S_t x_t`` is the exact denoiser of the scale
mixture of ``N(0, diag c)`` with ``K`` amplitude classes fitted to the training fields (eqs. S1–S4 of
:mod:`.scale_mixture`, :meth:`PreconditionedScoreOperator.fit_amplitudes`; stored as buffers, so checkpoints carry
them): a flat field and a busy one are each filtered with their own amplitude's Wiener gain before the network adds
anything. With ``amplitude_bands = B > 1`` each class has one amplitude per octave band of modes, so a smooth field
and a rough one are told apart too. The constant modes are never scaled. ``c_in``, ``c_out`` and the loss weight stay
those of the single Gaussian (P5, P6, P8). Measured on photograph patches (``benchmarks/images.py``, README): the
untrained mixture's draws restore them far better than the single Gaussian's (its posterior is narrower on flat
patches); a network trained on the 4-band skip for 30 CPU-minutes ties the untrained mixture, so the default stays the
Wiener skip.

Scalars (P5–P7) are means over the domain (``|Ω|`` is its volume), so they converge as the grid is
refined (all spectra are trace class); ``S_t`` acts per mode at whatever grid the input has.
"""

from __future__ import annotations

import contextlib
import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..noise import Spectrum
from ..sde import DiagonalSDE
from .embedding import FiLM, TimeEmbedding
from .lean_fno import run_lean, run_reference, supports
from .amplitude_skip import AmplitudeSkip

__all__ = ["EmpiricalSpectrum", "ScoreFNOConfig", "ScoreFNO", "PreconditionedScoreOperator", "clean_state_dict",
           "on_even_grid"]


# --------------------------------------------------------------------------------------- data spectrum
@dataclass(frozen=True)
class EmpiricalSpectrum(Spectrum):
    """A variance spectrum ``c(λ)`` estimated from samples, as a function of the eigenvalue.

    Stored as knots: ``log c`` is piecewise linear in ``u = log(1 + λ/λ_ref)`` (``λ_ref`` the
    domain's smallest positive eigenvalue, so that the first modes get their own knots whatever the
    domain's size), constant below the first knot and continued with slope ``tail_slope`` (in
    ``d log c / d u``; asymptotically the power of ``λ``) beyond the last, so it can be evaluated on a
    finer grid than the one it was estimated on. It treats the data as isotropic (``c`` depends on
    ``λ`` only), which is what a diagonal preconditioner needs.
    """

    knots: tuple[float, ...]
    log_values: tuple[float, ...]
    tail_slope: float
    lam_ref: float = 1.0

    def __post_init__(self) -> None:
        if len(self.knots) == 0 or len(self.knots) != len(self.log_values):
            raise ValueError(
                f"knots ({len(self.knots)}) and log_values ({len(self.log_values)}) must be non-empty and of equal length."
            )
        if any(b <= a for a, b in zip(self.knots, self.knots[1:])):
            raise ValueError("knots must be strictly increasing.")
        if not all(math.isfinite(v) for v in (*self.knots, *self.log_values, self.tail_slope)):
            raise ValueError("EmpiricalSpectrum values must be finite.")
        if not self.lam_ref > 0:
            raise ValueError(f"lam_ref must be positive, got {self.lam_ref}.")

    def __call__(self, lam: Tensor) -> Tensor:
        lam = torch.as_tensor(lam, dtype=torch.float64)
        u = torch.log1p(lam.clamp_min(0) / self.lam_ref)
        knots = torch.tensor(self.knots, dtype=torch.float64, device=lam.device)
        values = torch.tensor(self.log_values, dtype=torch.float64, device=lam.device)
        if len(knots) == 1:
            log_c = values[0] + self.tail_slope * (u - knots[0]).clamp_min(0)
            return log_c.exp()
        index = torch.searchsorted(knots, u.reshape(-1)).reshape(u.shape).clamp(1, len(knots) - 1)
        u0, u1 = knots[index - 1], knots[index]
        v0, v1 = values[index - 1], values[index]
        inside = v0 + (v1 - v0) * (u.clamp(knots[0], knots[-1]) - u0) / (u1 - u0)
        tail = values[-1] + self.tail_slope * (u - knots[-1])
        return torch.where(u > knots[-1], tail, inside).exp()

    def is_trace_class(self, ndim: int) -> bool:
        # c ~ λ^slope at large λ; Σ_k c_k < ∞ iff slope < -ndim/2 (Weyl's law).
        return self.tail_slope < -ndim / 2

    @classmethod
    def estimate(
        cls, data: Tensor, basis: SpectralBasis, *, bin_width: float = 0.25, tail_fraction: float = 0.3
    ) -> tuple[EmpiricalSpectrum, ...]:
        """One spectrum per channel of ``data`` shaped ``(num, channels, *grid)``.

        ``c`` at a knot is the mean of ``|x_k|²`` over samples and over the modes whose ``u_k`` falls in
        a bin of width ``bin_width`` (the abscissa is their mean). The tail slope is the
        least-squares slope over the last ``tail_fraction`` of the ``u`` range, capped at
        ``-(ndim/2 + 1/2)`` so that the extrapolation is trace class.
        """
        basis.check_field(data, "data")
        power = []
        for channel in range(data.shape[1]):
            total = 0.0
            for chunk in data[:, channel].split(256):
                total = total + (basis.forward(chunk.to(torch.float64)).abs() ** 2).sum(0)
            power.append(total / data.shape[0])
        return cls.from_power(torch.stack(power), basis, basis.grid_of(data), bin_width=bin_width,
                              tail_fraction=tail_fraction)

    @classmethod
    def from_power(
        cls, power: Tensor, basis: SpectralBasis, grid: Grid, *, bin_width: float = 0.25, tail_fraction: float = 0.3
    ) -> tuple[EmpiricalSpectrum, ...]:
        """One spectrum per channel from ``power`` ``(channels, *coefficients)``: the mean ``|x_k|²`` over the
        samples on ``grid`` (how :meth:`estimate` and the streaming pass of :mod:`hilbert_diffusion.data_statistics`
        both end)."""
        if bin_width <= 0 or not 0 < tail_fraction <= 1:
            raise ValueError(f"bin_width must be > 0 and tail_fraction in (0, 1], got {bin_width}, {tail_fraction}.")
        lam = basis.eigenvalues(grid).reshape(-1)
        lam_ref = float(lam[lam > 0].min()) if (lam > 0).any() else 1.0
        u = torch.log1p(lam / lam_ref)
        mult = basis.multiplicity(grid).reshape(-1)
        keep = mult > 0  # the sphere stores (l, m) with m > l as zero-multiplicity padding
        u, mult = u[keep], mult[keep]
        bins = torch.round(u / bin_width).long()
        labels, inverse = torch.unique(bins, return_inverse=True)
        weight = torch.zeros(len(labels), dtype=torch.float64).index_add_(0, inverse, mult)
        centres = torch.zeros_like(weight).index_add_(0, inverse, mult * u) / weight
        out = []
        for channel_power in power.to(torch.float64):
            mean = torch.zeros_like(weight).index_add_(0, inverse, mult * channel_power.reshape(-1)[keep]) / weight
            floor = mean.max().clamp_min(torch.finfo(torch.float64).tiny) * 1e-12
            log_mean = mean.clamp_min(floor).log()
            slope = _tail_slope(centres, log_mean, tail_fraction, cap=-(basis.ndim / 2 + 0.5))
            out.append(
                cls(
                    knots=tuple(centres.tolist()),
                    log_values=tuple(log_mean.tolist()),
                    tail_slope=slope,
                    lam_ref=lam_ref,
                )
            )
        return tuple(out)


def _tail_slope(u: Tensor, log_c: Tensor, fraction: float, *, cap: float) -> float:
    """Least-squares slope of ``log c`` over the last ``fraction`` of the ``u`` range, at most ``cap``."""
    if len(u) < 2:
        return cap
    start = u[-1] - fraction * (u[-1] - u[0])
    sel = u >= start
    if sel.sum() < 2:
        sel = torch.zeros_like(sel)
        sel[-2:] = True
    uu, yy = u[sel], log_c[sel]
    du = uu - uu.mean()
    return min(cap, float((du * (yy - yy.mean())).sum() / (du**2).sum()))


# --------------------------------------------------------------------------------------- shared model
@dataclass(frozen=True, kw_only=True)
class _OperatorConfig:
    """Options shared by the flat and the spherical score operators."""

    hidden_channels: int = 32
    n_layers: int = 4
    lifting_channel_ratio: float = 2.0
    projection_channel_ratio: float = 2.0
    embedding_dim: int = 128
    wiener_skip: bool = True
    amplitude_classes: int = 0  # > 0: the skip is the scale mixture's exact denoiser with that many amplitudes
    amplitude_bands: int = 1  # with amplitude_classes: one amplitude per octave band of modes in each class

    def __post_init__(self) -> None:
        for name in ("hidden_channels", "n_layers", "embedding_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.amplitude_classes < 0 or (self.amplitude_classes and not self.wiener_skip):
            raise ValueError(f"amplitude_classes must be 0 (the per-mode Wiener skip) or a positive number of classes "
                             f"with wiener_skip=True, got {self.amplitude_classes} (wiener_skip={self.wiener_skip}).")
        if self.amplitude_bands < 1:
            raise ValueError(f"amplitude_bands must be at least 1 (one amplitude per field), got {self.amplitude_bands}.")


@functools.cache
def _compiled(backbone: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``torch.compile`` of a backbone method (built at the first call that asks for it, then reused)."""
    return torch.compile(backbone)


def _as_spectra(data_spectrum: Spectrum | Sequence[Spectrum], channels: int) -> tuple[Spectrum, ...]:
    spectra = (data_spectrum,) if isinstance(data_spectrum, Spectrum) else tuple(data_spectrum)
    if len(spectra) == 1:
        spectra = spectra * channels
    if len(spectra) != channels or not all(isinstance(s, Spectrum) for s in spectra):
        raise ValueError(
            f"data_spectrum must be one Spectrum or one per channel ({channels}), got {len(spectra)} entries; "
            f"estimate it with EmpiricalSpectrum.estimate(data, basis)."
        )
    return spectra


def _time_vector(t: float | Tensor, batch: int) -> Tensor:
    t = torch.as_tensor(t, dtype=torch.float64).detach()
    if t.dim() == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"t must be a float or a tensor of shape (batch,) = ({batch},), got shape {tuple(t.shape)}.")
    return t


class PreconditionedScoreOperator(AmplitudeSkip, ABC):
    """The preconditioned denoiser (P1) around a backbone ``F``; subclasses build ``F``.

    Args:
        sde: the forward process; its ``basis`` is the domain.
        channels: number of field channels.
        data_spectrum: the data variance spectrum ``c(λ)`` (one ``Spectrum`` for all channels or one
            per channel), e.g. :meth:`EmpiricalSpectrum.estimate` of the (normalised) training data.
        config: architecture options.
    """

    def __init__(
        self,
        sde: DiagonalSDE,
        *,
        channels: int,
        data_spectrum: Spectrum | Sequence[Spectrum],
        config: _OperatorConfig,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}.")
        self.sde = sde
        self.channels = channels
        self.config = config
        self.data_spectrum = _as_spectra(data_spectrum, channels)
        self.time_embedding = TimeEmbedding(config.embedding_dim)
        self._spectrum_cache: dict[tuple[Grid, torch.device], Tensor] = {}
        self.bf16 = False
        """Run the network (time embedding and backbone) under bfloat16 autocast; the preconditioning, the Wiener
        skip and the spectral transforms stay in full precision (:func:`hilbert_diffusion.execution.accelerate`)."""
        self.compiled = False
        """Run the backbone through ``torch.compile`` (:func:`hilbert_diffusion.execution.accelerate`)."""
        self._init_amplitudes(config.amplitude_classes, config.amplitude_bands)

    @property
    def basis(self) -> SpectralBasis:
        return self.sde.basis

    # -- preconditioning --------------------------------------------------------------------------
    def _data_variance(self, grid: Grid, device: torch.device) -> Tensor:
        """``c_k`` per channel, float64, shape ``(channels, *coefficient_shape)``, on ``device``."""
        if (grid, device) not in self._spectrum_cache:
            lam = self.basis.eigenvalues(grid).to(device)
            self._spectrum_cache[grid, device] = torch.stack([s(lam) for s in self.data_spectrum])
        return self._spectrum_cache[grid, device]

    def _mode_moments(self, t: Tensor, grid: Grid) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(a_k, v_k, c_k, σ²_k)`` per mode, float64: ``a``, ``v`` ``(batch, 1, *coefficients)``, ``c``
        ``(1, channels, *coefficients)``, ``σ²`` ``(batch, channels, *coefficients)`` (P2), floored above zero."""
        a, v = self.sde.mean_factor(t, grid), self.sde.variance(t, grid)
        c = self._data_variance(grid, t.device).unsqueeze(0)
        return a, v, c, (a**2 * c + v).clamp_min(torch.finfo(torch.float64).tiny)  # (P2)

    def preconditioning(
        self, t: float | Tensor, grid: Grid, *, batch: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(g, c_in, c_out, e)`` of (P3)–(P7), float64: ``g`` is ``(batch, channels, *coefficients)``
        (zeros without the Wiener skip); ``c_in``, ``c_out`` and the Wiener filter's mean-square error
        ``e = Σ_k m_k p_k / |Ω|`` are ``(batch, channels)``."""
        t = _time_vector(t, batch)
        a, v, c, sigma2 = self._mode_moments(t, grid)
        tiny = torch.finfo(torch.float64).tiny
        m = self.basis.multiplicity(grid).to(t.device)
        volume = float(self.basis.weights(grid).sum())

        def domain_mean(per_mode: Tensor) -> Tensor:
            return (m * per_mode).flatten(2).sum(-1) / volume

        c_in = domain_mean(sigma2).clamp_min(tiny).rsqrt()  # (P5)
        wiener_error = domain_mean(c * v / sigma2)  # (P4)
        if self.config.wiener_skip:
            gain = a * c / sigma2  # (P3)
            c_out = wiener_error.sqrt()  # (P6)
        else:
            gain = torch.zeros_like(sigma2)
            c_out = domain_mean(c.expand_as(sigma2)).sqrt()  # (P7)
        return gain, c_in, c_out, wiener_error

    def loss_weight(self, t: Tensor, grid: Grid) -> Tensor:
        """The loss weight ``λ(t) = 1 / (Σ_k m_k p_k(t) / |Ω|)`` (P8) for times ``t`` ``(batch,)``, shape
        ``(batch, channels)``: each noise level's error measured against what the Wiener filter
        achieves there. With the Wiener skip it is EDM's ``1 / c_out²`` (the backbone's target has unit
        mean square); without it, it still makes small ``t`` count as much as large ``t``."""
        *_, wiener_error = self.preconditioning(t, grid, batch=t.shape[0])
        return wiener_error.clamp_min(torch.finfo(torch.float64).tiny).reciprocal()

    def mode_loss_weight(self, t: Tensor, grid: Grid, *, exponent: float = 1.0) -> Tensor:
        """The per-mode loss weight (P9) for times ``t`` ``(batch,)``, shape ``(batch, channels, *coefficients)``:
        each mode's error over the Wiener filter's there raised to ``exponent`` γ, normalised so the Wiener filter's
        loss is 1 on Gaussian data of its spectrum. γ = 1 averages the modes' relative errors; γ = 0 is the L² loss
        of P8 divided by ``|Ω|``; between, the fine modes count partly. ``p̃_k`` is ``p_k`` (P4) floored at 10⁻⁴ of
        its mode average: a mode the data leave empty cannot take over the loss."""
        _, v, c, sigma2 = self._mode_moments(_time_vector(t, t.shape[0]), grid)
        p = c * v / sigma2  # (P4)
        m = self.basis.multiplicity(grid).to(t.device)
        floor = 1e-4 * (m * p).flatten(2).sum(-1) / m.sum()  # (batch, channels)
        p = torch.maximum(p, floor.reshape(*floor.shape, *[1] * (p.dim() - 2)))
        p = p.clamp_min(torch.finfo(torch.float64).tiny)
        norm = (m * p ** (1 - exponent)).flatten(2).sum(-1)  # (batch, channels)
        return m * p ** -exponent / norm.reshape(*norm.shape, *[1] * (p.dim() - 2))  # (P9)

    def _skip(self, x: Tensor, t: Tensor, gain: Tensor, grid: Grid) -> Tensor:
        """``S_t x_t``: the per-mode Wiener gain (P3), or the scale mixture's exact denoiser (S1–S3)."""
        coefficients = self.basis.forward(x)
        if self.config.amplitude_classes:
            gain = self._amplitude_gain(coefficients, t, grid)
        return self.basis.inverse(gain.to(x.device, x.dtype) * coefficients, grid)

    # -- forward ----------------------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> Grid:
        grid = self.basis.check_field(x, "x", finite=False)
        if x.shape[1] != self.channels:
            raise ValueError(f"x has {x.shape[1]} channels but the model was built for {self.channels}; got {tuple(x.shape)}.")
        self._check_grid(grid)
        return grid

    def _check_grid(self, grid: Grid) -> None:
        """Subclasses refuse grids their backbone cannot handle."""

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``D(x_t, t) ≈ E[x_0 | x_t]`` (P1): ``x`` is ``(batch, channels, *grid)``, ``t`` is ``(batch,)``
        or a float in ``[0, 1]``; returns ``(batch, channels, *grid)`` in ``x``'s dtype."""
        grid = self._check_input(x)
        batch = x.shape[0]
        gain, c_in, c_out, _ = self.preconditioning(_time_vector(t, batch).to(x.device), grid, batch=batch)
        dtype = self.time_embedding.sinusoid.freqs.dtype
        device = x.device
        shape = (batch, self.channels, *([1] * self.basis.ndim))
        h = x.to(dtype) * c_in.to(device, dtype).reshape(shape)
        with torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else contextlib.nullcontext():
            emb = self.time_embedding(_time_vector(t, batch).to(device, dtype))
            out = self._network(h, emb)
        out = out.to(dtype) * c_out.to(device, dtype).reshape(shape)
        if self.config.wiener_skip:  # exact per-mode maths: outside the autocast region
            out = out + self._skip(x.to(dtype), _time_vector(t, batch).to(device), gain, grid)  # S_t x_t
        return out.to(x.dtype)

    def _network(self, h: Tensor, embedding: Tensor) -> Tensor:
        """The backbone, by ``torch.compile`` when :attr:`compiled` (one compiled function per model class)."""
        return _compiled(type(self)._backbone)(self, h, embedding) if self.compiled else self._backbone(h, embedding)

    @abstractmethod
    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        """``F(h, e)``: scaled input ``(batch, channels, *grid)`` and time embedding ``(batch, dim)``."""


def _run_fno(fno: nn.Module, films: nn.ModuleList, h: Tensor, embedding: Tensor, *, lean: bool = True,
             local: nn.ModuleList | None = None) -> Tensor:
    """neuraloperator's ``FNO.forward`` with a FiLM modulation after the lifting and after each block: by the lean
    layers of :mod:`.lean_fno` where they apply (the same function, less work), else neuraloperator's own; ``local``:
    per-block kernels added beside the spectral convolutions (lean layers only, :mod:`.local_fno`)."""
    if local is not None or (lean and supports(fno)):
        return run_lean(fno, films, h, embedding, local)
    return run_reference(fno, films, h, embedding)


def _films(config: _OperatorConfig) -> nn.ModuleList:
    return nn.ModuleList(FiLM(config.embedding_dim, config.hidden_channels) for _ in range(config.n_layers + 1))


def _zero_last_layer(fno: nn.Module) -> None:
    last = fno.projection.fcs[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)


def clean_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The model's tensors only, contiguous and detached: neuraloperator's ``state_dict`` adds a
    ``_metadata`` entry holding its constructor arguments (callables), which safetensors refuses."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if isinstance(v, Tensor)}


# --------------------------------------------------------------------------------------- flat domains
@dataclass(frozen=True, kw_only=True)
class ScoreFNOConfig(_OperatorConfig):
    """Architecture of :class:`ScoreFNO`.

    ``n_modes`` is the number of Fourier modes kept per axis (an int for every axis, or one per axis);
    ``positional_embedding`` appends neuraloperator's grid coordinates (useful on boxes with walls,
    breaks translation equivariance); ``domain_padding`` is neuraloperator's fractional padding
    (for non-periodic boxes).
    """

    n_modes: int | tuple[int, ...] = 12
    positional_embedding: bool = False
    domain_padding: float = 0.0

    def build(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum]) -> ScoreFNO:
        return ScoreFNO(sde, channels=channels, data_spectrum=data_spectrum, config=self)


class ScoreFNO(PreconditionedScoreOperator):
    """A time-conditioned FNO denoiser on a box (periodic, Neumann or Dirichlet; 1-D or 2-D, any channels).

    ``model(x_t, t) -> E[x_0 | x_t]`` (the model contract), preconditioned per (P1). Built from
    neuraloperator 2.0.0's ``FNO`` (its lifting, ``FNOBlocks`` and projection), with FiLM time
    conditioning between the blocks. That release shifts the spectrum with ``fftshift`` where
    ``ifftshift`` is needed, which scrambles frequencies on an odd-sized axis other than the last
    (2-D and up); on such a grid the backbone runs on the next even grid and its output is resampled
    back (band-limited, in the domain's basis), which is what the operator would give there anyway.
    """

    def __init__(
        self,
        sde: DiagonalSDE,
        *,
        channels: int,
        data_spectrum: Spectrum | Sequence[Spectrum],
        config: ScoreFNOConfig = ScoreFNOConfig(),
    ) -> None:
        super().__init__(sde, channels=channels, data_spectrum=data_spectrum, config=config)
        from neuralop.models import FNO

        ndim = sde.basis.ndim
        n_modes = (config.n_modes,) * ndim if isinstance(config.n_modes, int) else tuple(config.n_modes)
        if len(n_modes) != ndim or any(n < 1 for n in n_modes):
            raise ValueError(
                f"n_modes {config.n_modes!r} must be a positive int or {ndim} positive ints (one per grid axis)."
            )
        self.n_modes = n_modes
        self.fno = FNO(
            n_modes=n_modes,
            in_channels=channels,
            out_channels=channels,
            hidden_channels=config.hidden_channels,
            n_layers=config.n_layers,
            lifting_channel_ratio=config.lifting_channel_ratio,
            projection_channel_ratio=config.projection_channel_ratio,
            positional_embedding="grid" if config.positional_embedding else None,
            domain_padding=config.domain_padding or None,
        )
        self.films = _films(config)
        _zero_last_layer(self.fno)
        self.lean = True
        """Run the backbone by :mod:`.lean_fno` (``False``: neuraloperator's own forward, the same function)."""

    def _check_grid(self, grid: Grid) -> None:
        too_small = [(n, k) for n, k in zip(grid[:-1], self.n_modes[:-1]) if k > n]
        if too_small or self.n_modes[-1] // 2 + 1 > grid[-1] // 2 + 1:
            raise ValueError(
                f"grid {grid} resolves fewer Fourier modes than the model's n_modes {self.n_modes}; "
                f"use a grid with at least n_modes points per axis."
            )

    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        return on_even_grid(self.basis, h, lambda x: _run_fno(self.fno, self.films, x, embedding, lean=self.lean))


def on_even_grid(basis: SpectralBasis, h: Tensor, run: Callable[[Tensor], Tensor]) -> Tensor:
    """``run(h)``, or where an axis but the last is odd (neuraloperator 2.0's ``fftshift`` scrambles it, see
    :class:`ScoreFNO`) ``run`` on the next even grid, band-limited resampling both ways."""
    grid = basis.grid_of(h)
    even = tuple(n + n % 2 for n in grid[:-1]) + grid[-1:]
    if even == grid:
        return run(h)
    return basis.resample(run(basis.resample(h, even)), grid)
