"""A private psycopg2-shaped module for Django's postgresql backend, when no real driver is installed.

Django's ``django.db.backends.postgresql`` imports ``psycopg`` or ``psycopg2`` at import time (and
``django.contrib.postgres`` does too). Puff's engine (``puff.contrib.django.postgres``) does not
use their connections, but it reuses Django's operations, schema editor, introspection and
features, so those modules must import. This package is what they get, through the import hook
in ``puff.contrib.django._import_hook``, when neither ``psycopg`` nor ``psycopg2`` can be imported.

It is never registered as ``psycopg2`` in ``sys.modules``: ``import psycopg2`` anywhere else still
fails (or finds the real one). It holds only what those imports and module-level calls need;
queries go through ``puff.postgres``. ``connect()`` refuses, so that the stock ENGINE
``django.db.backends.postgresql`` fails with a clear message instead of half-working.
"""

from puff.postgres import (  # noqa: F401 (re-exported for Django's ``Database.Error`` etc.)
    BINARY, DATETIME, NUMBER, ROWID, STRING, DatabaseError, DataError, Error, IntegrityError, InterfaceError,
    InternalError, NotSupportedError, OperationalError, ProgrammingError, Warning, apilevel, paramstyle,
    threadsafety,
)

from . import errors, extensions, extras, sql  # noqa: F401

#: Django checks ``__version__.split(" ")[0] >= 2.8.4``.
__version__ = "2.9.10 (puff shim)"


def connect(*args, **kwargs):
    raise NotSupportedError(
        "psycopg2 is not installed: this is Puff's private stand-in, which only lets Django's postgresql "
        "modules import. Use ENGINE 'puff.contrib.django.postgres' (or install psycopg to use Django's own engine).")
