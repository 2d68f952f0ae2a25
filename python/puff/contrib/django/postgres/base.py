"""``DatabaseWrapper`` of the ENGINE ``puff.contrib.django.postgres``.

It is Django's own postgresql wrapper (SQL generation, schema editor, introspection, features),
with connections that are ``puff.postgres`` connections on Puff's pools instead of psycopg ones:

1. Autocommit (Django's default outside ``atomic``): each query runs on the pool's shared
   connections, pipelined with every other greenlet's queries. Opening a Django connection costs
   nothing, so ``CONN_MAX_AGE`` does not matter.
2. ``transaction.atomic`` turns autocommit off: the first query pins one pool connection
   (``BEGIN``) until commit/rollback; nested blocks are savepoints on it.
3. Nothing is set per session (a shared connection has no session of its own): the time zone is
   not ``SET`` (values are converted in Python instead), ``OPTIONS["assume_role"]`` is refused,
   and an ``OPTIONS["isolation_level"]`` is set per transaction (``SET TRANSACTION``).
4. Puff's pools replace Django's psycopg pool: ``OPTIONS["pool"]`` names one (``True`` means
   ``"default"``; Django's dict of psycopg_pool arguments is refused), see ``pools``.
5. Django keeps its connections per thread; under Puff they are made per greenlet
   (``puff.contrib.django._connections``), so concurrent requests never share one.
6. Django's ``async_unsafe`` guard asks "is an event loop running in this thread?". With
   ``asyncio = true`` Puff's loop runs in the hub and WSGI views run in greenlets beside it, so
   that question would refuse every query of every view. The guarded methods here ask Puff
   instead: they refuse only in a coroutine (``DJANGO_ALLOW_ASYNC_UNSAFE`` still lifts it).
"""

import asyncio
import functools
import os

from django.core.exceptions import ImproperlyConfigured, SynchronousOnlyOperation
from django.db.backends.postgresql import base as _pg_base
from django.db.backends.postgresql.psycopg_any import IsolationLevel

from puff import _scheduler

from .. import _connections
from . import dbapi, pools
from .client import DatabaseClient
from .creation import DatabaseCreation
from .introspection import DatabaseIntrospection
from .operations import DatabaseOperations
from .schema import DatabaseSchemaEditor


class DatabaseWrapper(_pg_base.DatabaseWrapper):
    display_name = "PostgreSQL (Puff)"
    Database = dbapi
    SchemaEditorClass = DatabaseSchemaEditor
    client_class = DatabaseClient
    creation_class = DatabaseCreation
    introspection_class = DatabaseIntrospection
    ops_class = DatabaseOperations

    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        pools.normalize(self.settings_dict)

    @property
    def pool(self):
        return None  # Puff's pools, not psycopg_pool

    def close_pool(self):
        pass

    def get_connection_params(self):
        settings_dict = self.settings_dict
        if len(settings_dict["NAME"] or "") > self.ops.max_name_length():
            raise ImproperlyConfigured(
                f"The database name {settings_dict['NAME']!r} is longer than PostgreSQL's limit of "
                f"{self.ops.max_name_length()} characters. Supply a shorter NAME in settings.DATABASES.")
        if settings_dict["OPTIONS"].get("assume_role"):
            raise ImproperlyConfigured(
                "OPTIONS['assume_role'] is not supported by puff.contrib.django.postgres: queries share "
                "pool connections, which have no role of their own; connect as that role in the pool URL.")
        return {"pool_name": pools.resolve(settings_dict)}

    def get_new_connection(self, conn_params):
        level = self.settings_dict["OPTIONS"].get("isolation_level")
        if level is None:
            self.isolation_level = IsolationLevel.READ_COMMITTED
            isolation_sql = None
        else:
            try:
                self.isolation_level = IsolationLevel(level)
            except ValueError:
                raise ImproperlyConfigured(
                    f"Invalid transaction isolation level {level} specified. Use one of the "
                    "IsolationLevel values of django.db.backends.postgresql.psycopg_any.") from None
            isolation_sql = "SET TRANSACTION ISOLATION LEVEL " + self.isolation_level.name.replace("_", " ")
        return dbapi.connect(conn_params["pool_name"], isolation_sql)

    def _configure_timezone(self, connection):
        return False  # see 3. in the module docstring

    def _configure_role(self, connection):
        return False

    def create_cursor(self, name=None):
        if name:  # QuerySet.iterator(): a server-side cursor, held outside a transaction
            return self.connection.cursor(name, withhold=self.connection.autocommit)
        return self.connection.cursor()

    def chunked_cursor(self):
        self._named_cursor_idx += 1
        return self._cursor(name=f"_django_curs_{self._named_cursor_idx}")

    def is_usable(self):
        # The pool replaces dead connections itself; a Django connection is only a handle.
        return self.connection is not None and not self.connection.closed


_connections.install()  # one Django connection per greenlet, see _connections


def _in_coroutine() -> bool:
    mode = _scheduler.current_mode()
    if mode is not None:
        return mode == _scheduler.ASYNCIO
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _puff_async_unsafe(func):
    inner = getattr(func, "__wrapped__", func)

    @functools.wraps(inner)
    def guarded(*args, **kwargs):
        if _in_coroutine() and not os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"):
            raise SynchronousOnlyOperation("You cannot call this from an async context - use a thread or "
                                           "sync_to_async.")
        return inner(*args, **kwargs)

    return guarded


for _name in ("connect", "ensure_connection", "cursor", "commit", "rollback", "close", "savepoint",
              "savepoint_rollback", "savepoint_commit", "clean_savepoints"):
    setattr(DatabaseWrapper, _name, _puff_async_unsafe(getattr(_pg_base.DatabaseWrapper, _name)))
del _name
