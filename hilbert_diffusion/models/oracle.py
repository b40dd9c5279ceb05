"""The analytic oracle: Gaussian data, whose every diffusion quantity is closed form.

Data ``x_0 ~ N(m, C)`` with ``C e_k = c_k e_k`` diagonal in the SDE's basis. Under the forward SDE::

    x_k(t) ~ N(a_k m_k, σ²_k(t)),  σ²_k = a_k² c_k + v_k                                   (O1)
    E[x_0 | x_t]_k = m_k + (a_k c_k / σ²_k) (x_k - a_k m_k)                                  (O2)
    ∂_k log p_t(x) = -(x_k - a_k m_k) / σ²_k                                                   (O3)

The oracle is a module with the score model's signature ``oracle(x_t, t) -> E[x_0 | x_t]``, so it can
stand wherever a trained model stands (samplers, restoration, benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..bases import Grid
from ..noise import GaussianRandomField, Spectrum
from ..sde import DiagonalSDE

__all__ = ["GaussianOracle"]


class GaussianOracle(nn.Module):
    """Exact denoiser, score and marginals for Gaussian data ``N(mean, C)`` under ``sde``.

    Args:
        sde: the forward process (its basis diagonalises ``C``).
        data_covariance: the spectrum ``c(λ)`` of the data covariance.
        mean: optional mean field ``(channels, *grid)`` on any grid; it is resampled band-limited to
            the grid of each call. ``None`` means zero mean.
    """

    def __init__(self, sde: DiagonalSDE, data_covariance: Spectrum, *, mean: Tensor | None = None) -> None:
        super().__init__()
        self.sde = sde
        self.data_covariance = data_covariance
        if mean is not None:
            sde.basis.check_field(mean, "mean", batch_axes=1)
        self.mean = mean

    @property
    def basis(self):
        return self.sde.basis

    def data_variance(self, grid: Grid) -> Tensor:
        """``c_k``."""
        return self.data_covariance(self.basis.eigenvalues(grid))

    def _mean_coefficients(self, grid: Grid, like: Tensor) -> Tensor | float:
        if self.mean is None:
            return 0.0
        m = self.basis.resample(self.mean.to(like.device, like.dtype), grid)
        return self.basis.forward(m)

    def marginal_variance(self, t: float | Tensor, grid: Grid) -> Tensor:
        """``σ²_k(t) = a_k² c_k + v_k`` (O1)."""
        a = self.sde.mean_factor(t, grid)
        return a**2 * self.data_variance(grid).to(a.device) + self.sde.variance(t, grid)

    def _centred(self, x: Tensor, t: float | Tensor) -> tuple[Tensor, Tensor, Tensor | float, Grid]:
        grid = self.basis.check_field(x, "x")
        if isinstance(t, Tensor) and t.dim() == 1 and t.shape[0] != x.shape[0]:
            raise ValueError(f"t has {t.shape[0]} times for a batch of {x.shape[0]} fields; give one t per field.")
        a = self.sde.mean_factor(t, grid).to(x.device, x.dtype)
        m = self._mean_coefficients(grid, x)
        return self.basis.forward(x) - a * m, a, m, grid

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        """``E[x_0 | x_t = x]`` (O2); ``x`` is ``(batch, channels, *grid)``, ``t`` is ``(batch,)`` or a float."""
        centred, a, m, grid = self._centred(x, t)
        gain = (a * self.data_variance(grid).to(x.device, x.dtype)) / self.marginal_variance(t, grid).to(x.device, x.dtype)
        return self.basis.inverse(m + gain * centred, grid)

    def score_coefficients(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``∂_k log p_t(x)`` (O3)."""
        centred, _, _, grid = self._centred(x, t)
        return -centred / self.marginal_variance(t, grid).to(x.device, x.dtype)

    def score(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The L² score ``∇ log p_t(x)`` as a grid field (the Riesz representer: ``W^{-1} ∂ log p / ∂x_j``)."""
        return self.basis.inverse(self.score_coefficients(x, t), self.basis.grid_of(x))

    def log_prob(self, x: Tensor, t: float | Tensor) -> Tensor:
        """``log p_t`` of the real coefficients of ``x`` (Lebesgue density on ``(Re, Im)`` coordinates),
        shape ``(batch,)``; a complex coefficient of multiplicity 2 carries two real coordinates of
        variance ``σ²/2`` each."""
        centred, _, _, grid = self._centred(x, t)
        var = self.marginal_variance(t, grid).to(x.device, x.dtype)
        mult = self.basis.multiplicity(grid).to(x.device, x.dtype)
        safe_mult = mult.clamp_min(1)
        per_mode = -0.5 * mult * centred.abs() ** 2 / var - 0.5 * mult * torch.log(2 * math.pi * var / safe_mult)
        return per_mode.flatten(1).sum(-1)

    def sample_data(
        self,
        num: int,
        resolution: int | Sequence[int],
        *,
        channels: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """Exact draws of the data measure ``N(mean, C)``, shape ``(num, channels, *grid)``."""
        if self.mean is not None:
            channels = self.mean.shape[0]
        x = GaussianRandomField(self.basis, self.data_covariance).sample(
            num, resolution, channels=channels, generator=generator, dtype=dtype
        )
        if self.mean is not None:
            x = x + self.basis.resample(self.mean.to(dtype), self.basis.grid_of(x))
        return x
