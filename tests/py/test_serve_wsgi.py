"""`puff serve` and PEP 3333, black-box: one server (serve_apps/wsgi_app.py) for the module,
real clients (http.client and raw sockets)."""

import hashlib
import http.client
import json
import socket
import time

import pytest

from conftest import Project
from http_helpers import read_chunked, read_response, read_until_close, rss_kb, start, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start(Project(tmp_path_factory.mktemp("serve_wsgi")))
    yield srv
    assert srv.stop() == 0, srv.err.text


def test_keep_alive_reuses_the_connection(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    conn.request("GET", "/hello")
    first = conn.sock
    assert conn.getresponse().read() == b"hello"
    for _ in range(3):
        conn.request("GET", "/hello")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"hello")
        assert conn.sock is first
    conn.close()


def _environ(server, **kw):
    status, _h, body = server.request("POST", "/environ?x=1&y=%20z", **kw)
    assert status == 200, body
    return {k: v for k, v in json.loads(body).items()}


def test_environ_is_pep3333(server):
    env = _environ(server, body=b"hello body", headers={"Content-Type": "text/plain", "X-Custom": "a"})
    assert env["SERVER_PORT"] == ["str", str(server.port)]
    assert env["SERVER_NAME"] == ["str", "127.0.0.1"]
    assert env["REMOTE_ADDR"] == ["str", "127.0.0.1"]
    assert env["REMOTE_PORT"][0] == "str" and int(env["REMOTE_PORT"][1]) > 0
    assert env["REQUEST_METHOD"] == ["str", "POST"]
    assert env["SCRIPT_NAME"] == ["str", ""] and env["PATH_INFO"] == ["str", "/environ"]
    assert env["QUERY_STRING"] == ["str", "x=1&y=%20z"]
    assert env["SERVER_PROTOCOL"] == ["str", "HTTP/1.1"]
    assert env["CONTENT_LENGTH"] == ["str", "10"] and env["CONTENT_TYPE"] == ["str", "text/plain"]
    assert env["HTTP_X_CUSTOM"] == ["str", "a"]
    assert "HTTP_CONTENT_LENGTH" not in env and "HTTP_CONTENT_TYPE" not in env
    assert env["wsgi.version"] == ["tuple", [1, 0]]
    assert env["wsgi.url_scheme"] == ["str", "http"]
    assert env["wsgi.input_terminated"] == ["bool", True]
    assert env["wsgi.multithread"] == ["bool", False]
    assert env["wsgi.multiprocess"] == ["bool", False]  # one process
    assert env["wsgi.run_once"] == ["bool", False]
    assert env["file_wrapper_callable"] == ["bool", True]
    assert env["body"] == ["bytes", "hello body"]
    server.err.wait_for("environ route wrote to wsgi.errors")


def test_chunked_request_body_reaches_wsgi_input(server):
    env = _environ(server, body=iter([b"abc", b"defgh", b"ij"]))  # http.client sends it chunked
    assert env["body"] == ["bytes", "abcdefghij"]
    assert "CONTENT_LENGTH" not in env  # wsgi.input_terminated: read to the end instead


def test_file_wrapper(server):
    status, headers, body = server.get("/file")
    assert status == 200 and body == (server.project.root / "app.py").read_bytes()


def test_start_response_with_exc_info_replaces_the_status(server):
    status, headers, body = server.get("/exc_info")
    assert (status, headers["Retry-After"], body) == (503, "1", b"recovered")


def test_exc_info_after_the_head_was_sent_aborts_the_connection(server):
    with server.connect() as s:
        s.sendall(b"GET /exc_info_late HTTP/1.1\r\nHost: x\r\n\r\n")
        data = read_until_close(s)
    # The head may or may not have reached the socket before the abort (output still queued is
    # dropped), but the response never ends cleanly.
    assert data == b"" or data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert not data.endswith(b"0\r\n\r\n") and b"never sent" not in data
    assert server.alive()


def test_write_callable(server):
    status, headers, body = server.get("/write")
    assert (status, body) == (200, b"part1,part2,end")


