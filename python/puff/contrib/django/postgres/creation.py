"""Django's postgresql test-database creation, for Puff's pools: the private pool on a test
database is closed before Postgres is asked to drop or copy it, and "already exists" is
recognised by its SQLSTATE (42P04) whichever driver module Django imported."""

import sys

from django.db.backends.base.creation import BaseDatabaseCreation
from django.db.backends.postgresql import creation as _pg_creation
from django.db.backends.utils import strip_quotes

from . import pools

_DUPLICATE_DATABASE = "42P04"


class DatabaseCreation(_pg_creation.DatabaseCreation):
    def _execute_create_test_db(self, cursor, parameters, keepdb=False):
        if keepdb and self._database_exists(cursor, parameters["dbname"]):
            return
        try:
            BaseDatabaseCreation._execute_create_test_db(self, cursor, parameters, keepdb)
        except Exception as e:
            if getattr(e.__cause__, "pgcode", None) != _DUPLICATE_DATABASE:
                self.log(f"Got an error creating the test database: {e}")
                sys.exit(2)
            if not keepdb:
                raise  # Django then offers to drop the old test database

    def _destroy_test_db(self, test_database_name, verbosity):
        pools.close_database(strip_quotes(test_database_name))
        super()._destroy_test_db(test_database_name, verbosity)

    def _clone_test_db(self, suffix, verbosity, keepdb=False):
        # Django's parallel runner forks worker processes, which would not have Puff's runtime
        # (its I/O threads do not survive a fork): they would wait for the database forever.
        raise NotImplementedError(
            "`puff django test --parallel` is not supported: tests run in one process inside the Puff "
            "runtime. Run them without --parallel (with --noinput, the next run replaces the test database left behind).")
