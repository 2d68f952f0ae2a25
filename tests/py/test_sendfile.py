"""Files sent by the kernel (sendfile): wsgi.file_wrapper and ASGI http.response.pathsend, with
the read-and-write fallback over TLS and HTTP/2 — checked byte for byte."""

import asyncio
import hashlib
import os
import shutil
import subprocess

import pytest

import puff
from puff import _native

DATA = os.urandom(5 * 1024 * 1024 + 123)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("files") / "big.bin"
    p.write_bytes(DATA)
    return str(p)


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    f = open(environ["puff.test.file"], "rb")
    if path == "/offset":
        f.seek(1000)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, 65536)


async def asgi_app(scope, receive, send):
    assert "http.response.pathsend" in scope["extensions"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.pathsend", "path": scope["puff.test.file"]})


async def fetch(port, path, method="GET"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = b"" if method == "HEAD" else await reader.readexactly(n)
    # the connection stays usable after a sendfile response
    writer.write(b"GET /again HTTP/1.1\r\nHost: t\r\n\r\n")
    head2 = await reader.readuntil(b"\r\n\r\n")
    writer.close()
    return head, n, body, head2


def test_wsgi_file_wrapper_and_asgi_pathsend_over_plain_http(big_file):
    def wsgi(environ, start_response):
        environ["puff.test.file"] = big_file
        return wsgi_app(environ, start_response)

    async def asgi(scope, receive, send):
        scope["puff.test.file"] = big_file
        await asgi_app(scope, receive, send)

    async def main():
        w = _native.HttpServer(wsgi, {})
        a = _native.HttpServer(asgi, {"interface": "asgi"})
        try:
            _, wp = w.listen_tcp("127.0.0.1", 0)
            _, ap = a.listen_tcp("127.0.0.1", 0)
            return (await fetch(wp, "/"), await fetch(wp, "/offset"), await fetch(wp, "/", "HEAD"),
                    await fetch(ap, "/"))
        finally:
            w.close()
            a.close()

    whole, offset, head, pathsend = puff.run(main)
    assert whole[1] == len(DATA) and hashlib.sha256(whole[2]).digest() == hashlib.sha256(DATA).digest()
    assert offset[1] == len(DATA) - 1000 and offset[2] == DATA[1000:]
    assert head[1] == len(DATA) and head[2] == b""
    assert pathsend[1] == len(DATA) and pathsend[2] == DATA
    for r in (whole, offset, head, pathsend):
        assert r[3].startswith(b"HTTP/1.1 200")


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is installed by scripts/install-system-deps.sh")
def test_fallback_over_tls_and_http2(big_file, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "k.pem",
                    "-out", tmp_path / "c.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    def wsgi(environ, start_response):
        environ["puff.test.file"] = big_file
        return wsgi_app(environ, start_response)

    def main():
        srv = _native.HttpServer(wsgi, {})
        try:
            _, plain = srv.listen_tcp("127.0.0.1", 0)
            _, tls = srv.listen_tcp("127.0.0.1", 0, str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))

            def get():
                h2 = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{plain}/"],
                                    capture_output=True, timeout=60).stdout
                https = subprocess.run(["curl", "-sS", "--cacert", str(tmp_path / "c.pem"),
                                        f"https://127.0.0.1:{tls}/"], capture_output=True, timeout=60).stdout
                return h2, https

            return puff.spawn_blocking(get).join()
        finally:
            srv.close()

    h2, https = puff.run(main)
    assert h2 == DATA and https == DATA
