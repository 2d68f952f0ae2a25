"""Server-side (named) cursors for puff.postgres: ``conn.cursor(name="...")``. See docs/postgres.md.

``execute`` sends ``DECLARE <name> NO SCROLL CURSOR FOR <query>`` and the first ``FETCH FORWARD
itersize``; later rows come ``itersize`` (or ``fetchmany(n)``'s ``n``) at a time, so Python holds
one batch at most, whatever the size of the result.

Where the cursor lives:

- transaction mode: in the connection's transaction (its pinned connection). It ends with the
  transaction: fetching after ``commit()``/``rollback()`` raises ``ProgrammingError``. ``withhold``
  is refused there (``NotSupportedError``): a held cursor would outlive the pinned connection.
- autocommit mode: the cursor pins a connection of its own and reads inside a private transaction
  (``BEGIN`` / ``DECLARE``), which ends (``COMMIT``, connection back to the pool) when the last row
  has been fetched or the cursor is closed. ``withhold=True`` is accepted and changes nothing.
  A statement that fails (in ``execute`` or in a later fetch), or a wait that is interrupted,
  ends it at once (the connection goes back, rolled back): the caller cannot roll back a
  transaction it does not see, and a failed cursor that stays referenced (a stored exception's
  traceback) must not keep a pool connection pinned.

Every method that may fetch (``execute``, ``fetch*``, ``close``) returns an awaitable in a
coroutine; iterate with ``async for`` there.
"""

from __future__ import annotations

from typing import Any, List, Optional

from . import postgres as _pg


def quote_ident(name: str) -> str:
    if "\0" in name:
        raise _pg.ProgrammingError("a cursor name cannot contain NUL")
    return '"' + name.replace('"', '""') + '"'


