"""Greenlet handles, spawning and joining on Puff's Python thread.

Everything here runs on the one Python thread that owns the hub (the thread's main greenlet).
Greenlets are resumed only by the hub, and only once per wait, which is what keeps a greenlet
from being switched into while it waits for something else.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
import traceback
from typing import Any, Callable, Iterable, Iterator, List, Optional

import greenlet as _greenlet

from . import _native

GREENLET = "greenlet"
ASYNCIO = "asyncio"
THREAD = "thread"


class _State:
    """The running runtime's Python-side state (one per process)."""

    hub: Optional[_greenlet.greenlet] = None  # the main greenlet of the Python thread
    thread_ident: Optional[int] = None
    loop: Optional[asyncio.AbstractEventLoop] = None  # Puff's loop while it runs


state = _State()

_get_running_loop = asyncio._get_running_loop


def current_mode() -> Optional[str]:
    """How a Puff call made here would wait: GREENLET, ASYNCIO, THREAD, or None (cannot)."""
    if state.hub is None:
        return None
    if threading.get_ident() != state.thread_ident:
        return THREAD
    if _greenlet.getcurrent() is not state.hub:
        return GREENLET
    if state.loop is not None and _get_running_loop() is state.loop:
        return ASYNCIO
    return None


def _outside_error() -> RuntimeError:
    return RuntimeError(
        "You cannot call Puff functions outside of greenlets or asyncio: call them from a greenlet "
        "(puff.spawn, a `puff` command) or await them in a coroutine on Puff's event loop"
    )


def require_mode() -> str:
    mode = current_mode()
    if mode is None:
        raise _outside_error()
    return mode


class Greenlet:
    """A handle on work started by :func:`spawn`, :func:`spawn_blocking` or ``wrap_async(join=False)``.

    ``join()`` waits for the result (or raises the exception, with its original traceback); from a
    coroutine on Puff's loop it returns an awaitable, and the handle itself is awaitable.
    """

    __slots__ = ("_g", "_done", "_value", "_exc", "_waiters", "_callbacks", "_retrieved", "name", "__weakref__")

    def __init__(self, name: str = "") -> None:
        self._g: Optional[_greenlet.greenlet] = None
        self._done = False
        self._value: Any = None
        self._exc: Optional[BaseException] = None
        self._waiters: list = []  # greenlets, futures and threading.Events waiting for us
        self._callbacks: list = []
        self._retrieved = False
        self.name = name

    def __repr__(self) -> str:
        status = "pending" if not self._done else ("failed" if self._exc is not None else "finished")
        return f"<puff.Greenlet {self.name or hex(id(self))} {status}>"

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def result(self) -> Any:
        """The return value once finished without an exception, else None."""
        return self._value

    @property
    def exception(self) -> Optional[BaseException]:
        """The exception it failed with, or None."""
        if self._exc is not None:
            self._retrieved = True
        return self._exc

    def add_done_callback(self, fn: Callable[["Greenlet"], Any]) -> None:
        """Calls ``fn(handle)`` on the Python thread once the handle is finished."""
        if self._done:
            fn(self)
        else:
            self._callbacks.append(fn)

    def kill(self, exception: BaseException | type = _greenlet.GreenletExit) -> None:
        """Raises ``exception`` inside the greenlet at its current wait (default GreenletExit).

        A Puff call it was waiting on is abandoned; the greenlet's ``finally`` blocks run."""
        g = self._g
        if self._done or g is None or g.dead:
            return
        if not g:  # not started yet: it never runs; the handle fails right away
            exc = exception() if isinstance(exception, type) else exception
            g.run = _noop
            self._resolve(None, exc)
            return
        if g is _greenlet.getcurrent():
            raise exception
        _native.schedule(g, exception, True)

    def _resolve(self, value: Any, exc: Optional[BaseException]) -> None:
        """Python thread only. Finishes the handle and wakes everything waiting on it."""
        if self._done:
            return
        self._done = True
        self._value = value
        self._exc = exc
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if isinstance(w, _greenlet.greenlet):
                _native.schedule(w)
            elif isinstance(w, threading.Event):
                w.set()
            else:  # an asyncio future
                if not w.done():
                    self._retrieved = True
                    if exc is not None:
                        w.set_exception(exc)
                    else:
                        w.set_result(value)
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb(self)
            except Exception:  # a callback's failure must not break the others
                traceback.print_exc()

    def _get(self) -> Any:
        if self._exc is not None:
            self._retrieved = True
            raise self._exc
        return self._value

    def join(self) -> Any:
        """Waits for the result. Dual-mode: value from a greenlet or blocking thread, awaitable
        from a coroutine on Puff's loop."""
        mode = require_mode()
        if mode == ASYNCIO:
            fut = state.loop.create_future()
            if self._done:
                self._retrieved = True
                if self._exc is not None:
                    fut.set_exception(self._exc)
                else:
                    fut.set_result(self._value)
            else:
                self._waiters.append(fut)
            return fut
        if self._done:
            return self._get()
        if mode == THREAD:
            ev = threading.Event()
            self._waiters.append(ev)
            ev.wait()
            return self._get()
        cur = _greenlet.getcurrent()
        if cur is self._g:
            raise RuntimeError("a greenlet cannot join itself")
        self._waiters.append(cur)
        try:
            state.hub.switch()
        except BaseException:
            if cur in self._waiters:
                self._waiters.remove(cur)
            raise
        return self._get()

    def __await__(self):
        return self.join().__await__()

    def __del__(self) -> None:
        if self._exc is not None and not self._retrieved and not isinstance(self._exc, _greenlet.GreenletExit):
            try:
                sys.stderr.write(f"puff: exception in {self!r} was never retrieved:\n")
                traceback.print_exception(self._exc, file=sys.stderr)
            except Exception:
                pass


