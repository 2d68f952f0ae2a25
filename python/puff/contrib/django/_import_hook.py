"""Lets Django's postgresql modules import without psycopg, and without a global ``psycopg2``.

Design (see docs/django.md, "psycopg"): Django's backend and ``django.contrib.postgres`` do
``import psycopg`` / ``import psycopg2`` at import time. Puff's engine reuses those modules, so
they must import even where no driver is installed. Putting a fake ``psycopg2`` in
``sys.modules`` would shadow the real one for every other library (upstream's bug), so instead:

1. A meta-path finder recognises only the few Django modules that import the driver
   (``_TARGETS``) and loads them with their normal loader, after giving the new module a private
   ``__builtins__`` whose ``__import__`` handles ``psycopg2`` itself.
2. That ``__import__`` first tries the real import. Only if it raises ``ImportError`` does it
   return Puff's stand-in, ``puff.contrib.django._psycopg2`` (a real module under a private name).
   ``psycopg`` (3) is never faked, so Django falls back from it to ``psycopg2`` as usual.

So an installed psycopg or psycopg2 is always what Django uses; ``import psycopg2`` elsewhere
still fails when it is not installed; and ``sys.modules`` never holds a ``psycopg2`` from Puff.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import sys

_TARGETS = frozenset({
    "django.db.backends.postgresql.psycopg_any",
    "django.db.backends.postgresql.base",
    "django.contrib.postgres.signals",
})
_SHIM = "puff.contrib.django._psycopg2"
_real_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    if level or not (name == "psycopg2" or name.startswith("psycopg2.")):
        return _real_import(name, globals, locals, fromlist, level)
    try:
        return _real_import(name, globals, locals, fromlist, level)
    except ImportError:
        pass
    module = importlib.import_module(_SHIM + name[len("psycopg2"):])
    return module if fromlist else importlib.import_module(_SHIM)


_builtins = dict(builtins.__dict__)
_builtins["__import__"] = _import


class _Loader(importlib.abc.Loader):
    """The module's own loader, run with the private ``__builtins__``."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        module.__builtins__ = _builtins
        self._inner.exec_module(module)

    def __getattr__(self, name):  # get_source, get_code, ... (tracebacks, inspect)
        return getattr(self._inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname not in _TARGETS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def install() -> None:
    """Installs the finder (idempotent). It only matters for modules imported afterwards."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
