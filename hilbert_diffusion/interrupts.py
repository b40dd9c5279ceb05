"""Ctrl-C and ``kill`` during training: finish the step, save, exit with the signal's code.

Inside :class:`InterruptGuard` the first SIGINT or SIGTERM only sets a flag (and says so); the training
loop checks it after every step, writes a checkpoint atomically and raises :class:`TrainingInterrupted`,
whose ``exit_code`` is ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), the shell's convention. A second
signal raises ``KeyboardInterrupt`` at once (an atomic checkpoint being written is then abandoned, never
left half-written). Handlers are installed only in the main thread and restored on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

__all__ = ["InterruptGuard", "Interrupted", "TrainingInterrupted"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Stopped by the signal ``signum``; ``exit_code`` is ``128 + signum``."""

    def __init__(self, signum: int, message: str) -> None:
        self.signum = signum
        super().__init__(message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class TrainingInterrupted(Interrupted):
    """Training stopped by a signal after saving its state; ``checkpoint`` is where (``None`` in memory)."""

    def __init__(self, signum: int, *, step: int, checkpoint: Path | None) -> None:
        self.step, self.checkpoint = step, checkpoint
        saved = f"checkpoint written to {checkpoint}" if checkpoint is not None else "nothing saved (no out_dir)"
        super().__init__(signum, f"interrupted by {signal.Signals(signum).name} at step {step}: {saved}")


class InterruptGuard:
    """Defers SIGINT/SIGTERM to the end of the current step (see the module docstring)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # the second signal: leave now
            raise Interrupted(signum, f"{signal.Signals(signum).name} again: stopped at once, without writing a "
                                      f"checkpoint (the newest complete one is kept)")
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: finishing this step and writing a checkpoint "
              f"(send it again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
