"""HTTP/2: cleartext with prior knowledge, `Upgrade: h2c`, and over TLS with ALPN — talked to
with real clients (curl, nghttp, h2load from Debian's nghttp2-client)."""

import hashlib
import os
import re
import shutil
import subprocess
import threading

import pytest

import puff
from puff import _native

pytestmark = pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("h2load") and shutil.which("nghttp")),
    reason="curl and nghttp2-client are installed by scripts/install-system-deps.sh",
)

BIG = os.urandom(3 * 1024 * 1024 + 17)


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    body = environ["wsgi.input"].read()
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (BIG[i:i + 65536] for i in range(0, len(BIG), 65536))  # streamed, no length
    if path == "/slow":
        puff.sleep_ms(300)
    if path == "/headers":
        start_response("200 OK", [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("X-Custom", "yes")])
        return [b"h"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    info = f"{environ['SERVER_PROTOCOL']} {environ['wsgi.url_scheme']} {environ['REQUEST_METHOD']} {path} "
    return [info.encode() + hashlib.sha256(body).hexdigest().encode()]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", d / "key.pem", "-out", d / "cert.pem",
         "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return str(d / "cert.pem"), str(d / "key.pem")


def run_with_server(check, certs=None):
    """Serves wsgi_app on a cleartext (and a TLS) port; runs `check(plain, tls)` on a thread."""

    def main():
        srv = _native.HttpServer(wsgi_app, {})
        _, plain = srv.listen_tcp("127.0.0.1", 0)
        tls = srv.listen_tcp("127.0.0.1", 0, *certs)[1] if certs else None
        try:
            return puff.spawn_blocking(check, plain, tls).join()
        finally:
            srv.close()

    return puff.run(main)


def curl(*args, binary=False):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout if binary else r.stdout.decode()


def test_prior_knowledge_upgrade_and_alpn(certs):
    payload = b"x" * 100_000
    digest = hashlib.sha256(payload).hexdigest()

    def check(plain, tls):
        r = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", f"http://127.0.0.1:{plain}/pk", "--data-binary", "@-"],
            input=payload, capture_output=True, timeout=30,
        )
        return (
            r.stdout.decode(),
            curl("--http2", f"http://127.0.0.1:{plain}/up"),
            curl("--cacert", certs[0], f"https://127.0.0.1:{tls}/tls"),
            curl("--http1.1", f"http://127.0.0.1:{plain}/h1"),
        )

    pk, up, tls, h1 = run_with_server(check, certs)
    assert pk == f"HTTP/2 http POST /pk {digest}"
    assert up.startswith("HTTP/2 http GET /up ")
    assert tls.startswith("HTTP/2 https GET /tls ")
    assert h1.startswith("HTTP/1.1 http GET /h1 ")


def test_large_streamed_response_with_flow_control():
    def check(plain, tls):
        # nghttp's default window is 64 KiB: the server must respect flow control for 3 MB.
        r = subprocess.run(["nghttp", "-n", "-s", f"http://127.0.0.1:{plain}/big"], capture_output=True, timeout=60)
        body = curl("--http2-prior-knowledge", f"http://127.0.0.1:{plain}/big", binary=True)
        return r.returncode, r.stdout.decode(), body

    rc, stats, body = run_with_server(check)
    assert rc == 0, stats
    assert hashlib.sha256(body).digest() == hashlib.sha256(BIG).digest()


def test_repeated_headers_survive():
    def check(plain, tls):
        return curl("--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", f"http://127.0.0.1:{plain}/headers")

    head = run_with_server(check).lower()
    assert head.startswith("http/2 200")
    assert "set-cookie: a=1" in head and "set-cookie: b=2" in head and "x-custom: yes" in head
    assert "transfer-encoding" not in head and "connection:" not in head


def test_streams_of_one_connection_run_concurrently():
    def check(plain, tls):
        # 20 requests that each wait 300 ms, multiplexed on ONE connection.
        r = subprocess.run(
            ["h2load", "-n", "20", "-c", "1", "-m", "20", f"http://127.0.0.1:{plain}/slow"],
            capture_output=True, text=True, timeout=60,
        )
        return r.stdout

    out = run_with_server(check)
    assert "20 succeeded" in out, out
    m = re.search(r"finished in ([0-9.]+)(ms|s),", out)
    secs = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    assert secs < 3.0, out  # sequential would be 6 s; concurrent is ~0.3 s


def test_many_connections_and_streams_all_succeed(certs):
    def check(plain, tls):
        a = subprocess.run(["h2load", "-n", "3000", "-c", "8", "-m", "10", f"http://127.0.0.1:{plain}/"],
                           capture_output=True, text=True, timeout=120).stdout
        b = subprocess.run(["h2load", "-n", "1000", "-c", "4", "-m", "10", f"https://127.0.0.1:{tls}/"],
                           capture_output=True, text=True, timeout=120).stdout
        return a, b

    a, b = run_with_server(check, certs)
    assert "3000 succeeded, 0 failed" in a, a
    assert "1000 succeeded, 0 failed" in b, b
    assert "3000 2xx" in a and "1000 2xx" in b


def test_upload_is_flow_controlled_by_the_apps_reading():
    """A 12 MB HTTP/2 upload read slowly by the app: the windows are given back as the app reads
    (the upload would stall at the 1 MiB stream window otherwise), and the bytes arrive intact."""
    payload = os.urandom(12 * 1024 * 1024)

    def slow_reader(environ, start_response):
        h = hashlib.sha256()
        stream = environ["wsgi.input"]
        while True:
            block = stream.read(256 * 1024)
            if not block:
                break
            h.update(block)
            puff.sleep_ms(2)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [h.hexdigest().encode()]

    def main():
        srv = _native.HttpServer(slow_reader, {"max_body": 64 * 1024 * 1024})
        try:
            _, port = srv.listen_tcp("127.0.0.1", 0)

            def upload():
                r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--data-binary", "@-",
                                    f"http://127.0.0.1:{port}/up"], input=payload, capture_output=True, timeout=60)
                return r.stdout.decode()

            return puff.spawn_blocking(upload).join()
        finally:
            srv.close()

    assert puff.run(main) == hashlib.sha256(payload).hexdigest()
