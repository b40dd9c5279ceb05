"""The state of a training run (:func:`~hilbert_diffusion.training.train`): started fresh or resumed from
a checkpoint, and written back to one.

A :class:`RunState` holds everything the optimisation changes (weights, their EMA, the optimiser, the one
generator every draw comes from, the step) and what is fixed for the run (the normalisation, the data
spectrum the model was built with, the JSON run config and the Wiener baseline of the loss). Built the
same way on every call, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import Checkpoint, checkpoint_path, list_checkpoints, read_checkpoint, write_checkpoint
from .config import from_config, to_config
from .data_statistics import stream_statistics
from .distributed import DistributedContext
from .datasets.lazy import LazyFields
from .loader import NormalisedFields, split_rows
from .losses import denoising_loss
from .models.fno import EmpiricalSpectrum, clean_state_dict
from .noise import Spectrum
from .normalization import Normalization
from .resume import check_resume, data_probe, data_sha256
from .sde import DiagonalSDE

__all__ = ["ExponentialMovingAverage", "RunState", "check_data", "start_or_resume", "save_state", "mean_loss",
           "held_out_loss"]

_BASELINE_SAMPLES = 256  # fields (drawn with replacement) on which the Wiener baseline of the loss is estimated


class ExponentialMovingAverage:
    """Exponential moving average of a model's state (parameters and persistent buffers)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))  # θ̄ ← θ̄ + (1 - d_s)(θ - θ̄)
        # By name, persistent state only: lazily built caches (e.g. SFNO's transforms) may differ.
        current = model.state_dict(keep_vars=True)
        for name, avg in self.model.state_dict(keep_vars=True).items():
            if not isinstance(avg, Tensor):
                continue
            if avg.is_floating_point() or avg.is_complex():
                avg.data.lerp_(current[name].data, 1 - decay)
            else:
                avg.data.copy_(current[name].data)


@dataclass(kw_only=True, eq=False)
class RunState:
    """A run in progress: ``fields`` are the normalised training fields and ``held_out`` the validation ones
    (``None`` without ``val_fraction``), read as needed (:mod:`.loader`); ``draws`` counts the batches drawn
    (the loader's position); ``wiener_loss`` is the loss of the untrained model (the per-mode Wiener filter of
    the data spectrum)."""

    net: nn.Module
    ema: ExponentialMovingAverage
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    step: int
    normalization: Normalization
    spectra: list
    run_config: dict
    fields: NormalisedFields
    held_out: NormalisedFields | None
    wiener_loss: float
    draws: int = 0


def check_data(data: Any, sde: DiagonalSDE) -> Tensor | LazyFields:
    """``data`` (a tensor or array ``(num, channels, *grid)``, or a dataset with ``.data``) as a CPU float
    tensor on a grid of ``sde.basis``; :class:`~.datasets.lazy.LazyFields` stay lazy."""
    basis = getattr(data, "basis", None)
    if basis is not None and basis != sde.basis:
        raise ValueError(f"the dataset lives on {basis} but the SDE on {sde.basis}; build the SDE on the dataset's basis.")
    if isinstance(data, LazyFields):
        if data.num < 1:
            raise ValueError("data hold no field: give at least one (num ≥ 1).")
        return data
    if isinstance(data, np.ndarray):  # before .data: an array's .data is its memory buffer
        data = torch.as_tensor(data, dtype=torch.float32)
    data = getattr(data, "data", data)  # a dataset object with a .data tensor, or the tensor itself
    if not isinstance(data, Tensor):
        raise ValueError(
            f"data must be a tensor or numpy array (num, channels, *grid) or have a .data tensor, got {type(data).__name__}."
        )
    sde.basis.check_field(data, "data")
    if data.shape[0] < 1:
        raise ValueError("data hold no field: give at least one (num ≥ 1).")
    return data.detach().cpu().float()


def _resumable(out_dir: Path | None, record: dict, *, statistics: bool = True) -> Checkpoint:
    """The newest checkpoint in ``out_dir``, checked (:mod:`.resume`) to continue the run ``record`` describes
    (its normalisation too unless not ``statistics``: then only the data, model, SDE and options)."""
    if out_dir is None or not list_checkpoints(out_dir):
        raise ValueError(f"resume=True but {out_dir} holds no checkpoint to resume; train without resume first.")
    checkpoint = read_checkpoint(out_dir)
    check_resume(checkpoint.config, record if statistics else {**record, "normalization": checkpoint.config.get(
        "normalization")}, checkpoint.path)
    return checkpoint


