"""2-D incompressible Navier–Stokes vorticity on the unit torus (the FNO benchmark set-up).

The vorticity form on ``[0, 1)²`` (``x`` along axis ``-2``, ``y`` along axis ``-1``)::

    ∂_t ω + u·∇ω = ν Δω + f,    u = (∂_y ψ, -∂_x ψ),    -Δψ = ω                              (NS)

is solved pseudo-spectrally (``rfft2``): derivatives in Fourier space, the product ``u·∇ω`` on the
grid, and the 2/3 rule (only ``|k_x|, |k_y| ≤ K = ⌊(N-1)/3⌋`` kept) so that the quadratic term has
no aliasing error at all (the semi-discrete system is the Galerkin truncation, which conserves
energy and enstrophy when ``ν = f = 0``). Time stepping: Crank–Nicolson for the viscous term and
Heun's predictor–corrector for advection and forcing (second order, self-starting)::

    ω*      = [(1 - h ν λ / 2) ω^n + h N(ω^n)]                  / (1 + h ν λ / 2)          (CN-Heun 1)
    ω^{n+1} = [(1 - h ν λ / 2) ω^n + h (N(ω^n) + N(ω*)) / 2]    / (1 + h ν λ / 2)          (CN-Heun 2)

with ``N(ω) = f - P_K(u·∇ω)`` and ``λ = 4π²|k|²``.

FNO's data (Li et al. 2021, ``ns_V1e-3``): ``ν = 1e-3``, ``f = 0.1 (sin 2π(x+y) + cos 2π(x+y))``,
initial vorticity from their ``GaussianRF(alpha=2.5, tau=7)``. Read off their generator, a draw
``Re ifft(N² √2 σ (4π²|k|² + τ²)^(-α/2) ξ)`` (``σ = τ^(α-1)``, complex ``ξ``, zero mean mode) has
``E|c_k|² = σ² (λ_k + τ²)^(-α) = 7³ (λ_k + 49)^(-2.5)`` in the orthonormal Fourier basis: that is
:data:`FNO_INITIAL_VORTICITY` ``= Matern(alpha=2.5, tau=7, scale=1/49)`` with the mean removed. FNO
solves at 256² with ``Δt = 1e-4`` (explicit Euler advection) up to ``T = 50``; here the defaults are
128², ``Δt = 0.02`` (second-order scheme, relative error ≈ 1e-5 against ``Δt = 0.005`` at ``T = 20``)
and one snapshot at ``T = 20`` per initial condition, downsampled band-limited.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import torch
from torch import Tensor

from ..bases import PeriodicBasis
from ..noise import GaussianRandomField, Matern
from .base import FieldDataset, dataset_spec, field_generator, grid_coordinates
from .cache import cached_tensor

__all__ = [
    "FNO_INITIAL_VORTICITY", "fno_forcing", "fno_initial_vorticity", "VorticitySolver", "navier_stokes",
    "navier_stokes_pair", "vorticity_map",
]

#: ``7³ (λ + 49)^(-2.5)``: FNO's initial-vorticity covariance (its mean mode is removed on sampling).
FNO_INITIAL_VORTICITY = Matern(alpha=2.5, tau=7.0, scale=1.0 / 49.0)

#: bump when the generated data change, so stale cache files are not reused.
_GENERATOR_VERSION = 1


def fno_forcing(resolution: int, *, amplitude: float = 0.1, dtype: torch.dtype = torch.float64) -> Tensor:
    """``f(x, y) = amplitude · (sin 2π(x+y) + cos 2π(x+y))`` on the grid ``x_i = i/N, y_j = j/N``,
    shaped ``(N, N)``."""
    x = torch.arange(resolution, dtype=torch.float64) / resolution
    s = 2 * math.pi * (x[:, None] + x[None, :])
    return (amplitude * (torch.sin(s) + torch.cos(s))).to(dtype)


def fno_initial_vorticity(
    num: int, resolution: int, *, seed: int = 0, first: int = 0, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Fields ``first, ..., first + num - 1`` of FNO's initial vorticity on an ``N × N`` grid,
    ``(num, N, N)``: the GRF :data:`FNO_INITIAL_VORTICITY` with its mean removed. Field ``i``
    depends only on ``(seed, i)``."""
    grf = GaussianRandomField(PeriodicBasis(2), FNO_INITIAL_VORTICITY)
    indices = range(first, first + num)
    fields = [grf.sample(1, resolution, generator=field_generator(seed, i), dtype=dtype)[0, 0] for i in indices]
    w = torch.stack(fields)
    return w - w.mean(dim=(-2, -1), keepdim=True)


