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
4. Django's psycopg pool (``OPTIONS["pool"]`` as True or a dict) is replaced by Puff's pools:
   ``OPTIONS["pool"]`` names one (see ``pools``).
"""

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as _pg_base
from django.db.backends.postgresql.psycopg_any import IsolationLevel

from . import dbapi, pools
from .client import DatabaseClient
from .creation import DatabaseCreation
from .operations import DatabaseOperations
from .schema import DatabaseSchemaEditor


class DatabaseWrapper(_pg_base.DatabaseWrapper):
    display_name = "PostgreSQL (Puff)"
    Database = dbapi
    SchemaEditorClass = DatabaseSchemaEditor
    client_class = DatabaseClient
    creation_class = DatabaseCreation
    ops_class = DatabaseOperations

    def __init__(self, settings_dict, alias="default"):
        super().__init__(settings_dict, alias)
        if not self.settings_dict.get("NAME") and self.settings_dict.get("NAME") is not None:
            # NAME left out with OPTIONS["pool"]: the pool's database (the test runner derives
            # test_<NAME> from it).
            self.settings_dict["NAME"] = pools.database_of(self.settings_dict)

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
        return self.connection.cursor()

    def chunked_cursor(self):
        # No server-side cursors yet: .iterator() reads from a buffered result.
        return self._cursor()

    def is_usable(self):
        # The pool replaces dead connections itself; a Django connection is only a handle.
        return self.connection is not None and not self.connection.closed
