"""Run directories: atomic, verified checkpoints and :func:`load`.

A run directory holds complete checkpoints, each in its own folder ``checkpoint-<step>/``::

    checkpoint.json        format, version, step, and everything needed to rebuild the run:
                           the SDE (basis, noise spectrum, schedule), the model's config, channels
                           and data spectrum, the data normalisation, the training config, the
                           SHA-256 and size of each file below, and a hash of its own content
    weights.safetensors    "model.*" (raw weights) and "ema.*" (the EMA weights), tensors only
    training_state.pt      optimiser state, RNG state, step (torch.save of plain data; loaded
                           with ``weights_only=True``)

A checkpoint is written in a temporary folder inside the run directory and moved into place with
one ``os.replace`` (atomic on POSIX), so a killed run leaves either the previous complete checkpoint
or the new one, never a partial one; it loses at most one checkpoint interval. Every read checks
the format version, the JSON hash and each file's hash, and refuses a truncated or edited
checkpoint with a message saying which file is wrong.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import from_config
from .filemodes import share
from .normalization import Normalization
from .resources import DiskFullError, ResourceError, check_disk, check_memory, format_bytes, free_disk, is_out_of_space, model_bytes
from .schema import SchemaError, check_checkpoint_document
from .sde import DiagonalSDE
from .trained import TrainedRun

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "TrainedRun",
    "write_checkpoint",
    "read_checkpoint",
    "list_checkpoints",
    "checkpoint_step",
    "checkpoint_path",
    "build_model",
    "load",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "hilbert_diffusion.checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "checkpoint.json"
WEIGHTS_FILE = "weights.safetensors"
STATE_FILE = "training_state.pt"
_DISK_MARGIN = 1.1, 1 << 16  # a checkpoint needs its tensors' bytes times 1.1 plus 64 KiB (JSON, headers)
_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint that is missing, partial, corrupt or from an incompatible version."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_hash(config: dict[str, Any]) -> str:
    body = {k: v for k, v in config.items() if k != "content_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint folders of a run directory, oldest first (temporary folders are ignored)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """The folder ``run_dir/checkpoint-<step>/`` that :func:`write_checkpoint` writes for ``step``."""
    return Path(run_dir) / f"checkpoint-{step:08d}"


def checkpoint_step(folder: str | os.PathLike) -> int:
    """The step of a ``checkpoint-<step>/`` folder, read from its name (no file is opened)."""
    match = _NAME.match(Path(folder).name)
    if match is None:
        raise CheckpointError(f"{folder} is not a checkpoint-<step> folder.")
    return int(match.group(1))


def write_checkpoint(
    run_dir: str | os.PathLike,
    *,
    step: int,
    config: dict[str, Any],
    tensors: dict[str, Tensor],
    training_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write ``checkpoint-<step>/`` atomically and keep only the newest ``keep`` checkpoints.

    ``config`` is JSON-ready (see :func:`~hilbert_diffusion.config.to_config`); ``tensors`` a flat
    name → tensor dict; ``training_state`` plain data and tensors. Returns the checkpoint folder.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}.")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(run_dir, step)
    need = _DISK_MARGIN[0] * (_nbytes(tensors) + _nbytes(training_state)) + _DISK_MARGIN[1]
    check_disk(run_dir, need, what=f"the checkpoint {final.name}", fix=_disk_fix(run_dir))
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-checkpoint-", dir=run_dir))
    try:
        _write_files(tmp, step=step, config=config, tensors=tensors, training_state=training_state)
        share(tmp, *tmp.iterdir())  # mkdtemp and safetensors make them private (0700 / 0600)
        if final.exists():  # the same step written again (e.g. the final save): swap it out first
            stale = Path(tempfile.mkdtemp(prefix=".stale-checkpoint-", dir=run_dir))
            os.replace(final, stale / final.name)
            os.replace(tmp, final)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync(run_dir)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, (OSError, RuntimeError)) and is_out_of_space(err):
            raise DiskFullError(errno.ENOSPC, f"disk space ran out while writing {final.name} into {run_dir} "
                                f"({format_bytes(free_disk(run_dir))} free); {_disk_fix(run_dir)}.") from err
        raise
    for old in list_checkpoints(run_dir)[:-keep]:  # only now that the new one is complete
        shutil.rmtree(old, ignore_errors=True)
    return final


def _write_files(folder: Path, *, step: int, config: dict[str, Any], tensors: dict[str, Tensor],
                 training_state: dict[str, Any]) -> None:
    """The three files of a checkpoint, each synced to disk, into ``folder``."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, folder / WEIGHTS_FILE,
              metadata={"format": FORMAT, "step": str(step)})
    torch.save(training_state, folder / STATE_FILE)
    files = {}
    for name in (WEIGHTS_FILE, STATE_FILE):
        _fsync(folder / name)
        files[name] = {"sha256": _sha256(folder / name), "bytes": (folder / name).stat().st_size}
    document = {"format": FORMAT, "version": FORMAT_VERSION, "step": step, **config, "files": files}
    document["content_sha256"] = _content_hash(document)
    with open(folder / CONFIG_FILE, "w") as handle:
        json.dump(document, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())