class _Operators(NamedTuple):
    ikx: Tensor  # 2πi k_x, rfft layout (N, N//2+1)
    iky: Tensor
    lam: Tensor  # 4π²|k|²
    inv_lam: Tensor  # 1/λ, 0 at k = 0 (ψ has zero mean)
    mask: Tensor  # 2/3-rule dealiasing mask (ones without dealiasing)


@dataclass(frozen=True)
class VorticitySolver:
    """Pseudo-spectral solver of (NS) on the unit torus on a ``resolution × resolution`` grid.

    Args:
        resolution: grid points per axis (the solver's own grid).
        viscosity: ``ν``.
        time_step: the largest step ``h``; :meth:`solve` takes ``ceil(T/h)`` equal steps.
        dealias: apply the 2/3 rule (turn off only to study aliasing).
    """

    resolution: int = 128
    viscosity: float = 1e-3
    time_step: float = 0.02
    dealias: bool = True
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.resolution < 4:
            raise ValueError(f"resolution must be at least 4, got {self.resolution}.")
        if self.viscosity < 0 or self.time_step <= 0:
            raise ValueError(f"need viscosity ≥ 0 and time_step > 0, got {self.viscosity}, {self.time_step}.")

    @property
    def cutoff(self) -> int:
        """``K``: the largest ``|k_x|, |k_y|`` kept by the 2/3 rule (``3K < N``: no aliasing)."""
        return (self.resolution - 1) // 3

    def _operators(self, dtype: torch.dtype, device: torch.device) -> _Operators:
        key = (dtype, device)
        if key not in self._cache:
            n = self.resolution
            kx = torch.fft.fftfreq(n, 1.0 / n, dtype=torch.float64)[:, None].expand(n, n // 2 + 1)
            ky = torch.fft.rfftfreq(n, 1.0 / n, dtype=torch.float64)[None, :].expand(n, n // 2 + 1)
            lam = 4 * math.pi**2 * (kx**2 + ky**2)
            inv_lam = torch.where(lam > 0, 1.0 / lam.clamp_min(1e-300), torch.zeros_like(lam))
            keep = (kx.abs() <= self.cutoff) & (ky.abs() <= self.cutoff)
            mask = keep if self.dealias else torch.ones_like(keep)
            real = dict(dtype=dtype, device=device)
            self._cache[key] = _Operators(
                ikx=(2j * math.pi * kx).to(device=device, dtype=_complex(dtype)),
                iky=(2j * math.pi * ky).to(device=device, dtype=_complex(dtype)),
                lam=lam.to(**real),
                inv_lam=inv_lam.to(**real),
                mask=mask.to(**real),
            )
        return self._cache[key]

    def _grid(self, c: Tensor) -> Tensor:
        return torch.fft.irfft2(c, s=(self.resolution, self.resolution))

    def advection(self, w_hat: Tensor) -> Tensor:
        """``P_K(u·∇ω)`` in Fourier space (rfft2 layout, ``(*batch, N, N//2+1)``) for ``ω̂ = w_hat``."""
        ops = self._operators(w_hat.real.dtype, w_hat.device)
        psi = w_hat * ops.inv_lam
        u, v = self._grid(ops.iky * psi), self._grid(-ops.ikx * psi)  # u = ψ_y, v = -ψ_x
        wx, wy = self._grid(ops.ikx * w_hat), self._grid(ops.iky * w_hat)
        return torch.fft.rfft2(u * wx + v * wy) * ops.mask

    def step(self, w_hat: Tensor, forcing_hat: Tensor | float, h: float) -> Tensor:
        """One CN-Heun step of size ``h`` (eqs. CN-Heun 1–2) in Fourier space."""
        ops = self._operators(w_hat.real.dtype, w_hat.device)
        half = 0.5 * h * self.viscosity * ops.lam
        explicit, implicit = 1.0 - half, 1.0 / (1.0 + half)
        n0 = forcing_hat - self.advection(w_hat)
        predictor = (explicit * w_hat + h * n0) * implicit  # CN-Heun 1
        n1 = forcing_hat - self.advection(predictor)
        return (explicit * w_hat + 0.5 * h * (n0 + n1)) * implicit  # CN-Heun 2

    def solve(
        self,
        w0: Tensor,
        *,
        horizon: float,
        forcing: Tensor | None = None,
        on_step: Callable[[], object] | None = None,
    ) -> Tensor:
        """``ω(T)`` for initial vorticity ``w0`` ``(*batch, N, N)`` (computed in ``w0``'s dtype).

        Args:
            w0: initial vorticity on the solver grid; projected onto the dealiased band first.
            horizon: ``T ≥ 0``.
            forcing: ``f`` on the solver grid ``(N, N)`` (or broadcastable), ``None`` for none.
            on_step: called after every step (e.g. a progress bar's ``update``).

        Raises ValueError if the solution stops being finite (the step is too large).
        """
        n = self.resolution
        if tuple(w0.shape[-2:]) != (n, n):
            raise ValueError(f"w0 has grid {tuple(w0.shape[-2:])} but the solver runs at {n}²; resample it first.")
        if horizon < 0:
            raise ValueError(f"horizon must be ≥ 0, got {horizon}.")
        ops = self._operators(w0.dtype, w0.device)
        w_hat = torch.fft.rfft2(w0) * ops.mask
        forcing_hat = 0.0 if forcing is None else torch.fft.rfft2(forcing.to(w0)) * ops.mask
        steps = math.ceil(horizon / self.time_step - 1e-9)
        h = horizon / steps if steps else 0.0
        check_every = max(1, steps // 20)
        for i in range(steps):
            w_hat = self.step(w_hat, forcing_hat, h)
            if on_step is not None:
                on_step()
            if (i + 1) % check_every == 0 and not torch.isfinite(w_hat).all():
                raise ValueError(
                    f"the Navier–Stokes solution blew up at t = {(i + 1) * h:.3g} with time_step = {self.time_step}; "
                    f"use a smaller time_step or a finer solver resolution."
                )
        return self._grid(w_hat)


def _complex(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def navier_stokes(
    num: int = 256,
    resolution: int = 64,
    *,
    solver_resolution: int = 128,
    viscosity: float = 1e-3,
    horizon: float = 20.0,
    time_step: float = 0.02,
    forcing_amplitude: float = 0.1,
    seed: int = 0,
    batch_size: int = 8,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FieldDataset:
    """Vorticity snapshots ``ω(T)`` of the FNO Navier–Stokes set-up, ``(num, 1, resolution, resolution)``
    on :class:`PeriodicBasis` ``(2)``.

    Each field starts from its own draw of :func:`fno_initial_vorticity` (field ``i`` depends only
    on ``(seed, i)``, so a larger ``num`` extends a smaller set), is solved at ``solver_resolution``²
    with :class:`VorticitySolver` in float32 up to ``horizon``, and is downsampled band-limited
    (``PeriodicBasis(2).resample``). Results are cached on disk (:mod:`.cache`), keyed by every
    argument that changes the data; ``batch_size``, ``cache_dir``, ``use_cache`` and ``progress``
    do not.

    Cost on one CPU core at the defaults: about 0.5 s per field (measured; see the tests/report).
    """
    return _build(navier_stokes, locals(), keep_initial=False)


def navier_stokes_pair(
    num: int = 1000,
    resolution: int = 64,
    *,
    solver_resolution: int = 128,
    viscosity: float = 1e-3,
    horizon: float = 1.0,
    time_step: float = 0.02,
    forcing_amplitude: float = 0.1,
    seed: int = 0,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FieldDataset:
    """DiffusionPDE's non-bounded Navier–Stokes pairs ``(ω₀, ω(T))``, ``(num, 2, resolution, resolution)``: the
    initial vorticity (FNO's, :func:`fno_initial_vorticity`) and the vorticity at ``T = horizon`` (their ``T = 1``,
    ``ν = 1e-3``, FNO's forcing), solved and downsampled as in :func:`navier_stokes` (their solver takes
    ``Δt = 1e-4`` with explicit advection; the second-order scheme here takes ``Δt = 0.02``). Channel 0 is ``a = ω₀``,
    channel 1 ``u = ω(T)``."""
    return _build(navier_stokes_pair, locals(), keep_initial=True)


def vorticity_map(
    *,
    solver_resolution: int = 128,
    viscosity: float = 1e-3,
    horizon: float = 1.0,
    time_step: float = 0.02,
    forcing_amplitude: float = 0.1,
) -> Callable[[Tensor], Tensor]:
    """The solution operator of :func:`navier_stokes_pair`'s pairs, ``ω₀ ↦ ω(T)`` on fields ``(..., N, N)`` at any
    grid ``N ≤ solver_resolution``, made as the pairs are: ``ω₀`` resampled (band-limited) to the solver's grid, solved
    with the same forcing and step, and resampled back; e.g. to complete ``u`` from a restored ``a``
    (:class:`~hilbert_diffusion.restoration.constraint.SolutionMap`)."""
    basis = PeriodicBasis(2)
    solver = VorticitySolver(resolution=solver_resolution, viscosity=viscosity, time_step=time_step)
    forcing = fno_forcing(solver_resolution, amplitude=forcing_amplitude)

    def solve(w0: Tensor) -> Tensor:
        _check_sizes(1, w0.shape[-1], solver_resolution, 1)
        w = solver.solve(basis.resample(w0, solver_resolution), horizon=horizon, forcing=forcing)
        return basis.resample(w, w0.shape[-1])

    return solve


def _check_sizes(num: int, resolution: int, solver_resolution: int, batch_size: int) -> None:
    if num < 1 or batch_size < 1:
        raise ValueError(f"num and batch_size must be positive, got num={num}, batch_size={batch_size}.")
    if resolution > solver_resolution:
        raise ValueError(
            f"resolution {resolution} exceeds solver_resolution {solver_resolution}; raise solver_resolution "
            f"(the output is a band-limited downsampling of the solver grid)."
        )


#: the arguments that change the data (the cache key and the spec); the others only say how to compute or store them.
_DATA_ARGUMENTS = ("num", "resolution", "solver_resolution", "viscosity", "horizon", "time_step", "forcing_amplitude",
                   "seed")


def _build(builder: Callable[..., FieldDataset], arguments: dict, *, keep_initial: bool) -> FieldDataset:
    """The data set of ``builder(**arguments)``: checked, generated by :func:`_solve_fields` or read from the cache."""
    _check_sizes(arguments["num"], arguments["resolution"], arguments["solver_resolution"], arguments["batch_size"])
    kwargs = {key: arguments[key] for key in _DATA_ARGUMENTS}
    spec = dataset_spec(builder, **kwargs)
    generate = partial(_solve_fields, **kwargs, batch_size=arguments["batch_size"], progress=arguments["progress"],
                       keep_initial=keep_initial)
    name = builder.__name__
    data = cached_tensor({**spec, "version": _GENERATOR_VERSION}, generate, name=name,
                         cache_dir=arguments["cache_dir"], use_cache=arguments["use_cache"])
    basis = PeriodicBasis(2)
    return FieldDataset(data=data, basis=basis, name=name, spec=spec,
                        coordinates=grid_coordinates(basis, basis.grid(arguments["resolution"])))


def _solve_fields(*, num: int, resolution: int, solver_resolution: int, viscosity: float, horizon: float,
                  time_step: float, forcing_amplitude: float, seed: int, batch_size: int, progress: bool,
                  keep_initial: bool) -> Tensor:
    """``ω(T)`` (and ``ω₀`` first when ``keep_initial``) for fields ``0 … num − 1``, ``(num, 1 or 2, N, N)``."""
    from tqdm import tqdm

    basis = PeriodicBasis(2)
    solver = VorticitySolver(resolution=solver_resolution, viscosity=viscosity, time_step=time_step)
    forcing = fno_forcing(solver_resolution, amplitude=forcing_amplitude, dtype=torch.float32)
    steps = math.ceil(horizon / time_step - 1e-9)
    out = []
    bar = tqdm(total=num * steps, disable=not progress, desc="Navier–Stokes", unit="field-step", unit_scale=True)
    with bar:
        for start in range(0, num, batch_size):
            count = min(batch_size, num - start)
            w0 = fno_initial_vorticity(count, solver_resolution, seed=seed, first=start)
            w = solver.solve(w0, horizon=horizon, forcing=forcing, on_step=partial(bar.update, count))
            fields = torch.stack([w0, w], dim=1) if keep_initial else w.unsqueeze(1)
            out.append(basis.resample(fields, resolution))
    return torch.cat(out).contiguous()
