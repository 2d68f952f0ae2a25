"""`puff serve` with an ASGI app (FastAPI): lifespan, JSON, bodies, streaming, WebSocket, TLS,
HTTP/2 and gzip — a real `puff serve` process and real clients."""

import gzip
import http.client
import os
import shutil
import signal
import ssl
import subprocess

import pytest
from websockets.sync.client import connect as ws_connect

from http_helpers import APPS, Server

LARGE_SIZES = (70000, 5, 16384, 16383, 200000, 1, 40000)  # as serve_apps/asgi_app.py


def start_asgi(project, toml="", args=(), env=None):
    shutil.copy(APPS / "asgi_app.py", project.root / "app.py")
    project.write("puff.toml", 'asgi = "app:app"\n' + toml)
    return Server(project, "--bind", "127.0.0.1:0", *args, env=env)


@pytest.fixture
def certs(tmp_path):
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "key.pem", "-out",
         tmp_path / "cert.pem", "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")


def test_fastapi_json_bodies_streaming_and_lifespan_shutdown(project, tmp_path):
    marker = tmp_path / "marker"
    srv = start_asgi(project, env={"PUFF_TEST_SHUTDOWN_MARKER": str(marker)})
    try:
        status, _h, body = srv.get("/json")
        assert status == 200
        assert body == (b'{"message":"Hello, World!","greeting":"hello from lifespan",'
                        b'"http_version":"1.1","scheme":"http"}')
        status, _h, body = srv.request("POST", "/echo", body=b"abc" * 10000)
        assert status == 200 and body == b"cba" * 10000
        status, headers, body = srv.get("/stream")
        assert status == 200 and body == b"".join(f"part {i}\n".encode() for i in range(5))
        status, headers, body = srv.get("/large")  # large chunks are lent to the socket uncopied
        assert status == 200 and body == b"".join(bytes([65 + i]) * n for i, n in enumerate(LARGE_SIZES))
        status, _h, _b = srv.get("/missing")
        assert status == 404
    finally:
        assert srv.stop(signal.SIGTERM) == 0
    assert marker.read_text() == "shutdown ran"  # lifespan shutdown ran at the graceful stop
    srv.err.wait_for("Serving ASGI app 'app:app'")


def test_fastapi_websocket(project):
    srv = start_asgi(project)
    try:
        with ws_connect(f"ws://127.0.0.1:{srv.port}/ws") as c:
            c.send("one")
            assert c.recv(timeout=5) == "echo:one"
            c.send("two")
            assert c.recv(timeout=5) == "echo:two"
    finally:
        assert srv.stop() == 0


def test_tls_and_http2_over_alpn(project, certs):
    srv = start_asgi(project, args=("--certfile", certs[0], "--keyfile", certs[1]))
    try:
        ctx = ssl.create_default_context(cafile=certs[0])
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx, timeout=10)
        conn.request("GET", "/json")
        body = conn.getresponse().read()
        conn.close()
        assert b'"http_version":"1.1","scheme":"https"' in body
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sS", "--cacert", certs[0], f"https://127.0.0.1:{srv.port}/json"],
                                 capture_output=True, text=True, timeout=20).stdout
            assert '"http_version":"2","scheme":"https"' in out
            large = subprocess.run(["curl", "-sS", "--cacert", certs[0], f"https://127.0.0.1:{srv.port}/large"],
                                   capture_output=True, timeout=20).stdout
            assert large == b"".join(bytes([65 + i]) * n for i, n in enumerate(LARGE_SIZES))
        srv.err.wait_for(r"Listening on https://127\.0\.0\.1:")
    finally:
        assert srv.stop() == 0


def test_tls_needs_both_files(project, certs):
    shutil.copy(APPS / "asgi_app.py", project.root / "app.py")
    project.write("puff.toml", 'asgi = "app:app"\n')
    r = project.run("serve", "--bind", "127.0.0.1:0", "--certfile", certs[0])
    assert r.returncode == 2 and "both certfile and keyfile" in r.stderr


