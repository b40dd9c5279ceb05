"""Permissions of what the toolkit writes: files readable and folders enterable by the group and others, as
``open`` and ``mkdir`` would make them (``0666`` / ``0777`` less the umask, usually ``0644`` / ``0755``).
``tempfile.mkstemp`` and ``mkdtemp`` create ``0600`` / ``0700`` (private), and so does safetensors' ``save_file``,
so every atomic write that renames a temporary into place widens it first with :func:`share`."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["share", "process_umask"]


def process_umask() -> int:
    """The process's umask, read without changing it (Linux ``/proc/self/status``), else the usual ``0o022``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def share(*paths: str | os.PathLike) -> None:
    """Give each path the mode ``open`` / ``mkdir`` would have given it (``0666`` or ``0777`` less the umask)."""
    umask = process_umask()
    for path in paths:
        os.chmod(path, (0o777 if Path(path).is_dir() else 0o666) & ~umask)
