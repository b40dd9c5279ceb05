"""Samplers: integrate the reverse-time dynamics of a diagonal SPDE from its prior to ``t = 0``, at any grid.

Every sampler is a :class:`~hilbert_diffusion.engine.Sampler` — a step rule on the one engine, with its facts
(``order``, ``stochastic``, ``evaluations(steps)``, its default time grid ``times(steps)``) — called as::

    sampler(model, sde, x, times, *, generator=None, callback=None, progress=False, **options) -> Tensor

* ``model(x_t, t) -> E[x_0 | x_t]`` is the denoiser (``x_t`` shaped ``(batch, channels, *grid)``, ``t`` shaped
  ``(batch,)``); it is only ever evaluated at ``t > 0``.
* ``sde`` is the forward process (:class:`~hilbert_diffusion.sde.DiagonalSDE`); every per-mode coefficient is
  taken from it at the grid of ``x``, so the same code runs on any grid, basis and number of grid axes.
* ``x`` is the state at ``times[0]``, normally ``sde.prior_sample(num, resolution)``; ``times`` decreases from
  ``times[0] ≤ 1`` to ``times[-1] = 0`` (a grid ending at ``t > 0`` stops there).
* ``callback(step, t, x, denoised)`` is called once per step; ``progress=True`` shows a tqdm bar.

The samplers work in the SDE's spectral basis, where the forward process is one Ornstein–Uhlenbeck process per
mode (``a_k``, ``v_k``: :mod:`hilbert_diffusion.sde`) and the score is ``∂_k log p_t = -(x_k - a_k D_k) / v_k``:

* :data:`euler_maruyama` — the reverse SDE by Euler–Maruyama (HDM's and score-SDE's baseline).
* :data:`exponential_ancestral` — the exact Gaussian bridge ``q(x_s | x_t, x_0 = D(x_t, t))`` per mode (DDPM's
  ancestral sampler with per-mode ``a_k``, ``v_k``; DDIM's ``eta`` as an option).
* :data:`exponential_deterministic` — its noise-free member (DDIM, ``eta = 0``).
* :data:`exponential_multistep` — the probability-flow ODE by DPM-Solver++(2M)/(3M) in each mode's own log
  signal-to-noise ratio: the linear part exact, one evaluation per step. The default of :func:`sample`.
* :data:`exponential_corrected` — the same with a corrector in the exponential frame (UniPC's UniC per mode): one
  order more at the same evaluations.
* :data:`heun_ode`, :data:`rk3_ode` — the probability-flow ODE by Heun's and Kutta's third-order method in ``t``.
* :data:`predictor_corrector` — ancestral predictor and a Langevin corrector preconditioned by ``v(t)``.

Measured with the exact Gaussian oracle (``benchmarks/sampler_convergence.py``, ``tests/test_sampling.py``):
orders 1 (Euler–Maruyama, ancestral, DDIM), 2 (Heun, 2M), 3 (RK3, 3M). At 48 evaluations the 3M sampler on
:func:`default_times` beats Euler–Maruyama with 1000 steps in W2 at 32² and 128², on data smoother and rougher
than the noise; on a grid optimised against its exact law (:mod:`hilbert_diffusion.optimal_times`, what a trained
run stores) 16 evaluations do, in all six settings of that benchmark. The explicit methods (Euler–Maruyama, Heun, RK3) need steps small against the fastest rate of
the dynamics: Euler–Maruyama diverges on fine grids with heat (``κ > 0``), the exponential samplers cannot.

Final step into ``t = 0`` (the model is never called there): the exponential samplers take the exact bridge /
flow step with ``s = 0``, which returns ``D(x_{t_1}, t_1)``; Euler–Maruyama takes its drift step without noise
(score-SDE's ``x_mean``); Heun takes a plain Euler step (as EDM) and RK3 the explicit midpoint rule; the
predictor–corrector skips its corrector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .engine import Callback, Method, Model, Run, Sampler, validate_times
from .sde import DiagonalSDE
from .times import DEFAULT_STEPS, default_times, power_times, uniform_times

__all__ = [
    "Model",
    "Callback",
    "Sampler",
    "uniform_times",
    "validate_times",
    "power_times",
    "DEFAULT_STEPS",
    "default_times",
    "euler_maruyama",
    "exponential_ancestral",
    "exponential_deterministic",
    "exponential_multistep",
    "RUN_SAMPLER",
    "exponential_corrected",
    "exponential_step",
    "multistep_update",
    "MultistepMemory",
    "heun_ode",
    "rk3_ode",
    "predictor_corrector",
    "SAMPLERS",
    "sample",
]


# --------------------------------------------------------------------------------------- step rules
@dataclass(frozen=True)
class EulerMaruyama(Method):
    """``x_s = x_t + (s - t) f(x_t, t) + sqrt(g q_k (t - s)) ξ_k`` per mode, ``f`` the reverse drift; no noise into 0."""

    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        x_mean = x + (s - t) * run.sde.reverse_drift(x, t, denoised)  # reverse SDE (sde.reverse_drift) from t down to s
        if s == 0:
            return x_mean
        std = (run.modes(run.sde.diffusion_variance_rate(t, run.grid)) * (t - s)).sqrt()  # Var = g q_k Δt
        return x_mean + run.field(std * run.noise(x))


def _exponential_step(run: Run, x: Tensor, denoised: Tensor, s: float, t: float, *, eta: float) -> Tensor:
    """``x_s = a_s D + k (x_t - a_t D) + η sqrt(var) ξ`` per mode, ``k² = (1-η²) v_s/v_t + η² c_t²``.

    ``(c_t, ·, var)`` is the bridge ``q(x_s | x_t, x_0)``: ``η = 1`` draws from it with ``x_0 = D``
    (``a_s - c_t a_t = c_0``), ``η = 0`` is DDIM's ``x_s = a_s D + sqrt(v_s/v_t) (x_t - a_t D)``, the exact
    probability-flow step with ``D`` held fixed. At ``s = 0``: ``v_s = var = 0``, so ``x_0 = D``.
    """
    c_t, _, var = run.bridge(s, t)
    a_s, a_t, v_s, v_t = run.a(s), run.a(t), run.v(s), run.v(t)
    gain = ((1 - eta**2) * v_s / v_t + eta**2 * c_t**2).sqrt()
    xc, dc = run.basis.forward(x), run.basis.forward(denoised)
    c = a_s * dc + gain * (xc - a_t * dc)
    if eta > 0 and s > 0:
        c = c + eta * var.sqrt() * run.noise(x)
    return run.field(c)


@dataclass(frozen=True)
class ExponentialBridge(Method):
    """The exact per-mode bridge step with DDIM's ``eta`` (``1``: ancestral, ``0``: deterministic)."""

    eta: float = 1.0
    order: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must lie in [0, 1] (0: deterministic DDIM, 1: ancestral), got eta={self.eta}.")

    @property
    def stochastic(self) -> bool:
        return self.eta > 0

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        return _exponential_step(run, x, denoised, s, t, eta=self.eta)


