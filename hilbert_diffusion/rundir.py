"""A run directory held by one trainer: an exclusive lock, checked writable, cleaned of what killed runs left.

:class:`RunDirectory` takes ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<run>/.lock`` and keeps it for as long as
it is held (the process's life for the command line); the operating system releases it when the process
dies, however it dies, so a stale lock never blocks a resume. A second trainer on the same directory is
refused at once with the holder's pid (written into the lock file). While it holds the lock, and only then,
it removes the temporary folders a killed writer left behind (``.tmp-checkpoint-*``, ``.stale-checkpoint-*``):
no live writer can own them. Writability is probed before any work starts, so an unusable ``--out`` (a
regular file, a read-only mount) is found before the training time is spent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .checkpoint import list_checkpoints

__all__ = ["RunDirectory", "RunDirectoryError", "RunDirectoryBusy", "LOCK_FILE", "check_writable_directory",
           "held_run_directory"]

LOCK_FILE = ".lock"
STALE_PREFIXES = (".tmp-checkpoint-", ".stale-checkpoint-")


class RunDirectoryError(ValueError):
    """A run directory that cannot be used (not a directory, not writable, holds or lacks a run)."""


class RunDirectoryBusy(RunDirectoryError):
    """Another process holds the run directory's lock."""


def check_writable_directory(path: Path, option: str) -> None:
    """Create ``path`` if needed and prove a file can be written in it; else :class:`RunDirectoryError`."""
    if path.exists() and not path.is_dir():
        raise RunDirectoryError(f"{option} {path} is a file, not a directory; give a directory (created if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test-")
        try:
            os.write(fd, b"0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise RunDirectoryError(f"{option} {path} is not writable ({err.strerror or err}); "
                                f"choose a directory you can write to.") from err


def _holder(fd: int) -> str:
    """The pid in a held lock file (the holder writes it just after locking: wait a moment for it)."""
    for _ in range(50):
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.01)
    return "unknown"


class RunDirectory:
    """An exclusive hold on a training run directory (see the module docstring).

    ``option`` and ``resume_option`` are how messages name the directory and the resume switch
    (``"--out"``/``"--resume"`` on the command line, ``"out_dir"``/``"resume=True"`` from code).
    """

    def __init__(self, path: str | os.PathLike, *, option: str = "out_dir", resume_option: str = "resume=True") -> None:
        self.path = Path(path)
        self.option, self.resume_option = option, resume_option
        self._fd: int | None = None
        self.cleaned: list[str] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, resume: bool | None = None) -> RunDirectory:
        """Lock the directory (creating it), clean stale temporary folders and, if ``resume`` is given,
        check that it holds a run exactly when resuming."""
        check_writable_directory(self.path, self.option)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunDirectoryBusy(
                f"{self.option} {self.path} is in use by another training (pid {holder}, lock {self.path / LOCK_FILE}); "
                f"wait for it to finish or stop it, or choose another {self.option}.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        try:
            self.cleaned = self._clean_stale()
            if resume is not None:
                self.expect_run(resume=resume)
        except BaseException:
            self.release()
            raise
        return self

    def expect_run(self, *, resume: bool) -> None:
        """A fresh run needs an empty directory (of checkpoints), a resume a checkpoint."""
        found = list_checkpoints(self.path)
        if resume and not found:
            raise RunDirectoryError(f"{self.option} {self.path} holds no checkpoint to resume; train without "
                                    f"{self.resume_option} first.")
        if not resume and found:
            raise RunDirectoryError(f"{self.option} {self.path} already holds a run (newest: {found[-1].name}); "
                                    f"add {self.resume_option} to continue it or choose another {self.option}.")

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def _clean_stale(self) -> list[str]:
        stale = [p for p in self.path.iterdir() if p.is_dir() and p.name.startswith(STALE_PREFIXES)]
        for folder in stale:
            shutil.rmtree(folder, ignore_errors=True)
        return sorted(p.name for p in stale)

    def __enter__(self) -> RunDirectory:
        return self if self.held else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r}, {'held' if self.held else 'not held'})"


@contextlib.contextmanager
def held_run_directory(out_dir: str | os.PathLike | RunDirectory | None, *, resume: bool,
                       lock: bool = True) -> Iterator[Path | None]:
    """The path of ``out_dir`` held for the duration (``None`` stays ``None``): a :class:`RunDirectory` the
    caller already holds is used as is (and stays held), a path is locked here and released on exit.
    ``lock=False`` (the other ranks of a distributed run, whose rank 0 holds the lock) yields the path."""
    if out_dir is None:
        yield None
    elif isinstance(out_dir, RunDirectory) and out_dir.held:
        out_dir.expect_run(resume=resume)
        yield out_dir.path
    elif not lock:
        yield Path(out_dir)
    else:
        with RunDirectory(out_dir).acquire(resume=resume) as held:
            yield held.path
