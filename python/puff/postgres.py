"""DB-API 2.0 (PEP 249) over Puff's native pipelined Postgres pools. See docs/postgres.md.

Dual-mode: in a greenlet (or a blocking-pool thread) every call returns its value. In a coroutine
on Puff's asyncio loop, the calls that wait return awaitables: ``connect`` is plain, but
``Cursor.execute``, ``Cursor.executemany``, ``Connection.commit``, ``Connection.rollback`` and
``Connection.execute`` must be awaited. ``fetch*`` never wait (results are buffered whole), except
on named cursors (_pg_cursor.py). COPY is in _pg_copy.py, LISTEN/NOTIFY in _pg_listen.py.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import os
import re
import time as _time
from typing import Any, Dict, Iterator, List, Optional, Sequence

from . import _native
from . import _pg_batch
from . import _pg_sql
from ._scheduler import ASYNCIO, current_mode

apilevel = "2.0"
threadsafety = 1  # the module and pools may be shared; a connection belongs to one task at a time
paramstyle = "pyformat"

__all__ = [
    "apilevel", "threadsafety", "paramstyle", "connect", "configure", "Connection", "Cursor", "Column",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError", "IntegrityError",
    "InternalError", "ProgrammingError", "NotSupportedError", "ServerCursor", "Copy", "listen", "Notify",
    "Subscription",
]


# ---- exceptions --------------------------------------------------------------------------------


class Warning(Exception):  # noqa: A001 (PEP 249 name)
    pass


class Diagnostic:
    """The server's error fields (as psycopg's ``e.diag``); absent fields are None."""

    _FIELDS = ("sqlstate", "severity", "message_primary", "message_detail", "message_hint", "context",
               "schema_name", "table_name", "column_name", "datatype_name", "constraint_name",
               "statement_position")

    def __init__(self, fields: Dict[str, Any]) -> None:
        for f in self._FIELDS:
            setattr(self, f, fields.get(f))

    def __repr__(self) -> str:
        return f"<Diagnostic {self.sqlstate} {self.message_primary!r}>"


class Error(Exception):
    """Base of every puff.postgres error. ``pgcode`` is the SQLSTATE, ``diag`` the fields."""

    def __init__(self, *args: Any, diag: Optional[Diagnostic] = None) -> None:
        super().__init__(*args)
        self.diag = diag if diag is not None else Diagnostic({})
        self.pgcode = self.diag.sqlstate
        self.pgerror = self.diag.message_primary
        self.sqlstate = self.pgcode


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


# SQLSTATE class -> DB-API class (as psycopg 3).
_CLASS_MAP = {
    "08": OperationalError, "0A": NotSupportedError, "20": ProgrammingError, "21": ProgrammingError,
    "22": DataError, "23": IntegrityError, "24": InternalError, "25": InternalError, "26": InternalError,
    "27": InternalError, "28": OperationalError, "2B": InternalError, "2D": InternalError, "2F": InternalError,
    "34": ProgrammingError, "38": InternalError, "39": InternalError, "3B": InternalError,
    "3D": ProgrammingError, "3F": ProgrammingError, "40": OperationalError, "42": ProgrammingError,
    "44": ProgrammingError, "53": OperationalError, "54": OperationalError, "55": OperationalError,
    "57": OperationalError, "58": OperationalError, "F0": InternalError, "HV": OperationalError,
    "P0": InternalError, "XX": InternalError,
}

_SQLSTATE_CLASSES = {
    "23502": "NotNullViolation", "23503": "ForeignKeyViolation", "23505": "UniqueViolation",
    "23514": "CheckViolation", "23P01": "ExclusionViolation",
    "22001": "StringDataRightTruncation", "22003": "NumericValueOutOfRange", "22007": "InvalidDatetimeFormat",
    "22008": "DatetimeFieldOverflow", "22012": "DivisionByZero", "22P02": "InvalidTextRepresentation",
    "25P02": "InFailedSqlTransaction", "25006": "ReadOnlySqlTransaction",
    "40001": "SerializationFailure", "40P01": "DeadlockDetected",
    "42601": "SyntaxError", "42501": "InsufficientPrivilege", "42703": "UndefinedColumn",
    "42883": "UndefinedFunction", "42P01": "UndefinedTable", "42P07": "DuplicateTable",
    "42804": "DatatypeMismatch", "42P02": "UndefinedParameter", "42P18": "IndeterminateDatatype",
    "57014": "QueryCanceled", "57P01": "AdminShutdown", "53300": "TooManyConnections",
    "08000": "ConnectionException", "08001": "SqlclientUnableToEstablishSqlconnection",
    "08003": "ConnectionDoesNotExist", "08006": "ConnectionFailure", "08007": "TransactionResolutionUnknown",
}

_by_sqlstate: Dict[str, type] = {}
for _code, _name in _SQLSTATE_CLASSES.items():
    _cls = type(_name, (_CLASS_MAP.get(_code[:2], DatabaseError),), {"sqlstate_code": _code, "__module__": __name__})
    _by_sqlstate[_code] = _cls
    globals()[_name] = _cls
    __all__.append(_name)
del _code, _name, _cls


def lookup(sqlstate: str) -> type:
    """The exception class for a SQLSTATE (psycopg.errors.lookup)."""
    return _by_sqlstate.get(sqlstate) or _CLASS_MAP.get(sqlstate[:2], DatabaseError)


def _make_error(fields: Dict[str, Any]) -> Error:
    diag = Diagnostic(fields)
    code = diag.sqlstate or "XX000"
    cls = lookup(code)
    if fields.get("connection") and not issubclass(cls, OperationalError):
        cls = OperationalError
    msg = diag.message_primary or code
    if code == "08007":
        msg += " (the outcome of the statement or COMMIT is unknown)"
    if diag.message_detail:
        msg += f"\nDETAIL:  {diag.message_detail}"
    if diag.message_hint:
        msg += f"\nHINT:  {diag.message_hint}"
    return cls(msg, diag=diag)


_native.pg_set_errors(_make_error, DataError)


# ---- types (PEP 249) ---------------------------------------------------------------------------


class _TypeObject:
    def __init__(self, name: str, *oids: int) -> None:
        self.name, self.oids = name, frozenset(oids)

    def __eq__(self, other: object) -> bool:
        return other in self.oids if isinstance(other, int) else other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<puff.postgres.{self.name}>"


STRING = _TypeObject("STRING", 25, 1043, 1042, 19, 18, 705)
BINARY = _TypeObject("BINARY", 17)
NUMBER = _TypeObject("NUMBER", 20, 21, 23, 26, 700, 701, 1700)
DATETIME = _TypeObject("DATETIME", 1082, 1083, 1114, 1184, 1186, 1266)
ROWID = _TypeObject("ROWID", 26)

Date = _dt.date
Time = _dt.time
Timestamp = _dt.datetime


def DateFromTicks(ticks: float) -> _dt.date:  # noqa: N802
    return Date(*_time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> _dt.time:  # noqa: N802
    return Time(*_time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> _dt.datetime:  # noqa: N802
    return Timestamp(*_time.localtime(ticks)[:6])


def Binary(data: Any) -> bytes:  # noqa: N802
    return bytes(data)


_PROCNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")

Column = collections.namedtuple(
    "Column", "name type_code display_size internal_size precision scale null_ok")


# ---- dual-mode driver --------------------------------------------------------------------------
# Operations are generators that yield native calls' results: in a greenlet the value itself
# (sent straight back), in a coroutine an asyncio future (awaited by _adrive).


def _drive(gen):
    if current_mode() == ASYNCIO:
        return _adrive(gen)
    r = None
    while True:
        try:
            r = gen.send(r)
        except StopIteration as stop:
            return stop.value
        if asyncio.isfuture(r):  # not expected outside a coroutine
            return _adrive(gen, r)


async def _adrive(gen, fut=None):
    try:
        if fut is None:
            fut = _until_future(gen, gen.send(None))
        while True:
            try:
                value = await fut
            except BaseException as e:  # noqa: BLE001 (thrown into the operation)
                r = gen.throw(e)
            else:
                r = gen.send(value)
            fut = _until_future(gen, r)
    except StopIteration as stop:
        return stop.value


def _until_future(gen, r):
    """Feeds `gen` the values it yields that are already results, up to the first future."""
    while not asyncio.isfuture(r):
        r = gen.send(r)
    return r


# ---- pools -------------------------------------------------------------------------------------

_configured: Dict[str, tuple] = {}
_pools: Dict[str, Any] = {}


def configure(name: str = "default", url: Optional[str] = None, pool_size: int = 10, **options: Any) -> None:
    """Declares (or replaces) a pool outside puff.toml: used instead of ``[[postgres]]`` ``name``."""
    _configured[name] = (url, pool_size, options)
    old = _pools.pop(name, None)
    if old is not None:
        old.close()
    old_listener = _pg_listen._listeners.pop(name, None)
    if old_listener is not None:
        old_listener.close()


def _settings(name: str):
    if name in _configured:
        return _configured[name]
    from . import config

    cfg = config.current
    for p in getattr(cfg, "postgres", None) or []:
        if p.name == name:
            options = {k: getattr(p, k) for k in ("connect_timeout_ms", "statement_timeout_ms", "max_prepared",
                                                  "hub_connection") if hasattr(p, k)}
            return p.url, p.pool_size, options
    url = os.environ.get(f"PUFF_{name.upper().replace('-', '_')}_POSTGRES_URL")
    if url:
        return url, 10, {}
    raise InterfaceError(f"no Postgres pool named {name!r}: add a [[postgres]] entry with name = {name!r} "
                         f"to puff.toml, set PUFF_{name.upper()}_POSTGRES_URL, or call puff.postgres.configure()")


def get_pool(name: str = "default"):
    """The native pool for ``name`` (created on first use inside the runtime)."""
    pool = _pools.get(name)
    if pool is None or pool.closed:
        url, size, options = _settings(name)
        try:
            pool = _native.PgPool(url, size, name, **options)
        except ValueError as e:
            raise InterfaceError(str(e)) from None
        except RuntimeError as e:
            raise InterfaceError(str(e)) from None
        _pools[name] = pool
    return pool


def connect(name: str = "default", autocommit: bool = False) -> "Connection":
    """A DB-API connection on the pool ``name``. Opening it costs nothing: autocommit connections
    share the pool's pipelined connections; in transaction mode the first statement pins one."""
    return Connection(get_pool(name), autocommit)


