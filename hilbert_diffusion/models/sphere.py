"""The spherical score operator: neuraloperator's SFNO with the preconditioning and time conditioning
of :mod:`.fno`.

SFNO is neuraloperator's FNO with ``SphericalConv`` (a convolution over spherical harmonics: one
weight per degree ``l``, so it commutes with rotations) in place of the Fourier convolution. With
torch-harmonics 0.8.0 it works on the exact Legendre–Gauss grid through
``conv_module=functools.partial(SphericalConv, sht_grids="legendre-gauss")``; the transforms use
``norm="ortho"`` (quadrature weights), so features are grid-independent and the operator runs at any
``(nlat, nlon)`` grid of :class:`~hilbert_diffusion.bases.SphereBasis`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from ..bases import Grid, SphereBasis
from ..noise import Spectrum
from ..sde import DiagonalSDE
from .fno import PreconditionedScoreOperator, _films, _OperatorConfig, _run_fno, _zero_last_layer

__all__ = ["SphericalScoreConfig", "SphericalScoreOperator"]


@dataclass(frozen=True, kw_only=True)
class SphericalScoreConfig(_OperatorConfig):
    """Architecture of :class:`SphericalScoreOperator`; ``degrees`` is the number of spherical-harmonic
    degrees (and orders) each spherical convolution keeps (``l, m < degrees``)."""

    degrees: int = 12

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.degrees < 1:
            raise ValueError(f"degrees must be positive, got {self.degrees}.")

    def build(
        self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum]
    ) -> SphericalScoreOperator:
        return SphericalScoreOperator(sde, channels=channels, data_spectrum=data_spectrum, config=self)


class SphericalScoreOperator(PreconditionedScoreOperator):
    """A time-conditioned SFNO denoiser on S² (``sde.basis`` a :class:`SphereBasis`), any channels.

    ``model(x_t, t) -> E[x_0 | x_t]`` with ``x_t`` shaped ``(batch, channels, nlat, nlon)``,
    preconditioned as in :mod:`.fno` (P1).
    """

    def __init__(
        self,
        sde: DiagonalSDE,
        *,
        channels: int,
        data_spectrum: Spectrum | Sequence[Spectrum],
        config: SphericalScoreConfig = SphericalScoreConfig(),
    ) -> None:
        if not isinstance(sde.basis, SphereBasis):
            raise ValueError(
                f"SphericalScoreOperator needs an SDE on SphereBasis, got {type(sde.basis).__name__}; "
                f"use ScoreFNO on boxes."
            )
        super().__init__(sde, channels=channels, data_spectrum=data_spectrum, config=config)
        from neuralop.layers.spherical_convolution import SphericalConv
        from neuralop.models import SFNO

        self.fno = SFNO(
            n_modes=(config.degrees, 2 * config.degrees),  # SphericalConv keeps l < n[0], m < n[1] // 2
            in_channels=channels,
            out_channels=channels,
            hidden_channels=config.hidden_channels,
            n_layers=config.n_layers,
            lifting_channel_ratio=config.lifting_channel_ratio,
            projection_channel_ratio=config.projection_channel_ratio,
            positional_embedding=None,
            conv_module=functools.partial(SphericalConv, sht_grids=sde.basis.grid_type),
        )
        self.films = _films(config)
        _zero_last_layer(self.fno)

    def _check_grid(self, grid: Grid) -> None:
        nlat, nlon = grid
        if self.config.degrees > nlat or self.config.degrees > nlon // 2 + 1:
            raise ValueError(
                f"sphere grid {grid} resolves fewer degrees than the model keeps ({self.config.degrees}); "
                f"use nlat ≥ {self.config.degrees}."
            )

    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        return _run_fno(self.fno, self.films, h, embedding)
