"""The pre-fork supervisor of ``puff serve --workers N``.

The supervisor never starts the Puff runtime (forking a process that runs threads is unsafe):
it binds every listening socket itself, forks the workers, and then only waits for signals and
for workers to exit. Each worker starts its own runtime and accepts on sockets it inherited
(``HttpServer.listen_fd``):

- TCP: one SO_REUSEPORT socket per worker slot and address, all bound by the supervisor (port 0
  is picked once, by the first). The kernel spreads new connections over them by their
  addresses, so keep-alive connections are shared evenly: with one socket for all workers, the
  first worker to wake accepted a burst nearly alone (wrk's 64 connections split 62/2, which
  left one worker doing all the work). The supervisor keeps every socket open, so connections
  queued on a crashed worker's socket wait there for its replacement instead of being reset.
- Unix sockets have no such balancing: one socket, shared by every worker.

- A worker that exits while the server runs is restarted; when it lived less than
  :data:`STABLE_S` the restart waits (0.25 s, doubling up to :data:`MAX_BACKOFF_S`), so a crash
  loop does not spin. If the first workers fail before any of them is ready, the supervisor
  stops and exits 1 (2 when the worker reported a configuration error): the application
  cannot start.
- SIGINT/SIGTERM: the supervisor closes its sockets, forwards the signal to every worker (they run
  in their own process group, so a terminal's Ctrl-C reaches the supervisor only), waits for
  them (their graceful stop, plus a margin; then SIGKILL) and exits 0. A second signal kills the
  workers at once and exits 128 + signum.
- Workers get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import Callable, List, Optional, Tuple

from . import _serve
from ._server_config import Bind
from .config import ConfigError, PuffConfig

log = logging.getLogger("puff")

STABLE_S = 10.0
FIRST_BACKOFF_S = 0.25
MAX_BACKOFF_S = 30.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_PR_SET_PDEATHSIG = 1


class _Slot:
    """One worker position: the process running it now and its restart history."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.pid: Optional[int] = None
        self.started = 0.0
        self.backoff = 0.0
        self.restart_at: Optional[float] = None


