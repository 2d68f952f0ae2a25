"""`http_thread`: which thread of a worker runs its HTTP connections. Black-box: the serving log
line names the model, and the I/O thread's wake-ups show who did the socket work."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from http_helpers import start
from puff._server_config import usable_cpus

PYTHON = "connections on the Python thread"
IO = "connections on I/O threads"
# Neither the outer pass's PUFF_HTTP_THREAD nor a flag: the default applies.
UNSET = {"PUFF_HTTP_THREAD": ""}


def _io_thread_wakeups(pid: int) -> int:
    """Voluntary context switches of the process's first I/O thread (it sleeps between events)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() == "puff-io-0":
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    raise AssertionError("no puff-io-0 thread")


def _keep_alive_requests(port: int, n: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(n):
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            got = b""
            while not got.endswith(b"hello"):
                chunk = s.recv(4096)
                assert chunk, "connection closed"
                got += chunk
            assert got.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("mode", ["python", "io"])
def test_python_thread_serves_without_waking_the_io_thread(project, mode):
    srv = start(project, args=("--http-thread", mode))
    try:
        srv.err.wait_for(PYTHON if mode == "python" else IO)
        _keep_alive_requests(srv.port, 5)
        before = _io_thread_wakeups(srv.pid)
        _keep_alive_requests(srv.port, 400)
        woke = _io_thread_wakeups(srv.pid) - before
    finally:
        assert srv.stop() == 0, srv.err.text
    if mode == "python":
        assert woke < 40, f"the I/O thread woke {woke} times for 400 requests served on the Python thread"
    else:
        assert woke >= 400, f"the I/O thread woke only {woke} times for 400 requests it read"


def test_auto_picks_the_python_thread_when_the_workers_fill_the_cpus(project):
    cpus = usable_cpus()
    srv = start(project, args=("--workers", str(cpus)), env=UNSET)
    try:
        srv.err.wait_for(PYTHON)
        assert srv.get("/hello")[2] == b"hello"
    finally:
        assert srv.stop() == 0, srv.err.text


@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: every worker count fills it")
def test_auto_keeps_io_threads_when_cpus_are_left_over(project):
    srv = start(project, env=UNSET)
    try:
        srv.err.wait_for(IO)
        assert srv.get("/hello")[2] == b"hello"
    finally:
        assert srv.stop() == 0, srv.err.text


@pytest.mark.parametrize("how", ["flag", "env", "toml"])
def test_a_bad_value_is_refused_with_the_choices(project, how):
    project.write("app.py", "def app(environ, start_response):\n    return []\n")
    toml = 'wsgi = "app:app"\n'
    args, env = ["serve"], dict(UNSET)
    if how == "flag":
        args += ["--http-thread", "threads"]
    elif how == "env":
        env["PUFF_HTTP_THREAD"] = "threads"
    else:
        toml += '[server]\nhttp_thread = "threads"\n'
    project.write("puff.toml", toml)
    r = project.run(*args, env=env)
    assert r.returncode == 2, r.stderr
    assert "threads" in r.stderr and '"python"' in r.stderr and '"io"' in r.stderr
