"""An FNO with local differential kernels (Liu-Schiaffini et al., ICML 2024, arXiv 2402.16845) inside the same
preconditioning (P1)–(P8) of :mod:`.fno`.

Each block adds a differential kernel (D1) of :mod:`.differential` beside the spectral convolution and the linear
skip::

    h ← σ(MLP(σ(K h + D h + W h)) + G h)        K: Fourier modes, D: learned finite differences / h, W, G: 1×1   (L1)

The spectral part sees the whole field with ``n_modes`` modes; ``D`` sees the nearest grid neighbours and converges
to a first-order differential operator as the grid is refined, so edges (the part of the spectrum above
``n_modes``) can be sharpened locally while the operator stays the same at every resolution. ``D`` starts at zero:
the untrained model is the FNO of the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from ..noise import Spectrum
from ..sde import DiagonalSDE
from .differential import DifferentialKernel
from .fno import ScoreFNO, ScoreFNOConfig, _run_fno, on_even_grid
from .lean_fno import supports

__all__ = ["ScoreLocalConfig", "ScoreLocalFNO"]


@dataclass(frozen=True, kw_only=True)
class ScoreLocalConfig(ScoreFNOConfig):
    """Architecture of :class:`ScoreLocalFNO`: :class:`~.fno.ScoreFNOConfig`'s options (no ``domain_padding``: the
    differential kernels extend fields beyond the walls as the basis does) and ``kernel_size``, the odd stencil width
    along each axis of the differential kernels."""

    kernel_size: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and at least 3, got {self.kernel_size}.")
        if self.domain_padding:
            raise ValueError("domain_padding does not apply to the local FNO (its differential kernels extend fields "
                             "beyond the walls as the basis does); leave it at 0.")

    def build(self, sde: DiagonalSDE, *, channels: int,
              data_spectrum: Spectrum | Sequence[Spectrum]) -> ScoreLocalFNO:
        return ScoreLocalFNO(sde, channels=channels, data_spectrum=data_spectrum, config=self)


class ScoreLocalFNO(ScoreFNO):
    """A time-conditioned FNO whose blocks add a differential kernel (L1), on a box (periodic, Neumann or Dirichlet;
    any rank, any channels); ``model(x_t, t) -> E[x_0 | x_t]`` preconditioned per (P1)."""

    def __init__(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Spectrum | Sequence[Spectrum],
                 config: ScoreLocalConfig = ScoreLocalConfig()) -> None:
        super().__init__(sde, channels=channels, data_spectrum=data_spectrum, config=config)
        width = config.hidden_channels
        self.local = nn.ModuleList(
            DifferentialKernel(sde.basis, width, width, kernel_size=config.kernel_size, zero_init=True)
            for _ in range(config.n_layers))
        if not supports(self.fno):
            raise ValueError("the local FNO runs on the lean FNO layers; this configuration is not one of them.")

    def _backbone(self, h: Tensor, embedding: Tensor) -> Tensor:
        return on_even_grid(self.basis, h, lambda x: _run_fno(self.fno, self.films, x, embedding, local=self.local))