class ServerCursor(_pg.Cursor):
    """A named cursor: rows stay on the server until fetched, ``itersize`` at a time."""

    def __init__(self, connection: "_pg.Connection", name: str, withhold: bool = False) -> None:
        super().__init__(connection)
        if not isinstance(name, str) or not name:
            raise _pg.ProgrammingError("a named cursor needs a non-empty str name")
        if withhold and not connection.autocommit:
            raise _pg.NotSupportedError(
                "withhold=True needs an autocommit connection: in transaction mode the cursor lives in the "
                "transaction (a held cursor would outlive its pinned connection)")
        self.name = name
        self.withhold = bool(withhold)
        self.itersize = 2000
        self._qname = quote_ident(name)
        self._buf: List[tuple] = []
        self._bpos = 0
        self._declared = False
        self._exhausted = False
        self._lease: Any = None  # autocommit: the cursor's own pinned connection
        self._txn = -1           # transaction mode: the connection's transaction it belongs to
        self._delivered = 0
        self._failed: Optional[str] = None  # autocommit: why the cursor's transaction was ended

    # ---- plumbing (generators driven by postgres._drive) ----

    def _q(self, sql: str, params: Any = None):
        if self._lease is not None:
            return (yield self._lease.query(sql, params, False))
        conn = self.connection
        if conn._txn != self._txn or conn._lease is None:
            raise _pg.ProgrammingError(f"named cursor {self.name!r} was closed when its transaction ended")
        return (yield from conn._run(sql, params, False))

    def _release(self, verb: str):
        lease, self._lease = self._lease, None
        if lease is None:
            return
        try:
            yield lease.query(verb, None, False)
        except _pg.Error:
            pass  # releasing rolls back what is left anyway
        finally:
            lease.release()

    def _close_server(self):
        self._declared = False
        self._buf, self._bpos = [], 0
        if self._lease is not None:
            yield from self._release("ROLLBACK")
        elif self.connection._lease is not None and self.connection._txn == self._txn:
            try:
                yield from self.connection._run(f"CLOSE {self._qname}", None, False)
            except _pg.Error:
                pass  # an aborted transaction: the cursor goes with it

    def _abort_private(self, error: BaseException) -> None:
        """Autocommit: a failed or interrupted fetch ends the private transaction (the release
        rolls it back) and gives the connection back; later fetches raise."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()
            self._declared = False
            self._buf, self._bpos = [], 0
            self._failed = f"{type(error).__name__}: {error}"

    def _fetch(self, n: Optional[int]):
        sql = f"FETCH ALL FROM {self._qname}" if n is None else f"FETCH FORWARD {int(n)} FROM {self._qname}"
        try:
            rows, cols, _, _ = yield from self._q(sql)
        except BaseException as e:
            self._abort_private(e)
            raise
        if self._description is None and cols is not None:
            self._description = [_pg.Column(c, t, None, None, None, None, None) for c, t in cols]
        if n is None or len(rows) < n:
            self._exhausted = True
            if self._lease is not None:  # autocommit: the private transaction is done
                yield from self._release("COMMIT")
        return rows

    def _execute(self, sql: str, params: Any, prepare: bool):
        self._check()
        if self._declared:
            yield from self._close_server()
        text, values = self._bind(sql, params)
        hold = " WITH HOLD" if self.withhold else ""
        declare = f"DECLARE {self._qname} NO SCROLL CURSOR{hold} FOR {text}"
        self._description, self.rowcount, self._delivered = None, -1, 0
        self._buf, self._bpos, self._exhausted, self._failed = [], 0, False, None
        conn = self.connection
        if conn.autocommit:
            lease = yield conn._pool.acquire()
            try:
                yield lease.query("BEGIN", None, False)
                yield lease.query(declare, values, False)
            except BaseException:
                lease.release()
                raise
            self._lease = lease
        else:
            yield from conn._run(declare, values, False)
            self._txn = conn._txn
        self._declared = True
        self.statusmessage = "DECLARE CURSOR"
        self._buf = yield from self._fetch(self.itersize)  # the description, and the first batch
        self.rowcount = 0
        return self

    def executemany(self, sql: str, seq_of_params: Any) -> Any:
        raise _pg.NotSupportedError("executemany() is not supported on a named cursor")

    def _need_declared(self) -> None:
        if not self._declared:
            if self._failed is not None:
                raise _pg.ProgrammingError(f"named cursor {self.name!r} failed ({self._failed}); its transaction "
                                           "was rolled back: execute() it again")
            raise _pg.ProgrammingError("no results to fetch: execute() the named cursor first")

    def _take(self, n: Optional[int]):
        """Generator: up to n rows (all if None), from the buffer and then the server."""
        self._check()
        self._need_declared()
        out = self._buf[self._bpos:] if n is None else self._buf[self._bpos:self._bpos + n]
        self._bpos += len(out)
        if self._bpos >= len(self._buf):
            self._buf, self._bpos = [], 0
        if not self._exhausted and (n is None or len(out) < n):
            out = out + (yield from self._fetch(None if n is None else n - len(out)))
        self._delivered += len(out)
        self.rowcount = self._delivered
        return out

    def _fetchone(self):
        self._check()
        self._need_declared()
        if self._bpos >= len(self._buf):
            if self._exhausted:
                return None
            self._buf, self._bpos = (yield from self._fetch(self.itersize)), 0
            if not self._buf:
                return None
        row = self._buf[self._bpos]
        self._bpos += 1
        self._delivered += 1
        self.rowcount = self._delivered
        return row

    def fetchone(self) -> Any:
        return _pg._drive(self._fetchone())

    def fetchmany(self, size: Optional[int] = None) -> Any:
        return _pg._drive(self._take(self.arraysize if size is None else size))

    def fetchall(self) -> Any:
        return _pg._drive(self._take(None))

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def __aiter__(self) -> "ServerCursor":
        return self

    async def __anext__(self) -> tuple:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    @property
    def rownumber(self) -> Optional[int]:
        return self._delivered if self._declared else None

    def _close(self):
        if self._closed:
            return
        if self._declared:
            yield from self._close_server()
        self._closed = True

    def close(self) -> Any:
        """Closes the server-side cursor (awaitable in a coroutine). Autocommit: gives the
        cursor's connection back."""
        return _pg._drive(self._close())

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __del__(self) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None:
            lease.release()
