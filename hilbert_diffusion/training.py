"""Training a score operator by denoising score matching (:mod:`.losses`).

:func:`train` takes data shaped ``(num, channels, *grid)`` and an SDE (whose basis is the domain) and
runs AdamW with linear warm-up (then optional cosine decay), gradient clipping, an EMA of the weights,
fixed seeds, a progress bar (loss and steps/s), periodic checkpoints (:mod:`.checkpoint`) and
sample figures, with optional multi-resolution batches. Everything random comes from one
``torch.Generator`` seeded by ``TrainConfig.seed`` whose state is checkpointed, and the learning rate
is a pure function of the step, so ``resume=True`` continues exactly: ``S`` steps at once and
``S/2 + resume + S/2`` give bit-identical weights.

The data are normalised per channel (mean, standard deviation; stored in the checkpoint) and the
model and SDE live in normalised units; see :class:`~hilbert_diffusion.checkpoint.TrainedRun`.

Under ``torchrun --nproc_per_node=N`` (see :mod:`.distributed`) the same call trains with
DistributedDataParallel: ``TrainConfig.batch_size`` is the *global* batch; every rank draws the
global batch's indices, times and noise from the one generator (so its state, checkpointed, is the
same on every rank and a run resumes on any number of processes), evaluates the model on its slice
of the batch with the loss scaled so that DDP's gradient average is the gradient of the global batch
mean, and steps identical weights and EMA. Rank 0 alone draws the progress bar and writes
checkpoints and figures (``out_dir`` must be shared by the ranks for ``resume``). The weights equal
one process' up to the order of floating-point summation in the all-reduce.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .checkpoint import (
    TrainedRun,
    checkpoint_path,
    list_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from .config import from_config, to_config
from .distributed import DistributedContext, chunk_seed, distributed_context
from .figures import save_sample_figure
from .losses import StratifiedTime, UniformTime, denoising_loss
from .models.fno import EmpiricalSpectrum, ScoreFNOConfig, clean_state_dict
from .normalization import Normalization
from .sde import DiagonalSDE

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
    Wiener filter's expected error at ``t``) in the loss, else ``w = 1``.
    ``resolutions``: if non-empty, each batch is resampled (band-limited) to one of them, drawn
    uniformly. ``checkpoint_every`` / ``sample_every``: in steps (0: only at the end / never
    periodically; a figure is always drawn at the end when ``figure_samples > 0`` and there is an
    output directory). A step whose loss or gradient is not finite is skipped (no update) and reported;
    after ``nonfinite_patience`` such steps in a row the last good state (the newest checkpoint, or the
    start) is restored in memory, and if that does not help either, training stops with an error.
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
    time_sampler: UniformTime | StratifiedTime = StratifiedTime(1e-3)
    edm_weighting: bool = True
    normalize: bool = True
    resolutions: tuple[int | tuple[int, ...], ...] = ()
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    sample_every: int = 0
    sample_steps: int = 50
    figure_samples: int = 4
    nonfinite_patience: int = 3

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
        if not 0 <= self.ema_decay < 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"ema_decay must be in [0, 1) and min_lr_ratio in [0, 1], got {self}.")
        object.__setattr__(self, "resolutions", tuple(r if isinstance(r, int) else tuple(r) for r in self.resolutions))

    def learning_rate(self, step: int) -> float:
        """The learning rate used at (0-based) ``step``."""
        lr = self.lr * min(1.0, (step + 1) / max(1, self.warmup_steps))
        if self.cosine_decay and step >= self.warmup_steps:
            span = max(1, self.steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            lr *= self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        return lr


# --------------------------------------------------------------------------------------- figures
# --------------------------------------------------------------------------------------- training
def _check_data(data: Any, sde: DiagonalSDE) -> Tensor:
    basis = getattr(data, "basis", None)
    if basis is not None and basis != sde.basis:
        raise ValueError(f"the dataset lives on {basis} but the SDE on {sde.basis}; build the SDE on the dataset's basis.")
    data = getattr(data, "data", data)  # a dataset object with a .data tensor, or the tensor itself
    if not isinstance(data, Tensor):
        raise ValueError(f"data must be a tensor (num, channels, *grid) or have a .data tensor, got {type(data).__name__}.")
    if data.dim() != sde.basis.ndim + 2 or data.shape[0] < 1:
        raise ValueError(
            f"data must be shaped (num, channels, *grid) with {sde.basis.ndim} grid axes for "
            f"{type(sde.basis).__name__}, got {tuple(data.shape)}."
        )
    sde.basis.grid_of(data)
    if not torch.isfinite(data).all():
        raise ValueError("data contain NaN or inf.")
    return data.detach().cpu().float()


def _run_config(sde, model: ModelConfig, channels, spectra, normalization, config: TrainConfig, data, spec) -> dict:
    return {
        "sde": to_config(sde),
        "model": {
            "config": to_config(model),
            "channels": channels,
            "data_spectrum": [to_config(s) for s in spectra],
        },
        "normalization": to_config(normalization),
        "train": to_config(config),
        "data": {"num": int(data.shape[0]), "grid": list(data.shape[2:]), "spec": spec},
    }


class _EMA:
    """Exponential moving average of a model's state (parameters and persistent buffers)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        # By name, persistent state only: lazily built caches (e.g. SFNO's transforms) may differ.
        current = model.state_dict(keep_vars=True)
        for name, avg in self.model.state_dict(keep_vars=True).items():
            if not isinstance(avg, Tensor):
                continue
            if avg.is_floating_point() or avg.is_complex():
                avg.data.lerp_(current[name].data, 1 - decay)
            else:
                avg.data.copy_(current[name].data)


