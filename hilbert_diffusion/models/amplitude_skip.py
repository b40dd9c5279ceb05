"""The score operators' amplitude-adaptive skip: the scale mixture's exact denoiser in place of the Wiener filter.

With ``amplitude_classes = K > 0`` (:class:`~.fno.ScoreFNOConfig`) the skip ``S_t x_t`` of (P1) in :mod:`.fno` is the
exact denoiser (S1–S3 of :mod:`.scale_mixture`) of the data spectrum's Gaussian times one of ``K`` amplitudes per
field — or per octave band of modes with ``amplitude_bands = B > 1`` — fitted to the training fields when training
starts (:meth:`AmplitudeSkip.fit_amplitudes`, eq. S4). The classes are buffers, so checkpoints carry them and a
resumed run keeps them.

:class:`AmplitudeSkip` is the mixin that :class:`~.fno.PreconditionedScoreOperator` inherits; it reads the host's
``config``, ``basis``, ``sde`` and ``_data_variance``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from ..bases import Grid
from .scale_mixture import ScaleMixture, band_dof, band_index, mixture_gain, octave_edges, whitened_energy

__all__ = ["AmplitudeSkip"]


class AmplitudeSkip(nn.Module):
    """Buffers, fit and gain of the amplitude-adaptive skip (a mixin of the score operators)."""

    def _init_amplitudes(self, classes: int, bands: int) -> None:
        """Register the mixture's buffers (no classes: the per-mode Wiener skip, nothing registered)."""
        self._band_cache: dict[tuple[Grid, torch.device], Tensor] = {}
        if classes:  # fitted to the training fields by fit_amplitudes
            self.register_buffer("amplitude_scales", torch.ones(classes, bands, dtype=torch.float64))
            self.register_buffer("amplitude_weights", torch.full((classes,), 1.0 / classes, dtype=torch.float64))
            self.register_buffer("amplitude_edges", torch.zeros(bands - 1, dtype=torch.float64))

    @property
    def amplitude_mixture(self) -> ScaleMixture | None:
        """The skip's scale mixture (``None``: the per-mode Wiener skip)."""
        if not self.config.amplitude_classes:
            return None
        weights = self.amplitude_weights.double().cpu()
        table = self.amplitude_scales.double().cpu()
        scales = tuple(map(tuple, table.tolist())) if table.shape[1] > 1 else tuple(table[:, 0].tolist())
        return ScaleMixture(scales, tuple((weights / weights.sum()).tolist()), tuple(self.amplitude_edges.tolist()))

    @torch.no_grad()
    def fit_amplitudes(self, chunks: Iterable[Tensor]) -> ScaleMixture:
        """Fit the skip's amplitude classes to normalised training fields (given in chunks ``(n, channels,
        *grid)``): their whitened energies under the data spectrum, per octave band (``amplitude_bands``), as in
        :meth:`.scale_mixture.ScaleMixture.fit`. Returns the mixture."""
        if not self.config.amplitude_classes:
            raise ValueError("fit_amplitudes needs a model built with amplitude_classes > 0.")
        energies, dof, edges = [], None, ()
        for chunk in chunks:
            grid = self.basis.check_field(chunk, "training fields")
            edges = octave_edges(self.basis, grid, self.config.amplitude_bands)
            bands, m = band_index(self.basis, grid, edges), self.basis.multiplicity(grid)
            coefficients = self.basis.forward(chunk.to("cpu", torch.float64))
            energies.append(whitened_energy(coefficients, self._data_variance(grid, torch.device("cpu")), m, bands=bands))
            dof = band_dof(m, bands, chunk.shape[1])
        mixture = ScaleMixture.from_energies(torch.cat(energies), bins=self.config.amplitude_classes, dof=dof,
                                             edges=edges)
        table = mixture.table()  # fewer fields than classes: the rest keep weight 0
        self.amplitude_scales.fill_(1.0)[: len(table)] = table
        self.amplitude_weights.zero_()[: len(table)] = torch.tensor(mixture.weights, dtype=torch.float64)
        self.amplitude_edges.copy_(torch.tensor(edges, dtype=torch.float64))
        self._band_cache.clear()
        return mixture

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        """A checkpoint saved before amplitude bands holds ``(classes,)`` scales and no edges: one band."""
        scales = state_dict.get(prefix + "amplitude_scales")
        if scales is not None and scales.dim() == 1:  # saved before amplitude bands: one band, no edges
            state_dict[prefix + "amplitude_scales"] = scales[:, None]
            state_dict.setdefault(prefix + "amplitude_edges", scales.new_zeros(0))
        self._band_cache.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _amplitude_gain(self, coefficients: Tensor, t: Tensor, grid: Grid) -> Tensor:
        """The per-field, per-mode gain of (S1)–(S3) from the buffers as they are (no :class:`ScaleMixture`, no host
        round trip per call)."""
        device = coefficients.device
        a, v = (f(t, grid).to(device) for f in (self.sde.mean_factor, self.sde.variance))
        if (grid, device) not in self._band_cache:
            self._band_cache[grid, device] = band_index(self.basis, grid, self.amplitude_edges.cpu()).to(device)
        return mixture_gain(coefficients, self._data_variance(grid, device), a, v,
                            self.basis.multiplicity(grid).to(device), self.amplitude_scales, self.amplitude_weights,
                            bands=self._band_cache[grid, device])
