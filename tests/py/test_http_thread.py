"""`http_thread`: which thread of a worker runs its HTTP connections. Black-box: the serving log
line names the model, and the I/O thread's wake-ups show who did the socket work. In process: an
asyncio loop watching the Python thread's own I/O loop does not spin, and a closed server's
listener on that loop is closed (review of the first version: both were wrong)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import puff
from http_helpers import Server, start
from puff import _native
from puff._server_config import usable_cpus

PYTHON = r"connections on the Python thread\)"
IO = "connections on I/O threads"
AUTO = "connections on the Python thread or I/O threads, by the app's cost per request"
# Neither the outer pass's PUFF_HTTP_THREAD nor a flag: the default applies.
UNSET = {"PUFF_HTTP_THREAD": ""}


def _io_thread_wakeups(pid: int) -> int:
    """Voluntary context switches of the process's I/O threads (each sleeps between events)."""
    total, threads = 0, 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        if Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip().startswith("puff-io-"):
            threads += 1
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    assert threads, "no puff-io-N thread"
    return total


def _io_wakeups_during(pid: int, work) -> int:
    """How many times the I/O threads of `pid` woke while `work()` ran."""
    before = _io_thread_wakeups(pid)
    work()
    return _io_thread_wakeups(pid) - before


def _request(s: socket.socket, path: str = "/hello") -> None:
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    got = b""
    while not got.endswith(b"hello"):
        chunk = s.recv(4096)
        assert chunk, "connection closed"
        got += chunk
    assert got.startswith(b"HTTP/1.1 200")


def _keep_alive_requests(port: int, n: int, path: str = "/hello") -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(n):
            _request(s, path)


@pytest.mark.parametrize("mode", ["python", "io"])
def test_python_thread_serves_without_waking_the_io_thread(project, mode):
    srv = start(project, args=("--http-thread", mode))
    try:
        srv.err.wait_for(PYTHON if mode == "python" else IO)
        _keep_alive_requests(srv.port, 5)
        woke = _io_wakeups_during(srv.pid, lambda: _keep_alive_requests(srv.port, 400))
    finally:
        assert srv.stop() == 0, srv.err.text
    if mode == "python":
        assert woke < 40, f"the I/O threads woke {woke} times for 400 requests served on the Python thread"
    else:
        assert woke >= 400, f"the I/O threads woke only {woke} times for 400 requests they read"


def test_auto_picks_the_python_thread_when_the_workers_fill_the_cpus(project):
    cpus = usable_cpus()
    srv = start(project, args=("--workers", str(cpus)), env=UNSET)
    try:
        srv.err.wait_for(PYTHON)
        assert srv.get("/hello")[2] == b"hello"
    finally:
        assert srv.stop() == 0, srv.err.text


# A cheap page, and a dear one: 300 µs of CPU per request.
# A cheap page, and a dear one: 300 µs of CPU per request; WSGI and ASGI.
_COST_APPS = {
    "wsgi": """
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/dear":
        until = time.thread_time() + 0.0003
        while time.thread_time() < until:
            pass
    start_response("200 OK", [("Content-Length", "5")])
    return [b"hello"]
""",
    "asgi": """
import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/dear":
        until = time.thread_time() + 0.0003
        while time.thread_time() < until:
            pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})
""",
}