class Supervisor:
    def __init__(self, cfg: PuffConfig, kind: str, app: Callable, binds: List[Bind]) -> None:
        self.cfg = cfg
        self.kind = kind
        self.app = app
        self.binds = binds
        # (bind, sockets): one socket shared by all workers (Unix), or one per worker slot (TCP).
        self.sockets: List[Tuple[Bind, List[socket.socket]]] = []
        self.slots = [_Slot(i) for i in range(cfg.server.workers)]
        self.ready: set = set()
        self.ever_ready = False
        self.stopping: Optional[int] = None  # the signal that started the stop
        self.kill_at = 0.0

    # ---- listening sockets ----------------------------------------------------------------

    def _open_sockets(self) -> None:
        backlog = self.cfg.server.backlog
        for bind in self.binds:
            if bind.unix:
                _serve.check_unix_path(bind.path)
                _serve.unlink_socket(bind.path)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.bind(bind.path)
                sock.listen(backlog)
                self.sockets.append((bind, [sock]))
                log.info("Listening on %s", bind.url())
                continue
            port = bind.port
            for addr in _serve.resolve_host(bind):
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                group: List[socket.socket] = []
                self.sockets.append((bind, group))  # closed by _close_sockets if a bind fails
                for _slot in self.slots:
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    group.append(sock)
                    try:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                        if family == socket.AF_INET6:
                            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                        sock.bind((addr, port))
                        sock.listen(backlog)
                    except OSError as e:
                        where = f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"
                        raise OSError(f"cannot listen on {where}: {e.strerror or e}") from None
                    port = sock.getsockname()[1]  # port 0: the others join the port the first got
                log.info("Listening on %s", bind.url(addr, port, self.cfg.server.url_scheme))

    def _close_sockets(self) -> None:
        for bind, group in self.sockets:
            for sock in group:
                sock.close()
            if bind.unix:
                _serve.unlink_socket(bind.path)
        self.sockets = []

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> int:
        try:
            self._open_sockets()
        except OSError as e:
            self._close_sockets()
            sys.stderr.write(f"puff: error: {e}\n")
            return 1
        self.wake_r, self.wake_w = os.pipe()
        self.ready_r, self.ready_w = os.pipe()
        for fd in (self.wake_r, self.wake_w, self.ready_r):
            os.set_blocking(fd, False)
        old_wakeup = signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        previous = {s: signal.signal(s, lambda *_: None) for s in (*_STOP_SIGNALS, signal.SIGCHLD)}
        log.info("Serving %s app %r with %d workers (supervisor pid %d, %s); stop with Ctrl-C or SIGTERM",
                 self.kind.upper(), self.cfg.wsgi if self.kind == "wsgi" else self.cfg.asgi, len(self.slots),
                 os.getpid(), self.cfg.server.thread_model())
        try:
            for slot in self.slots:
                self._spawn(slot)
            return self._loop()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            self._close_sockets()
            for fd in (self.wake_r, self.wake_w, self.ready_r, self.ready_w):
                os.close(fd)

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.restart_at is not None]
            if self.stopping is not None:
                due.append(self.kill_at)
            timeout = max(0.0, min(due) - now) if due else None
            try:
                readable, _, _ = select.select([self.wake_r, self.ready_r], [], [], timeout)
            except InterruptedError:
                readable = []
            for signum in self._read_signals() if self.wake_r in readable else ():
                if signum in _STOP_SIGNALS:
                    if self.stopping is None:
                        self._begin_stop(signum)
                    else:
                        log.warning("second signal (%s): killing the workers now", signal.Signals(signum).name)
                        self._kill_all(signal.SIGKILL)
                        self._reap(block=True)
                        return 128 + signum
            if self.ready_r in readable:
                self._read_ready()
            status = self._reap()
            if status is not None:
                return status
            now = time.monotonic()
            if self.stopping is not None:
                if not self._alive():
                    log.info("all workers stopped")
                    return 0
                if now >= self.kill_at:
                    log.warning("workers did not stop within %d ms: killing them",
                                self.cfg.server.graceful_timeout_ms + _serve.WATCHDOG_MARGIN_MS)
                    self._kill_all(signal.SIGKILL)
                    self.kill_at = now + 3600
                continue
            for slot in self.slots:
                if slot.pid is None and slot.restart_at is not None and now >= slot.restart_at:
                    self._spawn(slot)

    def _read_signals(self) -> List[int]:
        try:
            return list(os.read(self.wake_r, 4096))
        except BlockingIOError:
            return []

    def _read_ready(self) -> None:
        try:
            data = os.read(self.ready_r, 4096)
        except BlockingIOError:
            return
        for i in range(0, len(data) - len(data) % 4, 4):
            pid = int.from_bytes(data[i:i + 4], "little")
            self.ready.add(pid)
            self.ever_ready = True
            log.info("worker %d ready", pid)

    def _alive(self) -> bool:
        return any(s.pid is not None for s in self.slots)

    def _reap(self, block: bool = False) -> Optional[int]:
        """Collects exited workers; returns an exit status when the supervisor must give up."""
        while self._alive():
            try:
                pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            slot.pid = None
            was_ready = pid in self.ready
            self.ready.discard(pid)
            how = _describe(status)
            if self.stopping is not None:
                level = logging.INFO if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else logging.WARNING
                log.log(level, "worker %d exited with %s", pid, how)
                continue
            if not was_ready and not self.ever_ready:
                log.error("worker %d exited with %s before it was ready: the application cannot start; "
                          "stopping", pid, how)
                self._begin_stop(signal.SIGTERM, announce=False)
                self._kill_all(signal.SIGKILL)
                self._reap(block=True)
                return 2 if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2 else 1
            lived = time.monotonic() - slot.started
            slot.backoff = 0.0 if lived >= STABLE_S else min(MAX_BACKOFF_S, max(FIRST_BACKOFF_S, slot.backoff * 2))
            slot.restart_at = time.monotonic() + slot.backoff
            delay = f" in {slot.backoff:.2f} s" if slot.backoff else ""
            log.warning("worker %d exited with %s; restarting%s", pid, how, delay)
        return None

    def _begin_stop(self, signum: int, announce: bool = True) -> None:
        self.stopping = signum
        if announce:
            log.info("received %s: stopping %d worker(s) (graceful timeout %d ms)", signal.Signals(signum).name,
                     sum(1 for s in self.slots if s.pid is not None), self.cfg.server.graceful_timeout_ms)
        self._close_sockets()  # new connections are refused once the workers stop accepting
        for slot in self.slots:
            slot.restart_at = None
        self._kill_all(signum)  # workers stop gracefully on either
        self.kill_at = time.monotonic() + (self.cfg.server.graceful_timeout_ms + _serve.WATCHDOG_MARGIN_MS) / 1000

    def _kill_all(self, signum: int) -> None:
        for slot in self.slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass

    # ---- workers --------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        slot.restart_at = None
        sys.stdout.flush()
        sys.stderr.flush()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {*_STOP_SIGNALS, signal.SIGCHLD})
        try:
            pid = os.fork()
        except OSError as e:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            log.error("cannot fork a worker: %s; retrying", e)
            slot.restart_at = time.monotonic() + MAX_BACKOFF_S / 10
            return
        if pid == 0:
            self._worker(blocked, slot.index)  # never returns
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        slot.pid = pid
        slot.started = time.monotonic()

    def _worker(self, mask, index: int) -> None:
        status = 1
        try:
            parent = os.getppid()
            for s in (*_STOP_SIGNALS, signal.SIGCHLD):
                signal.signal(s, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            os.setpgid(0, 0)  # terminal signals go to the supervisor, which forwards them
            _set_pdeathsig(signal.SIGTERM)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if os.getppid() != parent:
                os._exit(0)  # the supervisor died before PDEATHSIG was set
            for fd in (self.wake_r, self.wake_w, self.ready_r):
                os.close(fd)
            _pin(self.cfg.server.cpu_affinity, index, len(self.slots))
            status = self._worker_main(index)
        except ConfigError as e:
            sys.stderr.write(f"puff: config error: {e}\n")
            status = 2
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - report and exit: never return into the supervisor
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _worker_main(self, index: int) -> int:
        from .cli import run_in_runtime

        ready_w = self.ready_w
        fds = [(bind, group[index % len(group)].fileno()) for bind, group in self.sockets]
        inherited = [sock for _bind, group in self.sockets for sock in group]

        def on_ready() -> None:
            # listen_fd dup'ed the sockets: close the inherited ones, so that the listening
            # sockets go away once the supervisor and every worker have stopped accepting.
            for sock in inherited:
                sock.close()
            os.write(ready_w, os.getpid().to_bytes(4, "little"))
            os.close(ready_w)

        return run_in_runtime(self.cfg, _serve.serve_main, self.cfg, self.kind, self.app, fds, True, on_ready,
                              signal_ok=True, result_is_status=True, options=_serve.runtime_options(self.cfg))


def affinity_cpu(mode: str, index: int, workers: int) -> Optional[int]:
    """The CPU worker ``index`` is pinned to, or None. ``auto`` pins when there are at least as
    many workers as usable CPUs, so each worker's threads stay on one core; with fewer workers
    than CPUs a worker's threads should spread, so nothing is pinned."""
    if mode != "auto" or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if workers < 2 or workers < len(cpus):
        return None
    return cpus[index % len(cpus)]


def _pin(mode: str, index: int, workers: int) -> None:
    cpu = affinity_cpu(mode, index, workers)
    if cpu is None:
        return
    try:
        os.sched_setaffinity(0, {cpu})  # before the runtime starts: every thread inherits it
    except OSError as e:
        log.warning("worker %d: cannot pin to CPU %d: %s", index, cpu, e)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = str(sig)
        return f"signal {sig} ({name})"
    return f"status {os.WEXITSTATUS(status)}"


def _set_pdeathsig(signum: int) -> None:
    """Linux: the kernel sends ``signum`` to this process when its parent dies."""
    try:
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: a killed supervisor leaves its workers running
        pass