# ---- connection --------------------------------------------------------------------------------


class Connection:
    Warning, Error, InterfaceError, DatabaseError = Warning, Error, InterfaceError, DatabaseError
    DataError, OperationalError, IntegrityError = DataError, OperationalError, IntegrityError
    InternalError, ProgrammingError, NotSupportedError = InternalError, ProgrammingError, NotSupportedError

    def __init__(self, pool: Any, autocommit: bool = False) -> None:
        self._pool = pool
        self._autocommit = bool(autocommit)
        self._lease: Any = None
        self._closed = False
        self._busy = False
        self._txn = 0  # counts transactions: a named cursor belongs to one

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        if self._lease is not None:
            raise ProgrammingError("cannot change autocommit inside a transaction: commit() or rollback() first")
        self._autocommit = bool(value)

    @property
    def in_transaction(self) -> bool:
        return self._lease is not None

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the connection is closed")

    def cursor(self, name: Optional[str] = None, *, withhold: bool = False) -> "Cursor":
        """A cursor; with ``name``, a server-side cursor that fetches ``itersize`` rows at a time
        (see docs/postgres.md, "Named cursors")."""
        self._check()
        if name is not None:
            return ServerCursor(self, name, withhold)
        return Cursor(self)

    def execute(self, sql: str, params: Any = None, *, prepare: Optional[bool] = None) -> Any:
        """cursor().execute(sql, params): returns the cursor (awaitable in a coroutine)."""
        return self.cursor().execute(sql, params, prepare=prepare)

    def _claim(self) -> None:
        """Transaction mode: one statement at a time (a second task would share the transaction,
        or pin a second connection and drop the first one's work)."""
        if self._busy:
            raise ProgrammingError("this connection is running another statement: a connection in transaction "
                                   "mode belongs to one greenlet or task at a time")
        self._busy = True

    def _run(self, sql: str, params: Optional[Sequence], prepare: bool = True):
        """Generator: one statement through the pool or this connection's transaction."""
        self._check()
        if self._autocommit:
            return (yield self._pool.query(sql, params, prepare))
        self._claim()
        try:
            return (yield from self._run_in_transaction(sql, params, prepare))
        finally:
            self._busy = False

    def _run_in_transaction(self, sql: str, params: Optional[Sequence], prepare: bool):
        if self._lease is None:
            lease = yield self._pool.acquire()
            try:
                yield lease.query("BEGIN", None, False)
            except BaseException:
                lease.release()
                raise
            self._lease = lease
            self._txn += 1
        return (yield self._lease.query(sql, params, prepare))

    def _end(self, verb: str):
        if self._lease is None:
            return None
        self._claim()
        lease, self._lease = self._lease, None
        try:
            yield lease.query(verb, None, False)
        finally:
            self._busy = False
            lease.release()

    def commit(self) -> Any:
        """Commits the open transaction (nothing to do in autocommit mode or without one)."""
        self._check()
        return _drive(self._end("COMMIT"))

    def rollback(self) -> Any:
        self._check()
        return _drive(self._end("ROLLBACK"))

    def close(self) -> None:
        """Releases the pinned connection (an open transaction is rolled back). Idempotent."""
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        self._closed = True

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._closed:
                if exc_type is None:
                    self.commit()
                else:
                    self.rollback()
        finally:
            self.close()

    async def __aenter__(self) -> "Connection":
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if not self._closed:
                r = self.commit() if exc_type is None else self.rollback()
                if asyncio.iscoroutine(r):
                    await r
        finally:
            self.close()

    def __del__(self) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.release()


