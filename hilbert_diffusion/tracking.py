"""What a training run logs as it goes: ``metrics.jsonl`` in the run directory always, TensorBoard on request.

Every optimisation step appends ``{"step", "loss", "lr", "grad_norm", "steps_per_s", "time"}`` (the batch's mean
loss, the learning rate it used, the gradient norm before clipping, the rate over the last
:data:`RATE_WINDOW` steps, seconds since the start) to ``metrics.jsonl``; a checkpoint with a held-out set
appends ``{"step", "val_loss"}``. A resumed run first drops the records past its checkpoint's step (the part
of the run that was lost), so the file describes one continuous run.

With a ``log_dir`` (``--log-dir``) the same scalars go to TensorBoard (``torch.utils.tensorboard``, the optional
extra ``tensorboard``) under ``train/loss``, ``train/lr``, ``train/grad_norm``, ``train/steps_per_s`` and
``val/loss``, and every sample figure under ``samples``; a resumed run purges the events past its step.
"""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METRICS_FILE", "RATE_WINDOW", "RunLog", "read_metrics"]

METRICS_FILE = "metrics.jsonl"
RATE_WINDOW = 20  # steps/s is measured over this many steps


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a ``metrics.jsonl`` (or of the one in the run directory ``path``)."""
    path = Path(path)
    path = path / METRICS_FILE if path.is_dir() else path
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _tensorboard(log_dir: Path, start_step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ValueError("--log-dir (log_dir) needs TensorBoard: pip install -e \".[tensorboard]\" "
                         "(or pip install tensorboard).") from err
    return SummaryWriter(str(log_dir), purge_step=start_step or None)


class RunLog:
    """The log of one run from ``start_step``: ``out_dir/metrics.jsonl`` and, with ``log_dir``, TensorBoard.
    Does nothing where ``enabled`` is false (ranks other than 0) or for a run without directories."""

    def __init__(self, out_dir: Path | None, *, log_dir: str | Path | None, start_step: int, enabled: bool) -> None:
        self.path = out_dir / METRICS_FILE if out_dir is not None and enabled else None
        if self.path is not None and self.path.exists():  # drop what a resume lost
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= start_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        if log_dir is not None and enabled:
            Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.writer = _tensorboard(Path(log_dir), start_step) if log_dir is not None and enabled else None
        self.start = time.monotonic()
        self.times: deque[float] = deque(maxlen=RATE_WINDOW + 1)

    def _write(self, record: dict, scalars: dict[str, float | None]) -> None:
        if self.path is not None:
            with open(self.path, "a") as file:
                file.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for tag, value in scalars.items():
                if value is not None:
                    self.writer.add_scalar(tag, value, record["step"])

    def step(self, step: int, *, loss: float, lr: float, grad_norm: float) -> None:
        """Record optimisation step ``step`` (1-based: the number of steps done)."""
        now = time.monotonic()
        self.times.append(now)
        rate = (len(self.times) - 1) / (now - self.times[0]) if len(self.times) > 1 and now > self.times[0] else None
        self._write({"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "steps_per_s": rate,
                     "time": now - self.start},
                    {"train/loss": loss, "train/lr": lr, "train/grad_norm": grad_norm, "train/steps_per_s": rate})

    def validation(self, step: int, loss: float) -> None:
        """Record the held-out loss at checkpoint ``step``."""
        self._write({"step": step, "val_loss": loss}, {"val/loss": loss})

    def figure(self, step: int, png: Path) -> None:
        """Send the sample figure ``png`` of step ``step`` to TensorBoard."""
        if self.writer is None:
            return
        from PIL import Image

        with Image.open(png) as image:
            self.writer.add_image("samples", np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
