"""What a training run does besides its optimisation steps: periodic and final checkpoints with the held-out
loss, the checkpoint of the lowest held-out loss (``keep_best``: ``out_dir/best/``), sample figures beside the data
(:class:`RunHooks`), and the last good state to return to after non-finite steps (:class:`NonFiniteGuard`)."""

from __future__ import annotations

import copy
import math
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .checkpoint import TrainedRun, checkpoint_step, list_checkpoints, load, read_checkpoint, write_checkpoint
from .distributed import DistributedContext
from .figures import save_sample_figure
from .models.fno import clean_state_dict
from .sampling import exponential_multistep
from .sde import DiagonalSDE
from .tracking import RunLog, read_metrics
from .training_state import RunState, held_out_loss, save_state

if TYPE_CHECKING:
    from .training import TrainConfig

__all__ = ["RunHooks", "NonFiniteGuard", "BEST_DIR"]

#: the folder of a run directory that holds the checkpoint of the lowest held-out loss (``TrainConfig.keep_best``)
BEST_DIR = "best"


class RunHooks:
    """Checkpoints and sample figures of a run, periodic (``checkpoint_every`` / ``sample_every``) and final,
    written by rank 0 into ``out_dir`` (nothing without one)."""

    def __init__(self, state: RunState, *, sde: DiagonalSDE, config: TrainConfig, out_dir: Path | None,
                 context: DistributedContext, log: RunLog) -> None:
        self.state, self.sde, self.config, self.out_dir, self.context = state, sde, config, out_dir, context
        self.log = log
        shown = torch.arange(min(config.figure_samples, len(state.fields)))
        self.data = state.fields.raw(shown)  # real fields drawn beside the samples
        keeps = config.keep_best and context.is_main and out_dir is not None
        self.best_loss = self._best_so_far() if keeps else math.inf

    def _best_so_far(self) -> float:
        """The held-out loss of the kept best checkpoint of a resumed run (from the run's log); a new run's stale
        ``best/`` folder is removed."""
        best = self.out_dir / BEST_DIR
        kept = list_checkpoints(best) if best.is_dir() else []
        if self.state.step == 0 or not kept:
            shutil.rmtree(best, ignore_errors=True)
            return math.inf
        step = checkpoint_step(kept[-1])  # from the folder's name: no need to read its tensors
        losses = [r["val_loss"] for r in read_metrics(self.out_dir) if r.get("step") == step and "val_loss" in r]
        return min(losses, default=math.inf)

    def after_step(self, loss: float, guard: NonFiniteGuard) -> None:
        step, config = self.state.step, self.config
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
            self.checkpoint()
            guard.remember(step)
        if config.sample_every and step % config.sample_every == 0 and step < config.steps:
            self.figure(loss)

    def checkpoint(self) -> Path | None:
        """Save the state and log the held-out loss (rank 0)."""
        if self.out_dir is None:
            return None
        path = save_state(self.state, self.out_dir, keep=self.config.keep_checkpoints, is_main=self.context.is_main)
        if self.context.is_main and self.state.held_out is not None:
            loss = held_out_loss(self.state, self.sde, config=self.config, device=self.context.device)
            self.log.validation(self.state.step, loss)
            if self.config.keep_best and loss < self.best_loss:
                save_state(self.state, self.out_dir / BEST_DIR, keep=1, is_main=True)
                self.best_loss = loss
        return path

    def best(self) -> TrainedRun | None:
        """The EMA model of the lowest held-out loss, its stored run config brought up to the final one (the
        sampling grid stored at the end of training; the weights are the best step's); ``None``, with a note, when
        no held-out loss was finite (then no checkpoint is best and the final model stands)."""
        folder = self.out_dir / BEST_DIR
        if not (folder.is_dir() and list_checkpoints(folder)):
            if self.context.is_main:
                print("keep_best: no held-out loss was finite, so no best checkpoint was kept; the final model is "
                      f"returned (its checkpoint is in {self.out_dir})", file=sys.stderr)
            return None
        if self.context.is_main:
            kept = read_checkpoint(folder)
            write_checkpoint(folder, step=kept.step, config=self.state.run_config, tensors=kept.tensors,
                             training_state=kept.training_state(), keep=1)
        self.context.barrier()
        return load(folder)

    def figure(self, loss: float | None) -> None:
        """EMA samples beside real data, titled with the run's name, step and (running) loss."""
        config, state = self.config, self.state
        if self.out_dir is None or config.figure_samples < 1 or not self.context.is_main:
            return
        averaged = copy.deepcopy(state.ema.model).cpu().eval()
        run = TrainedRun(model=averaged, sde=self.sde, normalization=state.normalization, step=state.step,
                         config=state.run_config)
        figure_gen = torch.Generator().manual_seed(config.seed + 1)  # separate: figures never disturb training
        samples = run.sample(config.figure_samples, tuple(self.data.shape[2:]), generator=figure_gen,
                             times=exponential_multistep.times(config.sample_steps))
        title = f"{self.out_dir.resolve().name} · step {state.step}"
        if loss is not None:
            title += f" · loss {loss:.3g} ({loss / state.wiener_loss:.2f} × Wiener)"
        png = self.out_dir / "samples" / f"step_{state.step:08d}.png"
        save_sample_figure(samples, png, title=title, data=self.data)
        self.log.figure(state.step, png)


class NonFiniteGuard:
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