def test_generator_body_is_chunked_on_http11(server):
    with server.connect() as s:
        s.sendall(b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, rest = read_response(s)
    assert status == b"HTTP/1.1 200 OK" and headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers and body == b"chunk0\nchunk1\nchunk2\n"


def test_generator_body_on_http10_is_close_delimited(server):
    data = server.raw(b"GET /stream?n=3 HTTP/1.0\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 OK\r\n")
    assert b"transfer-encoding" not in head.lower() and b"content-length" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"chunk0\nchunk1\nchunk2\n"


def test_generator_with_content_length_is_not_chunked(server):
    with server.connect() as s:
        s.sendall(b"GET /stream?n=3&cl=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body, rest = read_response(s)
    assert headers["content-length"] == "21" and "transfer-encoding" not in headers
    assert body == b"chunk0\nchunk1\nchunk2\n"


def test_content_length_set_by_the_app_is_sent_once(server):
    with server.connect() as s:
        s.sendall(b"GET /stream?n=3&cl=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = read_until_close(s).partition(b"\r\n\r\n")[0]
    assert head.lower().count(b"content-length:") == 1, head


def test_response_header_values_are_latin1(server):
    with server.connect() as s:
        s.sendall(b"GET /latin1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head = read_until_close(s).partition(b"\r\n\r\n")[0]
    assert b"\r\nX-Name: caf\xe9\r\n" in head, head


def test_close_is_called_when_the_client_disconnects(server):
    with server.connect() as s:
        s.sendall(b"GET /slow_stream?id=gone1 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert wait_until(lambda: server.get("/closed?id=gone1")[2] == b"yes", timeout=5)


def test_close_is_called_when_the_body_raises(server):
    data = server.raw(b"GET /raise_iter?id=raise1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data == b"" or data.startswith(b"HTTP/1.1 200 OK")  # truncated, as above
    assert b"two" not in data and not data.endswith(b"0\r\n\r\n")
    assert server.get("/closed?id=raise1")[2] == b"yes"
    server.err.wait_for("body failed on purpose")
    assert server.alive()


def test_an_app_that_raises_gets_500_and_the_server_keeps_serving(server):
    for _ in range(2):
        status, _h, body = server.get("/raise")
        assert status == 500
    server.err.wait_for("the app failed on purpose")
    assert server.alive()


def test_head(server):
    with server.connect() as s:
        s.sendall(b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nHEAD /stream HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while buf.count(b"\r\n\r\n") < 3 or not buf.endswith(b"hello"):
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
    first, second, third = buf.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert b"Content-Length: 5\r\n" in first and first.endswith(b"\r\n\r\n")  # no body
    assert b"Transfer-Encoding" not in second and second.endswith(b"\r\n\r\n")
    assert third.endswith(b"\r\n\r\nhello")


def test_expect_100_continue(server):
    with server.connect() as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = b""
        while b"\r\n\r\n" not in interim:
            interim += s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        s.sendall(b"12345")
        status, headers, body, _rest = read_response(s, interim.partition(b"\r\n\r\n")[2])
    assert status == b"HTTP/1.1 200 OK" and json.loads(body)["size"] == 5


def test_pipelined_responses_come_in_order(server):
    with server.connect() as s:
        s.sendall(b"GET /sleep?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /stream?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        bodies, rest = [], b""
        for _ in range(4):
            _status, _headers, body, rest = read_response(s, rest)
            bodies.append(body)
    assert bodies[0] == b"slept" and bodies[1] == b"chunk0\nchunk1\n"
    assert json.loads(bodies[2])["size"] == 3 and bodies[3] == b"hello"


def test_request_body_is_streamed_and_read_incrementally(server):
    with server.connect() as s:
        s.sendall(b"POST /echo_lines HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        buf = b""
        for i in range(3):
            line = b"line %d\n" % i
            s.sendall(b"%x\r\n%s\r\n" % (len(line), line))
            want = b"got:" + line
            while want not in buf:  # the app answered this line before the next one was sent
                chunk = s.recv(65536)
                assert chunk, buf
                buf += chunk
        s.sendall(b"0\r\n\r\n")
        head, _, rest = buf.partition(b"\r\n\r\n")
        body, _ = read_chunked(s, rest)
    assert body == b"got:line 0\ngot:line 1\ngot:line 2\n"


def test_large_upload_is_read_in_pieces(server):
    data = bytes(range(256)) * (5 * 4096)  # 5 MiB
    status, _h, body = server.request("POST", "/upload", body=data)
    result = json.loads(body)
    assert status == 200 and result["size"] == len(data) and result["md5"] == hashlib.md5(data).hexdigest()
    assert result["reads"] > 1


def test_100mb_response_to_a_slow_reader_keeps_memory_bounded(server):
    total = 100 * 1024 * 1024
    server.get("/hello")
    before = rss_kb(server.pid)
    peak = before
    with server.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /big?mb=100&id=big1 HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # not reading: without backpressure the server would buffer it all now
        peak = max(peak, rss_kb(server.pid))
        buf = bytearray(256 * 1024)
        got, head = 0, b""
        while b"\r\n\r\n" not in head:
            n = s.recv_into(buf)
            head += bytes(buf[:n])
        head, _, first = head.partition(b"\r\n\r\n")
        assert b"Content-Length: %d" % total in head
        got = len(first)
        next_sample = 0
        while got < total:
            n = s.recv_into(buf)
            assert n, f"closed after {got} bytes"
            got += n
            if got >= next_sample:  # read slowly, and watch the server's memory
                peak = max(peak, rss_kb(server.pid))
                next_sample += 8 * 1024 * 1024
                time.sleep(0.01)
    assert got == total
    assert (peak - before) < 50 * 1024, f"RSS grew by {(peak - before) // 1024} MiB"
    assert wait_until(lambda: server.get("/closed?id=big1")[2] == b"yes", timeout=5)


def test_large_body_arrives_intact_to_a_reader_that_waits(server):
    """The socket takes part of a write (the client is not reading yet and its window is
    full): the rest goes out later from the right byte, across the pieces written together."""
    import serve_apps.wsgi_app as wsgi_app
    expected = b"".join(wsgi_app.varied_chunks(8))
    with server.connect() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        s.sendall(b"GET /big?mb=8&varied=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # the server's writes fill both socket buffers and stop part-way
        data = bytearray()
        while chunk := s.recv(1 << 20):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % len(expected) in head
    assert len(body) == len(expected) and body == expected


@pytest.mark.parametrize("mode", ["chunked", "length", "write", "single", "short"])
def test_large_bodies_arrive_intact_in_every_framing(server, mode):
    # Large bytes chunks are lent to the socket without a copy; small ones are copied. Mixed in
    # one response, in order, with chunked framing, a Content-Length, write() and one-item lists.
    import serve_apps.wsgi_app as wsgi_app
    expected = b"".join(wsgi_app.large_parts())
    for method in ("GET", "HEAD"):
        conn = http.client.HTTPConnection(server.host, server.port, timeout=20)
        conn.request(method, f"/large?mode={mode}")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200
        if method == "HEAD":
            assert body == b""
        elif mode == "short":
            assert body == expected[:100000] and resp.getheader("Content-Length") == "100000"
        else:
            assert hashlib.sha256(body).hexdigest() == hashlib.sha256(expected).hexdigest()
            assert len(body) == len(expected)
        conn.close()
    # The connection that got a truncated body was closed; the server still answers.
    assert server.get("/hello")[2] == b"hello"
