"""JSON round trip of the toolkit's frozen dataclasses (bases, spectra, schedules, SDEs).

An object becomes ``{"type": "module.Class", **fields}``, nested for fields that are themselves
dataclasses. Only an allow-list is rebuilt: public dataclasses defined in the configuration modules
named in :data:`CONFIG_MODULES` (bases, spectra, schedules, SDEs, normalisation, time samplers, model
and training configs). A type path is checked against that list *before* anything is imported, so a
config file can neither import arbitrary code nor run a module of this package with side effects
(``hilbert_diffusion.__main__`` is refused, not imported). ``from_config(doc, expect=Base)`` further
requires the class to be a subclass of ``Base`` before constructing it.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

__all__ = ["to_config", "from_config", "CONFIG_MODULES"]

_PACKAGE = __name__.rsplit(".", 1)[0]

#: Modules (relative to the package) whose public dataclasses a config document may construct.
CONFIG_MODULES = ("bases.box", "bases.sphere", "noise", "sde", "normalization", "losses", "models.fno",
                  "models.uno", "models.local_fno", "models.multiscale", "models.sphere", "training")


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


def config_class(path: Any, *, expect: type | None = None) -> type:
    """The allowed dataclass a config's ``"type"`` path names (see the module docstring), else ``ValueError``."""
    if not isinstance(path, str):
        raise ValueError(f"config 'type' must be a string 'module.Class', got {path!r}.")
    module_name, _, name = path.rpartition(".")
    if not (module_name == _PACKAGE or module_name.startswith(_PACKAGE + ".")):
        raise ValueError(f"config names {path!r}, which is not part of {_PACKAGE}; refusing to import it.")
    if module_name[len(_PACKAGE) + 1:] not in CONFIG_MODULES or name.startswith("_"):
        raise ValueError(f"config names {path!r}, which is not a configuration class of {_PACKAGE} "
                         f"(allowed: the dataclasses of {', '.join(CONFIG_MODULES)}); refusing to import it.")
    cls = getattr(importlib.import_module(module_name), name, None)
    if cls is None:
        raise ValueError(f"config names {path!r}, which this version of {_PACKAGE} does not have; "
                         f"the checkpoint was written by an incompatible version.")
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == module_name):
        raise ValueError(f"config names {path!r}, which is not a configuration dataclass; refusing to build it.")
    if expect is not None and not issubclass(cls, expect):
        raise ValueError(f"config names {path!r} where a {expect.__name__} is expected.")
    return cls


def from_config(data: Any, *, expect: type | None = None) -> Any:
    """Rebuild what :func:`to_config` produced; ``expect``: the class (or base class) the document must name."""
    if isinstance(data, list):
        return [from_config(v) for v in data]
    if not isinstance(data, dict):
        if expect is not None:
            raise ValueError(f"config has {data!r} where a {expect.__name__} object is expected.")
        return data
    if "type" not in data:
        if expect is not None:
            raise ValueError(f"config object {sorted(data)} lacks its 'type' (a {expect.__name__} is expected).")
        return {k: from_config(v) for k, v in data.items()}
    cls = config_class(data["type"], expect=expect)
    kwargs = {k: from_config(v) for k, v in data.items() if k != "type"}
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    if set(kwargs) - known:
        raise ValueError(f"config of {cls.__name__} has unknown keys {sorted(set(kwargs) - known)}; known: {sorted(known)}.")
    for f in dataclasses.fields(cls):  # JSON has no tuples
        if isinstance(kwargs.get(f.name), list) and "tuple" in str(f.type):
            kwargs[f.name] = tuple(kwargs[f.name])
    try:
        return cls(**kwargs)
    except TypeError as err:  # a wrong type deep inside a constructor: one line naming the class
        raise ValueError(f"config of {cls.__name__} is malformed: {err}.") from err
