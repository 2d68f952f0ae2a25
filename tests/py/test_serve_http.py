"""`puff serve` at the HTTP/1.1 level, with raw sockets: malformed requests and request
smuggling shapes are refused with the right status and a closed connection, limits give their
HTTP errors, and the server keeps answering fresh connections afterwards."""

import socket
import time

import pytest

from conftest import Project
from http_helpers import read_response, start

LIMITS = """
[server]
max_body = 65536
header_timeout_ms = 300
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start(Project(tmp_path_factory.mktemp("serve_http")), toml=LIMITS)
    yield srv
    assert srv.stop() == 0, srv.err.text


def refused_with(server, request: bytes, *statuses: int) -> bytes:
    """Sends ``request``; asserts the answer has one of ``statuses`` and the connection is then
    closed, and that a fresh connection is still served. Returns the whole answer."""
    data = server.raw(request)
    assert any(data.startswith(b"HTTP/1.1 %d " % s) for s in statuses), data[:200]
    assert b"connection: close" in data.lower()
    assert server.alive()
    return data


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"0\r\n\r\n", id="cl-and-te"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                 b"0\r\n\r\n", id="te-and-cl"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
                 id="two-different-cl"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 5\r\n\r\nabcde", id="cl-list"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", id="negative-cl"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nabcde", id="plus-cl"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n", id="obs-fold"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", id="space-before-colon"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: x\r\nX Bad: y\r\n\r\n", id="space-in-name"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", id="nul-in-value"),
    pytest.param(b"GET /hello HTTP/1.1\r\n\r\n", id="http11-without-host"),
    pytest.param(b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", id="two-hosts"),
    pytest.param(b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", id="te-in-http10"),
    pytest.param(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
                 id="chunked-not-last"),
    pytest.param(b"GET /hello HTTP/1.x\r\nHost: x\r\n\r\n", id="bad-version"),
    pytest.param(b"GET /hello FOO/1.1\r\nHost: x\r\n\r\n", id="bad-protocol"),
    pytest.param(b"GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", id="double-space"),
    pytest.param(b"GET /hel lo HTTP/1.1\r\nHost: x\r\n\r\n", id="space-in-target"),
])
def test_malformed_request_is_400(server, request_bytes):
    refused_with(server, request_bytes, 400)


def test_unknown_transfer_coding_is_501(server):
    refused_with(server, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                 501)


def test_http2_version_is_505(server):
    refused_with(server, b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505)


def test_request_line_too_long_is_414(server):
    refused_with(server, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)


def test_header_too_big_is_431(server):
    refused_with(server, b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431)


def test_too_many_headers_is_431(server):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
    refused_with(server, b"GET /hello HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", 431)


def test_content_length_over_max_body_is_413(server):
    refused_with(server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n", 413)


def test_body_at_max_body_is_accepted(server):
    status, _h, body = server.request("POST", "/upload", body=b"x" * 65536)
    assert status == 200 and b'"size": 65536' in body


def test_chunked_body_over_max_body_is_413(server):
    chunk = b"x" * 32768
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(3)) + b"0\r\n\r\n"
    refused_with(server, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body, 413)


def test_bad_chunk_size_is_400(server):
    refused_with(server, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                 400)


def test_bad_chunk_size_closes_the_connection(server):
    # Whatever the status, the bytes after a broken chunked body are never read as a request.
    data = server.raw(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"3x\r\nabc\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.count(b"HTTP/1.1 ") == 1 and b"hello" not in data.split(b"\r\n\r\n", 1)[1]
    assert server.alive()


def test_smuggled_request_after_content_length_is_a_separate_request(server):
    # CL.TE shape without TE: the body is exactly Content-Length bytes; what follows is the next
    # request on the connection, answered in order.
    with server.connect() as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
                  b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        _s1, _h1, body1, rest = read_response(s)
        _s2, _h2, body2, _ = read_response(s, rest)
    assert b'"size": 5' in body1 and body2 == b"hello"


def test_half_closed_client_still_gets_its_response(server):
    with server.connect() as s:
        s.sendall(b"GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.shutdown(socket.SHUT_WR)  # like `nc -N`, some health checkers and HTTP/1.0 clients
        status, _headers, body, _ = read_response(s)
    assert (status, body) == (b"HTTP/1.1 200 OK", b"slept")


def test_slow_request_head_is_408(server):
    with server.connect() as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # ...and never the blank line
        start = time.monotonic()
        data = s.recv(65536)
        elapsed = time.monotonic() - start
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert 0.1 < elapsed < 3, elapsed
    assert server.alive()


def test_idle_connection_without_bytes_is_closed_quietly(server):
    with server.connect() as s:
        s.settimeout(5)
        assert s.recv(65536) == b""  # closed after header_timeout_ms, no 408 for a silent client


def test_max_connections(project):
    srv = start(project, toml="[server]\nmax_connections = 3\n")
    try:
        held = []
        for _ in range(3):
            s = srv.connect()
            s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[2] == b"hello"
            held.append(s)
        extra = srv.connect()
        extra.settimeout(5)
        try:
            extra.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(65536) == b""  # accepted and closed at once
        except (ConnectionResetError, BrokenPipeError):
            pass
        extra.close()
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the count drops once the server has seen the close
            try:
                if srv.alive():
                    break
            except (ConnectionError, socket.timeout):
                pass
            assert time.monotonic() < deadline, "a freed connection slot was not reused"
            time.sleep(0.05)
        for s in held:
            s.close()
    finally:
        assert srv.stop() == 0
