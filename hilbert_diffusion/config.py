"""JSON round trip of the toolkit's frozen dataclasses (bases, spectra, schedules, SDEs).

An object becomes ``{"type": "module.Class", **fields}``, nested for fields that are themselves
dataclasses. Only classes defined inside ``hilbert_diffusion`` are rebuilt, so a config file cannot
import arbitrary code.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

__all__ = ["to_config", "from_config"]

_PACKAGE = __name__.rsplit(".", 1)[0]


def to_config(obj: Any) -> Any:
    """A JSON-ready description of ``obj`` (a dataclass of this package, or plain data)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        out: dict[str, Any] = {"type": f"{cls.__module__}.{cls.__qualname__}"}
        for f in dataclasses.fields(obj):
            if f.init and not f.name.startswith("_"):
                out[f.name] = to_config(getattr(obj, f.name))
        return out
    if isinstance(obj, (list, tuple)):
        return [to_config(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_config(v) for k, v in obj.items()}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a config; use dataclasses of {_PACKAGE} or plain data.")


def from_config(data: Any) -> Any:
    """Rebuild what :func:`to_config` produced."""
    if isinstance(data, list):
        return [from_config(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "type" not in data:
        return {k: from_config(v) for k, v in data.items()}
    path = data["type"]
    module_name, _, name = path.rpartition(".")
    if not (module_name == _PACKAGE or module_name.startswith(_PACKAGE + ".")):
        raise ValueError(f"config names {path!r}, which is not part of {_PACKAGE}; refusing to import it.")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"config names {path!r}, which this version of {_PACKAGE} does not have; "
            f"the checkpoint was written by an incompatible version."
        ) from err
    kwargs = {k: from_config(v) for k, v in data.items() if k != "type"}
    for f in dataclasses.fields(cls):  # JSON has no tuples
        if isinstance(kwargs.get(f.name), list) and "tuple" in str(f.type):
            kwargs[f.name] = tuple(kwargs[f.name])
    return cls(**kwargs)
