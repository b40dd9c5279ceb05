"""Sphinx configuration of the API reference (``sphinx-build -W docs docs/_build``).

A page per module of :mod:`hilbert_diffusion` is written into ``docs/api/`` when the build starts (generated, not
committed: a new module gets its page without an edit here), and the build warns (an error under ``-W``) when a name of
``hilbert_diffusion.__all__`` is not documented on its module's page.
"""

from __future__ import annotations

import inspect
import pkgutil
from pathlib import Path

from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

import hilbert_diffusion

project = "hilbert_diffusion"
author = "the hilbert_diffusion developers"
copyright = f"2026, {author}"
release = hilbert_diffusion.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
exclude_patterns = ["_build"]
autodoc_default_options = {"members": True, "show-inheritance": True, "no-value": True}
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
html_theme = "alabaster"

API = Path(__file__).parent / "api"
_log = logging.getLogger(__name__)


def module_names() -> list[str]:
    """Every module of the package but ``__main__`` (importing it runs the command line)."""
    walk = pkgutil.walk_packages(hilbert_diffusion.__path__, prefix="hilbert_diffusion.")
    return ["hilbert_diffusion"] + sorted(m.name for m in walk if not m.name.endswith("__main__"))


def _page(name: str) -> str:
    title = f"``{name}``"
    # Package pages carry their own docstring; the names they re-export are documented where they are defined.
    options = "   :ignore-module-all:\n" if _is_package(name) else ""
    return f"{title}\n{'=' * len(title)}\n\n.. automodule:: {name}\n{options}"


def _is_package(name: str) -> bool:
    return hasattr(__import__(name, fromlist=["_"]), "__path__")


def _public_names() -> str:
    """The table of ``hilbert_diffusion.__all__``: each name linked to its entry on its module's page."""
    rows = []
    for name in hilbert_diffusion.__all__:
        target = _target(name)
        rows.append(f"* :py:obj:`{name} <{target}>` — ``{target}``")
    return "\n".join(rows) + "\n"


def _target(name: str) -> str:
    """Where ``hilbert_diffusion.<name>`` is documented: its defining module's entry; an instance (a sampler) is
    documented by the ``#:`` comment above its assignment, so its entry is in the module that has that comment."""
    obj = getattr(hilbert_diffusion, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    for module in module_names():
        if ("", name) in ModuleAnalyzer.for_module(module).find_attr_docs():
            return f"{module}.{name}"
    return f"hilbert_diffusion.{name}"


def write_pages(app) -> None:
    API.mkdir(exist_ok=True)
    names = module_names()
    for name in names:
        _write_if_changed(API / f"{name}.rst", _page(name))
    toc = "\n".join(f"   {name}" for name in names)
    _write_if_changed(API / "index.rst", f"Modules\n=======\n\n.. toctree::\n   :maxdepth: 1\n\n{toc}\n")
    _write_if_changed(API / "public_names.rst.inc", _public_names())


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def check_public_names(app, env) -> None:
    """Every name of ``hilbert_diffusion.__all__`` has an entry in the Python domain."""
    documented = set(env.get_domain("py").objects)
    for name in hilbert_diffusion.__all__:
        if _target(name) not in documented:
            _log.warning(f"hilbert_diffusion.{name} is in __all__ but not documented (looked for {_target(name)}).")


def setup(app):
    app.connect("builder-inited", write_pages)
    app.connect("env-check-consistency", check_public_names)