@dataclass
class _History:
    """The state of a multistep run: ``x`` and the :class:`MultistepMemory` of earlier steps."""

    x: Tensor
    memory: MultistepMemory


@dataclass(frozen=True)
class ExponentialMultistep(Method):
    """DPM-Solver++(``order``M) per mode, with the exponential-frame corrector if ``corrector``; see
    :data:`exponential_multistep`."""

    order: int = 3
    corrector: bool = False
    stochastic: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.order not in (1, 2, 3):
            raise ValueError(f"order must be 1, 2 or 3, got order={self.order}.")
        if not isinstance(self.corrector, bool):
            raise ValueError(f"corrector must be True or False, got corrector={self.corrector!r}.")

    def start(self, run: Run) -> _History:
        return _History(run.x, MultistepMemory())

    def position(self, carry: _History) -> Tensor:
        return carry.x

    def finish(self, run: Run, carry: _History) -> Tensor:
        return carry.x

    def advance(self, run: Run, carry: _History, x: Tensor, denoised: Tensor, s: float, t: float) -> _History:
        c, memory = multistep_update(run.basis.forward(x), run.basis.forward(denoised), run.a(s), run.a(t), run.v(s),
                                     run.v(t), carry.memory, order=self.order, final=s == 0, corrector=self.corrector)
        return _History(run.field(c), memory)


