"""The DB-API module Django's backend talks to: ``puff.postgres`` plus the psycopg-isms Django
uses (``connection.info``, ``cursor.query``, ``cursor.mogrify``, ``callproc``, isolation levels).

A ``Connection`` is a ``puff.postgres.Connection`` on a named pool. In autocommit mode (Django's
default outside ``atomic``) its statements go to the pool's shared, pipelined connections; once
autocommit is off, the first statement pins one connection (``BEGIN``) until commit/rollback.
All calls may switch greenlets (they wait for the server); none blocks the thread.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from puff import postgres as _pg
from puff.postgres import (  # noqa: F401 (Django looks these up on ``DatabaseWrapper.Database``)
    DatabaseError, DataError, Error, IntegrityError, InterfaceError, InternalError, NotSupportedError,
    OperationalError, ProgrammingError, Warning, apilevel, paramstyle, threadsafety,
)

from .._sqltext import cast_placeholders, split_statements
from .._values import adapt_params, json_casts, mogrify

#: pool name -> {setting: value}: server facts read once per pool (a shared connection has no
#: session of its own, so they are the server's, not one connection's).
_server_facts: Dict[str, Dict[str, str]] = {}


class ConnectionInfo:
    """psycopg's ``connection.info``: what Django reads of it."""

    __slots__ = ("_pool_name",)

    def __init__(self, pool_name: str) -> None:
        self._pool_name = pool_name

    def parameter_status(self, name: str) -> Optional[str]:
        facts = _server_facts.setdefault(self._pool_name, {})
        if name not in facts:
            cur = _pg.connect(self._pool_name, autocommit=True).cursor()
            cur.execute("SELECT current_setting(%s, true)", [name])
            facts[name] = cur.fetchone()[0]
        return facts[name]

    @property
    def server_version(self) -> int:
        return int(self.parameter_status("server_version_num"))


class Connection:
    """A Django-side connection on the pool ``pool_name``; created by ``connect``."""

    def __init__(self, pool_name: str, isolation_sql: Optional[str] = None) -> None:
        self._c = _pg.connect(pool_name)
        self.pool_name = pool_name
        self.info = ConnectionInfo(pool_name)
        #: ``SET TRANSACTION ISOLATION LEVEL ...`` run first in each transaction, or None
        self._isolation = isolation_sql

    @property
    def autocommit(self) -> bool:
        return self._c.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._c.autocommit = value

    @property
    def closed(self) -> bool:
        return self._c.closed

    def cursor(self, name: Optional[str] = None, *, withhold: bool = False) -> "Cursor":
        """A cursor; with a name, a server-side cursor (rows fetched in batches, see
        ``puff.postgres``'s named cursors)."""
        return Cursor(self, self._c.cursor(name, withhold=withhold) if name else self._c.cursor())

    def commit(self) -> None:
        self._c.commit()

    def rollback(self) -> None:
        self._c.rollback()

    def close(self) -> None:
        self._c.close()


def connect(pool_name: str, isolation_sql: Optional[str] = None) -> Connection:
    return Connection(pool_name, isolation_sql)


class Cursor:
    """A ``puff.postgres`` cursor that adapts Django's parameters and keeps the last statement
    for ``query`` (the SQL Django shows in ``connection.queries``)."""

    def __init__(self, connection: Connection, cursor: Any) -> None:
        self.connection = connection
        self._cur = cursor
        self._sql: Optional[str] = None
        self._params: Any = None
        self.lastrowid = None

    def execute(self, sql: str, params: Any = None) -> None:
        conn = self.connection
        if conn._isolation is not None and not conn._c.autocommit and not conn._c.in_transaction:
            # Opens the transaction with BEGIN first. On a plain cursor: this one may be a named
            # cursor (QuerySet.iterator()), which would DECLARE a cursor FOR the SET.
            conn._c.cursor().execute(conn._isolation)
        self._sql = sql
        if params is not None:
            self._params = params = adapt_params(params)
            casts = json_casts(params)
            if casts:
                sql = cast_placeholders(sql, casts)
        else:
            self._params = None
            if ";" in sql:  # Django's DDL sometimes sends two statements in one string
                statements = split_statements(sql)
                for statement in statements[:-1]:
                    self._cur.execute(statement)
                sql = statements[-1] if statements else sql
        self._cur.execute(sql, params)

    def executemany(self, sql: str, seq_of_params: Any) -> None:
        seq = [adapt_params(p) for p in seq_of_params]
        self._sql, self._params = sql, (seq[-1] if seq else None)
        casts = json_casts(seq[0]) if seq else None
        if casts:
            sql = cast_placeholders(sql, casts)
        self._cur.executemany(sql, seq)

    def callproc(self, name: str, args: Any = None) -> Any:
        quoted = '"' + name.replace('"', '""') + '"'
        self.execute(f"SELECT * FROM {quoted}({', '.join(['%s'] * len(args or ()))})", list(args or ()))
        return args

    def mogrify(self, sql: str, params: Any = None) -> bytes:
        return mogrify(sql, params).encode()

    @property
    def query(self) -> Optional[bytes]:
        """The last statement with its parameters as literals (psycopg2's ``cursor.query``)."""
        if self._sql is None:
            return None
        try:
            return mogrify(self._sql, self._params).encode()
        except (TypeError, ValueError):
            return self._sql.encode()

    @property
    def description(self):
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    @property
    def statusmessage(self) -> Optional[str]:
        return self._cur.statusmessage

    @property
    def arraysize(self) -> int:
        return self._cur.arraysize

    @arraysize.setter
    def arraysize(self, n: int) -> None:
        self._cur.arraysize = n

    @property
    def closed(self) -> bool:
        return self._cur.closed

    def fetchone(self):
        return self._cur.fetchone()

    def fetchmany(self, size: Optional[int] = None):
        return self._cur.fetchmany(size)

    def fetchall(self):
        return self._cur.fetchall()

    def __iter__(self):
        return iter(self._cur)

    def nextset(self) -> None:
        return None

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass

    def close(self) -> None:
        self._cur.close()

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
