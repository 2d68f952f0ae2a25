"""Starting, running and stopping the Puff runtime in this process.

``run(fn, ...)`` is what every ``puff`` command uses: it starts the I/O threads, runs ``fn`` as
the main greenlet (or, for ``async def``, as the main task on Puff's asyncio loop), and stops
cleanly. SIGINT and SIGTERM raise inside the main function at its current wait
(KeyboardInterrupt / SystemExit); when it has not finished within ``shutdown_timeout_ms`` the
process exits anyway. The exit status after a signal is 128 + the signal number (130 for SIGINT,
143 for SIGTERM).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import signal
import sys
import threading
from typing import Any, Callable, Optional

import greenlet as _greenlet

from . import _native
from ._scheduler import Greenlet, spawn, state


@dataclasses.dataclass
class RuntimeOptions:
    """Settings of the native runtime (``[runtime]`` in puff.toml, ``PUFF_*``, flags)."""

    io_threads: int = 0  # 0 = one per CPU
    blocking_threads: int = 32
    spin_us: int = 50
    shutdown_timeout_ms: int = 10000
    asyncio: bool = False  # run Puff's asyncio loop on the Python thread
    uvloop: bool = True  # use uvloop for that loop when it is installed

    def native_settings(self) -> dict:
        return {
            "io_threads": self.io_threads,
            "blocking_threads": self.blocking_threads,
            "spin_us": self.spin_us,
            "shutdown_timeout_ms": self.shutdown_timeout_ms,
        }


class SignalExit(SystemExit):
    """Raised by :func:`run` after a clean stop caused by a signal; ``code`` is 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


_started = False
_options: Optional[RuntimeOptions] = None


def is_running() -> bool:
    return _started


def options() -> Optional[RuntimeOptions]:
    return _options


def start(opts: Optional[RuntimeOptions] = None) -> None:
    """Starts the native runtime on this (main) thread. Usually called by :func:`run`."""
    global _started, _options
    if _started:
        raise RuntimeError("the Puff runtime is already running")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("the Puff runtime must be started on the main thread")
    opts = opts or RuntimeOptions()
    _native.start(opts.native_settings())
    state.hub = _greenlet.getcurrent()
    state.thread_ident = threading.get_ident()
    _options = opts
    _started = True
    from . import _asgiref

    _asgiref.patch()


def stop() -> None:
    """Stops the I/O threads. Pending native calls are dropped."""
    global _started
    if not _started:
        return
    _native.stop()
    state.loop = None
    state.hub = None
    state.thread_ident = None
    _started = False


