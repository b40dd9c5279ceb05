"""What a resumed run must keep and what it may change.

A resume continues the *same* run: the data (their grid, number, recipe and content hash, or where the hashes
differ, probes of the content that agree to float rounding (:func:`data_probe`); for data read lazily
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

import torch
from torch import Tensor

__all__ = ["RESUMABLE", "RESUME_RULE", "ADDED_OPTIONS", "ResumeMismatch", "data_sha256", "data_probe", "check_resume",
           "PROBE_TOLERANCE"]

#: TrainConfig fields that may change on resume.
RESUMABLE = ("steps", "lr", "checkpoint_every", "keep_checkpoints", "sample_every", "sample_steps", "figure_samples",
             "nonfinite_patience", "compile", "workers", "keep_best")

#: The rule in words (the command line's ``--resume`` help).
RESUME_RULE = ("continue the newest checkpoint in --out; only --steps, --lr, --checkpoint-every, --sample-every, "
               "--workers, --log-dir, --compile, --keep-best and --max-minutes may change (the data, model, SDE, "
               "normalisation and other training options must match)")

#: TrainConfig fields added after runs were first checkpointed, with the value an older checkpoint trained with.
ADDED_OPTIONS = {"val_fraction": 0.0, "bf16": False, "flip_axes": [], "mode_weighting": False,
                 "translate": 0}

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


#: How far (relative to the RMS) two data sets' :func:`data_probe` values may lie apart and be the same data rounded otherwise.
PROBE_TOLERANCE = 1e-5

_PROBES, _CHUNK = 8, 1 << 20


def data_probe(data: Tensor) -> list[float]:
    """The fields' RMS, then their projections onto 8 fixed pseudo-random ±1 patterns over ``sqrt(N)`` (N values):
    numbers on the data's scale that agree to ~1e-7 of the RMS for the same data computed another way (an FFT on
    another number of threads differs in the last bits, so :func:`data_sha256` differs), while a rescaling moves
    the RMS and a changed field moves the projections by about ``RMS / sqrt(num)``."""
    flat = data.detach().cpu().reshape(-1).double()
    generator = torch.Generator().manual_seed(0)
    total = torch.zeros(_PROBES, dtype=torch.float64)
    for start in range(0, flat.numel(), _CHUNK):  # chunks: the patterns are never held whole
        chunk = flat[start:start + _CHUNK]
        signs = torch.randint(0, 2, (_PROBES, chunk.numel()), generator=generator, dtype=torch.int8)
        total += (2.0 * signs.double() - 1.0) @ chunk
    root = math.sqrt(max(flat.numel(), 1))
    return [float(flat.square().sum().sqrt()) / root, *(total / root).tolist()]


def _same_content(stored: dict, given: dict) -> bool:
    """Whether two in-memory data records hold the same fields up to float rounding: equal hashes, or probes within
    :data:`PROBE_TOLERANCE` of the stored RMS (both records must have them; checkpoints before the probe compare
    hashes only)."""
    if stored.get("sha256") == given.get("sha256"):
        return True
    a, b = stored.get("probe"), given.get("probe")
    return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) > 0 and \
        all(abs(x - y) <= PROBE_TOLERANCE * a[0] for x, y in zip(a, b))


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
    if section == "data" and isinstance(a, dict) and isinstance(b, dict):
        dropped = ("sha256", "probe") if "sha256" not in a or _same_content(a, b) else ("probe",)  # no hash: an old run
        a, b = ({k: v for k, v in part.items() if k not in dropped} for part in (a, b))
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