@dataclass
class MultistepMemory:
    """What a multistep run carries between steps, per mode: ``earlier``, the ``(λ(t_j), D_j)`` of earlier steps,
    newest first; and for the corrector ``last``, the corrected state and ``(a, v)`` where the previous step began."""

    earlier: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    last: tuple[Tensor, Tensor, Tensor] | None = None


def _log_snr(a: Tensor, v: Tensor) -> Tensor:
    return a.log() - 0.5 * v.log()  # λ = log a - ½ log v; -inf where a_k underflows to 0


def multistep_update(
    xc: Tensor, dc: Tensor, a_s: Tensor, a_t: Tensor, v_s: Tensor, v_t: Tensor, memory: MultistepMemory, *,
    order: int, final: bool, corrector: bool = False,
) -> tuple[Tensor, MultistepMemory]:
    """One step ``t → s`` of DPM-Solver++(``order``M) per mode on coefficients, ``dc = D(x_t, t)``: returns
    ``(x_s, memory)``.

    Per mode, with ``λ = log a - ½ log v`` and ``h = λ(s) - λ(t)``, the probability-flow ODE integrates exactly to
    ``x_s = sqrt(v_s/v_t) x_t + a_s ∫_0^h e^{u-h} D(λ(t) + u) du`` (Lu et al. 2022, DPM-Solver++ eq. 9, per mode).
    The predictor is DPM-Solver++(``order``M): ``D`` interpolated in ``λ`` through the latest ``order`` estimates,
    ``x_s = sqrt(v_s/v_t) x_t + φ1 D + φ2 D' - φ3 D''``, ``φ1 = a_s (1 - e^{-h})``, ``φ2 = a_s - φ1/h``,
    ``φ3 = φ2/h - a_s/2``, with ``D'``, ``D''`` the divided differences scaled by ``h`` and ``h²`` (as published;
    ``φ3`` is half the exact integral of the interpolating quadratic). ``corrector``: before that, the previous step
    ``t' → t`` is taken again from its corrected start with ``D`` interpolated through ``D(x_t, t)`` as well — the
    evaluation the predictor needs anyway, so no extra one (UniC of Zhao et al. 2023 in each mode's exponential frame,
    integrated exactly: :func:`exponential_step`) — which raises the order by one. The final step (``s = 0``:
    ``v_s = 0``, ``a_s = 1``) returns ``D``. Pure tensor algebra, differentiable in the coefficients (the exact law of
    the sampler as a function of its times: :mod:`hilbert_diffusion.optimal_times`).
    """
    lam_t = _log_snr(a_t, v_t)
    earlier = memory.earlier
    if corrector and memory.last is not None and not final:
        x_last, a_last, v_last = memory.last
        xc = exponential_step(x_last, a_t, a_last, v_t, v_last, [earlier[0], (lam_t, dc), *earlier[1:order]])
    history = [(lam_t, dc), *earlier][: order if corrector else order - 1]
    if final:
        return dc, MultistepMemory(history)
    ratio = (v_s / v_t).sqrt()
    phi1 = a_s - ratio * a_t
    c = ratio * xc + phi1 * dc  # order 1: DDIM
    earlier = earlier[: order - 1]
    if earlier:
        h = _log_snr(a_s, v_s) - lam_t
        phi2 = a_s - phi1 / h
        lam_1, d_1 = earlier[0]
        r0 = (lam_t - lam_1) / h
        slope = (dc - d_1) / r0
        correction = phi2 * slope
        if len(earlier) == 2:
            lam_2, d_2 = earlier[1]
            r1 = (lam_1 - lam_2) / h
            curvature = (slope - (d_1 - d_2) / r1) / (r0 + r1)
            correction = phi2 * (slope + curvature * r0) - (phi2 / h - a_s / 2) * curvature
        c = c + _where_remembered(h, a_s, correction)
    return c, MultistepMemory(history, (xc, a_t, v_t) if corrector else None)


def _where_remembered(h: Tensor, a_s: Tensor, correction: Tensor) -> Tensor:
    """``correction`` where the mode still remembers the data; a mode that has forgotten it (``a_s = 0``,
    ``λ = -inf``) keeps the exact first-order step."""
    return torch.where(torch.isfinite(h) & (a_s > 0) & torch.isfinite(correction), correction, 0.0)