def test_gzip_for_the_app_when_enabled(project):
    srv = start_asgi(project, toml="compression_middleware = true\n")
    try:
        status, headers, body = srv.get("/text", headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == b"compressible text " * 500 and len(body) < 500
        status, headers, body = srv.get("/text")  # no Accept-Encoding: plain
        assert headers.get("Content-Encoding") is None and body == b"compressible text " * 500
        status, headers, body = srv.get("/hello", headers={"Accept-Encoding": "gzip"})
        assert headers.get("Content-Encoding") is None and body == b"hello"  # below min_size
    finally:
        assert srv.stop() == 0


def test_failed_lifespan_startup_stops_the_server(project):
    project.write("app.py", """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
""")
    project.write("puff.toml", 'asgi = "app:app"\n')
    r = project.run("serve", "--bind", "127.0.0.1:0", timeout=30)
    assert r.returncode == 1 and "database unreachable" in r.stderr


def test_mount_config_errors(project):
    project.write("app.py", "def app(e, s):\n    s('200 OK', [])\n    return [b'x']\n")
    for toml, message in [
        ('[[mount]]\nprefix = "/api"\nwsgi = "app:app"\nasgi = "app:app"\n', "exactly one of 'wsgi' or 'asgi'"),
        ('[[mount]]\nprefix = "/"\nwsgi = "app:app"\n', "'prefix' must be a URL path like"),
        ('[[mount]]\nprefix = "/a"\nasgi = "app:nope"\n', "module 'app' has no attribute 'nope'"),
        ('[[mount]]\nprefix = "/a"\nwsgi = "app:app"\n[[mount]]\nprefix = "/a"\nwsgi = "app:app"\n',
         "duplicate prefix"),
    ]:
        project.write("puff.toml", 'wsgi = "app:app"\n' + toml)
        r = project.run("serve", "--bind", "127.0.0.1:0", timeout=30)
        assert r.returncode == 2 and message in r.stderr, (toml, r.stderr)


def test_wsgi_main_app_with_an_asgi_mount_and_script_names(project):
    project.write("app.py", """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"wsgi {environ['SCRIPT_NAME']!r} {environ['PATH_INFO']!r}".encode()]

async def api(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"asgi {scope['root_path']!r} {scope['path']!r}".encode()})
""")
    project.write("puff.toml", 'wsgi = "app:app"\n[[mount]]\nprefix = "/api/"\nasgi = "app:api"\n'
                               '[[mount]]\nprefix = "/legacy"\nwsgi = "app:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0")
    try:
        assert srv.get("/x")[2] == b"wsgi '' '/x'"
        assert srv.get("/api")[2] == b"asgi '/api' '/api'"
        assert srv.get("/api/v1/items")[2] == b"asgi '/api' '/api/v1/items'"
        assert srv.get("/apix")[2] == b"wsgi '' '/apix'"  # a prefix matches whole path segments
        assert srv.get("/legacy/page")[2] == b"wsgi '/legacy' '/page'"
    finally:
        assert srv.stop() == 0


def test_access_log_for_asgi_apps(project):
    srv = start_asgi(project, toml="[server]\naccess_log = true\n")
    try:
        srv.get("/json?x=1")
        srv.get("/missing")
        lines = srv.out.wait_for(r'"GET /missing HTTP/1\.1" 404', count=1)
        assert lines
        srv.out.wait_for(r'127\.0\.0\.1 - - \[.*\] "GET /json\?x=1 HTTP/1\.1" 200 \d+')
    finally:
        assert srv.stop() == 0


TASK_APP = '''
import asyncio, json, os

made = []


def factory(loop, coro, context=None):
    task = asyncio.Task(coro, loop=loop, context=context, name="from-the-factory")
    made.append(task)
    return task


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("SET_FACTORY"):
                    asyncio.get_running_loop().set_task_factory(factory)
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    task = asyncio.current_task()
    body = json.dumps({"name": task.get_name(), "factory_made": len(made), "in_all_tasks": task in asyncio.all_tasks()})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body.encode()})
'''


@pytest.mark.parametrize("with_factory", [False, True])
def test_each_request_is_an_asyncio_task_and_a_task_factory_is_used(project, with_factory):
    """Without a task factory Puff makes each request's Task itself (named, registered with
    asyncio.all_tasks()); a factory the app sets on the loop makes them instead."""
    import json

    project.write("app.py", TASK_APP)
    project.write("puff.toml", 'asgi = "app:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0", env={"SET_FACTORY": "1"} if with_factory else None)
    try:
        for i in range(3):
            status, _h, body = srv.get("/")
            assert status == 200
            got = json.loads(body)
            assert got["in_all_tasks"] is True
            if with_factory:
                assert got == {"name": "from-the-factory", "factory_made": i + 1, "in_all_tasks": True}
            else:
                assert got == {"name": "puff-asgi-http", "factory_made": 0, "in_all_tasks": True}
    finally:
        assert srv.stop(signal.SIGTERM) == 0
