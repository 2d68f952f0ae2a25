"""LISTEN/NOTIFY for puff.postgres: ``postgres.listen("channel")``. See docs/postgres.md.

Each pool has one dedicated listening connection (opened on the first ``listen()``, not one of
its ``pool_size`` connections). ``listen()`` returns once the server has confirmed the LISTEN, so
a NOTIFY committed after that is delivered. If the connection is lost (Postgres restarts), it is
reopened and every channel LISTENed again; notifications sent in between are lost (delivery is
at most once) and ``Subscription.interruptions`` counts such gaps.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Dict, Optional

from . import _native
from . import postgres as _pg

Notify = collections.namedtuple("Notify", "channel payload pid")
Notify.__doc__ = "A notification: the channel, its payload (str, '' when none) and the notifying backend's pid."

_listeners: Dict[str, Any] = {}


def _listener(name: str):
    lst = _listeners.get(name)
    if lst is None or lst.closed:
        url, _, options = _pg._settings(name)
        try:
            lst = _native.PgListener(url, name, options.get("connect_timeout_ms", 5000))
        except (ValueError, RuntimeError) as e:
            raise _pg.InterfaceError(str(e)) from None
        _listeners[name] = lst
    return lst


def listen(*channels: str, name: str = "default") -> Any:
    """Subscribes to ``channels`` on pool ``name``'s listening connection and returns a
    :class:`Subscription` (an awaitable of it in a coroutine) once the LISTENs took effect."""
    if not channels or not all(isinstance(c, str) and c for c in channels):
        raise _pg.ProgrammingError("listen() takes one or more channel names (non-empty str)")

    def op():
        try:
            sub = yield _listener(name).listen(list(channels))
        except RuntimeError as e:
            raise _pg.InterfaceError(str(e)) from None
        return Subscription(sub)

    return _pg._drive(op())


class Subscription:
    """Notifications for some channels, queued from the moment ``listen()`` returned.

    ``get(timeout=None)`` waits for the next one (None after ``timeout`` seconds); iterating
    (``for n in sub`` in a greenlet, ``async for n in sub`` in a coroutine) waits forever, and
    ends when the subscription is closed. ``close()`` (or ``with``) stops listening."""

    def __init__(self, native: Any) -> None:
        self._sub = native

    @property
    def channels(self) -> tuple:
        return self._sub.channels

    @property
    def closed(self) -> bool:
        return self._sub.closed

    @property
    def interruptions(self) -> int:
        """Times the listening connection was lost since subscribing (notifications may be lost)."""
        return self._sub.interruptions

    @property
    def dropped(self) -> int:
        """Notifications dropped because 100,000 were queued and not read."""
        return self._sub.dropped

    def _get(self, timeout: Optional[float], end_is_error: bool):
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            closed = self._sub.closed
            if deadline is None:
                ms = -1
            else:
                ms = max(0, int((deadline - time.monotonic()) * 1000))
            item = yield self._sub.get(0 if closed else ms)
            if item is not None:
                return Notify(*item)
            if closed or self._sub.closed:
                if end_is_error:
                    raise _pg.InterfaceError("the subscription is closed")
                return None
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def get(self, timeout: Optional[float] = None) -> Any:
        """The next notification, or None once ``timeout`` seconds passed. Raises InterfaceError
        when the subscription is closed (and nothing is left). Awaitable in a coroutine."""
        return _pg._drive(self._get(timeout, True))

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Notify:
        n = _pg._drive(self._get(None, False))
        if n is None:
            raise StopIteration
        return n

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> Notify:
        n = await _pg._drive(self._get(None, False))
        if n is None:
            raise StopAsyncIteration
        return n

    def close(self) -> None:
        """Stops listening (UNLISTEN for channels no other subscription listens to); waiting
        get()s and iterations end. Idempotent."""
        self._sub.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<puff.postgres.Subscription {list(self.channels)}{' closed' if self.closed else ''}>"