def _noop(*args, **kwargs) -> None:
    return None


def spawn(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """Runs ``fn(*args, **kwargs)`` in a new greenlet on the Python thread and returns its handle.

    The greenlet starts when the caller next waits (or returns to the hub). It runs in a copy of
    the caller's contextvars context. Works from a greenlet or a coroutine on Puff's loop."""
    if state.hub is None or threading.get_ident() != state.thread_ident:
        raise RuntimeError("puff.spawn must be called on the Puff Python thread with the runtime running")
    handle = Greenlet(getattr(fn, "__qualname__", ""))

    def run() -> None:
        try:
            value = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - the handle carries it to whoever joins
            handle._resolve(None, e)
        else:
            handle._resolve(value, None)

    g = _greenlet.greenlet(run, parent=state.hub)
    g.gr_context = contextvars.copy_context()
    handle._g = g
    _native.schedule(g)
    return handle


def join_all(handles: Iterable[Greenlet]) -> Any:
    """Waits for every handle and returns their results in order.

    If any fails, raises the exception of the first one to fail, as soon as it fails (the others
    keep running). Dual-mode: from a coroutine it returns an awaitable."""
    handles = list(handles)
    mode = require_mode()
    if mode == ASYNCIO:
        return asyncio.gather(*(h.join() for h in handles))
    failed = next((h for h in handles if h._done and h._exc is not None), None)
    pending = [h for h in handles if not h._done]
    if failed is None and pending:
        failed = _wait_all_or_failure(pending, mode)
    if failed is not None:
        return failed._get()  # raises
    return [h._get() for h in handles]


def _wait_all_or_failure(pending: List[Greenlet], mode: str) -> Optional[Greenlet]:
    """Waits until every handle is done or one fails; one callback per handle (O(n) in all)."""
    left = [len(pending)]
    failure: list = []
    woken = [False]
    if mode == THREAD:
        ev = threading.Event()
        wake = ev.set
    else:
        cur = _greenlet.getcurrent()

        def wake() -> None:
            _native.schedule(cur)

    def on_done(h: Greenlet) -> None:
        left[0] -= 1
        if h._exc is not None and not failure:
            failure.append(h)
        if (left[0] == 0 or failure) and not woken[0]:
            woken[0] = True
            wake()

    for h in pending:
        h._callbacks.append(on_done)
    try:
        if mode == THREAD:
            ev.wait()
        else:
            state.hub.switch()
    finally:
        if not woken[0] or failure:
            for h in pending:
                if on_done in h._callbacks:
                    h._callbacks.remove(on_done)
        woken[0] = True
    return failure[0] if failure else None


def join_iter(handles: Iterable[Greenlet]) -> Iterator[Any]:
    """Yields results as the handles finish (completion order); a failure raises at that point."""
    pending: List[Greenlet] = list(handles)
    mode = require_mode()
    if mode == ASYNCIO:
        raise RuntimeError("join_iter is a greenlet API; in a coroutine use asyncio.as_completed on h.join()")
    while pending:
        done = [h for h in pending if h._done]
        if not done:
            _wait_any(pending, mode)
            continue
        pending = [h for h in pending if not h._done]  # one pass, not a remove() per handle
        for h in done:
            yield h._get()


def _wait_any(handles: List[Greenlet], mode: str) -> None:
    if mode == THREAD:
        ev = threading.Event()
        for h in handles:
            h._waiters.append(ev)
        ev.wait()
        for h in handles:
            if ev in h._waiters:
                h._waiters.remove(ev)
        return
    cur = _greenlet.getcurrent()
    woken = []

    def wake(_h: Greenlet) -> None:
        if not woken:
            woken.append(True)
            _native.schedule(cur)

    for h in handles:
        h._callbacks.append(wake)
    try:
        state.hub.switch()
    finally:
        for h in handles:
            if wake in h._callbacks:
                h._callbacks.remove(wake)


def wait_future(fut: "asyncio.Future") -> Any:
    """From a greenlet: suspends it until an asyncio future on Puff's loop is done."""
    cur = _greenlet.getcurrent()
    fut.add_done_callback(lambda _f: _native.schedule(cur))
    try:
        state.hub.switch()
    except BaseException:
        fut.cancel()
        raise
    return fut.result()
