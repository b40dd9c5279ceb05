"""A trained run: its model, SDE and normalisation, and generation and zero-shot restoration in data units.

``run = hilbert_diffusion.load(dir)`` (or the return value of ``train``) holds the denoiser and the SDE in
*normalised* units, the space the model was trained in. Its methods take and return data in the data's own units,
shaped ``(num, channels, *grid)``; restorations return ``len(y) * num`` fields, observation-major (the ``num``
draws of observation ``i`` are rows ``i·num … (i+1)·num - 1``), like the command line. Encoding, decoding, the
prior draw and the repetition of observations for ``num`` draws happen inside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .normalization import Normalization
from .optimal_times import spectrum_times
from .restoration import (
    BlockAverage,
    HeatBlur,
    Mask,
    ObservationOperator,
    SpectralDownsample,
    default_method,
    missing_mask,
)
from .engine import Model, Sampler
from .execution import accelerate, model_device, resolve_device
from .sampling import RUN_SAMPLER, ExponentialMultistep, sample
from .sde import DiagonalSDE

__all__ = ["TrainedRun"]


@dataclass
class TrainedRun:
    """A trained score model ready to sample and restore.

    ``model`` is the EMA denoiser ``model(x_t, t) -> E[x_0 | x_t]`` of the *normalised* data, the space in which
    ``sde`` is the forward process: hand both to any sampler or restoration method from your own code, and map
    fields with ``normalization.encode`` / ``decode``. The methods below do that for you and work in data units.
    ``path`` is the checkpoint folder the weights came from (``None`` for a run trained in memory); ``config`` the
    checkpoint's JSON document.
    """

    model: nn.Module | Model
    sde: DiagonalSDE
    normalization: Normalization
    step: int
    path: Path | None = None
    config: dict[str, Any] = field(default_factory=dict)
    _optimised: dict[tuple, dict] = field(default_factory=dict, init=False, repr=False)

    @property
    def channels(self) -> int:
        return int(self.config.get("model", {}).get("channels", getattr(self.model, "channels", 1)))

    def sample(
        self,
        num: int,
        resolution: int | tuple[int, ...],
        *,
        sampler: Sampler = RUN_SAMPLER,
        steps: int | None = None,
        times: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        device: torch.device | str | None = None,
        bf16: bool = False,
        compile: bool = False,
        **options: Any,
    ) -> Tensor:
        """``num`` samples in data units, ``(num, channels, *grid)``, at any resolution, from the prior drawn at that
        grid: ``sampler`` on ``times`` if given, else on :meth:`sampling_times` ``(sampler, steps, resolution=)`` —
        for the 3M samplers (the default :data:`~hilbert_diffusion.sampling.RUN_SAMPLER`, 3M with the corrector, and
        :data:`~hilbert_diffusion.sampling.exponential_multistep`) a grid optimised for the grid sampled, otherwise the
        sampler's own grid.

        ``device`` (``"auto"``, ``"cpu"``, ``"cuda:N"``; default: where the model is) moves the model there and
        samples there; ``bf16`` runs the network under bfloat16 autocast and ``compile`` its backbone through
        ``torch.compile`` (:mod:`hilbert_diffusion.execution`). The samples are returned on that device."""
        if times is not None and steps is not None:
            raise ValueError("give steps (a grid of that many steps is chosen for you) or times (a grid of yours), not both.")
        if times is None:
            times, _ = self.sampling_times(sampler, steps, resolution=resolution)
        device = self._execute(device, bf16=bf16, compile=compile)
        x = sample(self.model, self.sde, num=num, resolution=resolution, channels=self.channels, sampler=sampler,
                   times=times, generator=generator, progress=progress, device=device, **options)
        return self.normalization.decode(x)

    def sampling_times(
        self,
        sampler: Sampler = RUN_SAMPLER,
        steps: int | None = None,
        *,
        resolution: int | tuple[int, ...] | None = None,
    ) -> tuple[Tensor, str]:
        """``(times, where they come from)`` for ``sampler`` with ``steps`` steps (default: the run's choice) at the
        grid ``resolution``.

        A run trained with ``TrainConfig.optimised_steps`` stores a grid of that many steps for the default sampler,
        optimised at the training grid against the exact law of its data spectrum (``config["times"]``,
        :mod:`.optimal_times`). The 3M samplers (with and without the corrector) get a grid optimised against their
        own exact law for the grid ``resolution`` alone (default: the grids the stored one was optimised for): the
        stored one where it matches, else one optimised now (seconds; ``benchmarks/grid_per_resolution.py``: the
        corrector on a grid for the grid sampled meets all 12 of issue 18's targets, on one grid for 32² and 128² 11),
        kept for the run. Other samplers, and runs without a stored grid, use ``sampler.times(steps)``."""
        stored = self.config.get("times")
        spectra = getattr(self.model, "data_spectrum", None)
        method = sampler.method
        if (stored is None or not isinstance(method, ExponentialMultistep) or method.order != 3 or spectra is None
                or (steps or 3) < 3):
            steps = sampler.default_steps if steps is None else steps
            return sampler.times(steps), f"{sampler.name}'s own grid"
        steps = stored["steps"] if steps is None else steps
        stored_grids = tuple(map(tuple, stored["grids"]))
        grids = (self.sde.basis.grid(resolution),) if resolution is not None else stored_grids
        key = (grids, steps, method.corrector)
        if key == (stored_grids, stored["steps"], stored.get("corrector", False)):
            return torch.tensor(stored["times"], dtype=torch.float64), "the grid optimised at training"
        if key not in self._optimised:
            self._optimised[key] = spectrum_times(self.sde, spectra, grids[0], steps=steps, corrector=method.corrector,
                                                  transfer=len(grids) > 1)
        where = " and ".join("×".join(map(str, g)) for g in grids)
        return (torch.tensor(self._optimised[key]["times"], dtype=torch.float64),
                f"a grid optimised now for {steps} steps of {sampler.name} at {where}")

    def restore(
        self,
        operator: ObservationOperator,
        y: Tensor,
        *,
        resolution: int | tuple[int, ...] | None = None,
        num: int = 1,
        method: Sampler | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
        device: torch.device | str | None = None,
        bf16: bool = False,
        compile: bool = False,
        **options: Any,
    ) -> Tensor:
        """``num`` posterior draws per observation ``y`` ``(n_obs, channels, *observation_grid)`` (data units) of
        ``y = A x + σ_y ε``, at the grid ``resolution`` (default: the observation's grid), observation-major.

        ``method`` defaults to :func:`~hilbert_diffusion.restoration.default_method` (DDNM for operators diagonal in the
        basis, the filtering SMC where it is exact, the twisted SMC under heat, covariance guidance for channel-wise masks), on its own time grid with
        ``steps`` steps — not on the run's optimised 16-step grid, which is optimised for the deterministic 3M sampler:
        the restoration methods take stochastic first-order bridge steps, and on that grid the posterior std ratio of
        the best methods (covariance guidance, SMC) falls from 0.92–0.99 to 0.75–0.86 against the exact posterior
        (``benchmarks/restoration_grids.py``); ``options`` go to it (e.g. ``particles=8``). The operator's
        ``noise_std`` is in normalised units (data units divided by the channel's std). ``device``, ``bf16`` and
        ``compile`` as in :meth:`sample` (the draws are returned on that device)."""
        if not isinstance(num, int) or num < 1:
            raise ValueError(f"num must be a positive int (posterior draws per observation), got {num!r}.")
        y = self._observations(y).to(self._execute(device, bf16=bf16, compile=compile))
        grid = self.sde.basis.grid(resolution if resolution is not None else tuple(y.shape[2:]))
        method = default_method(self.sde, operator) if method is None else method
        y_model = self._encode_observation(operator, y, grid).repeat_interleave(num, dim=0)
        x = self.sde.prior_sample(len(y_model), grid, channels=self.channels, generator=generator,
                                  dtype=y_model.dtype, device=y_model.device)
        model_operator = operator.normalised(self.normalization.mean, self.normalization.std)
        out = method(self.model, self.sde, x, method.times(steps), operator=model_operator, y=y_model,
                     generator=generator, progress=progress, **options)
        return operator.project(self.normalization.decode(out))

    def inpaint(self, y: Tensor, mask: Tensor | None = None, *, noise_std: float = 0.0, **options: Any) -> Tensor:
        """Fill in the unobserved points of ``y`` ``(n_obs, channels, *grid)``: ``mask`` (boolean, the grid's shape,
        True = observed) or, without one, NaN in ``y`` marks the missing points (each observation its own).
        ``options`` as :meth:`restore` (``num``, ``resolution``, ``method``, ``steps``, ``generator``, ...)."""
        y = self._observations(y, allow_nan=mask is None)
        if mask is not None:
            operator = Mask(basis=self.sde.basis, observed=torch.as_tensor(mask).bool(), noise_std=noise_std)
            return self.restore(operator, y, **options)
        return torch.cat([self.restore(*missing_mask(self.sde.basis, y[i : i + 1], noise_std=noise_std), **options)
                          for i in range(len(y))])

    def superres(
        self,
        low: Tensor,
        *,
        resolution: int | tuple[int, ...],
        operator: type[SpectralDownsample] | type[BlockAverage] = SpectralDownsample,
        noise_std: float = 0.0,
        **options: Any,
    ) -> Tensor:
        """Restore low-resolution fields ``(n_obs, channels, *low_grid)`` at the finer grid ``resolution``; ``operator``
        says how the low grid was made (``SpectralDownsample``: spectral truncation, ``BlockAverage``: pixelation)."""
        low = self._observations(low)
        observe = operator(basis=self.sde.basis, resolution=tuple(low.shape[2:]), noise_std=noise_std)
        return self.restore(observe, low, resolution=resolution, **options)

    def deblur(self, y: Tensor, *, blur_time: float, noise_std: float = 0.0, **options: Any) -> Tensor:
        """Invert the heat semigroup ``e^{-τ(-Δ)}`` (a Gaussian blur of width ``sqrt(2τ)``, ``τ = blur_time``)."""
        return self.restore(HeatBlur(basis=self.sde.basis, time=blur_time, noise_std=noise_std), self._observations(y),
                            **options)

    def _execute(self, device: torch.device | str | None, *, bf16: bool, compile: bool) -> torch.device:
        """Move the model to ``device`` (default: where it is) with its precision and compile switches; the device."""
        device = model_device(self.model) if device is None else resolve_device(device)
        accelerate(self.model, device=device, bf16=bf16, compile=compile)
        return device

    # -- units ------------------------------------------------------------------------------------
    def _observations(self, y: Tensor, *, allow_nan: bool = False) -> Tensor:
        y = torch.as_tensor(y)
        if y.dim() != self.sde.basis.ndim + 2 or y.shape[1] != self.channels:
            raise ValueError(
                f"observations must be shaped (n_obs, {self.channels}, *grid) with {self.sde.basis.ndim} grid axes, "
                f"got {tuple(y.shape)}; add axes, e.g. y[None] for one observation."
            )
        if not y.is_floating_point():
            y = y.float()
        if not allow_nan:
            self.sde.basis.check_field(y, "y")
        return y

    def _encode_observation(self, operator: ObservationOperator, y: Tensor, grid: tuple[int, ...]) -> Tensor:
        """The observation of the normalised field ``(x - m) / s`` (:meth:`ObservationOperator.encode`: ``(y - A m) / s``
        per channel for linear ``A``, with ``A m`` the operator applied to the constant mean field on ``grid``)."""
        shape = (1, self.channels, *[1] * len(grid))
        mean = torch.tensor(self.normalization.mean, dtype=y.dtype, device=y.device).reshape(shape)
        std = torch.tensor(self.normalization.std, dtype=y.dtype, device=y.device).reshape(shape)
        return operator.encode(y, mean, std, tuple(grid))

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path is not None else ""
        return f"TrainedRun(step {self.step}, {self.channels} channel(s), {self.sde}{where})"
