"""Shapes of the JSON documents the toolkit reads: a checkpoint's ``checkpoint.json`` and the ``--config`` file.

A document of the wrong shape (a list where an object is expected, ``"steps": "abc"``, a file name that
leaves the checkpoint folder) is refused with one line naming the field, what it must be and what it is,
before anything is built from it. :func:`dataclass_from_options` checks option objects (``"model"``,
``"train"`` of ``--config``) against the fields and type annotations of the dataclass they configure.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from .config import from_config

__all__ = ["SchemaError", "check_checkpoint_document", "check_config_document", "check_options",
           "dataclass_from_options", "is_plain_file_name"]


class SchemaError(ValueError):
    """A JSON document of the wrong shape."""


# A schema is a function (value, where) -> None that raises SchemaError; the builders below make them.
Check = Callable[[Any, str], None]


def _fail(where: str, wanted: str, value: Any) -> typing.NoReturn:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise SchemaError(f"{where or 'the document'} must be {wanted}, got {type(value).__name__} {shown}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _integer(minimum: int) -> Check:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            _fail(where, "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}", value)
    return check


def _number(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(where, "a number", value)


def _string(pattern: str | None = None, wanted: str = "a string") -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, str) or (pattern is not None and not re.fullmatch(pattern, value)):
            _fail(where, wanted, value)
    return check


def _typed(value: Any, where: str) -> None:
    """A :func:`~hilbert_diffusion.config.to_config` object: ``{"type": "module.Class", ...}``."""
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        _fail(where, 'an object with a "type" string (a to_config document)', value)


def _list_of(item: Check, *, min_len: int = 0) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, list) or len(value) < min_len:
            _fail(where, f"a list of at least {min_len} entries" if min_len else "a list", value)
        for i, entry in enumerate(value):
            item(entry, f"{where}[{i}]")
    return check


def _nullable(inner: Check) -> Check:
    def check(value: Any, where: str) -> None:
        if value is not None:
            inner(value, where)
    return check


def _object(fields: dict[str, Check], *, optional: tuple[str, ...] = (), extra: bool = True) -> Check:
    def check(value: Any, where: str) -> None:
        if not isinstance(value, dict):
            _fail(where, "an object {...}", value)
        missing = [k for k in fields if k not in value and k not in optional]
        if missing:
            raise SchemaError(f"{where or 'the document'} lacks the field {missing[0]!r}")
        unknown = sorted(set(value) - set(fields))
        if unknown and not extra:
            raise SchemaError(f"{where or 'the document'} has unknown keys {unknown}; known: {sorted(fields)}")
        for key, inner in fields.items():
            if key in value:
                inner(value[key], _join(where, key))
    return check


def is_plain_file_name(name: Any) -> bool:
    """``name`` is one path component (no folder, no ``..``, not absolute, on POSIX or Windows)."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "\x00" not in name
            and PurePosixPath(name).name == name and PureWindowsPath(name).name == name)


def _files(value: Any, where: str) -> None:
    entry = _object({"sha256": _string(r"[0-9a-f]{64}", "a SHA-256 hex digest"), "bytes": _integer(0)})
    if not isinstance(value, dict) or not value:
        _fail(where, "a non-empty object of file name → {sha256, bytes}", value)
    for name, meta in value.items():
        if not is_plain_file_name(name):
            raise SchemaError(f"{where} names {name!r}, which is not a plain file name inside the checkpoint folder")
        entry(meta, f"{where}[{name!r}]")


_CHECKPOINT = _object({
    "format": _string(), "version": _integer(0), "step": _integer(0),
    "sde": _typed,
    "model": _object({"config": _typed, "channels": _integer(1), "data_spectrum": _list_of(_typed, min_len=1)}),
    "normalization": _typed,
    "train": _typed,
    "data": _object({"num": _integer(1), "grid": _list_of(_integer(1), min_len=1),
                     "spec": _nullable(_object({}))}, optional=("spec",)),
    "wiener_loss": _number,
    "files": _files,
    "content_sha256": _string(r"[0-9a-f]{64}", "a SHA-256 hex digest"),
}, optional=("train", "wiener_loss"))


def _labelled(check: Check, document: Any, label: str) -> None:
    try:
        check(document, "")
    except SchemaError as err:
        raise SchemaError(f"{label}: {err}") from None


def check_checkpoint_document(document: Any, label: str) -> None:
    """Raise :class:`SchemaError` (its message starting with ``label``) unless ``document`` has the shape of a
    ``checkpoint.json``; the counts must also agree (one data spectrum per channel)."""
    _labelled(_CHECKPOINT, document, label)
    model = document["model"]
    if len(model["data_spectrum"]) != model["channels"]:
        raise SchemaError(f"{label}: model.channels is {model['channels']} but the checkpoint stores "
                          f"{len(model['data_spectrum'])} data spectra (one per channel)")


_CONFIG = _object({"sde": _typed, "model": _object({}), "train": _object({})},
                  optional=("sde", "model", "train"), extra=False)


def check_config_document(document: Any, label: str) -> None:
    """Raise :class:`SchemaError` unless ``document`` is a ``--config`` object (optional ``sde``, ``model``, ``train``)."""
    _labelled(_CONFIG, document, label)


# ----------------------------------------------------------------------------------- option objects
def _matches(value: Any, annotation: Any) -> bool:
    """Whether a JSON ``value`` fits a field annotation (unknown annotations accept anything)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return isinstance(value, (dict, annotation))
    return True


def _as_field(value: Any) -> Any:
    if isinstance(value, dict) and "type" in value:
        return from_config(value)
    if isinstance(value, list):
        return tuple(_as_field(v) for v in value)
    return value


def check_options(cls: type, options: dict, where: str, *, unknown_ok: bool = False) -> None:
    """Every key of ``options`` is an init field of ``cls`` (unless ``unknown_ok``) whose type annotation its value fits."""
    hints = typing.get_type_hints(cls)
    known = {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - set(known))
    if unknown and not unknown_ok:
        raise SchemaError(f"{where} has unknown keys {unknown}; known: {sorted(known)}")
    for key, value in options.items():
        if key in known and not _matches(value, known[key]):
            wanted = getattr(known[key], "__name__", None) or str(known[key]).replace("typing.", "")
            _fail(_join(where, key), f"of type {wanted}", value)


def dataclass_from_options(cls: type, options: dict, where: str) -> Any:
    """``cls(**options)`` after :func:`check_options`; lists become tuples and ``{"type": ...}`` objects the
    allowed dataclasses they name."""
    check_options(cls, options, where)
    return cls(**{k: _as_field(v) for k, v in options.items()})