def _nbytes(obj: Any) -> int:
    """Bytes of the tensors inside nested dicts, lists and tuples."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def _disk_fix(run_dir: Path) -> str:
    found = list_checkpoints(run_dir)
    kept = f"the newest complete checkpoint, {found[-1].name}, is intact" if found else "no checkpoint was written yet"
    return f"free space there or move the run to a larger disk and resume ({kept})"


@dataclass
class Checkpoint:
    """A verified checkpoint: its folder, JSON document and tensors; ``training_state()`` reads the rest."""

    path: Path
    config: dict[str, Any]
    tensors: dict[str, Tensor]

    @property
    def step(self) -> int:
        return int(self.config["step"])

    def training_state(self) -> dict[str, Any]:
        return torch.load(self.path / STATE_FILE, weights_only=True)

    def prefixed(self, prefix: str) -> dict[str, Tensor]:
        """The tensors stored under ``prefix.`` with the prefix removed."""
        start = prefix + "."
        return {k[len(start):]: v for k, v in self.tensors.items() if k.startswith(start)}


def _resolve(path: Path) -> Path:
    """A checkpoint folder itself, or the newest one inside a run directory."""
    if (path / CONFIG_FILE).exists() or _NAME.match(path.name):
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(
            f"{path} holds no checkpoint (no checkpoint-<step>/ folder); train first or give the run directory."
        )
    return found[-1]


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and verify a checkpoint folder, or the newest checkpoint of a run directory."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = _resolve(Path(path))
    others = [p.name for p in list_checkpoints(folder.parent) if p != folder]
    hint = f" Other checkpoints in the run: {', '.join(others)}; remove the broken folder to fall back." if others else ""
    config_path = folder / CONFIG_FILE
    if not config_path.exists():
        raise CheckpointError(f"{folder} is not a complete checkpoint: {CONFIG_FILE} is missing.{hint}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{config_path} is not valid JSON (truncated or edited?): {err}.{hint}") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{config_path} is not a {FORMAT} file.{hint}")
    if config.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {config.get('version')!r}; this version of hilbert_diffusion "
            f"reads version {FORMAT_VERSION}."
        )
    try:
        check_checkpoint_document(config, str(config_path))
    except SchemaError as err:
        raise CheckpointError(f"{err}.{hint}") from err
    if config.get("content_sha256") != _content_hash(config):
        raise CheckpointError(f"{config_path} was edited or corrupted: its content hash does not match.{hint}")
    if WEIGHTS_FILE not in config["files"]:
        raise CheckpointError(f"{config_path} lists no {WEIGHTS_FILE}: the checkpoint is incomplete.{hint}")
    for name, meta in config["files"].items():
        file = folder / name
        if file.is_symlink() or file.resolve().parent != folder.resolve():
            raise CheckpointError(f"{file} is a link or leaves the checkpoint folder; refusing to read it.")
        if not file.exists():
            raise CheckpointError(f"{file} is missing: the checkpoint is incomplete.{hint}")
        size = file.stat().st_size
        if size != meta["bytes"] or _sha256(file) != meta["sha256"]:
            raise CheckpointError(
                f"{file} is corrupt or truncated ({size} bytes, expected {meta['bytes']}; SHA-256 mismatch).{hint}"
            )
    try:
        tensors = load_file(folder / WEIGHTS_FILE)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} cannot be read: {err}.{hint}") from err
    return Checkpoint(path=folder, config=config, tensors=tensors)


def build_model(config: dict[str, Any], sde: DiagonalSDE) -> nn.Module:
    """The (untrained) model a checkpoint's ``config["model"]`` describes, on ``sde``."""
    from .models.fno import _OperatorConfig
    from .noise import Spectrum

    spec = config["model"]
    architecture = from_config(spec["config"], expect=_OperatorConfig)
    channels = int(spec["channels"])
    modes = getattr(architecture, "n_modes", 1)
    modes = math.prod(modes) if isinstance(modes, tuple) else modes ** sde.basis.ndim
    check_memory(model_bytes(channels=channels, width=architecture.hidden_channels, layers=architecture.n_layers,
                             modes=modes), what=f"the model of the checkpoint ({channels} channels, width "
                 f"{architecture.hidden_channels}, {architecture.n_layers} layers)",
                 fix="this checkpoint cannot be loaded on this machine (is its checkpoint.json edited?)")
    spectra = [from_config(s, expect=Spectrum) for s in spec["data_spectrum"]]
    return architecture.build(sde, channels=channels, data_spectrum=spectra)


def load(
    run_dir: str | os.PathLike, *, ema: bool = True, device: torch.device | str | None = None
) -> TrainedRun:
    """Rebuild a trained run from its directory alone (or from one checkpoint folder).

    Returns a :class:`TrainedRun` whose model carries the EMA weights (``ema=False``: the raw
    weights), in eval mode on ``device`` (default CPU); raises :class:`CheckpointError` on a missing
    or corrupt checkpoint.
    """
    checkpoint = read_checkpoint(run_dir)
    config = checkpoint.config
    try:
        sde = from_config(config["sde"], expect=DiagonalSDE)
        model = build_model(config, sde)
        normalization = from_config(config["normalization"], expect=Normalization)
    except ResourceError:
        raise
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{checkpoint.path / CONFIG_FILE} lacks or garbles a field: {err}.") from err
    weights = checkpoint.prefixed("ema" if ema else "model")
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{checkpoint.path / WEIGHTS_FILE} does not fit the model its config describes: {err}") from err
    model.to(device).eval().requires_grad_(False)
    return TrainedRun(model=model, sde=sde, normalization=normalization, step=checkpoint.step, path=checkpoint.path, config=config)