# ---- cursor ------------------------------------------------------------------------------------


class Cursor:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.arraysize = 1
        self._rows: Optional[List[tuple]] = None
        self._pos = 0
        self._description: Optional[List[Column]] = None
        self.rowcount = -1
        self.statusmessage: Optional[str] = None
        self._closed = False

    @property
    def description(self) -> Optional[List[Column]]:
        d = self._description
        if d.__class__ is tuple:  # (the result's (name, oid) pairs,): built when first read
            d = self._description = [Column(n, t, None, None, None, None, None) for n, t in d[0]]
        return d

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise InterfaceError("the cursor is closed")
        if self.connection.closed:
            raise InterfaceError("the connection is closed")

    def _store(self, res: tuple) -> None:
        rows, cols, count, tag = res
        self._rows, self._pos, self.statusmessage = rows, 0, tag
        self._description = None if cols is None else (cols,)  # see description
        self.rowcount = count

    def _bind(self, sql: str, params: Any):
        try:
            return _pg_sql.bind(sql, params)
        except _pg_sql.PlaceholderError as e:
            raise ProgrammingError(str(e)) from None

    def _execute(self, sql: str, params: Any, prepare: bool):
        self._check()
        text, values = self._bind(sql, params)
        self._rows, self._description, self.rowcount = None, None, -1
        res = yield from self.connection._run(text, values, prepare)
        self._store(res)
        return self

    def execute(self, sql: str, params: Any = None, *, prepare: Optional[bool] = None) -> Any:
        """Runs one statement. Returns the cursor (an awaitable of it in a coroutine).
        ``prepare`` defaults to True when there are parameters (the statement is cached)."""
        if prepare is None:
            prepare = params is not None
        conn = self.connection
        if conn._autocommit and type(self)._execute is Cursor._execute:
            # Autocommit: one native call on the pool's shared connections, no generator to drive.
            if self._closed or conn._closed:
                self._check()
            text, values = (sql, None) if params is None else self._bind(sql, params)
            self._rows, self._description, self.rowcount = None, None, -1
            res = conn._pool.query(text, values, prepare)
            if res.__class__ is tuple:  # a greenlet or a thread: the result itself
                self._store(res)
                return self
            return self._store_when_done(res)  # a coroutine: an asyncio future
        return _drive(self._execute(sql, params, prepare))

    async def _store_when_done(self, fut: Any) -> "Cursor":
        self._store(await fut)
        return self

    def _executemany(self, sql: str, seq: Any):
        self._check()
        seq = seq if isinstance(seq, (list, tuple)) else list(seq)
        # In a transaction a plain INSERT runs as multi-row INSERTs (_pg_batch.py).
        bound = None if self.connection.autocommit else _pg_batch.insert_batches(sql, seq)
        if bound is None:
            bound = [self._bind(sql, p) for p in seq]
        self._rows, self._description, self.rowcount = None, None, -1
        if not bound:
            self.rowcount = 0
            return self
        conn = self.connection
        if not conn.autocommit and conn._lease is None:
            first = yield from conn._run(bound[0][0], bound[0][1])  # opens the transaction
            results: List[Any] = [first]
            bound = bound[1:]
        else:
            results = []
        if conn.autocommit:
            outcomes = yield conn._pool.query_many(bound)  # one native call: pipelined, in order
        else:
            conn._claim()
            try:
                outcomes = yield conn._lease.query_many(bound)
            finally:
                conn._busy = False
        results.extend(outcomes)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]
        self.rowcount = sum(max(r[2], 0) for r in results)
        last = results[-1]
        if last[0] is not None:
            self._store(last)
            self.rowcount = sum(max(r[2], 0) for r in results)
        return self

    def executemany(self, sql: str, seq_of_params: Any) -> Any:
        """Runs ``sql`` once per parameter set, all pipelined. rowcount is the sum; the first error
        is raised once every statement has completed (autocommit: each commits on its own)."""
        return _drive(self._executemany(sql, seq_of_params))

    def _need_rows(self) -> List[tuple]:
        self._check()
        if self._rows is None:
            raise ProgrammingError("no results to fetch: the last statement returned no rows")
        return self._rows

    def fetchone(self) -> Optional[tuple]:
        rows = self._need_rows()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchmany(self, size: Optional[int] = None) -> List[tuple]:
        rows = self._need_rows()
        n = self.arraysize if size is None else size
        out = rows[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def fetchall(self) -> List[tuple]:
        rows = self._need_rows()
        out = rows[self._pos:]
        self._pos = len(rows)
        return out

    def __iter__(self) -> Iterator[tuple]:
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    @property
    def rownumber(self) -> Optional[int]:
        return None if self._rows is None else self._pos

    def callproc(self, procname: str, parameters: Sequence = ()) -> Any:
        """PEP 249 callproc: ``SELECT * FROM procname(%s, ...)``; its rows are fetched as usual.
        Returns the parameters (an awaitable of them in a coroutine). Postgres functions have no
        output parameters to update: use the result rows."""
        params = list(parameters)
        if not _PROCNAME.match(procname):
            raise ProgrammingError(f"callproc: {procname!r} is not a function name ([schema.]name)")
        sql = f"SELECT * FROM {procname}({', '.join(['%s'] * len(params))})"

        def gen():
            yield from self._execute(sql, params, True)
            return parameters

        return _drive(gen())

    def nextset(self) -> None:
        """Always None: one statement, one result set."""
        self._check()
        return None

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def copy(self, statement: str) -> "Copy":
        """``COPY ... FROM STDIN`` / ``COPY ... TO STDOUT``, streamed: use the result with
        ``with`` (``async with`` in a coroutine). See docs/postgres.md, "COPY"."""
        self._check()
        return Copy(self, statement)

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass

    def close(self) -> None:
        self._closed = True
        self._rows = None

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Cursor":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


# Named cursors, COPY and LISTEN/NOTIFY live in their own modules (they use the names above).
from ._pg_copy import Copy  # noqa: E402
from ._pg_cursor import ServerCursor  # noqa: E402
from . import _pg_listen  # noqa: E402
from ._pg_listen import Notify, Subscription, listen  # noqa: E402