def exponential_step(
    xc: Tensor, a_s: Tensor, a_t: Tensor, v_s: Tensor, v_t: Tensor, nodes: Sequence[tuple[Tensor, Tensor]]
) -> Tensor:
    """``x_s = sqrt(v_s/v_t) x_t + a_s ∫_0^h e^{u-h} P(u) du`` per mode, ``P`` the polynomial in ``u = λ - λ(t)``
    through ``nodes`` ``(λ_j, D_j)``, the first at ``λ(t)``: the exact integral of the interpolant (Newton form).

    With ``I_k = a_s ∫_0^h e^{u-h} u^k du = a_s h^k - k I_{k-1}`` (by parts), ``I_0 = φ1 = a_s (1 - e^{-h})``, and
    ``P = Σ_k D[u_0..u_k] Π_{j<k} (u - u_j)``, the integral is ``Σ_k D[u_0..u_k] Σ_m p_km I_m``. One node: DDIM."""
    lam_t = _log_snr(a_t, v_t)
    ratio = (v_s / v_t).sqrt()
    phi1 = a_s - ratio * a_t
    c = ratio * xc + phi1 * nodes[0][1]
    if len(nodes) == 1:
        return c
    h = _log_snr(a_s, v_s) - lam_t
    u = [lam - lam_t for lam, _ in nodes]
    table = [d for _, d in nodes]  # divided differences, built in place: table[k] = D[u_0..u_k] after pass k
    integrals = [phi1]
    for k in range(1, len(nodes)):
        integrals.append(a_s * h**k - k * integrals[-1])
    basis = [torch.ones_like(h)]  # monomial coefficients of Π_{j<k} (u - u_j)
    correction = torch.zeros_like(c)
    for k in range(1, len(nodes)):
        for j in range(len(nodes) - 1, k - 1, -1):
            table[j] = (table[j] - table[j - 1]) / (u[j] - u[j - k])
        basis = [*(b_m * -u[k - 1] for b_m in basis[:1]), *(basis[m - 1] - u[k - 1] * basis[m] for m in range(1, k)),
                 basis[k - 1]]
        correction = correction + table[k] * sum(p * i for p, i in zip(basis, integrals))
    return c + _where_remembered(h, a_s, correction)


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge–Kutta method: stage ``i`` evaluates the drift at ``t + c_i h`` and ``x + h Σ_j a_ij k_j``;
    the step returns ``x + h Σ_i b_i k_i``."""

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    order: int

    @property
    def stages(self) -> int:
        return len(self.b)


EULER = Tableau(a=((),), b=(1.0,), c=(0.0,), order=1)
MIDPOINT = Tableau(a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5), order=2)
HEUN = Tableau(a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0), order=2)
KUTTA3 = Tableau(a=((), (0.5,), (-1.0, 2.0)), b=(1 / 6, 2 / 3, 1 / 6), c=(0.0, 0.5, 1.0), order=3)


@dataclass(frozen=True)
class RungeKutta(Method):
    """The probability-flow ODE (``sde.reverse_drift(probability_flow=True)``) by ``tableau``; into ``s = 0`` by
    ``final``, whose stages all lie at ``t > 0`` (the model is not evaluated at 0)."""

    tableau: Tableau = HEUN
    final: Tableau = EULER
    stochastic: ClassVar[bool] = False

    @property
    def order(self) -> int:
        return self.tableau.order

    def evaluations(self, steps: int) -> int:
        return self.tableau.stages * (steps - 1) + self.final.stages

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        method = self.final if s == 0 else self.tableau
        h = s - t
        slopes = [run.sde.reverse_drift(x, t, denoised, probability_flow=True)]
        for a_i, c_i in zip(method.a[1:], method.c[1:]):
            x_i = x + h * sum(a * k for a, k in zip(a_i, slopes))
            t_i = t + c_i * h
            slopes.append(run.sde.reverse_drift(x_i, t_i, run.denoise(x_i, t_i), probability_flow=True))
        return x + h * sum(b * k for b, k in zip(method.b, slopes) if b)


@dataclass(frozen=True)
class PredictorCorrector(Method):
    """A Langevin corrector at ``t`` (preconditioned by ``v(t)``), then the ancestral predictor to ``s``."""

    snr: float = 0.16
    order: ClassVar[int] = 1
    stochastic: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.snr <= 0:
            raise ValueError(f"snr must be positive (Song et al. use 0.01–0.16), got snr={self.snr}.")

    def evaluations(self, steps: int) -> int:
        return 2 * steps - 1

    def advance(self, run: Run, carry: Tensor, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        if s > 0:
            x = self._langevin(run, x, denoised, s, t)
            denoised = run.denoise(x, t)
        return _exponential_step(run, x, denoised, s, t, eta=1.0)

    def _langevin(self, run: Run, x: Tensor, denoised: Tensor, s: float, t: float) -> Tensor:
        """``x += ε V s + sqrt(2ε) V^{1/2} ξ``, ``V = v(t)``, ε by Song et al.'s rule capped by the refreshed noise."""
        grid = run.grid
        v = run.v(t)
        drift = v * run.sde.score_coefficients(x, t, denoised)
        noise = v.sqrt() * run.noise(x)
        norm = lambda c: run.basis.coefficient_energy(c, grid).flatten(1).sum(-1).sqrt().mean()
        eps = 2 * (self.snr * norm(noise) / norm(drift).clamp_min(torch.finfo(v.dtype).tiny)) ** 2  # Song et al. (2021), Alg. 5
        mult = run.modes(run.basis.multiplicity(grid))
        refreshed = (mult * run.bridge(s, t)[2]).sum() / (mult * run.v(s)).sum()
        eps = torch.minimum(eps, refreshed)
        return run.field(run.basis.forward(x) + eps * drift + (2 * eps).sqrt() * noise)