def _record(data: Tensor | LazyFields, *, sde: DiagonalSDE, model: Any, config: Any, spec: dict | None,
            normalization: Normalization) -> dict:
    """The JSON record of a run (all but the data spectrum and the Wiener loss, added once known). Lazy data
    are identified by their files' sizes and sampled hashes (:func:`~.datasets.lazy.file_fingerprint`)."""
    if isinstance(data, LazyFields):
        content = {"file": data.fingerprint()}
    else:
        content = {"sha256": data_sha256(data), "probe": data_probe(data)}
    return {
        "sde": to_config(sde),
        "model": {"config": to_config(model), "channels": data.shape[1]},
        "normalization": to_config(normalization),
        "train": to_config(config),
        "data": {"num": int(data.shape[0]), "grid": list(data.shape[2:]), "spec": spec, **content},
    }


def _statistics(data: Tensor | LazyFields, rows: range, *, sde: DiagonalSDE, enabled: bool,
                context: DistributedContext | None = None) -> tuple[Normalization, list]:
    """Normalisation and data spectra of the training rows: in memory, or in one streaming pass for lazy data
    (each torchrun rank reading its share)."""
    if isinstance(data, LazyFields):
        normalization, spectra = stream_statistics(data, basis=sde.basis, enabled=enabled, rows=rows, context=context)
        return normalization, list(spectra)
    train = data[rows.start : rows.stop]
    normalization = Normalization.fit(train, basis=sde.basis, enabled=enabled)
    return normalization, list(EmpiricalSpectrum.estimate(normalization.encode(train), sde.basis))


def start_or_resume(data: Tensor | LazyFields, *, sde: DiagonalSDE, model: Any, config: Any, out_dir: Path | None,
                    resume: bool, spec: dict | None, device: torch.device,
                    context: DistributedContext | None = None) -> RunState:
    """A fresh run of ``model`` (a config with ``.build``) on ``data`` (from :func:`check_data`) under the
    :class:`~hilbert_diffusion.training.TrainConfig` ``config``, or the newest checkpoint's in ``out_dir``
    (refused, naming the field, unless the data, model, SDE, normalisation and fixed options all match).
    The last ``config.val_fraction`` of the fields are held out (:func:`~.loader.split_rows`); under torchrun
    (``context``) each rank streams its share of lazy data for the statistics."""
    train_rows, val_rows = split_rows(data.shape[0], config.val_fraction)
    if resume:  # the stored statistics are used: check the files and options before a streaming pass
        stored = _resumable(out_dir, _record(data, sde=sde, model=model, config=config, spec=spec,
                                             normalization=Normalization.identity(data.shape[1])), statistics=False)
        normalization = from_config(stored.config["normalization"], expect=Normalization)
        spectra = [from_config(s, expect=Spectrum) for s in stored.config["model"]["data_spectrum"]]
        if not isinstance(data, LazyFields):  # in memory the statistics are cheap: check them too
            fitted, _ = _statistics(data, train_rows, sde=sde, enabled=config.normalize)
            check_resume(stored.config, _record(data, sde=sde, model=model, config=config, spec=spec,
                                                normalization=fitted), stored.path)
    else:
        if out_dir is not None and list_checkpoints(out_dir):
            raise ValueError(f"{out_dir} already holds a run; pass resume=True to continue it or choose another out_dir.")
        normalization, spectra = _statistics(data, train_rows, sde=sde, enabled=config.normalize, context=context)
    run_config = _record(data, sde=sde, model=model, config=config, spec=spec, normalization=normalization)
    checkpoint = stored if resume else None
    fields = NormalisedFields(data, train_rows, normalization)
    held_out = NormalisedFields(data, val_rows, normalization) if len(val_rows) else None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = model.build(sde, channels=data.shape[1], data_spectrum=spectra)
    if getattr(model, "amplitude_classes", 0) and checkpoint is None:  # a resumed run loads its fitted classes
        net.fit_amplitudes(fields.read(range(i, min(i + 256, len(fields)))) for i in range(0, len(fields), 256))
    net.to(device)
    ema = ExponentialMovingAverage(net, config.ema_decay)
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    wiener = _wiener_loss(net, fields, sde, spectra=spectra, config=config)
    run_config["model"]["data_spectrum"] = [to_config(s) for s in spectra]
    run_config["wiener_loss"] = wiener
    state = RunState(net=net, ema=ema, optimizer=optimizer, generator=torch.Generator().manual_seed(config.seed),
                     step=0, normalization=normalization, spectra=spectra, run_config=run_config, fields=fields,
                     held_out=held_out, wiener_loss=wiener)
    if checkpoint is not None:
        net.load_state_dict(checkpoint.prefixed("model"))
        ema.model.load_state_dict(checkpoint.prefixed("ema"))
        saved = checkpoint.training_state()
        optimizer.load_state_dict(saved["optimizer"])
        state.generator.set_state(saved["generator"])
        state.step = int(saved["step"])
        state.draws = int(saved.get("draws", state.step))  # checkpoints before the loader drew once per step
    return state


