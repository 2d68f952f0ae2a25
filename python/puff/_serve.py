"""``puff serve`` (alias ``runserver``): the HTTP server for a WSGI application.

One process (``workers = 1``, the default) serves in place: the app is imported, the runtime
starts, ``puff._native.HttpServer`` listens on every bind, and the main greenlet waits. With
``workers = N > 1`` the process becomes a supervisor (:mod:`puff._supervisor`) that binds the
sockets, pre-forks N workers and never starts the runtime itself; each worker runs
:func:`serve_main` on the inherited sockets.

Stopping: SIGINT/SIGTERM raise at the main greenlet's wait; the server stops accepting, waits
until the requests in flight are done (at most ``graceful_timeout_ms``), closes, and the command
exits 0. Details and exit codes: docs/http.md.

Hooks for what is not here yet (ASGI, TLS): the application kind is resolved by
:func:`resolve_app`, the server object is made by :data:`SERVER_FACTORIES` with the options of
:func:`server_options`. ASGI support adds an ``"asgi"`` factory and lifts the refusal in
:func:`resolve_app`; native features configured elsewhere in puff.toml add their options in
:func:`server_options`, as ``[[static]]`` and ``[cors]`` do (docs/static-and-cors.md).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import socket
import stat
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import puff

from . import _native
from . import config as _config
from ._config_schema import _DOTTED
from ._server_config import SERVER_SETTINGS, Bind, parse_bool
from .config import ConfigError, PuffConfig

log = logging.getLogger("puff")

#: Extra time the runtime's shutdown watchdog allows beyond graceful_timeout_ms, so that it
#: never cuts the graceful period short.
WATCHDOG_MARGIN_MS = 5000
_POLL_MS = 10

USAGE = """\
Serve the WSGI or ASGI application named by `wsgi`/`asgi` in puff.toml (or --wsgi/--asgi), and
its [[mount]]s and [[static]] directories, over HTTP/1.1, HTTP/2 and WebSocket.
Flags override [server] in puff.toml and the PUFF_* variables. See docs/http.md."""


# ---- command line ------------------------------------------------------------------------------


def _parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"puff {name}", description=USAGE, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wsgi", metavar="PATH", help="WSGI app, e.g. my_app.wsgi:application (overrides wsgi)")
    p.add_argument("--asgi", metavar="PATH", help="ASGI app, e.g. my_app.main:app (overrides asgi)")
    p.add_argument("-b", "--bind", action="append", metavar="ADDR",
                   help="host:port, [ipv6]:port, unix:/path or /path; repeat for several "
                        "[env: PUFF_BIND] [default: 127.0.0.1:7777]")
    p.add_argument("-w", "--workers", metavar="N", help="worker processes [env: PUFF_WORKERS] [default: 1]")
    p.add_argument("--threads", metavar="N", help="I/O threads per worker (0: one per CPU) "
                                                  "[default: [runtime] io_threads]")
    p.add_argument("--max-body", metavar="BYTES", help="largest request body; larger: 413 "
                                                       "[env: PUFF_MAX_BODY] [default: 10485760]")
    p.add_argument("--graceful-timeout-ms", metavar="MS", help="after SIGTERM, how long requests in "
                   "flight may take [env: PUFF_GRACEFUL_TIMEOUT_MS] [default: 30000]")
    p.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None,
                   help="log one line per request to stdout [env: PUFF_ACCESS_LOG] [default: off]")
    p.add_argument("--certfile", metavar="PEM", help="TLS certificate chain: serve HTTPS (HTTP/1.1 and "
                   "HTTP/2 by ALPN) on every TCP bind [env: PUFF_CERTFILE]")
    p.add_argument("--keyfile", metavar="PEM", help="TLS private key [env: PUFF_KEYFILE]")
    p.add_argument("--cpu-affinity", metavar="auto|off", help="auto: with at least as many workers as "
                   "CPUs, pin worker i (all its threads) to CPU i [env: PUFF_CPU_AFFINITY] [default: off]")
    p.add_argument("--http-thread", metavar="auto|python|io", help="python: each worker's Python "
                   "thread runs its connections itself; io: I/O threads run them and hand requests "
                   "over; auto: python when workers >= CPUs, else each new connection by the app's "
                   "measured cost per request [env: PUFF_HTTP_THREAD] [default: auto]")
    p.add_argument("--reuse-port", nargs="?", const="true", metavar="BOOL",
                   help="accepted for compatibility: SO_REUSEPORT is always on [env: PUFF_REUSE_PORT]")
    return p


def apply_flags(cfg: PuffConfig, args: Sequence[str], name: str = "serve") -> None:
    """Parses the flags of ``puff serve`` into ``cfg`` (argparse exits 2 on bad usage)."""
    ns = _parser(name).parse_args(list(args))
    for key, (_var, flag) in SERVER_SETTINGS.items():
        value = getattr(ns, key)
        if value is not None:
            _config.override(cfg, f"server.{key}", value, f"flag {flag}")
    for key in ("wsgi", "asgi"):
        value = getattr(ns, key)
        if value is not None:
            if not _DOTTED.match(value) or not ("." in value or ":" in value):
                raise ConfigError(f"flag --{key}: expected a dotted path like 'package.module:app', got {value!r}")
            setattr(cfg, key, value)
            cfg.sources[key] = f"flag --{key}"
    reuse = ns.reuse_port if ns.reuse_port is not None else os.environ.get("PUFF_REUSE_PORT") or None
    if reuse is not None:
        source = "flag --reuse-port" if ns.reuse_port is not None else "env PUFF_REUSE_PORT"
        try:
            if not parse_bool(reuse):
                log.info("%s: SO_REUSEPORT is always on in Puff; 'false' is ignored", source)
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None


# ---- the application ---------------------------------------------------------------------------


def _wsgi_server(app: Callable, options: Dict[str, Any]):
    return _native.HttpServer(app, options)


class _AsgiServer:
    """An ASGI app on the native server, with its lifespan: startup before listening (a failed
    startup stops the process), shutdown after close(). Runs in the serving greenlet; Puff's
    asyncio loop runs beside it (``asyncio`` is forced on for ASGI)."""

    def __init__(self, app: Callable, options: Dict[str, Any]) -> None:
        from ._scheduler import state, wait_future
        from .asgi import Lifespan

        self._wait = wait_future
        self._loop = state.loop
        if self._loop is None:
            raise RuntimeError("ASGI serving needs Puff's asyncio loop")
        self.lifespan = Lifespan(app)
        self._wait(self._loop.create_task(self.lifespan.startup()))
        self._native = _native.HttpServer(app, {**options, "interface": "asgi", "state": self.lifespan.state})
        self._closed = False

    def __getattr__(self, name: str):
        return getattr(self._native, name)

    def close(self) -> None:
        self._native.close()
        if not self._closed:
            self._closed = True
            try:
                self._wait(self._loop.create_task(self.lifespan.shutdown()))
            except Exception as e:  # noqa: BLE001 - report, the server is stopping anyway
                log.error("ASGI lifespan shutdown failed: %s", e)


#: Application kind -> factory(app, native options) -> a server with listen_*/stop_accepting/
#: close/stats.
SERVER_FACTORIES: Dict[str, Callable[[Callable, Dict[str, Any]], Any]] = {"wsgi": _wsgi_server, "asgi": _AsgiServer}


def resolve_app(cfg: PuffConfig) -> Tuple[str, Callable, str]:
    """Imports the configured application: (kind, app, dotted path). A missing or unimportable
    app is a ConfigError naming the module or attribute. With both configured, WSGI is served
    and a warning says the ASGI app is not."""
    if cfg.wsgi is None and cfg.asgi is None:
        raise ConfigError("nothing to serve: set wsgi = \"package.module:app\" or asgi = \"package.module:app\" "
                          "in puff.toml, or pass --wsgi/--asgi package.module:app")
    if cfg.wsgi is not None and cfg.asgi is not None:
        log.warning("both wsgi and asgi are configured: serving the WSGI app %r; the ASGI app %r "
                    "is NOT served (configure one of them)", cfg.wsgi, cfg.asgi)
    kind = "wsgi" if cfg.wsgi is not None else "asgi"
    path = cfg.wsgi if kind == "wsgi" else cfg.asgi
    what = cfg.sources.get(kind, kind)
    app = _config.import_object(path, what, _where(cfg, kind))
    if not callable(app):
        signature = "app(environ, start_response)" if kind == "wsgi" else "async app(scope, receive, send)"
        raise ConfigError(f"{what} {path!r} is not callable (it is {type(app).__name__}); "
                          f"a {kind.upper()} application is {signature}", *_where(cfg, kind))
    if kind == "asgi" or any(m.interface == "asgi" for m in cfg.mount):
        cfg.asyncio = True  # ASGI apps run on Puff's asyncio loop
    if cfg.server.access_log:
        from ._access_log import AccessLog, AsgiAccessLog

        app = AsgiAccessLog(app) if kind == "asgi" else AccessLog(app)
    return kind, app, path


def resolve_mounts(cfg: PuffConfig) -> List[Tuple[str, Callable, str]]:
    """Imports every ``[[mount]]`` app: (prefix, app, interface). Errors are config errors."""
    mounts = []
    for i, m in enumerate(cfg.mount):
        where = cfg.where("mount", i, m.interface)
        app = _config.import_object(m.app, f"[[mount]] {m.interface}", where)
        if not callable(app):
            raise ConfigError(f"[[mount]] {m.interface} {m.app!r} is not callable (it is {type(app).__name__})", *where)
        if cfg.server.access_log:
            from ._access_log import AccessLog, AsgiAccessLog

            app = AsgiAccessLog(app) if m.interface == "asgi" else AccessLog(app)
        mounts.append((m.prefix, app, m.interface))
    return mounts


def _mount_all(server, mounts: Sequence[Tuple[str, Callable, str]]) -> list:
    """Mounts the extra apps on the native server; runs the lifespan of mounted ASGI apps.
    Returns the lifespans (to shut down after close)."""
    from ._scheduler import state, wait_future
    from .asgi import Lifespan

    lifespans = []
    for prefix, app, interface in mounts:
        life = None
        if interface == "asgi":
            life = Lifespan(app)
            wait_future(state.loop.create_task(life.startup()))
            lifespans.append(life)
        server.mount(prefix, app, interface, life.state if life else None)
        log.info("Mounted %s app at %s", interface.upper(), prefix)
    return lifespans


def server_options(cfg: PuffConfig) -> Dict[str, Any]:
    """The options of the native server for this configuration. Features configured outside
    ``[server]`` that the native server implements (static files, CORS, TLS, ...) add their keys
    here."""
    opts = cfg.server.native_options()
    if cfg.compression_middleware:
        opts["compression"] = {"min_size": cfg.server.compression_min_size}
    if cfg.static:
        opts["static"] = [s.native_options() for s in cfg.static]
    if cfg.cors is not None:
        opts["cors"] = cfg.cors.native_options()
    return opts


def check_static(cfg: PuffConfig) -> None:
    """A ``[[static]]`` directory that is missing is a config error (status 2), before the fork."""
    for i, static in enumerate(cfg.static):
        if not os.path.isdir(static.directory):
            raise ConfigError(f"[[static]] {static.url!r}: directory {static.directory!r} does not exist "
                              f"(or is not a directory; relative paths start at {os.getcwd()})",
                              *cfg.where("static", i, "directory"))


def check_tls(cfg: PuffConfig) -> None:
    """certfile and keyfile come together and must be readable (status 2 before any fork)."""
    cert, key = cfg.server.certfile, cfg.server.keyfile
    if bool(cert) != bool(key):
        raise ConfigError("TLS needs both certfile and keyfile ([server] certfile/keyfile or --certfile/--keyfile)")
    for what, path in (("certfile", cert), ("keyfile", key)):
        if path and not os.access(path, os.R_OK):
            raise ConfigError(f"[server] {what} {path!r} is missing or not readable")


def _where(cfg: PuffConfig, key: str):
    return (None, None) if key in cfg.sources else cfg.where(key)


def runtime_options(cfg: PuffConfig) -> puff.RuntimeOptions:
    """The runtime options of a serving process: ``threads`` (a flag, else ``[server]``) picks
    the I/O threads unless ``--io-threads``/``PUFF_IO_THREADS`` said otherwise, and the shutdown
    watchdog waits at least graceful_timeout_ms + WATCHDOG_MARGIN_MS."""
    opts = cfg.runtime_options()
    server = cfg.server
    io_source = cfg.sources.get("runtime.io_threads", "")
    threads_source = cfg.sources.get("server.threads", "")
    if server.threads is not None and (threads_source.startswith("flag")
                                       or not io_source.startswith(("flag", "env"))):
        opts.io_threads = server.threads
    elif (server.workers > 1 or server.serves_on_python_thread()) and opts.io_threads == 0 and not io_source:
        # Several workers already use every core for Python, and connections on the Python thread
        # leave the I/O threads only what the runtime still hands them (Postgres pools beyond their
        # first connection): one each is enough; N workers × CPU-count would add context switches.
        opts.io_threads = 1
    in_file = cfg.lines is not None and ("runtime", "spin_us") in cfg.lines.positions
    if "runtime.spin_us" not in cfg.sources and not in_file:
        # Spinning before sleeping only pays when the spinning thread has a core to itself. With
        # more busy threads than cores (workers × (Python thread + I/O threads)) it steals the
        # core another worker needs: 2 workers on 2 cores served ~20% fewer requests with it.
        io_busy = 0 if server.serves_on_python_thread() else (opts.io_threads or (os.cpu_count() or 1))
        # Serving on the Python thread the I/O threads are idle: only the workers count. The spin
        # then catches a Postgres answer without a sleep: Django view, 10 queries, 2 workers on 2
        # cores: 790 vs 750 req/s and p99 130-147 ms vs 141-461 ms without it. The hub spins only
        # while it awaits such a result (hub.cpp, run_hub), so a bare hello does not pay for it.
        threads = server.workers * (1 + io_busy)
        if threads > (os.cpu_count() or 1):
            opts.spin_us = 0
    opts.shutdown_timeout_ms = max(opts.shutdown_timeout_ms, server.graceful_timeout_ms + WATCHDOG_MARGIN_MS)
    return opts


# ---- listening -----------------------------------------------------------------------------------


def resolve_host(bind: Bind) -> List[str]:
    """The IP addresses to listen on for a TCP bind (a host name may give several)."""
    try:
        ipaddress.ip_address(bind.host)
        return [bind.host]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bind.host, bind.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ConfigError(f"listen address {bind.text!r}: cannot resolve {bind.host!r}: {e.strerror}") from None
    addrs: List[str] = []
    for family, _t, _p, _c, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addrs:
            addrs.append(sockaddr[0])
    return addrs


def check_unix_path(path: str) -> None:
    """Refuses a Unix socket path where a server answers; a stale socket file is left for the
    listener to replace. Raises OSError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return  # nobody there: stale
    finally:
        probe.close()
    raise OSError(f"another server is listening on {path}")


