"""What a resumed run must keep and what it may change.

A resume continues the *same* run: the data (their grid, number, recipe and content hash; for data read lazily
from files, the files' sizes and the hashes of their headers and of blocks sampled across them, see
:func:`~hilbert_diffusion.datasets.lazy.file_fingerprint`), the model, the
SDE and the normalisation must be exactly the checkpoint's, and so must every training option that shapes
the optimisation except those in :data:`RESUMABLE` (how long to train, the learning rate, how often to save
and draw). Anything else is refused naming the first field that differs, so a resume can never continue
with the old normalisation on new data and rewrite the record of what the run was trained on.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["RESUMABLE", "RESUME_RULE", "ADDED_OPTIONS", "ResumeMismatch", "data_sha256", "check_resume"]

#: TrainConfig fields that may change on resume.
RESUMABLE = ("steps", "lr", "checkpoint_every", "keep_checkpoints", "sample_every", "sample_steps", "figure_samples",
             "nonfinite_patience", "compile", "workers")

#: The rule in words (the command line's ``--resume`` help).
RESUME_RULE = ("continue the newest checkpoint in --out; only --steps, --lr, --checkpoint-every, --sample-every, "
               "--workers, --log-dir, --compile and --max-minutes may change (the data, model, SDE, normalisation and other "
               "training options must match)")

#: TrainConfig fields added after runs were first checkpointed, with the value an older checkpoint trained with.
ADDED_OPTIONS = {"val_fraction": 0.0, "bf16": False}

_SECTIONS = {"sde": "the SDE or model config", "model": "the SDE or model config", "data": "the data set",
             "normalization": "the data normalisation", "train": "a training option"}


class ResumeMismatch(ValueError):
    """A resume asked to continue a run with something that differs; ``field`` names it (dotted path)."""

    def __init__(self, message: str, field: str) -> None:
        self.field = field
        super().__init__(message)


def data_sha256(data: Tensor) -> str:
    """SHA-256 of the training fields as float32 bytes: what a resume checks it continues on."""
    return hashlib.sha256(data.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()


def _difference(stored: Any, given: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first (path, stored, given) where two JSON documents differ (floats to 1e-6 relative)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in [*stored, *(k for k in given if k not in stored)]:  # the stored order: data.spec before its hash
            found = _difference(stored.get(key), given.get(key), f"{path}.{key}" if path else str(key))
            if found:
                return found
        return None
    if isinstance(stored, list) and isinstance(given, list) and len(stored) == len(given):
        for i, (a, b) in enumerate(zip(stored, given)):
            found = _difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    numbers = (int, float)
    if isinstance(stored, numbers) and isinstance(given, numbers) and not isinstance(stored, bool) \
            and not isinstance(given, bool):
        return None if math.isclose(stored, given, rel_tol=1e-6, abs_tol=1e-12) else (path, stored, given)
    return None if stored == given else (path, stored, given)


def _comparable(section: str, stored: dict, given: dict) -> tuple[Any, Any]:
    a, b = stored.get(section), given.get(section)
    if section == "train" and isinstance(a, dict) and isinstance(b, dict):
        a = {k: v for k, v in a.items() if k not in RESUMABLE}
        b = {k: v for k, v in b.items() if k not in RESUMABLE and (k in a or k not in ADDED_OPTIONS
                                                                       or ADDED_OPTIONS[k] != v)}
    if section == "data" and isinstance(a, dict) and isinstance(b, dict) and "sha256" not in a:
        b = {k: v for k, v in b.items() if k != "sha256"}  # a checkpoint from before the hash was stored
    if section == "model" and isinstance(a, dict) and isinstance(b, dict):
        a, b = ({k: v for k, v in part.items() if k != "data_spectrum"} for part in (a, b))  # estimated from the data
    return a, b


def check_resume(stored: dict, given: dict, where: Path) -> None:
    """Raise :class:`ResumeMismatch` unless the run config ``given`` continues the checkpoint's ``stored``."""
    for section, what in _SECTIONS.items():
        found = _difference(*_comparable(section, stored, given), section)
        if found:
            field, was, now = found
            shown = [repr(v) if len(repr(v)) <= 70 else repr(v)[:67] + "..." for v in (was, now)]
            raise ResumeMismatch(
                f"cannot resume {where}: {what} differs from the one given: {field} is {shown[0]} in the checkpoint "
                f"but {shown[1]} now; on resume only {', '.join(RESUMABLE)} may change — pass the run's own "
                f"settings (see {where.name}/checkpoint.json) or train into a new directory.", field)
