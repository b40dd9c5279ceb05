"""The command line's array files: ``(num, channels, *grid)`` float32 ``.npy``, read with clear errors and
written atomically; output paths are checked before any work starts.

Every failure is a ``ValueError`` naming the option, the file and the fix: a missing or truncated file, NaN
where it has no meaning (a mask), float64 values that overflow float32, an ``--out`` that is a directory or
cannot be written.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from .filemodes import share

__all__ = ["save_array", "check_output_file", "read_npy", "load_observation", "load_mask"]

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_output_file(path: str | os.PathLike, option: str = "--out") -> Path:
    """``path`` must end in ``.npy``, not be a directory, and its folder must be writable (created if missing)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a directory; give a file name ending in .npy, e.g. {path / 'samples.npy'}.")
    if path.suffix != ".npy":
        raise ValueError(f"{option} {path} must end in .npy (arrays are stored as (num, channels, *grid) .npy files).")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write into {path.parent} ({err.strerror or err}); "
                         f"choose a writable location.") from err
    return path


def save_array(path: str | os.PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Write ``array`` to ``path`` (``.npy``) atomically: a temporary file in the same folder, then rename."""
    path = check_output_file(path)
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        share(tmp)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_npy(path: str, option: str) -> np.ndarray:
    """The array in ``path``, or a ``ValueError`` saying why it cannot be read (missing, truncated, not .npy)."""
    if not Path(path).is_file():
        raise ValueError(f"{option} {path} does not exist (or is not a file); give a .npy file.")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{option} {path}: cannot read it as a .npy file, it may be truncated ({err}).") from err
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{option} {path} is an .npz archive; give a single-array .npy file (np.save).")
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{option} {path} has dtype {array.dtype}; it must hold real numbers.")
    if np.iscomplexobj(array):
        raise ValueError(f"{option} {path} is complex; store real fields.")
    return array


def load_observation(path: str, option: str, *, allow_nan: bool = False) -> torch.Tensor:
    """Observations ``(num, channels, *grid)`` as float32; NaN only where ``allow_nan`` (missing points)."""
    array = read_npy(path, option)
    if array.ndim < 3:
        raise ValueError(f"{option} {path} has shape {array.shape}; observations are (num, channels, *grid) — "
                         f"add axes, e.g. array[None, None] for one single-channel field.")
    if np.isinf(array).any() or (not allow_nan and np.isnan(array).any()):
        hint = "mark missing points with NaN (inpaint without --mask) or with --mask" if allow_nan else "remove them"
        raise ValueError(f"{option} {path} contains {'inf' if allow_nan else 'NaN or inf'}; {hint}.")
    finite = array[np.isfinite(array)] if allow_nan else array
    if finite.size and np.abs(finite).max() > _FLOAT32_MAX:
        raise ValueError(f"{option} {path} has values up to {np.abs(finite).max():.3g}, beyond float32's range "
                         f"({_FLOAT32_MAX:.3g}): finite in {array.dtype} but inf in float32; rescale them.")
    return torch.as_tensor(np.asarray(array, dtype=np.float32))


def load_mask(path: str, grid: tuple[int, ...], option: str = "--mask") -> torch.Tensor:
    """A boolean mask of ``grid`` (nonzero = observed; leading unit axes are dropped); NaN is refused."""
    mask = read_npy(path, option)
    if np.issubdtype(mask.dtype, np.floating) and not np.isfinite(mask).all():
        raise ValueError(f"{option} {path} contains NaN or inf; a mask holds 0 (missing) and 1 (observed) or booleans.")
    while mask.ndim > len(grid) and mask.shape[0] == 1:
        mask = mask[0]
    if tuple(mask.shape) != tuple(grid):
        raise ValueError(f"{option} has shape {tuple(mask.shape)} but the observation grid is {tuple(grid)}; "
                         f"give one boolean per grid point (nonzero = observed).")
    if (mask != 0).all():
        raise ValueError(f"{option} marks every point observed: there is nothing to inpaint.")
    return torch.as_tensor(mask != 0)