def unlink_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except OSError:
        pass


#: What a serving process listens on: a Bind to open itself, or an inherited listening fd.
Listener = Tuple[Bind, Optional[int]]


def _listen(server, listeners: Sequence[Listener], scheme: str, announce: bool,
            cfg_tls: Optional[Tuple[str, str]] = None) -> List[str]:
    """Listens on everything; returns the Unix socket paths this process created."""
    created: List[str] = []
    for bind, fd in listeners:
        if fd is not None:
            server.listen_fd(fd)
            continue
        if bind.unix:
            check_unix_path(bind.path)
            server.listen_unix(bind.path)
            created.append(bind.path)
            if announce:
                log.info("Listening on %s", bind.url())
            continue
        port = bind.port
        tls = (cfg_tls[0], cfg_tls[1]) if cfg_tls else ()
        for addr in resolve_host(bind):
            host, port = server.listen_tcp(addr, port, *tls)  # port 0: the first picks, the rest follow
            if announce:
                log.info("Listening on %s", bind.url(host, port, scheme))
    return created


# ---- serving -------------------------------------------------------------------------------------


def _signal_name(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT"
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 128:
        try:
            return signal.Signals(code - 128).name
        except ValueError:
            pass
    return "a stop request"


def drain(server, timeout_ms: int, prefix: str = "") -> None:
    """Graceful stop: stop accepting, wait until no request is in flight or running (at most
    ``timeout_ms``), then close every connection. Runs in a greenlet (polls with sleep_ms)."""
    server.stop_accepting()
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        st = server.stats()
        busy = max(st["in_flight"], st["running"] + st["waiting"])
        if busy == 0:
            break
        if time.monotonic() >= deadline:
            log.warning("%sgraceful timeout (%d ms) reached with %d request(s) unfinished; closing them",
                        prefix, timeout_ms, busy)
            break
        puff.sleep_ms(_POLL_MS)
    served = server.stats()["served"]
    server.close()
    log.info("%sstopped (%d request(s) served)", prefix, served)


def serve_main(cfg: PuffConfig, kind: str, app: Callable, listeners: Sequence[Listener],
               worker: bool = False, on_ready: Optional[Callable[[], None]] = None) -> int:
    """The main function of a serving process (inside the runtime): listens, waits for a signal,
    drains. Returns the exit status (1 if it could not listen)."""
    server = SERVER_FACTORIES[kind](app, server_options(cfg))
    prefix = f"worker {os.getpid()}: " if worker else ""
    created: List[str] = []
    lifespans: list = []
    try:
        lifespans = _mount_all(server, resolve_mounts(cfg))
        try:
            tls = (cfg.server.certfile, cfg.server.keyfile) if cfg.server.certfile else None
            created = _listen(server, listeners, "https" if tls else cfg.server.url_scheme, announce=not worker,
                              cfg_tls=tls)
        except (OSError, ValueError) as e:
            log.error("%scannot listen: %s", prefix, e)
            server.close()
            return 1
        if worker:
            _ignore_repeated_signals()
        if on_ready is not None:
            on_ready()
        else:
            log.info("Serving %s app %r (pid %d, %s); stop with Ctrl-C or SIGTERM", kind.upper(),
                     cfg.wsgi if kind == "wsgi" else cfg.asgi, os.getpid(), cfg.server.thread_model())
        try:
            while True:
                puff.sleep_ms(3_600_000)
        except (KeyboardInterrupt, SystemExit) as e:
            log.info("%sreceived %s: finishing requests in flight (up to %d ms)", prefix, _signal_name(e),
                     cfg.server.graceful_timeout_ms)
            drain(server, cfg.server.graceful_timeout_ms, prefix)
            raise
    finally:
        server.close()
        for path in created:
            unlink_socket(path)
        if lifespans:
            from ._scheduler import state, wait_future

            for life in lifespans:
                try:
                    wait_future(state.loop.create_task(life.shutdown()))
                except Exception as e:  # noqa: BLE001 - the server is stopping anyway
                    log.error("ASGI lifespan shutdown failed: %s", e)


def _ignore_repeated_signals() -> None:
    """In a worker, a second SIGINT/SIGTERM (e.g. a process-group kill on top of the one the
    supervisor forwards) must not cut the graceful stop short: the supervisor owns the "second
    signal stops at once" rule. Wraps the runtime's handlers so that only the first one counts.
    With ``asyncio = true`` the loop dispatches signals from its wakeup fd, so there a repeated
    signal still stops the worker at once (docs/http.md recommends KillMode=mixed)."""
    seen = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(sig, frame, previous=previous):
            if not seen:
                seen.append(sig)
                previous(sig, frame)

        signal.signal(signum, handler)


# ---- the command ---------------------------------------------------------------------------------


def cmd_serve(cfg: PuffConfig, args: Sequence[str], name: str = "serve") -> int:
    """``puff serve [FLAGS]``: returns the exit status."""
    from .cli import run_in_runtime

    apply_flags(cfg, args, name)
    kind, app, _path = resolve_app(cfg)
    resolve_mounts(cfg)  # import errors are config errors (status 2), before any fork
    binds = cfg.server.binds()
    check_static(cfg)
    check_tls(cfg)
    if cfg.global_state:  # import it now: before the fork, and as a config error (status 2)
        factory = _config.import_object(cfg.global_state, "global_state", cfg.where("global_state"))
        if not callable(factory):
            raise ConfigError(f"global_state {cfg.global_state!r} is not callable "
                              f"(it is {type(factory).__name__})", *cfg.where("global_state"))
    if cfg.server.workers > 1:
        from ._supervisor import Supervisor

        return Supervisor(cfg, kind, app, binds).run()
    for bind in binds:  # resolve host names now: a bad one is a config error
        if not bind.unix:
            resolve_host(bind)
    listeners = [(b, None) for b in binds]
    return run_in_runtime(cfg, serve_main, cfg, kind, app, listeners, signal_ok=True, result_is_status=True,
                          options=runtime_options(cfg))
