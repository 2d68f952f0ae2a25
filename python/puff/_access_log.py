"""The access log of ``puff serve`` (``access_log = true``): one line per request, in the
Common Log Format, written to stdout when the response is finished::

    127.0.0.1 - - [26/Nov/2026:10:15:32 +0000] "GET /hello?x=1 HTTP/1.1" 200 13

It is a WSGI middleware applied around the application: the native server has no logging hook
yet. A ``list``/``tuple`` body is passed through untouched (so the server still sends it with a
Content-Length in one write) and logged at once; any other iterable is wrapped, counted while
it is sent, and logged when the server calls its ``close()``, which it always does, also when
the client went away. The byte count is what the application produced for the body (``-`` for
none; HEAD responses and 1xx/204/304 count none).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Iterable, List, Optional
from urllib.parse import quote

logger = logging.getLogger("puff.access")


def _setup() -> None:
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


class AccessLog:
    """WSGI middleware: ``AccessLog(app)`` logs every request ``app`` answers."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        _setup()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        entry = _Entry(environ)

        def logging_start_response(status: str, headers: List[tuple], exc_info: Any = None):
            write = start_response(status, headers, exc_info)
            entry.status = status.split(" ", 1)[0]

            def logging_write(data: bytes) -> None:
                write(data)
                entry.size += len(data)

            return logging_write

        try:
            result = self.app(environ, logging_start_response)
        except BaseException:
            if not entry.size:  # nothing was sent: the server answers 500
                entry.status = "500"
            entry.write()
            raise
        if isinstance(result, (list, tuple)):
            try:
                entry.size += sum(len(item) for item in result)
            except TypeError:  # not bytes: the server will refuse it
                pass
            entry.write()
            return result
        return _Body(result, entry)


class _Entry:
    __slots__ = ("environ", "status", "size", "done")

    def __init__(self, environ: dict) -> None:
        self.environ = environ
        self.status: Optional[str] = None
        self.size = 0
        self.done = False

    def write(self) -> None:
        if self.done:
            return
        self.done = True
        env = self.environ
        path = env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", "")
        target = quote(path.encode("latin-1", "replace"), safe="/;=,@:!$&'()*+~")
        if env.get("QUERY_STRING"):
            target += "?" + env["QUERY_STRING"]
        request = f'{env.get("REQUEST_METHOD", "-")} {target} {env.get("SERVER_PROTOCOL", "-")}'
        request = request.replace("\\", "\\\\").replace('"', '\\"')
        status = self.status or "-"
        no_body = env.get("REQUEST_METHOD") == "HEAD" or status[:1] == "1" or status in ("204", "304")
        size = str(self.size) if self.size and not no_body else "-"
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        logger.info('%s - - [%s] "%s" %s %s', env.get("REMOTE_ADDR") or "-", stamp, request, status, size)


class _Body:
    """Wraps a streamed body: counts its bytes, logs on ``close()``."""

    __slots__ = ("result", "entry")

    def __init__(self, result: Iterable[bytes], entry: _Entry) -> None:
        self.result = result
        self.entry = entry

    def __iter__(self):
        entry = self.entry
        for item in self.result:
            entry.size += len(item)
            yield item

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.entry.write()


class AsgiAccessLog:
    """ASGI middleware: ``AsgiAccessLog(app)`` logs every ``http`` request, in the same format,
    when the application returns (WebSocket and lifespan scopes pass through)."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        _setup()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        state = {"status": None, "size": 0}

        async def logging_send(message: dict) -> None:
            kind = message.get("type")
            if kind == "http.response.start":
                state["status"] = message.get("status")
            elif kind == "http.response.body":
                state["size"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, logging_send)
        finally:
            status = state["status"]
            if status is None:
                status = 500  # nothing was started: the server answers 500
            path = quote(scope.get("path", ""), safe="/;=,@:!$&'()*+~")
            query = scope.get("query_string", b"")
            target = path + ("?" + query.decode("latin-1") if query else "")
            request = f'{scope.get("method", "-")} {target} HTTP/{scope.get("http_version", "1.1")}'
            request = request.replace("\\", "\\\\").replace('"', '\\"')
            no_body = scope.get("method") == "HEAD" or str(status)[:1] == "1" or status in (204, 304)
            size = str(state["size"]) if state["size"] and not no_body else "-"
            client = scope.get("client") or ("-", 0)
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
            logger.info('%s - - [%s] "%s" %s %s', client[0], stamp, request, status, size)
