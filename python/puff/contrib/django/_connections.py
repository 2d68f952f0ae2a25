"""Django's database connections per greenlet, not per thread.

Django keeps one connection object per alias in thread-local storage
(``ConnectionHandler.thread_critical``). Under Puff every request runs in a greenlet on the same
thread, so without this all concurrent requests would share one ``DatabaseWrapper``: one request's
``transaction.atomic`` would be every request's, and the first request to finish would close the
connection under the others (gevent gets away with it by monkeypatching ``threading.local``).
``install`` gives ``django.db.connections`` a storage keyed by the current greenlet instead.

A thread has its own main greenlet, so threads keep their own connections too. HTTP worker
greenlets are reused for later requests, like threads of a threaded server: Django closes or
keeps the connection at the end of each request as ``CONN_MAX_AGE`` says.
"""

from __future__ import annotations

import weakref

import greenlet


class GreenletLocal:
    """``threading.local``-like attribute storage, one namespace per greenlet."""

    __slots__ = ("_by_greenlet", "__weakref__")

    def __init__(self) -> None:
        object.__setattr__(self, "_by_greenlet", weakref.WeakKeyDictionary())

    def _ns(self) -> dict:
        g = greenlet.getcurrent()
        ns = self._by_greenlet.get(g)
        if ns is None:
            ns = self._by_greenlet[g] = {}
        return ns

    def __getattr__(self, name: str):
        try:
            return self._ns()[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value) -> None:
        self._ns()[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._ns()[name]
        except KeyError:
            raise AttributeError(name) from None


def install() -> None:
    """Makes ``django.db.connections`` per greenlet (idempotent). Connections already opened in
    the current greenlet are kept."""
    from django.db import connections

    old = connections._connections
    if isinstance(old, GreenletLocal):
        return
    new = GreenletLocal()
    aliases = list(connections.settings) if "settings" in connections.__dict__ else []  # read already
    for alias in aliases:
        conn = getattr(old, alias, None)
        if conn is not None:
            setattr(new, alias, conn)
    connections._connections = new
