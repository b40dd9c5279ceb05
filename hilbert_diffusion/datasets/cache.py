"""On-disk cache of generated data (Navier–Stokes, shallow water), keyed by the dataset spec.

A generated tensor is stored as ``<cache>/<name>-<sha256(spec)[:16]>.safetensors`` with the spec in
the file's metadata. Writes are atomic (a temporary file in the same directory, then ``os.replace``),
so a killed generation never leaves a partial file under the final name. A file that cannot be read,
or whose stored spec differs from the requested one, is regenerated (with a warning).

The cache directory is, in order: the ``cache_dir`` argument, the environment variable
``HILBERT_DIFFUSION_CACHE``, ``~/.cache/hilbert_diffusion``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from ..filemodes import share

__all__ = ["CACHE_ENV", "default_cache_dir", "cached_tensor", "spec_key"]

CACHE_ENV = "HILBERT_DIFFUSION_CACHE"
_FORMAT = 2  # bump when generation changes for the same spec (2: per-field seeds hashed; 1 collided across seeds)


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache directory: ``cache_dir`` if given, else ``$HILBERT_DIFFUSION_CACHE``, else
    ``~/.cache/hilbert_diffusion``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "hilbert_diffusion"


def spec_key(spec: dict) -> str:
    """A short stable hash of a JSON-able spec (key order does not matter)."""
    text = json.dumps({"format": _FORMAT, "spec": spec}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read(path: Path, spec_text: str) -> Tensor | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("spec") != spec_text:
                warnings.warn(f"cache file {path} was written for another spec; regenerating it.", stacklevel=3)
                return None
            return f.get_tensor("data")
    except Exception as err:  # a truncated or foreign file: regenerate rather than fail
        warnings.warn(f"cache file {path} is unreadable ({err}); regenerating it.", stacklevel=3)
        return None


def _write_atomic(path: Path, data: Tensor, spec_text: str) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({"data": data.contiguous()}, tmp, metadata={"spec": spec_text})
        share(tmp)  # mkstemp makes it private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_tensor(
    spec: dict,
    generate: Callable[[], Tensor],
    *,
    name: str,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
) -> Tensor:
    """``generate()``, or its stored result for the same ``spec``.

    Args:
        spec: JSON-able description of what ``generate`` produces (the cache key).
        generate: computes the tensor when it is not cached.
        name: file-name prefix (e.g. ``"navier_stokes"``).
        cache_dir: see :func:`default_cache_dir`.
        use_cache: ``False`` always generates and never touches the disk.
    """
    if not use_cache:
        return generate()
    spec_text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    path = default_cache_dir(cache_dir) / f"{name}-{spec_key(spec)}.safetensors"
    if path.exists():
        data = _read(path, spec_text)
        if data is not None:
            return data
    data = generate()
    try:
        _write_atomic(path, data, spec_text)
    except OSError as err:
        warnings.warn(f"could not write the cache file {path} ({err}); the data were generated, not cached.", stacklevel=2)
    return data
