"""A U-shaped score operator: neuraloperator's ``UNO`` (Rahman et al., TMLR 2023) inside the same preconditioning
(P1)–(P8) of :mod:`.fno`, with FiLM time conditioning after the lifting and after every block.

Its blocks change resolution by *factors* of the input grid (spectral resampling, :func:`neuralop.layers.resample`),
so the operator is as resolution-free as the FNO: the default ``scalings = (1, ½, 1, 2, 1)`` go down one octave and
back with skips ``3 ← 1`` and ``4 ← 0`` on any grid. The coarse middle blocks see the whole field with few modes,
the fine outer ones keep ``n_modes``; each block keeps ``n_modes`` times the coarser of its input and output scale.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..bases import Grid
from ..noise import Spectrum
from ..sde import DiagonalSDE
from .embedding import FiLM
from .fno import PreconditionedScoreOperator, _OperatorConfig, _zero_last_layer, on_even_grid

__all__ = ["ScoreUNOConfig", "ScoreUNO"]


@dataclass(frozen=True, kw_only=True)
class ScoreUNOConfig(_OperatorConfig):
    """Architecture of :class:`ScoreUNO`: ``scalings`` (one factor per block, the grid's size relative to the
    block's input) and ``channel_ratios`` (each block's width over ``hidden_channels``) have ``n_layers`` entries;
    ``n_modes`` Fourier modes per axis at the input's resolution; ``positional_embedding`` as in
    :class:`~.fno.ScoreFNOConfig`."""

    n_layers: int = 5
    n_modes: int = 12
    scalings: tuple[float, ...] = (1.0, 0.5, 1.0, 2.0, 1.0)
    channel_ratios: tuple[float, ...] = (1.0, 2.0, 2.0, 2.0, 1.0)
    positional_embedding: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.scalings) != self.n_layers or len(self.channel_ratios) != self.n_layers:
            raise ValueError(f"scalings {self.scalings} and channel_ratios {self.channel_ratios} need n_layers = "
                             f"{self.n_layers} entries each.")
        if self.n_modes < 1 or min(self.scalings) <= 0 or min(self.channel_ratios) <= 0:
            raise ValueError("n_modes, scalings and channel_ratios must be positive.")

    def build(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum]) -> ScoreUNO:
        return ScoreUNO(sde, channels=channels, data_spectrum=data_spectrum, config=self)

    def block_modes(self) -> list[int]:
        """Fourier modes per axis of each block: ``n_modes`` times the coarser of its input and output scale."""
        modes, scale = [], 1.0
        for factor in self.scalings:
            modes.append(max(2, round(self.n_modes * min(scale, scale * factor))))
            scale *= factor
        return modes


class ScoreUNO(PreconditionedScoreOperator):
    """A time-conditioned U-shaped neural operator denoiser on a box (1-D or 2-D, any channels), preconditioned
    per (P1); ``model(x_t, t) -> E[x_0 | x_t]``."""

    def __init__(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum],
                 config: ScoreUNOConfig = ScoreUNOConfig()) -> None:
        super().__init__(sde, channels=channels, data_spectrum=data_spectrum, config=config)
        from neuralop.models import UNO

        ndim = sde.basis.ndim
        widths = [max(1, round(config.hidden_channels * r)) for r in config.channel_ratios]
        with contextlib.redirect_stdout(io.StringIO()):  # neuraloperator 2.0's UNO prints its skip options
            self.uno = UNO(
                in_channels=channels, out_channels=channels, hidden_channels=config.hidden_channels,
                lifting_channels=round(config.lifting_channel_ratio * config.hidden_channels),
                projection_channels=round(config.projection_channel_ratio * config.hidden_channels),
                positional_embedding="grid" if config.positional_embedding else None, n_layers=config.n_layers,
                uno_out_channels=widths, uno_n_modes=[[m] * ndim for m in config.block_modes()],
                uno_scalings=[[s] * ndim for s in config.scalings], channel_mlp_skip="linear",
            )
        self.films = nn.ModuleList([FiLM(config.embedding_dim, config.hidden_channels),
                                    *(FiLM(config.embedding_dim, w) for w in widths)])
        _zero_last_layer(self.uno)

    def _check_grid(self, grid: Grid) -> None:
        coarsest, scale = 1.0, 1.0
        for factor in self.config.scalings:
            scale *= factor
            coarsest = min(coarsest, scale)
        if min(grid) * coarsest < 2:
            raise ValueError(f"grid {grid} is too coarse for the U-shaped operator (its coarsest level is "
                             f"{coarsest:g} of the grid); use at least {round(2 / coarsest)} points per axis.")

    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        return on_even_grid(self.basis, h, lambda x: self._run(x, embedding))

    def _run(self, h: Tensor, embedding: Tensor) -> Tensor:
        """neuraloperator's ``UNO.forward`` with a FiLM modulation after the lifting and after each block."""
        from neuralop.layers.resample import resample

        uno, ndim = self.uno, self.basis.ndim
        if uno.positional_embedding is not None:
            h = uno.positional_embedding(h)
        h = self.films[0](uno.lifting(h), embedding)
        output_shape = [round(n * f) for n, f in zip(h.shape[-ndim:], uno.end_to_end_scaling_factor)]
        skips: dict[int, Tensor] = {}
        for index in range(uno.n_layers):
            if index in uno.horizontal_skips_map:  # the matching down-path output, resampled to this grid
                skip = skips[uno.horizontal_skips_map[index]]
                factors = [m / n for m, n in zip(h.shape[-ndim:], skip.shape[-ndim:])]
                h = torch.cat([h, resample(skip, factors, list(range(-ndim, 0)))], dim=1)
            last = index == uno.n_layers - 1
            h = self.films[index + 1](uno.fno_blocks[index](h, output_shape=output_shape if last else None),
                                      embedding)
            if index in uno.horizontal_skips_map.values():
                skips[index] = uno.horizontal_skips[str(index)](h)
        return uno.projection(h)
