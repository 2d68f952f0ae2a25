"""The Django scenario of bench/postgres: a view doing 10 ORM queries (django_app/), served by
`puff serve` on puff.contrib.django.postgres and by the usual peer setups on Django's own
postgresql backend with psycopg 3, loaded with wrk (bench/http's load generator and process
handling)."""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APP_DIR = os.path.join(HERE, "django_app")
sys.path.insert(0, os.path.join(ROOT, "bench", "http"))

import load  # noqa: E402  (bench/http)
import procs  # noqa: E402  (bench/http)

BIN = os.path.dirname(sys.executable)
HOST = "127.0.0.1"
APP = "benchsite.wsgi:application"
READY_TIMEOUT = 30.0
WARMUP_S = 1.0

Argv = Callable[[int, int], List[str]]  # (port, workers) -> argv


def _puff(port: int, workers: int) -> List[str]:
    return [os.path.join(BIN, "puff"), "serve", "--wsgi", APP, "--bind", f"{HOST}:{port}",
            "--workers", str(workers)]


def _gunicorn_gevent(port: int, workers: int) -> List[str]:
    return [os.path.join(BIN, "gunicorn"), "--bind", f"{HOST}:{port}", "--workers", str(workers),
            "--worker-class", "gevent", "--log-level", "warning", "--graceful-timeout", "2", APP]


def _granian(port: int, workers: int) -> List[str]:
    return [os.path.join(BIN, "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(port),
            "--workers", str(workers), "--blocking-threads", "16", "--log-level", "warning", APP]


def _uvicorn(port: int, workers: int) -> List[str]:
    return [os.path.join(BIN, "uvicorn"), "benchsite.asgi:application", "--host", HOST,
            "--port", str(port), "--workers", str(workers), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning"]


# name -> (label, argv, database engine of the Django settings, CONN_MAX_AGE)
SERVERS: Dict[str, Tuple[str, Argv, str, int]] = {
    "puff": ("puff serve (WSGI), puff.contrib.django.postgres", _puff, "puff", 0),
    "gunicorn-gevent": ("gunicorn -k gevent, psycopg 3, persistent connections", _gunicorn_gevent,
                        "psycopg", 600),
    "granian": ("granian --interface wsgi --blocking-threads 16, psycopg 3, persistent connections",
                _granian, "psycopg", 600),
    "uvicorn": ("uvicorn, Django ASGI (the sync view in its thread), psycopg 3, CONN_MAX_AGE 0",
                _uvicorn, "psycopg", 0),
}


def measure(name: str, workers: int, seconds: float, url: str, pg_cpu: Callable[[], float],
            logdir: str) -> Dict:
    """One sample: start, wait for GET / to answer, warm up, measure with wrk, stop."""
    label, argv_fn, engine, conn_max_age = SERVERS[name]
    port = procs.free_port(HOST)
    os.environ.update(BENCH_DJANGO_DB=engine, BENCH_DJANGO_CONN_MAX_AGE=str(conn_max_age),
                      BENCH_PG_URL=url, PUFF_DEFAULT_POSTGRES_URL=url,
                      DJANGO_SETTINGS_MODULE="benchsite.settings",
                      PYTHONPATH=APP_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log_path = os.path.join(logdir, f"django-{name}-w{workers}.log")
    try:
        server = procs.Server(argv_fn(port, workers), APP_DIR, log_path)
    except OSError as e:
        return {"error": f"cannot start {name}: {e}"}
    try:
        why = server.wait_ready(lambda: procs.http1_probe(HOST, port), READY_TIMEOUT)
        if why:
            return {"error": why}
        try:
            load.run_wrk(HOST, port, WARMUP_S, close_delimited=False)
            before, busy0, pg0, t0 = server.cpu_seconds(), procs.machine_busy(), pg_cpu(), time.monotonic()
            sample = load.run_wrk(HOST, port, seconds, close_delimited=False)
        except load.LoadError as e:
            return {"error": f"{e}; server log: {server.log_tail()}"}
        wall = time.monotonic() - t0
        cpu = procs.cpu_delta(before, server.cpu_seconds())
        pgc = pg_cpu() - pg0
        other = procs.machine_busy() - busy0 - cpu - pgc - sample["client_cpu_s"]
    finally:
        server.stop()
    count = sample["count"]
    if not count:
        return {"error": f"no response got through; server log: {server.log_tail()}"}
    sample.update({
        "ops_per_s": count / sample["seconds"],
        "cpu_us_per_op": cpu / count * 1e6,
        "pg_cpu_us_per_op": pgc / count * 1e6,
        "other_cpu_cores": round(max(other, 0.0) / wall, 3),
        "workers": workers,
    })
    return sample
