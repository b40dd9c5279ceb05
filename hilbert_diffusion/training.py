"""Training a score operator by denoising score matching (:mod:`.losses`).

:func:`train` takes data shaped ``(num, channels, *grid)`` and an SDE (whose basis is the domain) and
runs AdamW with linear warm-up (then optional cosine decay), gradient clipping, an EMA of the weights,
fixed seeds, a progress bar (loss and steps/s), periodic checkpoints (:mod:`.checkpoint`) and
sample figures, with optional multi-resolution batches. Batches come from the shuffled epochs of
:mod:`.loader` (data in memory or read from disk as needed); everything else random comes from one
``torch.Generator`` seeded by ``TrainConfig.seed`` whose state is checkpointed, and the learning rate
is a pure function of the step, so ``resume=True`` continues exactly: ``S`` steps at once and
``S/2 + resume + S/2`` give bit-identical weights.

The data are normalised per channel (quadrature mean and standard deviation, :mod:`.normalization`;
stored in the checkpoint) and the model and SDE live in normalised units; see
:class:`~hilbert_diffusion.checkpoint.TrainedRun`. The run's state (weights, EMA, optimiser, generator,
step), fresh or resumed, is :mod:`.training_state`'s; here are the loop, the single optimisation step
and the checkpoint and figure hooks. The loss is reported against the Wiener baseline: the untrained
model (zero network) is the per-mode Wiener filter of the data spectrum, whose loss is estimated once
per run (``loss/wiener`` in the progress bar, ``run.config["wiener_loss"]``).

Under ``torchrun --nproc_per_node=N`` (see :mod:`.distributed`) the same call trains with
DistributedDataParallel: ``TrainConfig.batch_size`` is the *global* batch; its fields come from the
shuffled epochs of :mod:`.loader` (a pure function of the seed and the number of batches drawn), of which
each rank reads only its slice; every rank draws the global batch's times and noise from the one generator
(so its state, checkpointed, is the same on every rank and a run resumes on any number of processes),
evaluates the model on its slice of the batch with the loss scaled so that DDP's gradient average is the
gradient of the global batch mean, and steps identical weights and EMA. Rank 0 alone draws the progress
bar and writes checkpoints and figures (``out_dir`` must be shared by the ranks for ``resume``). The
weights equal one process' up to the order of floating-point summation in the all-reduce.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from .augmentation import augment, check_translate
from .bases import SpectralBasis
from .checkpoint import TrainedRun
from .datasets.lazy import LazyFields
from .distributed import DistributedContext, chunk_seed, distributed_context
from .execution import accelerate, on_device
from .interrupts import InterruptGuard, TrainingInterrupted
from .loader import batch_stream
from .losses import LogUniformTime, StratifiedTime, UniformTime, denoising_loss
from .models.fno import ScoreFNOConfig
from .normalization import Normalization
from .optimal_times import spectrum_times
from .resources import check_memory, field_bytes, model_bytes, network_bytes
from .rundir import RunDirectory, held_run_directory
from .sampling import RUN_SAMPLER
from .sde import DiagonalSDE
from .tracking import RunLog
from .training_hooks import NonFiniteGuard, RunHooks
from .training_state import RunState, check_data, loss_weights, start_or_resume

__all__ = ["TrainConfig", "Normalization", "ModelConfig", "train"]


class ModelConfig(Protocol):
    """An architecture config (a frozen dataclass, e.g. ``ScoreFNOConfig``) that builds its model."""

    def build(self, sde: DiagonalSDE, *, channels: int, data_spectrum: Sequence[Any]) -> nn.Module: ...


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Options of :func:`train`.

    Learning rate at step ``s`` (0-based): ``lr · min(1, (s+1)/warmup_steps)``, times
    ``r + (1-r)(1+cos(π p))/2`` with ``p = (s - warmup)/(steps - warmup)`` and ``r = min_lr_ratio``
    when ``cosine_decay``. EMA: ``θ̄ ← θ̄ + (1 - d_s)(θ - θ̄)`` with ``d_s = min(ema_decay, (1+s)/(10+s))``.
    ``edm_weighting`` uses the model's ``loss_weight`` (eq. P8 of :mod:`.models.fno`: one over the
    Wiener filter's expected error at ``t``) in the loss, else ``w = 1``; ``mode_weighting`` replaces it by the
    per-mode weight (P9; eq. L3 of :mod:`.losses`): each mode's error over the Wiener filter's there, so the fine
    modes of edges count as much as the coarse ones (the held-out and Wiener losses are then measured the same way);
    a number γ in (0, 1] weighs that ratio's γ-th power (``True`` is 1; smaller γ moves toward the L² loss).
    ``resolutions``: if non-empty, each batch is resampled (band-limited) to one of them, drawn
    uniformly. ``flip_axes``: grid axes (0 is the first) along which each field of a batch is mirrored with
    probability ½, independently per axis — augmentation for data whose law has that mirror symmetry (faces and
    photographs left–right: ``(1,)`` for ``(rows, columns)`` images); the forward process is diagonal in modes whose
    variances such a mirror keeps, so it stays the same. ``translate``: each field shifted by a random whole number
    of pixels in ``[-translate, translate]`` per grid axis, cyclically on the torus, mirrored at reflecting walls
    (:mod:`.augmentation`; 0: none). ``checkpoint_every`` / ``sample_every``: in steps (0: only
    at the end / never periodically; a figure is always drawn at the end when ``figure_samples > 0`` and there is an
    output directory). ``val_fraction``: the last fields held out, their loss logged at every checkpoint
    (:func:`~.loader.split_rows`); with ``keep_best`` the checkpoint of the lowest held-out loss is also kept in
    ``out_dir/best/`` and :func:`train` returns it (early stopping by held-out loss; ``load(out_dir / "best")``).
    ``workers``: processes reading batches ahead (0: the training process reads
    them; :func:`~.loader.batch_stream`). A step whose loss or gradient is not finite is skipped (no update)
    and reported; after ``nonfinite_patience`` such steps in a row the last good state (the newest checkpoint,
    or the start) is restored in memory, and if that does not help either, training stops with an error. ``bf16``: the
    network's forward under bfloat16 autocast (the SDE, the loss and the preconditioning stay in full precision);
    ``compile``: its backbone through ``torch.compile`` (:mod:`.execution`). ``optimised_steps``: at the end, a grid
    of that many steps for :data:`~.sampling.RUN_SAMPLER` optimised at the training grid against the exact law of the
    data spectrum is stored in the run (``config["times"]``; 0: none, and the run samples on the samplers' own grids).
    """

    steps: int = 2000
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    cosine_decay: bool = True
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    time_sampler: UniformTime | StratifiedTime | LogUniformTime = StratifiedTime(1e-3)
    edm_weighting: bool = True
    mode_weighting: bool | float = False
    normalize: bool = True
    resolutions: tuple[int | tuple[int, ...], ...] = ()
    flip_axes: tuple[int, ...] = ()
    translate: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0
    sample_steps: int = 50
    figure_samples: int = 4
    nonfinite_patience: int = 3
    optimised_steps: int = 16
    bf16: bool = False
    compile: bool = False
    val_fraction: float = 0.0
    keep_best: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "keep_checkpoints", "sample_steps", "nonfinite_patience")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("warmup_steps", "checkpoint_every", "sample_every", "figure_samples"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be ≥ 0, got {getattr(self, name)}.")
        if not self.lr > 0 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError(f"TrainConfig needs lr > 0, weight_decay ≥ 0, grad_clip > 0; got {self}.")
        if self.optimised_steps < 0 or self.optimised_steps in (1, 2):
            raise ValueError(f"TrainConfig.optimised_steps must be 0 (none) or at least 3, got {self.optimised_steps}.")
        if not 0 <= self.val_fraction < 1 or self.workers < 0:
            raise ValueError(f"TrainConfig needs val_fraction in [0, 1) and workers ≥ 0, got {self.val_fraction}, "
                             f"{self.workers}.")
        if not 0 <= float(self.mode_weighting) <= 1:
            raise ValueError(f"TrainConfig.mode_weighting must be True, False or an exponent in [0, 1], got "
                             f"{self.mode_weighting}.")
        if self.keep_best and not self.val_fraction > 0:
            raise ValueError("TrainConfig.keep_best chooses by the held-out loss: set val_fraction > 0 too "
                             "(--val-fraction 0.1 on the command line).")
        if not 0 <= self.ema_decay < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"ema_decay must be in [0, 1) and min_lr_ratio in [0, 1], got {self}.")
        object.__setattr__(self, "resolutions", tuple(r if isinstance(r, int) else tuple(r) for r in self.resolutions))
        object.__setattr__(self, "flip_axes", tuple(self.flip_axes))
        axes = self.flip_axes
        if any(not isinstance(a, int) or a < 0 for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"TrainConfig.flip_axes must be distinct grid axes ≥ 0 (0 is the first), got {axes}.")
        if not isinstance(self.translate, int) or isinstance(self.translate, bool) or self.translate < 0:
            raise ValueError(f"TrainConfig.translate must be a whole number of pixels ≥ 0, got {self.translate!r}.")

    def learning_rate(self, step: int) -> float:
        """The learning rate used at (0-based) ``step``."""
        lr = self.lr * min(1.0, (step + 1) / max(1, self.warmup_steps))
        if self.cosine_decay and step >= self.warmup_steps:
            span = max(1, self.steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            lr *= self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return lr


# --------------------------------------------------------------------------------------- training
def train(
    data: Tensor | np.ndarray | Any,
    *,
    sde: DiagonalSDE,
    model: ModelConfig = ScoreFNOConfig(),
    config: TrainConfig = TrainConfig(),
    out_dir: str | os.PathLike | RunDirectory | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    max_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    device: str | torch.device | None = None,
    log_dir: str | os.PathLike | None = None,
) -> TrainedRun:
    """Train a score operator on ``data`` ``(num, channels, *grid)`` for the forward process ``sde``.

    Args:
        data: training fields on one grid of ``sde.basis``: a tensor, a numpy array, an object with a
            ``.data`` tensor (a :class:`~hilbert_diffusion.datasets.FieldDataset`), or fields read from disk as
            needed (:class:`~hilbert_diffusion.datasets.lazy.LazyFields`: memory-mapped ``.npy``, HDF5, shards),
            whose normalisation and spectrum are then computed in one streaming pass.
        sde: the forward process; its basis is the domain (e.g. ``default_sde(basis, grid)``).
        model: the architecture, e.g. ``ScoreFNOConfig(...)`` or ``SphericalScoreConfig(...)``.
        config: optimisation, schedule, EMA, checkpoint and figure options.
        out_dir: run directory for checkpoints (``checkpoint-<step>/``) and figures (``samples/``);
            ``None`` trains in memory only. It is locked for the call (:class:`~hilbert_diffusion.rundir.RunDirectory`;
            a second trainer on it is refused with the holder's pid) unless a held ``RunDirectory`` is passed,
            and temporary folders a killed run left in it are removed.
        resume: continue from the newest checkpoint in ``out_dir`` up to ``config.steps`` (the SDE,
            architecture and data grid must match; normalisation and data spectrum are the stored ones).
            With the same ``config`` the continuation is bit-exact; a larger ``steps`` extends the run
            (the cosine schedule is then recomputed for the new total). Any other change of the data, model,
            SDE, normalisation or training options is refused naming the field (:mod:`.resume`).
        progress: show a tqdm bar with the loss, its ratio to the Wiener filter's and steps/s, and a
            final line with that ratio.
        callback: ``callback(step, loss)`` after every optimisation step.
        max_seconds: stop (with a checkpoint, saying so) once this much time has passed on ``clock``, even
            before ``config.steps``; the cosine schedule still refers to ``config.steps``.
        clock: what ``max_seconds`` is measured on: wall-clock time (the default), or ``time.process_time`` for a
            CPU budget that does not shrink when other work shares the cores.
        device: where the network and the batches live (``"auto"``, ``"cpu"``, ``"cuda:N"``; default: the CPU, or
            ``cuda:LOCAL_RANK`` under ``torchrun``); the data set, the draws and the returned model stay on the CPU.
        log_dir: also log to TensorBoard there (:mod:`.tracking`); ``out_dir/metrics.jsonl`` is always written.

    SIGINT or SIGTERM during training finishes the step, writes a checkpoint and raises
    :class:`~hilbert_diffusion.interrupts.TrainingInterrupted` (a ``KeyboardInterrupt``; a second signal
    stops at once). The memory the request needs is estimated and refused before anything is built if the
    machine lacks it (:mod:`.resources`).

    Returns:
        A :class:`~hilbert_diffusion.checkpoint.TrainedRun` holding the EMA model (eval mode, on the CPU);
        ``run.config["wiener_loss"]`` is the untrained model's (the Wiener filter's) loss.

    Under ``torchrun`` every rank calls ``train`` with the same arguments; ``config.batch_size`` is the
    global batch (at least the number of processes), see the module docstring.
    """
    context = on_device(distributed_context(), device)
    _check_options(model, config, context, max_seconds, sde.basis.ndim)
    if config.keep_best and out_dir is None:
        raise ValueError("TrainConfig.keep_best keeps the best checkpoint in out_dir/best/: give an out_dir.")
    spec = getattr(data, "spec", None)  # a FieldDataset's recipe, stored for reproducibility
    spec = spec if isinstance(spec, dict) else None
    raw = check_data(data, sde)
    check_translate(sde.basis, config.translate, tuple(raw.shape[2:]))
    check_memory(training_bytes(raw, sde=sde, model=model, config=config),
                 what=f"training on {tuple(raw.shape)} with batch_size {config.batch_size}",
                 fix="lower batch_size or the model's hidden_channels, or train on a coarser grid")
    with held_run_directory(out_dir, resume=resume, lock=context.is_main) as path, InterruptGuard() as interrupts:
        state = start_or_resume(raw, sde=sde, model=model, config=config, out_dir=path, resume=resume, spec=spec,
                                device=context.device, context=context)
        accelerate(state.net, bf16=config.bf16, compile=config.compile)
        log = RunLog(path, log_dir=log_dir, start_step=state.step, enabled=context.is_main)
        hooks = RunHooks(state, sde=sde, config=config, out_dir=path, context=context, log=log)
        try:
            return _train_steps(state, sde=sde, config=config, context=context, hooks=hooks, interrupts=interrupts,
                                progress=progress, callback=callback, max_seconds=max_seconds, clock=clock)
        finally:
            log.close()


def training_bytes(data: Tensor | LazyFields, *, sde: DiagonalSDE, model: Any, config: TrainConfig) -> float:
    """Estimated peak memory of training ``model`` on ``data`` (see :mod:`.resources`): the data (raw and
    normalised; nothing for lazily read data), one batch through the network and back at the largest training
    grid, the weights."""
    grids = [tuple(data.shape[2:])] + [sde.basis.grid(r) for r in config.resolutions]
    points = max(math.prod(grid) for grid in grids)
    width, layers = getattr(model, "hidden_channels", 32), getattr(model, "n_layers", 4)
    modes = getattr(model, "n_modes", 12)
    modes = math.prod(modes) if isinstance(modes, tuple) else modes ** sde.basis.ndim
    channels = data.shape[1]
    stored = 0 if isinstance(data, LazyFields) else data.shape[0]
    return (field_bytes(stored, channels, math.prod(data.shape[2:]), copies=3)
            + network_bytes(batch=config.batch_size, channels=channels, points=points, width=width, layers=layers)
            + model_bytes(channels=channels, width=width, layers=layers, modes=modes))


def _train_steps(state: RunState, *, sde: DiagonalSDE, config: TrainConfig, context: DistributedContext,
                 hooks: RunHooks, interrupts: InterruptGuard, progress: bool,
                 callback: Callable[[int, float], None] | None, max_seconds: float | None,
                 clock: Callable[[], float]) -> TrainedRun:
    """The loop of :func:`train` on a started or resumed ``state``, its final checkpoint and figure."""
    from tqdm import tqdm

    bar = tqdm(total=config.steps, initial=state.step, unit="step", disable=not progress or not context.is_main,
               dynamic_ncols=True)
    report = bar.write if context.is_main else (lambda message: None)
    rng_devices = [context.device] if context.device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        _seed_rank_local(chunk_seed(config.seed, context.rank), context.device)
        try:
            stop, running = _run_steps(state, sde=sde, config=config, context=context, bar=bar, hooks=hooks,
                                       report=report, callback=callback, max_seconds=max_seconds,
                                       clock=clock, interrupts=interrupts)
        finally:
            bar.close()
    interrupted = stop == "interrupt" or context.all_agree(interrupts.requested)
    if config.optimised_steps and not interrupted:  # deterministic: every rank stores the same grid
        state.run_config["times"] = spectrum_times(sde, state.spectra, state.fields.grid, steps=config.optimised_steps,
                                                   corrector=RUN_SAMPLER.method.corrector, transfer=False)
    final = hooks.checkpoint()
    if not interrupted:
        hooks.figure(running)
    context.barrier()  # every rank returns once rank 0's final checkpoint exists
    if interrupted:
        raise TrainingInterrupted(interrupts.signum or signal.SIGINT, step=state.step, checkpoint=final)
    if context.is_main and stop == "time":
        print(f"stopped at step {state.step} of {config.steps}: the time limit of {max_seconds / 60:.3g} min "
              f"(--max-minutes / max_seconds) was reached; resume with --resume (resume=True)", file=sys.stderr)
    if context.is_main and progress and running is not None:
        print(f"final loss {running:.3g} = {running / state.wiener_loss:.2f} × the Wiener filter's "
              f"{state.wiener_loss:.3g}", file=sys.stderr)
    if config.keep_best and (best := hooks.best()) is not None:
        return best
    return TrainedRun(model=state.ema.model.cpu().eval(), sde=sde, normalization=state.normalization, step=state.step,
                      path=final, config=state.run_config)


def _check_options(model: Any, config: TrainConfig, context: DistributedContext, max_seconds: float | None,
                   sde_ndim: int) -> None:
    if max_seconds is not None and not max_seconds >= 0:
        raise ValueError(f"max_seconds must be ≥ 0 (a time limit), got {max_seconds}.")
    if not callable(getattr(model, "build", None)):
        raise ValueError(
            f"model must be an architecture config such as ScoreFNOConfig(...) (train builds the network), got "
            f"{type(model).__name__}; to train your own nn.Module, write the loop around denoising_loss."
        )
    if config.flip_axes and max(config.flip_axes) >= sde_ndim:
        raise ValueError(f"TrainConfig.flip_axes={config.flip_axes}, but the data's grid is {sde_ndim}-D; "
                         f"give axes below {sde_ndim} (0 is the first).")
    if config.batch_size < context.world_size:
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is the global batch and must be at least the number of "
            f"processes ({context.world_size}); raise batch_size or launch fewer processes."
        )