def loss_weights(net: Any, config: Any) -> dict:
    """The ``weight`` and ``mode_weight`` of :func:`~.losses.denoising_loss` that ``config`` trains with: the
    model's per-mode weight (``mode_weighting``: its exponent γ, ``True`` for 1; P9), else its per-time one
    (``edm_weighting``, P8), else none."""
    if exponent := float(getattr(config, "mode_weighting", False)):
        return {"weight": None, "mode_weight": partial(net.mode_loss_weight, exponent=exponent)}
    return {"weight": net.loss_weight if config.edm_weighting else None, "mode_weight": None}


@torch.no_grad()
def mean_loss(model: Any, fields: NormalisedFields, positions: Tensor, sde: DiagonalSDE, *, config: Any,
              weights: dict, generator: torch.Generator, device: torch.device = torch.device("cpu")) -> float:
    """The mean denoising loss of ``model`` on ``fields`` at ``positions`` (in batches of ``config.batch_size``),
    times and noise drawn from ``generator``, weighted by ``weights`` (:func:`loss_weights`); the model runs on
    ``device``."""
    def denoiser(x_t: Tensor, t: Tensor) -> Tensor:
        return model(x_t.to(device), t.to(device)).to(x_t.device)

    total = 0.0
    for rows in positions.split(config.batch_size):
        losses = denoising_loss(denoiser, fields.read(rows), sde, time_sampler=config.time_sampler, **weights,
                                generator=generator)
        total += float(losses.sum())
    return total / len(positions)


def held_out_loss(state: RunState, sde: DiagonalSDE, *, config: Any, device: torch.device) -> float | None:
    """The EMA model's loss on the first :data:`_BASELINE_SAMPLES` held-out fields, with the same times and noise
    at every call (its own generator), so successive values measure the model; ``None`` without a held-out set."""
    if state.held_out is None:
        return None
    positions = torch.arange(min(len(state.held_out), _BASELINE_SAMPLES))
    return mean_loss(state.ema.model, state.held_out, positions, sde, config=config,
                     weights=loss_weights(state.ema.model, config),
                     generator=torch.Generator().manual_seed(config.seed + 3), device=device)


def _wiener_loss(net: nn.Module, fields: NormalisedFields, sde: DiagonalSDE, *, spectra: list, config: Any) -> float:
    """The training loss of the per-mode Wiener filter of the data spectrum, the untrained model (its
    network ``F`` starts at zero: P6 of :mod:`.models.fno`) and the baseline training must beat. Estimated
    on fields, times and noise of a generator of its own, without calling ``net``: no training draw changes."""
    generator = torch.Generator().manual_seed(config.seed + 2)
    index = torch.randint(len(fields), (_BASELINE_SAMPLES,), generator=generator)
    return mean_loss(_WienerFilter(sde, spectra), fields, index, sde, config=config, weights=loss_weights(net, config),
                     generator=generator)


class _WienerFilter:
    """``E[x_0 | x_t]`` for Gaussian data of per-channel spectra ``c``: ``g_k x_k`` with
    ``g_k = a_k c_k / (a_k² c_k + v_k)`` (P3 of :mod:`.models.fno`)."""

    def __init__(self, sde: DiagonalSDE, spectra: list) -> None:
        self.sde, self.spectra = sde, spectra

    def __call__(self, x_t: Tensor, t: Tensor) -> Tensor:
        basis = self.sde.basis
        grid = basis.grid_of(x_t)
        lam = basis.eigenvalues(grid)
        c = torch.stack([s(lam) for s in self.spectra]).unsqueeze(0)  # (1, channels, *coefficients)
        a, v = self.sde.mean_factor(t, grid), self.sde.variance(t, grid)
        gain = a * c / (a**2 * c + v).clamp_min(torch.finfo(torch.float64).tiny)
        return basis.inverse(gain * basis.forward(x_t.double()), grid).to(x_t.dtype)


def save_state(state: RunState, out_dir: Path, *, keep: int, is_main: bool) -> Path:
    """Write ``state`` as ``out_dir/checkpoint-<step>`` (rank 0 only; other ranks get its path)."""
    if not is_main:
        return checkpoint_path(out_dir, state.step)
    tensors = {f"model.{k}": v for k, v in clean_state_dict(state.net).items()}
    tensors.update({f"ema.{k}": v for k, v in clean_state_dict(state.ema.model).items()})
    training_state = {"optimizer": state.optimizer.state_dict(), "generator": state.generator.get_state(),
                      "step": state.step, "draws": state.draws}
    return write_checkpoint(out_dir, step=state.step, config=state.run_config, tensors=tensors,
                            training_state=training_state, keep=keep)
