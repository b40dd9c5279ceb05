"""The sampling engine: one driver for generation and zero-shot restoration.

Three pieces, each one concept:

* :class:`Run` — the validated inputs of one run (model, SDE, state ``x``, time grid, generator, and for
  restoration the observation ``(operator, y)``) and the operations every method needs at the grid of ``x``:
  per-mode coefficients, the model call, the bridge step, white noise.
* :class:`Method` — the rule of one step ``t → s`` (a frozen dataclass whose fields are its options). It may
  carry state across steps (a multistep history, SMC particles): :meth:`Method.start` builds the carry,
  :meth:`Method.advance` maps it through one step, :meth:`Method.finish` turns it into the output. It states
  its facts: order, whether it is stochastic, whether it conditions on an observation, and how many model
  evaluations a grid of ``steps`` steps costs.
* :class:`Sampler` — a method with default options, a default step count and a default time grid; calling it
  runs :func:`drive`. Every sampler and restoration method of the package is one, with one signature::

      sampler(model, sde, x, times, *, generator=None, callback=None, progress=False, **options) -> Tensor
      method(model, sde, x, times, *, operator, y, generator=None, callback=None, progress=False, **options)

:func:`drive` is the one loop: at each ``t_i > 0`` it evaluates ``D(x, t_i)`` (the model contract,
``model(x_t, t) -> E[x_0 | x_t]``, never called at ``t = 0``), reports it to ``callback(step, t, x, denoised)``
and takes the method's step. Grad mode is part of the contract: the loop runs under ``torch.no_grad()``, a
method that differentiates through the model (DPS) declares ``requires_grad`` and receives ``x`` as a leaf
with the model's output attached to it, and the output never requires grad.

Times follow the SDE's argument order everywhere: ``(s, t)`` with ``s < t`` (``sde.bridge(s, t)``); a reverse
step goes from ``t`` down to ``s``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from tqdm import tqdm

from .bases import Grid, SpectralBasis
from .sde import DiagonalSDE

if TYPE_CHECKING:
    from .restoration.operators import ObservationOperator

__all__ = ["Model", "Callback", "Run", "Method", "Sampler", "drive", "validate_times"]

Model = Callable[[Tensor, Tensor], Tensor]
"""``model(x_t, t) -> E[x_0 | x_t]`` with ``x_t`` shaped ``(batch, channels, *grid)`` and ``t`` shaped ``(batch,)``."""
Callback = Callable[[int, float, Tensor, Tensor], None]
"""``callback(step, t, x, denoised)``."""


def validate_times(times: Tensor | Sequence[float]) -> Tensor:
    """``times`` as a float64 CPU tensor, checked to decrease strictly from ``times[0] ≤ 1`` to ``times[-1] ≥ 0``."""
    times = torch.as_tensor(times, dtype=torch.float64).cpu()
    if times.dim() != 1 or len(times) < 2:
        raise ValueError(f"times must be a 1-D grid with at least 2 entries, got shape {tuple(times.shape)}.")
    if not torch.isfinite(times).all() or times[0] > 1 or times[-1] < 0 or not (times[1:] < times[:-1]).all():
        raise ValueError(
            f"times must decrease strictly from times[0] ≤ 1 to times[-1] = 0 (or ≥ 0 to stop early), got "
            f"{times.tolist()[:3]}…{times.tolist()[-2:]}; build it with uniform_times(steps) or power_times(steps)."
        )
    return times


class Run:
    """One run's validated inputs and the per-mode operations of a step at the grid of ``x``.

    ``operator`` and ``y`` (both or neither) make it a restoration run: ``y`` is checked against
    ``operator.observation_grid(grid)``, cast to ``x``'s dtype and zeroed off the observed points.
    """

    def __init__(
        self,
        model: Model,
        sde: DiagonalSDE,
        x: Tensor,
        times: Tensor | Sequence[float],
        *,
        generator: torch.Generator | None = None,
        operator: ObservationOperator | None = None,
        y: Tensor | None = None,
    ) -> None:
        self.model, self.sde, self.generator = model, sde, generator
        self.grid: Grid = sde.basis.check_field(x, "x")
        self.x = x
        self.times = validate_times(times)
        self.operator = operator
        self.y = None if operator is None and y is None else self._check_observation(operator, y)

    def _check_observation(self, operator: ObservationOperator | None, y: Tensor | None) -> Tensor:
        if operator is None or y is None:
            raise ValueError("a restoration run needs both operator= and y= (the observation y = A x + noise).")
        if operator.basis != self.basis:
            raise ValueError(
                f"the operator is defined on {operator.basis} but the SDE on {self.basis}; build both on the same basis."
            )
        operator._check_observation(y, self.grid)
        x = self.x
        if y.dim() != x.dim() or y.shape[1] != x.shape[1] or y.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"y must be shaped (batch or 1, channels, *observation grid) to match x {tuple(x.shape)}, "
                f"got {tuple(y.shape)}."
            )
        y = y.to(device=x.device, dtype=x.dtype)
        return y * operator.observed_points(self.grid).to(y.device)

    # -- per-mode coefficients at the grid of x --------------------------------------------------
    @property
    def basis(self) -> SpectralBasis:
        return self.sde.basis

    def modes(self, values: Tensor) -> Tensor:
        """A per-mode float64 quantity from the SDE, cast to the state's real dtype and device."""
        return values.to(device=self.x.device, dtype=self.x.real.dtype)

    def a(self, t: float) -> Tensor:
        return self.modes(self.sde.mean_factor(t, self.grid))

    def v(self, t: float) -> Tensor:
        return self.modes(self.sde.variance(t, self.grid))

    def bridge(self, s: float, t: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(c_t, c_0, var)`` of the bridge ``q(x_s | x_t, x_0)`` (``sde.bridge``), finite in every mode.

        Where ``a_k(s)`` underflows to 0 (``Φ_k(s) > 1490``: fine grids with ``κ > 0``) ``sde.bridge``
        divides 0/0; such a mode has forgotten the data and sits in its stationary law, and taking the
        ``a_t/a_s → 0`` limit there (``c_t = 0``, ``var = v_s``) keeps its marginal law at ``s`` exact.
        """
        c_t, c_0, var = self.sde.bridge(s, t, self.grid)
        forgotten = self.sde.mean_factor(s, self.grid) == 0
        c_t = torch.where(forgotten, 0.0, c_t)
        var = torch.where(forgotten, self.sde.variance(s, self.grid), var)
        return self.modes(c_t), self.modes(c_0), self.modes(var)

    def bridge_sample(self, x: Tensor, x0: Tensor, s: float, t: float) -> Tensor:
        """A draw of ``x_s ~ q(x_s | x_t = x, x_0 = x0)`` (``x0`` itself at ``s = 0``, where ``var = 0``)."""
        c_t, c_0, var = (c.to(device=x.device, dtype=x.real.dtype) for c in self.bridge(s, t))
        c = c_t * self.basis.forward(x) + c_0 * self.basis.forward(x0) + var.sqrt() * self.noise(x)
        return self.field(c)

    # -- the model, noise, fields ----------------------------------------------------------------
    def denoise(self, x: Tensor, t: float) -> Tensor:
        """``D(x, t)``, the model evaluated at ``t > 0`` on the grid of ``x``."""
        t_batch = torch.full((x.shape[0],), t, dtype=x.real.dtype, device=x.device)
        denoised = self.model(x, t_batch)
        if denoised.shape != x.shape:
            raise ValueError(
                f"the model returned shape {tuple(denoised.shape)} for input {tuple(x.shape)}; a score model must return "
                f"the denoised field E[x_0 | x_t] with the input's shape."
            )
        return denoised

    def noise(self, like: Tensor) -> Tensor:
        """White-noise coefficients (``E|ξ_k|² = 1``) for fields shaped like ``like``."""
        return self.sde.white_coefficients(like, generator=self.generator)

    def field(self, c: Tensor) -> Tensor:
        return self.basis.inverse(c, self.grid)

    # -- the observation ----------------------------------------------------------------------------
    def observation(self) -> tuple[ObservationOperator, Tensor]:
        """``(operator, y)``; a ValueError for an unconditional run."""
        if self.operator is None or self.y is None:
            raise ValueError("this method restores an observation: pass operator= and y= (see hilbert_diffusion.restoration).")
        return self.operator, self.y

    def pinv(self, y: Tensor) -> Tensor:
        """``A⁺ y`` on the grid of ``x``."""
        return self.observation()[0].pseudo_inverse(y, self.grid)

    @cached_property
    def known(self) -> Tensor:
        """``A⁺ y``: the observed part of the field, placed on the grid of ``x``."""
        return self.pinv(self.observation()[1])

    def project_observed(self, x: Tensor, target: Tensor) -> Tensor:
        """``(I - A⁺A) x + A⁺A target``: ``x`` with its observed part replaced by that of ``target``."""
        operator = self.observation()[0]
        return x + self.pinv(operator.forward(target) - operator.forward(x))


@dataclasses.dataclass(frozen=True)
class Method(ABC):
    """The rule of one reverse step ``t → s``; dataclass fields are its options (validated in ``__post_init__``).

    The carry defaults to the state ``x`` itself; methods with memory override :meth:`start`, :meth:`position`
    and :meth:`finish`.
    """

    conditional: ClassVar[bool] = False
    """Whether the method restores an observation (needs ``operator=`` and ``y=``)."""
    requires_grad: ClassVar[bool] = False
    """Whether :meth:`advance` differentiates through the model (receives ``x`` as a leaf requiring grad)."""

    @property
    @abstractmethod
    def order(self) -> int:
        """Convergence order in the step size (with an exact model)."""

    @property
    @abstractmethod
    def stochastic(self) -> bool:
        """Whether the output depends on the generator (not only on ``x``)."""

    def evaluations(self, steps: int) -> int:
        """Model evaluations per output field of a run over ``steps`` steps ending at ``t = 0`` (an SMC particle
        counts as one field)."""
        return steps

    def start(self, run: Run) -> Any:
        return run.x

    def position(self, carry: Any) -> Tensor:
        """The fields the model is evaluated at, at the start of a step."""
        return carry

    @abstractmethod
    def advance(self, run: Run, carry: Any, x: Tensor, denoised: Tensor, s: float, t: float) -> Any:
        """One step ``t → s`` given ``denoised = D(x, t)`` at ``x = position(carry)``; returns the new carry."""

    def finish(self, run: Run, carry: Any) -> Tensor:
        return carry


def drive(
    run: Run, method: Method, *, callback: Callback | None = None, progress: bool = False, name: str = "sampling"
) -> Tensor:
    """The one loop: at each ``t_i > 0`` evaluate ``D(x, t_i)``, report it, take ``method``'s step to ``t_{i+1}``."""
    if method.conditional:
        run.observation()
    elif run.operator is not None:
        raise ValueError(f"{name} is an unconditional sampler and ignores observations; use a restoration method.")
    times = run.times
    steps: Iterable[int] = range(len(times) - 1)
    if progress:
        steps = tqdm(steps, desc=name, leave=False)
    with torch.no_grad():
        carry = method.start(run)
        for i in steps:
            t, s = float(times[i]), float(times[i + 1])
            x = method.position(carry)
            if method.requires_grad:
                x = x.detach().requires_grad_(True)
                with torch.enable_grad():
                    denoised = run.denoise(x, t)
            else:
                denoised = run.denoise(x, t)
            if callback is not None:
                callback(i, t, x.detach(), denoised.detach())
            carry = method.advance(run, carry, x, denoised, s, t)
        return method.finish(run, carry).detach()


@dataclasses.dataclass(frozen=True)
class Sampler:
    """A method with its defaults and facts; calling it runs :func:`drive`.

    ``name`` labels progress bars and messages; ``default_steps`` and ``grid`` (``steps -> times``) give the time
    grid the method was tuned on (:meth:`times`). Facts: :attr:`order`, :attr:`stochastic`, :attr:`conditional`,
    :meth:`evaluations`. ``sampler(..., **options)`` runs with options replaced for that call;
    :meth:`configure` returns the sampler with new default options (and the facts that go with them).
    """

    name: str
    method: Method
    default_steps: int
    grid: Callable[[int], Tensor]

    @property
    def order(self) -> int:
        return self.method.order

    @property
    def stochastic(self) -> bool:
        return self.method.stochastic

    @property
    def conditional(self) -> bool:
        return self.method.conditional

    def evaluations(self, steps: int | None = None) -> int:
        """Model evaluations of a run over ``steps`` steps (default :attr:`default_steps`) ending at ``t = 0``."""
        return self.method.evaluations(self.default_steps if steps is None else steps)

    def times(self, steps: int | None = None) -> Tensor:
        """The default time grid with ``steps`` steps (default :attr:`default_steps`)."""
        return self.grid(self.default_steps if steps is None else steps)

    def configure(self, **options: Any) -> Sampler:
        """This sampler with ``options`` as its new defaults, e.g. ``exponential_multistep.configure(order=2)``."""
        return dataclasses.replace(self, method=self._with(options))

    def _with(self, options: dict[str, Any]) -> Method:
        known = {f.name for f in dataclasses.fields(self.method)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"{self.name} has no option {', '.join(unknown)}; its options are {sorted(known) or 'none'}.")
        return dataclasses.replace(self.method, **options)

    def __call__(
        self,
        model: Model,
        sde: DiagonalSDE,
        x: Tensor,
        times: Tensor | Sequence[float],
        *,
        operator: ObservationOperator | None = None,
        y: Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
        progress: bool = False,
        **options: Any,
    ) -> Tensor:
        method = self._with(options) if options else self.method
        run = Run(model, sde, x, times, generator=generator, operator=operator, y=y)
        return drive(run, method, callback=callback, progress=progress, name=self.name)

    def __repr__(self) -> str:
        return f"Sampler({self.name}, {self.method})"