def _run_steps(state: RunState, *, sde: DiagonalSDE, config: TrainConfig, context: DistributedContext, bar: Any,
               hooks: RunHooks, report: Callable[[str], None], callback: Callable[[int, float], None] | None,
               max_seconds: float | None, clock: Callable[[], float],
               interrupts: InterruptGuard) -> tuple[str, float | None]:
    """Optimisation steps up to ``config.steps``; returns why they stopped (``"done"``, ``"time"``: ``max_seconds``
    passed, ``"interrupt"``: a signal, see :mod:`.interrupts`) and the running loss."""
    weights = loss_weights(state.net, config)
    local_model = _data_parallel(state.net, context)
    guard = NonFiniteGuard(state.net, state.ema.model, state.optimizer, patience=config.nonfinite_patience,
                            report=report)
    guard.remember(state.step)
    failures, running = 0, None
    state.net.train()
    batches = batch_stream(state.fields, seed=config.seed, batch_size=config.batch_size, start=state.draws,
                           shard=context.shard(config.batch_size), workers=config.workers,
                           pin_memory=context.device.type == "cuda")
    start = clock()
    while state.step < config.steps:
        if max_seconds is not None and context.all_agree(clock() - start > max_seconds):
            return "time", running
        if context.all_agree(interrupts.requested):
            return "interrupt", running
        value, finite, grad_norm = _optimisation_step(state, local_model, batches, sde=sde, config=config,
                                                      context=context, weights=weights)
        if not finite:  # gradients are all-reduced: ranks agree
            failures += 1
            guard.report(f"non-finite loss or gradient ({value:.4g}) at step {state.step}: "
                         f"skipped the update ({failures} in a row)")
            if failures % config.nonfinite_patience == 0:
                state.step = guard.restore()
            continue
        failures = 0
        running = value if running is None else 0.98 * running + 0.02 * value  # an EMA of the loss
        bar.update(1)
        bar.set_postfix({"loss": f"{running:.4g}", "loss/wiener": f"{running / state.wiener_loss:.3f}",
                         "lr": f"{config.learning_rate(state.step - 1):.2e}"}, refresh=False)
        if callback is not None:
            callback(state.step, value)
        hooks.log.step(state.step, loss=value, lr=config.learning_rate(state.step - 1), grad_norm=grad_norm)
        hooks.after_step(running, guard)
    return "done", running