# --------------------------------------------------------------------------------------- samplers
euler_maruyama = Sampler("euler_maruyama", EulerMaruyama(), default_steps=1000, grid=uniform_times)
"""Euler–Maruyama on the reverse SDE (``sde.reverse_drift``), weak order 1; one evaluation per step, the last
step (``s = 0``) without noise. Explicit in the stiff linear part: stable only while ``½ (β + h λ_k) Δt < 2`` at
every resolved mode, so heat processes (``κ > 0``) need more steps on finer grids. Default: 1000 uniform steps."""

exponential_ancestral = Sampler("exponential_ancestral", ExponentialBridge(eta=1.0), default_steps=100, grid=power_times)
"""The exact per-mode Gaussian bridge step ``x_s ~ q(x_s | x_t, x_0 = D(x_t, t))`` (``sde.bridge``): DDPM's ancestral
sampler with each mode's own ``a_k``, ``v_k``, stable on every grid at any step count. ``eta`` in ``[0, 1]`` is DDIM's
interpolation to the deterministic step. One evaluation per step; the last returns ``D(x_{t_1}, t_1)``."""

exponential_deterministic = Sampler("exponential_deterministic", ExponentialBridge(eta=0.0), default_steps=100,
                                    grid=power_times)
"""DDIM per mode: ``x_s = a_s D + sqrt(v_s / v_t) (x_t - a_t D)``, the exact solution of the probability-flow ODE
over the step with the denoiser held constant (first-order exponential integrator); deterministic."""

exponential_multistep = Sampler("exponential_multistep", ExponentialMultistep(order=3), default_steps=DEFAULT_STEPS,
                                grid=default_times)
"""The probability-flow ODE by an exponential multistep method per mode (DPM-Solver++(3M); ``order=2``: 2M, ``1``:
DDIM): each mode's linear part solved exactly and the denoiser interpolated in that mode's log signal-to-noise ratio
``λ_k = log a_k - ½ log v_k`` through the last ``order`` estimates — order ``order`` at one evaluation per step, no
step-size limit from the fast modes of fine grids or heat. The first steps start at lower order; the last returns
``D(x_{t_1}, t_1)``. The default of :func:`sample`: 48 steps on :func:`default_times`."""

exponential_corrected = Sampler("exponential_corrected", ExponentialMultistep(order=3, corrector=True),
                                default_steps=DEFAULT_STEPS, grid=default_times)
""":data:`exponential_multistep` with the corrector in each mode's exponential frame (UniC of Zhao et al. 2023,
integrated exactly; ``corrector=True``): each evaluation ``D(x̃_t, t)`` at the predicted state also redoes the step
into ``t`` with ``D`` interpolated through it (the previous ``order`` estimates and the new one), and the predictor
leaves from the corrected state — one evaluation per step, order ``order + 1``. The final step returns
``D(x̃_{t_1}, t_1)``, so the last correction is skipped. The default of a trained run (:data:`RUN_SAMPLER`), on a
grid optimised against its own exact law for the grid sampled (``optimise_times(..., corrector=True)``): there it
meets all 12 of issue 18's targets (``benchmarks/grid_per_resolution.py``; the 3M sampler 11)."""

