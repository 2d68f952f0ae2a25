"""Puff: a deep stack for Python on a C++ runtime.

Greenlets and asyncio side by side on one Python thread, native I/O on every CPU. Every I/O
function here is dual-mode: called from a greenlet it suspends only that greenlet and returns
the value; called from a coroutine on Puff's loop it returns an awaitable; called elsewhere it
raises RuntimeError. See docs/runtime.md.
"""

from __future__ import annotations

import contextvars
import functools
import threading
from typing import Any, Callable, Optional

from . import _native
from ._runtime import RuntimeOptions, SignalExit, is_running, run
from ._scheduler import (
    ASYNCIO,
    GREENLET,
    THREAD,
    Greenlet,
    current_mode,
    join_all,
    join_iter,
    require_mode,
    spawn,
    state as _state,
)

__version__ = "0.2.0.dev0"

__all__ = [
    "ASYNCIO",
    "GREENLET",
    "Greenlet",
    "RuntimeOptions",
    "SignalExit",
    "blocking",
    "get_include",
    "global_state",
    "is_asyncio",
    "is_greenlet",
    "is_running",
    "join_all",
    "join_iter",
    "read_file_bytes",
    "run",
    "sleep_ms",
    "spawn",
    "spawn_blocking",
    "wrap_async",
]

#: The object returned by the configured ``global_state`` factory (None by default).
global_state: Any = None


def get_include() -> str:
    """The directory holding Puff's public C/C++ headers (``puff/puff.h``, ``puff/native.hpp``)
    for building native extensions."""
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "include")
    if os.path.isdir(os.path.join(installed, "puff")):
        return installed
    # Editable install: the headers live in the source tree.
    return os.path.normpath(os.path.join(here, "..", "..", "include"))


def sleep_ms(ms: int):
    """Sleeps ``ms`` milliseconds on a native timer. Dual-mode."""
    return _native.sleep_ms(ms)


def read_file_bytes(path) -> bytes:
    """Reads a whole file on an I/O thread. Dual-mode; raises OSError like open()."""
    return _native.read_file_bytes(path)


def is_greenlet() -> bool:
    """True in a Puff greenlet (where Puff calls return values)."""
    return current_mode() == GREENLET


def is_asyncio() -> bool:
    """True in a coroutine on Puff's loop (where Puff calls return awaitables)."""
    return current_mode() == ASYNCIO


def spawn_blocking(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Greenlet:
    """Runs ``fn(*args, **kwargs)`` on the blocking thread pool and returns a handle.

    For blocking third-party code: the greenlets keep running meanwhile. The pool is bounded
    (``blocking_threads``); extra calls queue. Inside ``fn``, Puff I/O functions block that
    thread only."""
    if _state.hub is None:
        raise RuntimeError("puff.spawn_blocking needs the Puff runtime")
    handle = Greenlet(getattr(fn, "__qualname__", ""))
    ctx = contextvars.copy_context()
    call = functools.partial(ctx.run, fn, *args, **kwargs)
    if threading.get_ident() != _state.thread_ident:
        # Already on a pool thread: run inline instead of queueing behind ourselves.
        try:
            handle._done, handle._value = True, call()
        except BaseException as e:  # noqa: BLE001
            handle._done, handle._exc = True, e
        return handle
    _native.run_blocking(call, handle._resolve)
    return handle


def blocking(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: calls run on the blocking pool (``spawn_blocking(fn, ...).join()``).

    Outside the runtime, or already on a pool thread, the function is called directly."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        mode = current_mode()
        if mode is None and _state.hub is None or mode == THREAD:
            return fn(*args, **kwargs)
        return spawn_blocking(fn, *args, **kwargs).join()

    wrapper.__puff_blocking__ = True
    return wrapper


def wrap_async(f: Callable[[Callable[..., Any]], Any], join: bool = True, wrap_return: Optional[Callable] = None):
    """Upstream's extension protocol: calls ``f(ret_func)``; ``ret_func(value, exception)`` must
    then be called exactly once, from any thread holding the GIL.

    From a greenlet: waits and returns the value (``join=False`` returns a :class:`Greenlet`
    handle instead). From a coroutine on Puff's loop: returns an awaitable. ``wrap_return`` is
    applied to a successful value."""
    mode = require_mode()

    def finish(value: Any, exc: Optional[BaseException]):
        if exc is None and wrap_return is not None:
            try:
                value = wrap_return(value)
            except BaseException as e:  # noqa: BLE001
                return None, e
        return value, exc

    if mode == ASYNCIO:
        fut = _state.loop.create_future()

        def target(value: Any, exc: Optional[BaseException]) -> None:
            if fut.done():
                return
            value, exc = finish(value, exc)
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)

        f(_native.RetFunc(target))
        return fut
    handle = Greenlet(getattr(f, "__qualname__", "wrap_async"))
    f(_native.RetFunc(lambda value, exc: handle._resolve(*finish(value, exc))))
    return handle.join() if join else handle