def _optimisation_step(state: RunState, local_model: nn.Module, batches: Iterator[Tensor], *, sde: DiagonalSDE,
                       config: TrainConfig, context: DistributedContext,
                       weights: dict) -> tuple[float, bool, float]:
    """One AdamW step at ``state.step`` on the next global batch; returns the batch's mean loss, whether the
    loss and gradient were finite (else no update is made and the step does not advance) and the gradient norm."""
    for group in state.optimizer.param_groups:
        group["lr"] = config.learning_rate(state.step)
    shard = context.shard(config.batch_size)
    batch = _draw_batch(state, batches, shard, sde.basis, config).to(context.device)
    # The global batch's times and noise (one generator), the model on this rank's rows only.
    per_sample = denoising_loss(_Sliced(local_model, batch, shard, context.device), batch, sde,
                                time_sampler=config.time_sampler, **weights, generator=state.generator)
    # DDP averages gradients over the W ranks: W/B × (this rank's sum) averages to the global batch mean.
    loss = per_sample[shard].sum() * (context.world_size / config.batch_size)
    value = float(context.sum(per_sample[shard].detach().sum())) / config.batch_size  # the global mean
    state.optimizer.zero_grad(set_to_none=True)
    if not math.isfinite(value):
        return value, False, math.nan
    loss.backward()
    grad_norm = float(nn.utils.clip_grad_norm_(state.net.parameters(), config.grad_clip))
    if not math.isfinite(grad_norm):
        return value, False, grad_norm
    state.optimizer.step()
    state.ema.update(state.net, state.step)
    state.step += 1
    return value, True, grad_norm


