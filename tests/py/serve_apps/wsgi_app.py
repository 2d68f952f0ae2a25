"""The WSGI application served by the `puff serve` tests: one route per behaviour.

Routes marked (validated) run inside wsgiref.validate.validator, which asserts PEP 3333 on both
sides: environ types, start_response, the body iterable, and that close() is called."""

import hashlib
import json
import os
import sys
from urllib.parse import parse_qs
from wsgiref.validate import validator

import puff

#: Request ids (?id=...) whose response iterable had close() called.
CLOSED = set()


def _q(environ, name, default=None):
    return parse_qs(environ.get("QUERY_STRING", "")).get(name, [default])[0]


class Recorded:
    """A body iterable that records its close() under the request's ?id=."""

    def __init__(self, environ, chunks, fail_after=None):
        self.ident = _q(environ, "id")
        self.chunks = chunks
        self.fail_after = fail_after

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise RuntimeError("body failed on purpose")
            yield chunk

    def close(self):
        CLOSED.add(self.ident)


def text(start_response, body, status="200 OK", extra=()):
    start_response(status, [("Content-Type", "text/plain"), *extra])
    return [body]


def hello(environ, start_response):
    return text(start_response, b"hello")


def environ_view(environ, start_response):
    inp = environ["wsgi.input"]
    body = b""
    while True:
        piece = inp.read(7)  # small reads: the stream is read in pieces
        if not piece:
            break
        body += piece
    environ["wsgi.errors"].write("environ route wrote to wsgi.errors\n")
    environ["wsgi.errors"].flush()
    out = {}
    for key, value in environ.items():
        if isinstance(value, (str, bool, int, tuple)):
            out[key] = [type(value).__name__, value]
        else:
            out[key] = [type(value).__name__, None]
    out["body"] = ["bytes", body.decode("latin-1")]
    out["errors_is_stderr"] = ["bool", environ["wsgi.errors"] is sys.stderr]
    out["file_wrapper_callable"] = ["bool", callable(environ.get("wsgi.file_wrapper"))]
    return text(start_response, json.dumps(out).encode())


def file_view(environ, start_response):
    f = open(__file__, "rb")
    start_response("200 OK", [("Content-Type", "text/x-python")])
    return environ["wsgi.file_wrapper"](f, 1024)


def exc_info_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"), ("Retry-After", "1")],
                       sys.exc_info())
    return [b"recovered"]


def exc_info_late_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first part"
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"never sent"

    return body()


def write_view(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"part1,")
    write(b"part2,")
    return [b"end"]


def stream_view(environ, start_response):
    n = int(_q(environ, "n", "3"))
    headers = [("Content-Type", "text/plain")]
    if _q(environ, "cl"):
        headers.append(("Content-Length", str(sum(len(b"chunk%d\n" % i) for i in range(n)))))
    start_response("200 OK", headers)
    return (b"chunk%d\n" % i for i in range(n))


def big_view(environ, start_response):
    mb = int(_q(environ, "mb", "100"))
    if _q(environ, "varied", ""):  # distinct chunks of uneven sizes, to check every byte's place
        chunks = varied_chunks(mb)
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(sum(map(len, chunks))))])
        return Recorded(environ, iter(chunks))
    chunk = b"x" * 65536
    count = mb * 16
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(count * len(chunk)))])
    return Recorded(environ, (chunk for _ in range(count)))


def varied_chunks(mb):
    """About `mb` MiB in chunks of 1 byte to 100 KiB, each filled with its own byte value."""
    chunks, total, i = [], 0, 0
    while total < mb * 1024 * 1024:
        size = (i * 7919) % 100000 + 1
        chunks.append(bytes([i % 251]) * size)
        total += size
        i += 1
    return chunks


def large_parts():
    """Distinct chunks around the server's zero-copy threshold (16 KiB), big and small mixed."""
    sizes = (70000, 5, 16384, 16383, 200000, 1, 40000)
    return [bytes([65 + i]) * n for i, n in enumerate(sizes)]


def large_view(environ, start_response):
    """Large bodies in every framing: ?mode=chunked|length|short|write|single."""
    mode = _q(environ, "mode", "chunked")
    parts = large_parts()
    headers = [("Content-Type", "application/octet-stream")]
    if mode == "length":
        headers.append(("Content-Length", str(sum(map(len, parts)))))
    elif mode == "short":  # announces less than it sends: the server must stop at the length
        headers.append(("Content-Length", "100000"))
    elif mode == "single":
        return text(start_response, b"".join(parts))
    write = start_response("200 OK", headers)
    if mode == "write":
        for part in parts:
            write(part)
        return []
    return (part for part in parts)


def slow_stream_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def chunks():
        for i in range(500):
            puff.sleep_ms(20)
            yield b"tick %d\n" % i

    return Recorded(environ, chunks())


def closed_view(environ, start_response):
    return text(start_response, b"yes" if _q(environ, "id") in CLOSED else b"no")


def raise_view(environ, start_response):
    raise RuntimeError("the app failed on purpose")


def raise_iter_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Recorded(environ, [b"one", b"two"], fail_after=1)


def echo_lines_view(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        for line in environ["wsgi.input"]:
            yield b"got:" + line

    return body()


def upload_view(environ, start_response):
    inp = environ["wsgi.input"]
    size, h, reads = 0, hashlib.md5(), 0
    while True:
        piece = inp.read(65536)
        if not piece:
            break
        size += len(piece)
        reads += 1
        h.update(piece)
    return text(start_response, json.dumps({"size": size, "md5": h.hexdigest(), "reads": reads}).encode())


def sleep_view(environ, start_response):
    environ["wsgi.errors"].write("sleep started\n")
    environ["wsgi.errors"].flush()
    puff.sleep_ms(int(_q(environ, "ms", "1000")))
    return text(start_response, b"slept")


def latin1_view(environ, start_response):
    # PEP 3333: header values are str holding ISO-8859-1 code points, sent as those bytes.
    return text(start_response, b"latin-1", extra=[("X-Name", "caf\xe9")])


def pid_view(environ, start_response):
    return text(start_response, str(os.getpid()).encode())


ROUTES = {
    "/hello": hello,
    "/environ": validator(environ_view),
    "/file": validator(file_view),
    "/exc_info": validator(exc_info_view),
    "/exc_info_late": exc_info_late_view,
    "/write": validator(write_view),
    "/stream": validator(stream_view),
    "/big": big_view,
    "/large": large_view,
    "/slow_stream": slow_stream_view,
    "/closed": closed_view,
    "/raise": raise_view,
    "/raise_iter": raise_iter_view,
    "/echo_lines": echo_lines_view,
    "/upload": upload_view,
    "/sleep": sleep_view,
    "/pid": pid_view,
    "/latin1": latin1_view,
}


def app(environ, start_response):
    view = ROUTES.get(environ["PATH_INFO"])
    if view is None:
        return text(start_response, b"not found", "404 Not Found")
    return view(environ, start_response)