@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: every worker count fills it")
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("path", ["/hello", "/dear"])
def test_auto_places_each_connection_by_the_apps_cost_when_cpus_are_left_over(project, interface, path):
    # One worker on a machine with more CPUs: connections start on the Python thread; once a
    # window of work showed the thread busy with an app that costs it much per request, new
    # connections go to the I/O threads (docs/http.md, "Which thread serves the connections").
    project.write("app.py", _COST_APPS[interface])
    project.write("puff.toml", f'{interface} = "app:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0", env=UNSET)
    try:
        srv.err.wait_for(AUTO)
        # The first connection: nothing measured yet.
        first = _io_wakeups_during(srv.pid, lambda: _keep_alive_requests(srv.port, 300, path))
        time.sleep(0.06)  # a measuring window lasts at least 50 ms
        # A new connection, placed by the measure.
        second = _io_wakeups_during(srv.pid, lambda: _keep_alive_requests(srv.port, 400, path))
    finally:
        assert srv.stop() == 0, srv.err.text
    assert first < 40, f"the I/O threads woke {first} times for 300 requests before any measure"
    if path == "/hello":
        assert second < 40, f"the I/O threads woke {second} times for 400 cheap requests"
    else:
        assert second >= 400, f"the I/O threads woke only {second} times for 400 dear requests"


_WS_ECHO_APP = """
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": m.get("text")})
"""


@pytest.mark.parametrize("mode", ["python", "io"])
def test_a_websocket_on_the_python_thread_wakes_no_io_thread(project, mode):
    # A receive() that has to wait registers its waiter from the Python thread itself: an I/O
    # thread woken per message cost the 2-worker echo a third of its rate.
    from websockets.sync.client import connect

    project.write("app.py", _WS_ECHO_APP)
    project.write("puff.toml", 'asgi = "app:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0", "--http-thread", mode, env=UNSET)
    try:
        srv.err.wait_for(PYTHON if mode == "python" else IO)
        with connect(f"ws://127.0.0.1:{srv.port}/") as ws:
            ws.send("warm")
            assert ws.recv(timeout=5) == "warm"

            def echo_300():
                for i in range(300):
                    ws.send(f"m{i}")
                    assert ws.recv(timeout=5) == f"m{i}"

            woke = _io_wakeups_during(srv.pid, echo_300)
    finally:
        assert srv.stop() == 0, srv.err.text
    if mode == "python":
        assert woke < 30, f"the I/O threads woke {woke} times for 300 messages on the Python thread"
    else:
        assert woke >= 300, f"the I/O threads woke only {woke} times for 300 messages they read"


@pytest.mark.skipif(usable_cpus() < 2, reason="one CPU: every worker count fills it")
def test_connections_on_both_threads_are_served_side_by_side(project):
    # A connection placed on the Python thread stays there after the measure sends new ones to
    # the I/O threads: both kinds then carry requests at the same time.
    project.write("app.py", _COST_APPS["wsgi"])
    project.write("puff.toml", 'wsgi = "app:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0", env=UNSET)
    try:
        srv.err.wait_for(AUTO)
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as first:
            for _ in range(300):
                _request(first, "/dear")  # on the Python thread: nothing was measured yet
            time.sleep(0.06)
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as second:

                def alternate():
                    for _ in range(200):
                        _request(first, "/dear")
                        _request(second, "/dear")

                woke = _io_wakeups_during(srv.pid, alternate)
    finally:
        assert srv.stop() == 0, srv.err.text
    assert woke >= 200, f"the I/O threads woke {woke} times: the second connection is not theirs"


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


# ---- in process: idle loops do not spin, close() closes the listener ----------------------------

_SPIN_LIMIT = 0.3  # CPU seconds allowed in 1 s of idling (a busy loop uses ~1.0)


async def _asgi_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


def _connect_after_close(port: int) -> str:
    s = socket.socket()
    s.settimeout(1)
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        return "refused"
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            s.recv(100)
            return "answered"
        except socket.timeout:
            return "accepted by the kernel and hung"
    finally:
        s.close()


def test_idle_asyncio_runtime_does_not_busy_loop():
    async def main():
        await asyncio.sleep(0.1)
        t0 = time.process_time()
        await asyncio.sleep(1.0)
        return time.process_time() - t0

    cpu = puff.run(main)
    assert cpu < _SPIN_LIMIT, f"an idle asyncio runtime used {cpu:.2f} CPU s in 1 s (loop_fd busy loop)"


def test_idle_asgi_server_on_io_threads_does_not_busy_loop():
    async def main():
        srv = _native.HttpServer(_asgi_app, {"interface": "asgi", "python_thread": False})
        try:
            srv.listen_tcp("127.0.0.1", 0)
            await asyncio.sleep(0.1)
            t0 = time.process_time()
            await asyncio.sleep(1.0)
            return time.process_time() - t0
        finally:
            srv.close()

    cpu = puff.run(main)
    assert cpu < _SPIN_LIMIT, f"an idle ASGI server (http_thread io) used {cpu:.2f} CPU s in 1 s"


def test_close_releases_the_listener_wsgi_python_thread():
    def main():
        srv = _native.HttpServer(_wsgi_app, {"python_thread": True})
        _, port = srv.listen_tcp("127.0.0.1", 0)
        srv.close()
        puff.sleep_ms(100)
        return _connect_after_close(port)

    assert puff.run(main) == "refused"


def test_close_releases_the_listener_asgi_python_thread_without_spinning():
    async def main():
        srv = _native.HttpServer(_asgi_app, {"interface": "asgi", "python_thread": True})
        _, port = srv.listen_tcp("127.0.0.1", 0)
        srv.close()
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        t0 = time.process_time()
        got = await loop.run_in_executor(None, _connect_after_close, port)
        await asyncio.sleep(0.5)
        return got, time.process_time() - t0

    got, cpu = puff.run(main)
    assert got == "refused", got
    assert cpu < _SPIN_LIMIT, f"{cpu:.2f} CPU s while a client waited on the closed server's listener"


def _queued_client(sock: socket.socket) -> socket.socket:
    """A client whose connection and request wait in `sock`'s backlog before anyone accepts."""
    c = socket.create_connection(sock.getsockname(), timeout=3)
    c.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    return c


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_a_client_queued_before_listen_fd_is_served(interface):
    # A worker's socket is bound by the supervisor: clients may queue on it before the worker
    # listens. The accept then completes at once, outside the loop, and must not wait for some
    # other event to wake the Python thread (it waited forever under asyncio).
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    client = _queued_client(lsock)

    def answer() -> bytes:
        try:
            return client.recv(100)
        except socket.timeout:
            return b"(no answer within 3 s)"

    if interface == "wsgi":
        def main():
            srv = _native.HttpServer(_wsgi_app, {"python_thread": True})
            srv.listen_fd(lsock.fileno())
            try:
                return puff.blocking(answer)()  # the Python thread stays free to serve
            finally:
                srv.close()
    else:
        async def main():
            srv = _native.HttpServer(_asgi_app, {"interface": "asgi", "python_thread": True})
            srv.listen_fd(lsock.fileno())
            try:
                return await asyncio.get_running_loop().run_in_executor(None, answer)
            finally:
                srv.close()
    try:
        got = puff.run(main)
    finally:
        client.close()
        lsock.close()
    assert got.startswith(b"HTTP/1.1 200"), got


@pytest.mark.skipif(os.environ.get("PUFF_TEST_HTTP_THREAD") == "io", reason="needs the server on the Python thread")
def test_the_hub_spins_before_sleeping_only_while_a_result_is_awaited():
    # Serving on the Python thread, the hub's own loop wakes for the sockets' events: spinning
    # between requests would only burn the CPU another worker needs. An op's result that another
    # thread will hand over (a query; here a native extension's op) is still worth the spin; a
    # timer is not.
    ext = pytest.importorskip("puff_native_ext")  # `make native-ext` installs it
    def client(port: int, n: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(n):
                s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                got = b""
                while not got.endswith(b"\r\n\r\nok"):
                    chunk = s.recv(4096)
                    assert chunk, "connection closed"
                    got += chunk

    def spun_and_slept(fn):
        before = _native.stats()
        fn()
        after = _native.stats()
        return after["spun_sleeps"] - before["spun_sleeps"], after["sleeps"] - before["sleeps"]

    def main():
        srv = _native.HttpServer(_wsgi_app, {"python_thread": True})
        _, port = srv.listen_tcp("127.0.0.1", 0)
        try:
            t = threading.Thread(target=client, args=(port, 200))

            def serve():
                t.start()
                while t.is_alive():
                    puff.sleep_ms(2)  # a timer: not worth a spin
                t.join()

            serving = spun_and_slept(serve)
            awaiting = spun_and_slept(lambda: ext.sleep_async(50))  # completed by a helper thread
        finally:
            srv.close()
        return serving, awaiting

    (serving_spun, serving_slept), (awaiting_spun, awaiting_slept) = puff.run(main)
    assert serving_slept > 0
    assert serving_spun == 0, f"{serving_spun} of {serving_slept} waits spun while serving 200 requests"
    assert awaiting_spun >= 1, f"no spin in {awaiting_slept} waits for an op's result"
