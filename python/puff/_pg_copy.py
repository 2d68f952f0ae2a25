"""COPY for puff.postgres: ``with cur.copy("COPY t FROM STDIN") as copy: copy.write_row(...)`` and
``for data in cur.copy("COPY t TO STDOUT")``, streamed both ways. See docs/postgres.md, "COPY".

libpq cannot run COPY in pipeline mode, so a COPY runs on a pinned connection that leaves
pipeline mode for its duration (src/pg/connection_copy.cpp): in transaction mode the connection's
own (the COPY is part of the transaction); in autocommit mode one pinned for the COPY alone
(it commits, or rolls back, on its own). Writes are buffered up to 64 KiB and then sent; each send
waits until the data is on the socket, so memory stays bounded. Reads return whole rows, about
64 KiB at a time, and the server is read only as fast as Python asks.

A bad row is reported when the COPY ends (the server checks rows as they arrive, but tells the
client at the end): the exception from the ``with`` block's exit (or ``finish()``) is the server's
error (``DataError`` for bad input, ``IntegrityError`` for a violated constraint, ...). An
exception inside the block aborts the COPY (nothing is written).
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from typing import Any, Iterator, List, Optional, Sequence

from . import postgres as _pg

_START, _WRITE, _END, _FAIL, _READ = 1, 2, 3, 4, 5
_FLUSH_AT = 64 * 1024

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_UNESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _array_item(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, (list, tuple)):
        return "{" + ",".join(_array_item(x) for x in v) + "}"
    s = _text(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(v: Any) -> str:
    """A value in Postgres' text input form."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(v).hex()
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return f"{v.days} days {v.seconds} seconds {v.microseconds} microseconds"
    if isinstance(v, (list, tuple)):
        return "{" + ",".join(_array_item(x) for x in v) + "}"
    if isinstance(v, dict):
        return _json.dumps(v)
    return str(v)


def format_row(row: Sequence[Any]) -> str:
    """One row in COPY's text format (tab-separated, ``\\N`` for NULL, with its newline)."""
    return "\t".join("\\N" if v is None else _text(v).translate(_ESCAPES) for v in row) + "\n"