def _draw_batch(state: RunState, batches: Iterator[Tensor], shard: slice, basis: SpectralBasis,
                config: TrainConfig) -> Tensor:
    """The next global batch of the shuffled epochs (:mod:`.loader`), its fields mirrored along ``config.flip_axes``
    and shifted by up to ``config.translate`` pixels at random (:mod:`.augmentation`), and resampled to one of
    ``config.resolutions`` if any. Only this rank's rows ``shard`` are read; the others stay zero, which changes
    nothing: their loss is zero whatever they hold (:class:`_Sliced`)."""
    if config.resolutions:
        choice = int(torch.randint(len(config.resolutions), (1,), generator=state.generator))
    mine = next(batches)
    state.draws += 1
    batch = mine
    if mine.shape[0] != config.batch_size:
        batch = mine.new_zeros((config.batch_size, *mine.shape[1:]))
        batch[shard] = mine
    batch = augment(batch, basis, flip_axes=config.flip_axes, translate=config.translate, generator=state.generator)
    if config.resolutions:
        batch = basis.resample(batch, config.resolutions[choice])
    return batch


def _seed_rank_local(seed: int, device: torch.device) -> None:
    """Seed the global RNGs this rank's model may use (dropout and the like; the training draws use the
    run's own generator), inside the trainer's ``fork_rng`` so the caller's state is untouched."""
    torch.default_generator.manual_seed(seed)
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)


def _data_parallel(net: nn.Module, context: DistributedContext) -> nn.Module:
    """``net`` wrapped in DistributedDataParallel when running on several processes, else ``net``.
    Buffers are not re-broadcast: they are built identically on every rank (seeded construction)."""
    if not context.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device] if context.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=device_ids, broadcast_buffers=False)


class _Sliced:
    """The denoiser evaluated on rows ``shard`` of the batch only (on ``device``); the other rows
    return the clean data ``x0`` itself, so their loss is exactly zero and carries no gradient."""

    def __init__(self, model: nn.Module, x0: Tensor, shard: slice, device: torch.device) -> None:
        self.model, self.x0, self.shard, self.device = model, x0, shard, device

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        rows = self.shard
        out = self.model(x_t[rows].to(self.device), t[rows].to(self.device)).to(x_t.device)
        if rows.start == 0 and rows.stop == x_t.shape[0]:
            return out
        return torch.cat([self.x0[: rows.start], out, self.x0[rows.stop :]])