def train(
    data: Tensor | Any,
    *,
    sde: DiagonalSDE,
    model: ModelConfig = ScoreFNOConfig(),
    config: TrainConfig = TrainConfig(),
    out_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    max_seconds: float | None = None,
) -> TrainedRun:
    """Train a score operator on ``data`` ``(num, channels, *grid)`` for the forward process ``sde``.

    Args:
        data: training fields on one grid of ``sde.basis`` (or an object with a ``.data`` tensor).
        sde: the forward process; its basis is the domain.
        model: the architecture, e.g. ``ScoreFNOConfig(...)`` or ``SphericalScoreConfig(...)``.
        config: optimisation, schedule, EMA, checkpoint and figure options.
        out_dir: run directory for checkpoints (``checkpoint-<step>/``) and figures (``samples/``);
            ``None`` trains in memory only.
        resume: continue from the newest checkpoint in ``out_dir`` up to ``config.steps`` (the SDE,
            architecture and data grid must match; normalisation and data spectrum are the stored ones).
            With the same ``config`` the continuation is bit-exact; a larger ``steps`` extends the run
            (the cosine schedule is then recomputed for the new total).
        progress: show a tqdm bar with the loss and steps/s.
        callback: ``callback(step, loss)`` after every optimisation step.
        max_seconds: stop (with a checkpoint) once this much wall-clock time has passed, even before
            ``config.steps``; the cosine schedule still refers to ``config.steps``.

    Returns:
        A :class:`~hilbert_diffusion.checkpoint.TrainedRun` holding the EMA model (eval mode, on the CPU).

    Under ``torchrun`` every rank calls ``train`` with the same arguments; ``config.batch_size`` is the
    global batch (at least the number of processes), see the module docstring.
    """
    from tqdm import tqdm

    context = distributed_context()
    if config.batch_size < context.world_size:
        raise ValueError(
            f"TrainConfig.batch_size={config.batch_size} is the global batch and must be at least the number of "
            f"processes ({context.world_size}); raise batch_size or launch fewer processes."
        )
    spec = getattr(data, "spec", None)  # a FieldDataset's recipe, stored for reproducibility
    spec = spec if isinstance(spec, dict) else None
    data = _check_data(data, sde)
    basis = sde.basis
    channels = data.shape[1]
    out_dir = Path(out_dir) if out_dir is not None else None
    checkpoint = None
    if resume:
        if out_dir is None or not list_checkpoints(out_dir):
            raise ValueError(f"resume=True but {out_dir} holds no checkpoint to resume; train without resume first.")
        checkpoint = read_checkpoint(out_dir)
        stored = checkpoint.config
        if stored["sde"] != to_config(sde) or stored["model"]["config"] != to_config(model):
            raise ValueError(
                f"cannot resume {checkpoint.path}: its SDE or model config differs from the one given; "
                f"pass the same sde and model (see its {checkpoint.path.name}/checkpoint.json)."
            )
        if stored["model"]["channels"] != channels or stored["data"]["grid"] != list(data.shape[2:]):
            raise ValueError(
                f"cannot resume {checkpoint.path}: it was trained on {stored['model']['channels']} channels on grid "
                f"{stored['data']['grid']}, the data given are {tuple(data.shape[1:])}."
            )
        normalization = from_config(stored["normalization"])
        spectra = [from_config(s) for s in stored["model"]["data_spectrum"]]
    else:
        if out_dir is not None and list_checkpoints(out_dir):
            raise ValueError(f"{out_dir} already holds a run; pass resume=True to continue it or choose another out_dir.")
        normalization = Normalization.fit(data, basis=basis, enabled=config.normalize)
        spectra = list(EmpiricalSpectrum.estimate(normalization.encode(data), basis))
    x = normalization.encode(data)
    run_config = _run_config(sde, model, channels, spectra, normalization, config, data, spec)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = model.build(sde, channels=channels, data_spectrum=spectra)
    net.to(context.device)
    ema = _EMA(net, config.ema_decay)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    step = 0
    if checkpoint is not None:
        net.load_state_dict(checkpoint.prefixed("model"))
        ema.model.load_state_dict(checkpoint.prefixed("ema"))
        state = checkpoint.training_state()
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step = int(state["step"])

    def save() -> Path | None:
        if out_dir is None:
            return None
        if not context.is_main:
            return checkpoint_path(out_dir, step)
        tensors = {f"model.{k}": v for k, v in clean_state_dict(net).items()}
        tensors.update({f"ema.{k}": v for k, v in clean_state_dict(ema.model).items()})
        state = {"optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": step}
        return write_checkpoint(out_dir, step=step, config=run_config, tensors=tensors, training_state=state,
                                keep=config.keep_checkpoints)

    def figure() -> None:
        if out_dir is None or config.figure_samples < 1 or not context.is_main:
            return
        averaged = copy.deepcopy(ema.model).cpu().eval()
        run = TrainedRun(model=averaged, sde=sde, normalization=normalization, step=step, config=run_config)
        figure_gen = torch.Generator().manual_seed(config.seed + 1)  # separate: figures never disturb training
        samples = run.sample(config.figure_samples, tuple(data.shape[2:]), steps=config.sample_steps, generator=figure_gen)
        save_sample_figure(samples, out_dir / "samples" / f"step_{step:08d}.png", title=f"step {step}")

    weight = net.loss_weight if config.edm_weighting else None
    local_model = _data_parallel(net, context)
    bar = tqdm(total=config.steps, initial=step, unit="step", disable=not progress or not context.is_main,
               dynamic_ncols=True)
    running = None
    guard = _NonFiniteGuard(net, ema.model, optimizer, patience=config.nonfinite_patience,
                            report=bar.write if context.is_main else (lambda message: None))
    guard.remember(step)
    failures = 0
    net.train()
    start = time.monotonic()
    rng_devices = [context.device] if context.device.type == "cuda" else []
    with torch.random.fork_rng(devices=rng_devices):
        _seed_rank_local(chunk_seed(config.seed, context.rank), context.device)
        try:
            while step < config.steps:
                if max_seconds is not None and context.all_agree(time.monotonic() - start > max_seconds):
                    break
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate(step)
                if config.resolutions:
                    choice = int(torch.randint(len(config.resolutions), (1,), generator=generator))
                index = torch.randint(x.shape[0], (config.batch_size,), generator=generator)
                batch = x[index]
                if config.resolutions:
                    batch = basis.resample(batch, config.resolutions[choice])
                # The global batch's times and noise (one generator), the model on this rank's rows only.
                shard = context.shard(config.batch_size)
                per_sample = denoising_loss(_Sliced(local_model, batch, shard, context.device), batch, sde,
                                            time_sampler=config.time_sampler, weight=weight, generator=generator)
                # DDP averages gradients over the W ranks: W/B × (this rank's sum) averages to the global batch mean.
                loss = per_sample[shard].sum() * (context.world_size / config.batch_size)
                value = float(context.sum(per_sample[shard].detach().sum())) / config.batch_size  # the global mean
                optimizer.zero_grad(set_to_none=True)
                if math.isfinite(value):
                    loss.backward()
                    grad_norm = float(nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip))
                if not (math.isfinite(value) and math.isfinite(grad_norm)):  # gradients are all-reduced: ranks agree
                    failures += 1
                    guard.report(f"non-finite loss or gradient ({value:.4g}) at step {step}: "
                                 f"skipped the update ({failures} in a row)")
                    if failures % config.nonfinite_patience == 0:
                        step = guard.restore()
                    continue
                failures = 0
                optimizer.step()
                ema.update(net, step)
                step += 1
                running = value if running is None else 0.98 * running + 0.02 * value
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4g}", lr=f"{config.learning_rate(step - 1):.2e}", refresh=False)
                if callback is not None:
                    callback(step, value)
                if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                    save()
                    guard.remember(step)
                if config.sample_every and step % config.sample_every == 0 and step < config.steps:
                    figure()
        finally:
            bar.close()
    final = save()
    figure()
    context.barrier()  # every rank returns once rank 0's final checkpoint exists
    return TrainedRun(model=ema.model.cpu().eval(), sde=sde, normalization=normalization, step=step, path=final, config=run_config)


class _NonFiniteGuard:
    """The last good training state, kept in memory, and the bookkeeping of non-finite steps."""

    def __init__(self, net: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, *, patience: int,
                 report: Callable[[str], None]) -> None:
        self.modules, self.optimizer, self.patience, self.report = (net, ema), optimizer, patience, report
        self.state: tuple | None = None
        self.restores = 0

    def remember(self, step: int) -> None:
        tensors = ({k: v.clone() for k, v in clean_state_dict(m).items()} for m in self.modules)
        self.state = (step, *tensors, copy.deepcopy(self.optimizer.state_dict()))
        self.restores = 0

    def restore(self) -> int:
        """Load the last good state; raise if restoring did not help ``patience`` steps ago already."""
        self.restores += 1
        if self.restores > 1:
            raise FloatingPointError(
                f"training stays non-finite after restoring the state of step {self.state[0]}; "
                f"lower the learning rate (TrainConfig.lr) or grad_clip, or check the data for outliers."
            )
        step, *modules, optimizer = self.state
        for module, state in zip(self.modules, modules):
            module.load_state_dict(state)
        self.optimizer.load_state_dict(optimizer)
        self.report(f"restored the last good state (step {step}) after {self.patience} non-finite steps in a row")
        return step


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