def _unescape(field: str) -> Optional[str]:
    if field == "\\N":
        return None
    if "\\" not in field:
        return field
    out, i, n = [], 0, len(field)
    while i < n:
        c = field[i]
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = field[i + 1]
        if nxt in _UNESCAPES:
            out.append(_UNESCAPES[nxt])
            i += 2
        elif nxt in "01234567":
            j = i + 1
            while j < n and j < i + 4 and field[j] in "01234567":
                j += 1
            out.append(chr(int(field[i + 1:j], 8)))
            i = j
        elif nxt == "x" and i + 2 < n and field[i + 2] in "0123456789abcdefABCDEF":
            j = i + 2
            while j < n and j < i + 4 and field[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(chr(int(field[i + 2:j], 16)))
            i = j
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


def parse_rows(data: bytes) -> List[tuple]:
    """Rows of COPY's text format (whole lines) as tuples of str, None for NULL."""
    text = data.decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [tuple(_unescape(f) for f in line.split("\t")) for line in lines]


class Copy:
    """One COPY, from ``Cursor.copy(statement)``. Use it with ``with`` (``async with``)."""

    def __init__(self, cursor: "_pg.Cursor", statement: str) -> None:
        if not isinstance(statement, str):
            raise _pg.ProgrammingError("copy() takes the COPY statement as a str")
        self.cursor = cursor
        self.statement = statement
        self.direction: Optional[str] = None  # "in" / "out" once started
        self._lease: Any = None
        self._own_lease = False
        self._buf: List[bytes] = []
        self._buffered = 0
        self._done = False
        self._claimed = False

    # ---- start / finish (generators) ----

    def _start(self):
        cur = self.cursor
        cur._check()
        conn = cur.connection
        if conn.autocommit:
            self._lease = yield conn._pool.acquire()
            self._own_lease = True
        else:
            conn._claim()
            self._claimed = True
            try:
                if conn._lease is None:
                    yield from conn._run_in_transaction("SELECT 1", None, False)  # BEGIN, pinned
                self._lease = conn._lease
            except BaseException:
                self._unclaim()
                raise
        try:
            kind = yield self._lease.copy(_START, self.statement)
        except BaseException:
            self._cleanup()
            raise
        if kind not in ("in", "out"):
            self._cleanup()
            raise _pg.ProgrammingError("copy() needs COPY ... FROM STDIN or COPY ... TO STDOUT "
                                       f"(the statement ran: {kind[3]!r})")
        self.direction = kind
        cur.rowcount, cur._rows, cur._description = -1, None, None
        return self

    def _unclaim(self) -> None:
        if self._claimed:
            self._claimed = False
            self.cursor.connection._busy = False

    def _cleanup(self) -> None:
        self._done = True
        self._unclaim()
        lease, self._lease = self._lease, None
        if lease is not None and self._own_lease:
            lease.release()

    def _store_final(self, res: tuple) -> None:
        _, _, count, tag = res
        self.cursor.rowcount, self.cursor.statusmessage = count, tag

    def _finish(self, error: Optional[BaseException]):
        if self._done:
            return
        try:
            if self.direction == "in" and error is None:
                yield from self._flush()
            step = _END if error is None else _FAIL
            msg = "" if error is None else f"aborted by the client: {type(error).__name__}: {error}"[:1000]
            try:
                res = yield self._lease.copy(step, msg)
            except _pg.Error:
                if error is None:
                    raise
            else:
                if isinstance(res, tuple):
                    self._store_final(res)
        finally:
            self._cleanup()

    def finish(self) -> Any:
        """Ends the COPY (``with`` does it): sends what is buffered and reports the outcome
        (``cursor.rowcount`` is the number of rows copied). Awaitable in a coroutine."""
        return _pg._drive(self._finish(None))

    # ---- COPY FROM STDIN ----

    def _flush(self):
        if not self._buf:
            return
        data = b"".join(self._buf)
        self._buf, self._buffered = [], 0
        yield self._lease.copy(_WRITE, data)

    def _write(self, data: Any):
        self._check("in")
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes):
            data = bytes(data)
        self._buf.append(data)
        self._buffered += len(data)
        if self._buffered >= _FLUSH_AT:
            yield from self._flush()

    def write(self, data: Any) -> Any:
        """Sends raw data in the COPY's format (str or bytes; rows may span calls). Awaitable in
        a coroutine."""
        return _pg._drive(self._write(data))

    def write_row(self, row: Sequence[Any]) -> Any:
        """Sends one row (text format: values as Postgres' text input, None as NULL; lists as
        arrays, dicts as JSON). Not for ``FORMAT binary`` or ``csv`` COPYs: use write()."""
        return _pg._drive(self._write(format_row(row).encode("utf-8")))

    # ---- COPY TO STDOUT ----

    def _read(self):
        self._check("out")
        res = yield self._lease.copy(_READ)
        if isinstance(res, bytes):
            return res
        self._store_final(res)
        self._cleanup()
        return b""

    def read(self) -> Any:
        """The next rows as bytes (whole rows, about 64 KiB at most), b"" once all were read.
        Awaitable in a coroutine."""
        if self._done:
            return _pg._drive(_empty())
        return _pg._drive(self._read())

    def read_rows(self) -> Any:
        """The next rows, parsed from the text format (tuples of str, None for NULL); [] at the
        end. Awaitable in a coroutine."""
        if current_async():
            return self._aread_rows()
        return parse_rows(self.read())

    async def _aread_rows(self) -> List[tuple]:
        return parse_rows(await self.read())

    def rows(self) -> Iterator[tuple]:
        """Iterates over every row (greenlets; ``async for row in copy.arows()`` in a coroutine)."""
        while True:
            batch = self.read_rows()
            if not batch:
                return
            yield from batch

    async def arows(self):
        while True:
            batch = await self.read_rows()
            if not batch:
                return
            for row in batch:
                yield row

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read()
            if not data:
                return
            yield data

    def __aiter__(self):
        return self._achunks()

    async def _achunks(self):
        while True:
            data = await self.read()
            if not data:
                return
            yield data

    # ---- context managers ----

    def _check(self, direction: str) -> None:
        if self._done:
            raise _pg.InterfaceError("the COPY has ended")
        if self.direction is None:
            raise _pg.InterfaceError("the COPY has not started: use it in a with block")
        if self.direction != direction:
            raise _pg.ProgrammingError(
                "write() needs COPY ... FROM STDIN" if direction == "in" else "read() needs COPY ... TO STDOUT")

    def __enter__(self) -> "Copy":
        return _pg._drive(self._start())

    def __exit__(self, exc_type, exc, tb) -> None:
        _pg._drive(self._finish(exc))

    async def __aenter__(self) -> "Copy":
        return await _pg._drive(self._start())

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await _pg._drive(self._finish(exc))

    def __del__(self) -> None:
        lease = getattr(self, "_lease", None)
        if lease is not None and self._own_lease:
            lease.release()


def _empty():
    return b""
    yield  # noqa: unreachable (a generator)


def current_async() -> bool:
    return _pg.current_mode() == _pg.ASYNCIO
