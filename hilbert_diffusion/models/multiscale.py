"""A multi-scale score operator built on the domain's own spectral basis, inside the preconditioning (P1)–(P8) of
:mod:`.fno`.

A U-shape (Ronneberger et al. 2015; as an operator, Rahman et al.'s UNO, TMLR 2023) whose every part is defined by
the basis rather than by an FFT of the grid, so walls stay walls (no periodic wrap-around on a Neumann or Dirichlet
box) and every grid size works, odd or even:

* level ``l`` lives on the grid ``N / 2^l`` (fractions of the input grid, rounded; ``n_layers`` levels) with
  ``hidden_channels · 2^l`` channels; down and up one level is band-limited resampling in the basis
  (``basis.resample``: truncation / zero-padding of cosine, sine or Fourier coefficients);
* each block is a spectral convolution in the basis plus a 1×1 map (plus, at the finest ``local_levels`` levels, a
  differential kernel (D1) of :mod:`.differential`, so edges can be sharp), a GELU, a residual and a FiLM::

      K_m h = R_{m→N} B⁻¹( Ŵ ⊙_k B R_{N→m} h )    Ŵ: a channel matrix per mode k; B: the basis transform    (M1)
      h ← FiLM(h + σ(K_m h + W h + D h), e)                                                                 (M2)

  with ``m = n_modes / 2^l`` modes per axis at level ``l`` (fewer where the grid is coarser; rounded up to odd).
  ``R_{N→m}`` then ``B`` keeps the coefficients of the lowest ``m`` modes per axis, whatever ``N``: the weights act on
  the same functions at every resolution (the FNO's argument, Li et al. 2021, in the domain's eigenbasis);
* the down path's outputs join the up path at the same level (concatenated, mixed by a 1×1 map).

Resolution: the spectral parts and the resampling act on the same modes at every grid (with the differential kernels
at zero, 32² and 64² inputs agree to 0.2 %, tests/test_local_operators.py); the coarse levels' grids are fractions of
the input's, so the features the finest up-block receives from them carry a band that grows with the grid, and its
differential kernel's ``O(h)`` part (D1) sees that band: with random weights 32² and 64² agree to 1–6 %, and 64² and
128² a third better (the local FNO of :mod:`.local_fno`: 0.1–1 %, halving).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bases import Grid, SpectralBasis
from ..noise import Spectrum
from ..sde import DiagonalSDE
from .differential import DifferentialKernel
from .embedding import FiLM
from .fno import PreconditionedScoreOperator, _OperatorConfig, _zero_last_layer

__all__ = ["ScoreMultiScaleConfig", "ScoreMultiScale", "BasisSpectralConv"]


@dataclass(frozen=True, kw_only=True)
class ScoreMultiScaleConfig(_OperatorConfig):
    """Architecture of :class:`ScoreMultiScale`: ``n_layers`` levels (each one octave coarser, twice the channels),
    ``n_modes`` modes per axis at the finest level (halved per level, at least 2), differential kernels of odd width
    ``kernel_size`` at the finest ``local_levels`` levels (0: none), ``positional_embedding`` appends
    ``cos(π x_a / L_a)`` per axis (where the point is in the box, as :class:`~.fno.ScoreFNOConfig`'s coordinates, but
    smooth at Neumann walls)."""

    n_layers: int = 3
    n_modes: int = 12
    local_levels: int = 1
    kernel_size: int = 3
    positional_embedding: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_modes < 1 or not 0 <= self.local_levels <= self.n_layers:
            raise ValueError(f"n_modes must be positive and local_levels in 0..n_layers ({self.n_layers}), got "
                             f"{self.n_modes} and {self.local_levels}.")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {self.kernel_size}.")

    def build(self, sde: DiagonalSDE, *, channels: int,
              data_spectrum: Spectrum | Sequence[Spectrum]) -> ScoreMultiScale:
        return ScoreMultiScale(sde, channels=channels, data_spectrum=data_spectrum, config=self)

    def level_modes(self) -> list[int]:
        """Modes per axis of each level's spectral convolutions, finest first (:class:`BasisSpectralConv` rounds them
        up to an odd number)."""
        return [max(2, round(self.n_modes / 2**level)) for level in range(self.n_layers)]

    def level_channels(self) -> list[int]:
        """Channels of each level, finest first: ``hidden_channels`` doubled per level."""
        return [self.hidden_channels * 2**level for level in range(self.n_layers)]


def _linear(x: Tensor, layer: nn.Linear) -> Tensor:
    """A 1×1 map on the channel axis of ``(batch, channels, *grid)``."""
    return layer(x.movedim(1, -1)).movedim(-1, 1)


class BasisSpectralConv(nn.Module):
    """(M1): a channel matrix per mode of the lowest modes of ``basis``, applied to coefficients (complex weights where
    the basis has complex coefficients, e.g. Fourier modes), at any grid. The modes are those of an odd grid of at
    least ``modes`` points per axis: on a torus no kept mode sits at a Nyquist frequency (where resampling folds
    ``±k`` into one coefficient, so shifts by a fraction of its cell would not commute with the convolution)."""

    def __init__(self, basis: SpectralBasis, in_channels: int, out_channels: int, modes: int) -> None:
        super().__init__()
        self.basis, self.modes = basis, basis.grid(max(3, 2 * (modes // 2) + 1))
        coefficients = basis.forward(torch.zeros(self.modes, dtype=torch.float64))
        dtype = torch.complex64 if coefficients.is_complex() else torch.float32
        self.weight = nn.Parameter(torch.randn(in_channels, out_channels, *coefficients.shape, dtype=dtype)
                                   / in_channels**0.5)

    def forward(self, h: Tensor) -> Tensor:
        if h.dtype in (torch.float16, torch.bfloat16):  # under autocast: the transforms in float32, as lean_fno's
            with torch.autocast(h.device.type, enabled=False):
                return self(h.float())
        grid = self.basis.grid_of(h)
        c = self.basis.forward(self.basis.resample(h, self.modes))  # the lowest modes' coefficients
        out = torch.einsum("bi...,io...->bo...", c, self.weight.to(c.dtype))
        return self.basis.resample(self.basis.inverse(out, self.modes), grid)


class _Block(nn.Module):
    """(M2) at one level."""

    def __init__(self, basis: SpectralBasis, channels: int, modes: int, embedding_dim: int, *,
                 kernel_size: int | None) -> None:
        super().__init__()
        self.spectral = BasisSpectralConv(basis, channels, channels, modes)
        self.mix = nn.Linear(channels, channels)
        self.local = None if kernel_size is None else DifferentialKernel(basis, channels, channels,
                                                                         kernel_size=kernel_size, zero_init=True)
        self.film = FiLM(embedding_dim, channels)

    def forward(self, h: Tensor, embedding: Tensor) -> Tensor:
        y = self.spectral(h) + _linear(h, self.mix)
        if self.local is not None:
            y = y + self.local(h)
        return self.film(h + F.gelu(y), embedding)


class ScoreMultiScale(PreconditionedScoreOperator):
    """A time-conditioned U-shaped operator on the domain's spectral basis (module docstring), on a box (periodic,
    Neumann or Dirichlet; any rank, any channels); ``model(x_t, t) -> E[x_0 | x_t]`` preconditioned per (P1)."""

    def __init__(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum],
                 config: ScoreMultiScaleConfig = ScoreMultiScaleConfig()) -> None:
        super().__init__(sde, channels=channels, data_spectrum=data_spectrum, config=config)
        from neuralop.layers.channel_mlp import ChannelMLP

        basis, dim = sde.basis, config.embedding_dim
        widths, modes = config.level_channels(), config.level_modes()
        lifted_in = channels + (basis.ndim if config.positional_embedding else 0)
        self.lifting = ChannelMLP(lifted_in, widths[0], round(config.lifting_channel_ratio * widths[0]))
        self.lifting_film = FiLM(dim, widths[0])

        def block(level: int) -> _Block:
            local = config.kernel_size if level < config.local_levels else None
            return _Block(basis, widths[level], modes[level], dim, kernel_size=local)

        self.down = nn.ModuleList(block(level) for level in range(config.n_layers))
        self.up = nn.ModuleList(block(level) for level in range(config.n_layers - 1))
        self.coarsen = nn.ModuleList(nn.Linear(w, w_next) for w, w_next in zip(widths, widths[1:]))
        self.merge = nn.ModuleList(nn.Linear(w + w_next, w) for w, w_next in zip(widths, widths[1:]))
        self.projection = ChannelMLP(widths[0], channels, round(config.projection_channel_ratio * widths[0]))
        _zero_last_layer(self)

    def level_grids(self, grid: Grid) -> list[Grid]:
        """Each level's grid: ``N / 2^l`` per axis, rounded (at least 1)."""
        return [tuple(max(1, round(n / 2**level)) for n in grid) for level in range(self.config.n_layers)]

    def _check_grid(self, grid: Grid) -> None:
        coarsest = self.level_grids(grid)[-1]
        if min(coarsest) < 2:
            raise ValueError(f"grid {grid} is too coarse for {self.config.n_layers} levels (the coarsest would be "
                             f"{coarsest}); use at least {2 ** self.config.n_layers} points per axis or fewer levels.")

    def _positions(self, h: Tensor) -> Tensor:
        """``cos(π x_a / L_a)``, one channel per axis: monotone across the box (it tells where the walls are) and the
        first cosine mode, so smooth under the Neumann walls' reflection (a coordinate ramp is not band-limited)."""
        points = self.basis.axis_points(self.basis.grid_of(h), fractional=True)
        mesh = torch.meshgrid(*(torch.cos(torch.pi * p) for p in points), indexing="ij")
        return torch.stack(mesh).to(h).expand(h.shape[0], -1, *h.shape[2:])

    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        grids = self.level_grids(self.basis.grid_of(h))
        if self.config.positional_embedding:
            h = torch.cat([h, self._positions(h)], 1)
        h = self.lifting_film(self.lifting(h), embedding)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                h = _linear(self.basis.resample(h, grids[level]), self.coarsen[level - 1])
            h = block(h, embedding)
            skips.append(h)
        for level in reversed(range(len(self.up))):
            h = torch.cat([self.basis.resample(h, grids[level]), skips[level]], 1)
            h = self.up[level](_linear(h, self.merge[level]), embedding)
        return self.projection(h)