def _new_loop(opts: RuntimeOptions) -> asyncio.AbstractEventLoop:
    if opts.uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class _SignalState:
    def __init__(self, timeout_ms: int) -> None:
        self.signum: Optional[int] = None
        self.timeout_ms = timeout_ms
        self.watchdog: Optional[threading.Timer] = None

    def first(self, signum: int) -> bool:
        """Records the signal; True the first time. A second signal forces the exit."""
        if self.signum is not None:
            os._exit(128 + signum)
        self.signum = signum
        self.watchdog = threading.Timer(self.timeout_ms / 1000.0, self._force, args=(signum,))
        self.watchdog.daemon = True
        self.watchdog.start()
        return True

    def _force(self, signum: int) -> None:
        sys.stderr.write(f"puff: did not stop within {self.timeout_ms} ms after signal {signum}; exiting\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    def exception(self) -> BaseException:
        if self.signum == signal.SIGINT:
            return KeyboardInterrupt()
        return SystemExit(128 + (self.signum or 0))

    def cancel(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()


def run(fn: Callable[..., Any], *args: Any, options: Optional[RuntimeOptions] = None, **kwargs: Any) -> Any:
    """Starts the runtime, runs ``fn(*args, **kwargs)`` inside it and stops it again.

    A plain function runs as a greenlet; an ``async def`` runs as a task on Puff's asyncio loop
    (which also runs whenever ``options.asyncio`` is true). Returns the function's result or
    raises its exception. After SIGINT/SIGTERM raises :class:`SignalExit`."""
    opts = options or RuntimeOptions()
    is_coro = inspect.iscoroutinefunction(fn)
    start(opts)
    sig = _SignalState(opts.shutdown_timeout_ms)
    try:
        if is_coro or opts.asyncio:
            result = _run_asyncio(fn, args, kwargs, opts, sig)
        else:
            result = _run_greenlet(fn, args, kwargs, sig)
    finally:
        try:
            stop()  # still under the watchdog: stopping must not hang a signalled process
        finally:
            sig.cancel()
    if sig.signum is not None:
        raise SignalExit(sig.signum)
    return result


def _install_signal_handlers(handler: Callable[[int, Any], None]) -> dict:
    previous = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        previous[s] = signal.signal(s, handler)
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


def _run_greenlet(fn, args, kwargs, sig: _SignalState) -> Any:
    main = spawn(fn, *args, **kwargs)
    main.add_done_callback(lambda _h: _native.stop_hub())
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    old_wakeup = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)

    def on_signal(signum, frame):
        if sig.first(signum):
            if _greenlet.getcurrent() is main._g:
                raise sig.exception()
            _native.stop_hub()

    previous = _install_signal_handlers(on_signal)
    try:
        while not main.finished:
            _native.run_hub(rfd)
            if not main.finished and sig.signum is not None and main._g is not None and not main._g.dead:
                # Raise the signal's exception inside the main function, then keep running the
                # hub so its cleanup (finally blocks, pending joins) can complete.
                _native.schedule(main._g, sig.exception(), True)
    finally:
        _restore_signal_handlers(previous)
        signal.set_wakeup_fd(old_wakeup)
        os.close(rfd)
        os.close(wfd)
    return _result(main, sig)


def _result(main: Greenlet, sig: _SignalState) -> Any:
    exc = main._exc
    if exc is not None and sig.signum is not None and isinstance(exc, (KeyboardInterrupt, SystemExit)):
        main._retrieved = True
        return None  # the signal's own exception: reported by SignalExit instead
    return main._get()


def _run_asyncio(fn, args, kwargs, opts: RuntimeOptions, sig: _SignalState) -> Any:
    loop = _new_loop(opts)
    asyncio.set_event_loop(loop)
    state.loop = loop
    _native.set_loop(loop)
    loop.add_reader(_native.wakeup_fd(), _native.drain)
    # Sockets on the Python thread's own I/O loop (HTTP connections of a worker that serves on
    # this thread) wake the asyncio loop through that loop's epoll descriptor.
    loop.add_reader(_native.loop_fd(), _native.drain_loop)
    try:
        if inspect.iscoroutinefunction(fn):
            task = loop.create_task(fn(*args, **kwargs))

            def on_signal(signum: int) -> None:
                if sig.first(signum):
                    task.cancel()

            for s in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(s, on_signal, s)
            try:
                return loop.run_until_complete(task)
            except asyncio.CancelledError:
                if sig.signum is None:
                    raise
                return None
        main = spawn(fn, *args, **kwargs)
        done = loop.create_future()
        main.add_done_callback(lambda _h: done.done() or done.set_result(None))

        def on_signal_g(signum: int) -> None:
            if sig.first(signum) and main._g is not None and not main._g.dead:
                _native.schedule(main._g, sig.exception(), True)

        for s in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(s, on_signal_g, s)
        loop.run_until_complete(done)
        return _result(main, sig)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(s)
            except Exception:
                pass
        _cancel_remaining_tasks(loop)
        loop.remove_reader(_native.wakeup_fd())
        loop.remove_reader(_native.loop_fd())
        _native.set_loop(None)
        state.loop = None
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        except Exception:
            pass
        asyncio.set_event_loop(None)
        loop.close()


def _cancel_remaining_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Like asyncio.run: cancel what is still running and let it unwind (its finally blocks)."""
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    if not tasks:
        return
    for t in tasks:
        t.cancel()
    try:
        loop.run_until_complete(asyncio.wait(tasks, timeout=5))
    except Exception:
        pass
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception in a task at shutdown", "exception": t.exception(), "task": t}
            )