RUN_SAMPLER = exponential_corrected
"""The sampler of :meth:`TrainedRun.sample <hilbert_diffusion.trained.TrainedRun.sample>` and the command line's
``sample``, on the grid :meth:`~hilbert_diffusion.trained.TrainedRun.sampling_times` optimises for the grid sampled.
(:func:`sample` without a run keeps :data:`exponential_multistep` on :func:`default_times`, where it was chosen.)"""

heun_ode = Sampler("heun_ode", RungeKutta(tableau=HEUN, final=EULER), default_steps=25, grid=power_times)
"""The probability-flow ODE ``dx_k = [-½(β + h λ_k) x_k - ½ g q_k ∂_k log p_t] dt`` by Heun's method: second order,
two evaluations per step except the last, a plain Euler step into ``t = 0`` (``2·steps - 1`` in all, as EDM)."""

rk3_ode = Sampler("rk3_ode", RungeKutta(tableau=KUTTA3, final=MIDPOINT), default_steps=16, grid=power_times)
"""The probability-flow ODE by Kutta's third-order method, stages at ``t``, ``t + h/2``, ``s``:
``x_s = x + h (k_1 + 4 k_2 + k_3) / 6``; the last step is the explicit midpoint rule (``3·steps - 1`` in all)."""

predictor_corrector = Sampler("predictor_corrector", PredictorCorrector(snr=0.16), default_steps=100, grid=power_times)
"""Predictor–corrector sampling (Song et al. 2021, Alg. 2 order: correct at ``t``, then predict to ``s``).

Corrector: one Langevin move at ``t``, ``x += ε V s + sqrt(2ε) V^{1/2} ξ`` preconditioned by ``V = v(t)`` (``Q`` up
to a per-mode factor ≤ 1), step size by Song et al.'s rule ``ε = 2 (snr ‖V^{1/2} ξ‖ / ‖V s‖)²`` with L² norms by
Parseval averaged over the batch (so samples in one batch are not independent), capped at the fraction of noise the
predictor refreshes, ``Σ m var / Σ m v_s``, so the sampler converges as steps grow. Predictor: the exact bridge
step. Two evaluations per step, none for the corrector of the last (``2·steps - 1``)."""

SAMPLERS: tuple[Sampler, ...] = (exponential_multistep, exponential_corrected, rk3_ode, heun_ode, exponential_ancestral,
                                 exponential_deterministic, euler_maruyama, predictor_corrector)
"""Every unconditional sampler of the package, the default first."""


def sample(
    model: Model,
    sde: DiagonalSDE,
    *,
    num: int,
    resolution: int | Sequence[int],
    channels: int = 1,
    sampler: Sampler = exponential_multistep,
    steps: int | None = None,
    times: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    **options: Any,
) -> Tensor:
    """Draw ``num`` samples at ``resolution``: the prior exactly at that grid, then ``sampler`` on its own grid.

    The time grid is ``sampler.times(steps)`` — the grid the sampler was tuned on, with ``steps`` steps (default
    ``sampler.default_steps``) — or ``times`` (not both). Default: :data:`exponential_multistep` (order 3) with 48
    steps on :func:`default_times`, chosen from ``benchmarks/sampler_convergence.py``. ``options`` go to the sampler
    (e.g. ``order=2``). Returns ``(num, channels, *grid)``.
    """
    if num < 1:
        raise ValueError(f"num must be positive, got num={num}.")
    if times is not None and steps is not None:
        raise ValueError("give steps (the sampler's own grid with that many steps) or times (a grid of yours), not both.")
    times = sampler.times(steps) if times is None else times
    x = sde.prior_sample(num, resolution, channels=channels, generator=generator, dtype=dtype, device=device)
    return sampler(model, sde, x, times, generator=generator, progress=progress, **options)


def __getattr__(name: str):  # the exact law moved beside the Gaussian oracle; the old import path still works
    if name == "gaussian_sampler_law":
        from .models.gaussian import gaussian_sampler_law

        return gaussian_sampler_law
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
