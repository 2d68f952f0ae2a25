"""The servers measured, and the command line that serves a scenario's app with each.

Every server gets the same bind host, N worker processes and no access log, and otherwise the
configuration its own documentation recommends for speed. A contender is listed for a scenario
only if it supports the scenario's interface and protocol; Puff is listed for all of them and
is marked "not available" at run time when it cannot serve one yet (see main.py's probes).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, FrozenSet, List

from scenarios import Scenario

BIN = os.path.dirname(sys.executable)  # the bench venv's bin/: every server runs from there


def _bin(name: str) -> str:
    return os.path.join(BIN, name)


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    interfaces: FrozenSet[str]  # "wsgi", "asgi"
    loads: FrozenSet[str]  # the scenario loads it can take: "wrk", "h2load", "ws"
    argv: Callable[[Scenario, str, int, int], List[str]]  # (scenario, host, port, workers)
    note: str = ""  # shown under the table: how the server was configured
    static: bool = False  # has a native static-file route (the static_small scenario)

    def serves(self, s: Scenario) -> bool:
        return s.interface in self.interfaces and s.load in self.loads and (self.static or not s.static)


def _puff(s: Scenario, host: str, port: int, workers: int) -> List[str]:
    config = ["--config", "static.toml"] if s.static else []  # [[static]] /static/ -> static/
    return [_bin("puff"), *config, "serve", f"--{s.interface}", s.app, "--bind", f"{host}:{port}",
            "--workers", str(workers)]


def _granian(s: Scenario, host: str, port: int, workers: int) -> List[str]:
    argv = [_bin("granian"), "--interface", s.interface, "--host", host, "--port", str(port),
            "--workers", str(workers), "--http", "2" if s.load == "h2load" else "1",
            "--log-level", "warning"]
    if s.interface == "asgi":
        argv += ["--loop", "uvloop"]
    if s.load != "ws":
        argv.append("--no-ws")
    if s.static:
        argv += ["--static-path-mount", "static", "--static-path-route", "/static"]
    return argv + [s.app]


def _socketify(s: Scenario, host: str, port: int, workers: int) -> List[str]:
    return [sys.executable, "-m", "socketify", s.app, "--interface", s.interface,
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--disable-listen-log", "true"]


def _uvicorn(s: Scenario, host: str, port: int, workers: int) -> List[str]:
    return [_bin("uvicorn"), s.app, "--interface", "wsgi" if s.interface == "wsgi" else "asgi3",
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]


def _gunicorn(worker_class: str) -> Callable[[Scenario, str, int, int], List[str]]:
    def argv(s: Scenario, host: str, port: int, workers: int) -> List[str]:
        extra = ["--threads", "8"] if worker_class == "gthread" else []
        return [_bin("gunicorn"), "--bind", f"{host}:{port}", "--workers", str(workers),
                "--worker-class", worker_class, *extra, "--log-level", "warning",
                "--graceful-timeout", "2", s.app]
    return argv


def _uwsgi(s: Scenario, host: str, port: int, workers: int) -> List[str]:
    # --http-socket: no keep-alive, like gunicorn's sync worker. (--http11-socket keeps a
    # single-threaded worker on one connection while the other 63 wait: great numbers, unfair.)
    # It closes after each response without saying so; the header lets wrk reconnect cleanly
    # instead of counting every close as a read error.
    return [_bin("uwsgi"), "--http-socket", f"{host}:{port}", "--master", "--processes",
            str(workers), "--disable-logging", "--wsgi", s.app, "--die-on-term", "--need-app",
            "--listen", "1024", "--add-header", "Connection: close"]


_WSGI, _ASGI, _BOTH = frozenset({"wsgi"}), frozenset({"asgi"}), frozenset({"wsgi", "asgi"})
_H1 = frozenset({"wrk"})

CONTENDERS = [
    Contender("puff", _BOTH, frozenset({"wrk", "h2load", "ws"}), _puff, static=True),
    Contender("granian", _BOTH, frozenset({"wrk", "h2load", "ws"}), _granian,
              "granian --interface wsgi|asgi --http 1 (2 for HTTP/2), uvloop for ASGI; "
              "--static-path-mount static for static_small", static=True),
    Contender("socketify", _BOTH, frozenset({"wrk", "ws"}), _socketify,
              "python -m socketify --interface wsgi|asgi (its WSGI/ASGI adapters)"),
    Contender("uvicorn", _BOTH, frozenset({"wrk", "ws"}), _uvicorn,
              "uvicorn --loop uvloop --http httptools (WSGI through its WSGIMiddleware, "
              "only in wsgi_hello)"),
    Contender("gunicorn-sync", _WSGI, _H1, _gunicorn("sync")),
    Contender("gunicorn-gthread", _WSGI, _H1, _gunicorn("gthread"),
              "gunicorn -k gthread --threads 8"),
    Contender("gunicorn-gevent", _WSGI, _H1, _gunicorn("gevent")),
    Contender("uwsgi", _WSGI, _H1, _uwsgi, "uwsgi --http-socket --master --processes N"),
]

# uvicorn is an ASGI server: its WSGI adapter is measured only where a goal names it.
_UVICORN_WSGI_SCENARIOS = {"wsgi_hello"}


def for_scenario(s: Scenario, only: List[str]) -> List[Contender]:
    """The contenders that serve s, filtered by BENCH_SERVERS names (a prefix selects a family:
    "gunicorn" is all three worker classes); Puff first."""
    out = []
    for c in CONTENDERS:
        if not c.serves(s):
            continue
        if c.name == "uvicorn" and s.interface == "wsgi" and s.name not in _UVICORN_WSGI_SCENARIOS:
            continue
        if only and not any(c.name == o or c.name.startswith(o + "-") for o in only):
            continue
        out.append(c)
    return out
