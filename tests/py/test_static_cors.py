"""Static files and CORS, black-box: a real HttpServer with "static" mounts and "cors" options in
front of a WSGI (or ASGI) app, talked to by real clients (http.client and raw sockets on the
blocking pool, curl for HTTP/2)."""

import asyncio
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import time

import pytest

import puff
from puff import _native

SECRET = b"TOP-SECRET-BYTES-never-served"
ORIGIN = "https://app.example.com"


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
    return [f"app {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()]


@pytest.fixture
def site(tmp_path):
    """root/ (served) holds a.txt, index.html, style.css, sub/index.html, empty/, .env, symlinks;
    secret.txt and outside/ lie next to it and must never be served."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_bytes(b"0123456789abcdefghij")  # 20 bytes
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "style.css").write_text("body{}")
    (root / "sub" / "index.html").write_text("<h1>sub</h1>")
    (root / ".env").write_bytes(SECRET)
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    os.symlink(tmp_path / "secret.txt", root / "link_out")
    os.symlink(tmp_path / "outside", root / "dir_out")
    os.symlink(root / "a.txt", root / "link_in")
    return root


def serve(check, options, wsgi_app=app):
    """Runs `check(port)` on the blocking pool against `wsgi_app` served with `options`."""

    def main():
        srv = _native.HttpServer(wsgi_app, options)
        try:
            _, port = srv.listen_tcp("127.0.0.1", 0)
            return puff.spawn_blocking(check, port).join()
        finally:
            srv.close()

    return puff.run(main)


def static_opts(root, **extra):
    return {"static": [{"prefix": "/static/", "directory": str(root), "max_age": 3600, **extra}]}


def get(port, path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def raw(port, request: bytes) -> bytes:
    """Sends bytes as they are (no client-side normalization); returns the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


# ---- static files -----------------------------------------------------------------------------------


def test_get_serves_bytes_with_validators(site):
    def check(port):
        status, h, body = get(port, "/static/a.txt")
        assert status == 200 and body == b"0123456789abcdefghij"
        assert h["content-type"] == "text/plain; charset=utf-8"
        assert h["content-length"] == "20"
        assert h["etag"].startswith('"') and h["etag"].endswith('"')
        assert h["last-modified"].endswith(" GMT")
        assert h["cache-control"] == "max-age=3600"
        assert h["accept-ranges"] == "bytes"
        assert h["x-content-type-options"] == "nosniff"
        assert get(port, "/static/style.css")[1]["content-type"] == "text/css; charset=utf-8"
        assert get(port, "/static/link_in")[2] == b"0123456789abcdefghij"  # a symlink inside the root

    serve(check, static_opts(site))


def test_head_has_the_headers_and_no_body(site):
    def check(port):
        status, h, body = get(port, "/static/a.txt", "HEAD")
        assert status == 200 and body == b""
        assert h["content-length"] == "20" and "etag" in h
        # The connection stays usable: nothing was sent after the head.
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for method in ("HEAD", "GET"):
            c.request(method, "/static/a.txt")
            r = c.getresponse()
            assert r.read() == (b"" if method == "HEAD" else b"0123456789abcdefghij")
        c.close()

    serve(check, static_opts(site))


def test_not_modified_by_etag_and_by_date(site):
    def check(port):
        _, h, _ = get(port, "/static/a.txt")
        status, h304, body = get(port, "/static/a.txt", headers={"If-None-Match": h["etag"]})
        assert (status, body) == (304, b"")
        assert h304["etag"] == h["etag"] and h304["cache-control"] == "max-age=3600"
        assert get(port, "/static/a.txt", headers={"If-None-Match": '"nope", ' + h["etag"]})[0] == 304
        assert get(port, "/static/a.txt", headers={"If-None-Match": '"nope"'})[0] == 200
        assert get(port, "/static/a.txt", headers={"If-Modified-Since": h["last-modified"]})[0] == 304
        assert get(port, "/static/a.txt", headers={"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"})[0] == 200
        # If-None-Match wins over If-Modified-Since.
        both = {"If-None-Match": '"nope"', "If-Modified-Since": h["last-modified"]}
        assert get(port, "/static/a.txt", headers=both)[0] == 200
        assert get(port, "/static/a.txt", headers={"If-Match": '"nope"'})[0] == 412

    serve(check, static_opts(site))


def test_ranges(site):
    def check(port):
        status, h, body = get(port, "/static/a.txt", headers={"Range": "bytes=2-5"})
        assert (status, body) == (206, b"2345")
        assert h["content-range"] == "bytes 2-5/20" and h["content-length"] == "4"
        assert get(port, "/static/a.txt", headers={"Range": "bytes=15-"})[2] == b"fghij"
        assert get(port, "/static/a.txt", headers={"Range": "bytes=-3"})[2] == b"hij"
        status, h, _ = get(port, "/static/a.txt", headers={"Range": "bytes=20-"})
        assert status == 416 and h["content-range"] == "bytes */20"
        # Several ranges, a bad unit or a stale If-Range: the whole file, 200.
        for hdrs in ({"Range": "bytes=0-1,4-5"}, {"Range": "lines=1-2"},
                     {"Range": "bytes=0-1", "If-Range": '"stale"'}):
            status, _, body = get(port, "/static/a.txt", headers=hdrs)
            assert (status, body) == (200, b"0123456789abcdefghij"), hdrs
        etag = get(port, "/static/a.txt")[1]["etag"]
        assert get(port, "/static/a.txt", headers={"Range": "bytes=0-1", "If-Range": etag})[2] == b"01"

    serve(check, static_opts(site))


def test_no_path_traversal(site):
    def check(port):
        answers = {}
        for target in ("/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E%2Fsecret.txt",
                       "/static/sub/../../secret.txt", "/static/..%5csecret.txt", "/static/link_out",
                       "/static/dir_out/secret.txt", "/static/.env", "/static/a.txt%00.png",
                       "/static/%00", "/static/%zz"):
            answers[target] = raw(port, f"GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        for target, resp in answers.items():
            assert SECRET not in resp, target
            assert resp.startswith((b"HTTP/1.1 404", b"HTTP/1.1 400")), (target, resp[:40])
        assert answers["/static/a.txt%00.png"].startswith(b"HTTP/1.1 400")
        assert answers["/static/link_out"].startswith(b"HTTP/1.1 404")

    serve(check, static_opts(site))


def test_directories_index_and_redirects(site):
    def check(port):
        assert get(port, "/static/")[2] == b"<h1>home</h1>"
        assert get(port, "/static/sub/")[2] == b"<h1>sub</h1>"
        status, h, _ = get(port, "/static/sub?x=1")
        assert status == 301 and h["location"] == "/static/sub/?x=1"
        status, h, _ = get(port, "/static")
        assert status == 301 and h["location"] == "/static/"
        assert get(port, "/static/empty/")[0] == 404  # no index, and never a listing
        assert get(port, "/static/a.txt/")[0] == 404
        assert get(port, "/static/missing.txt")[0] == 404
        status, h, _ = get(port, "/static/a.txt", "POST")
        assert status == 405 and h["allow"] == "GET, HEAD"

    serve(check, static_opts(site))


def test_no_index_means_404_for_directories(site):
    def check(port):
        assert get(port, "/static/")[0] == 404
        assert get(port, "/static/sub/")[0] == 404

    serve(check, static_opts(site, index=None))


def test_paths_outside_the_mounts_go_to_the_app(site):
    def check(port):
        assert get(port, "/")[2] == b"app GET /"
        assert get(port, "/staticx/a.txt")[2] == b"app GET /staticx/a.txt"
        assert get(port, "/api/thing", "POST")[2] == b"app POST /api/thing"
        assert get(port, "/assets/a.txt")[2] == b"0123456789abcdefghij"  # a second mount

    opts = static_opts(site)
    opts["static"].append({"prefix": "/assets/", "directory": site})  # a pathlib.Path works too
    serve(check, opts)


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_big_file_streams_intact_with_bounded_memory(site):
    data = os.urandom(20 * 1024 * 1024)
    (site / "big.bin").write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    del data

    def check(port):
        base = rss_kib()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", "/static/big.bin")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Content-Length") == str(20 * 1024 * 1024)
        h = hashlib.sha256()
        first = r.read(65536)
        h.update(first)
        time.sleep(0.5)  # a slow reader: the server must wait, not read the file into memory
        peak = rss_kib()
        while chunk := r.read(256 * 1024):
            h.update(chunk)
            peak = max(peak, rss_kib())
        c.close()
        return h.hexdigest(), peak - base

    digest, growth_kib = serve(check, static_opts(site))
    assert digest == want
    assert growth_kib < 8 * 1024, f"RSS grew by {growth_kib} KiB while serving a 20 MiB file"


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is installed by scripts/install-system-deps.sh")
def test_small_files_come_from_memory_and_changes_show_within_a_second(site):
    """Small files are kept in memory and checked again at most a second later: a change on
    disk (new bytes, new ETag), a deletion (404) and a replacement by a symlink out of the root
    (404) each show within that second and a bit."""

    def fetch_until(port, path, want_status, want_body=None, deadline=3.0):
        end = time.monotonic() + deadline
        while True:
            status, headers, body = get(port, path)
            if status == want_status and (want_body is None or body == want_body):
                return time.monotonic(), headers
            assert time.monotonic() < end, (status, body)
            time.sleep(0.05)

    # Files changed in the last two seconds are not kept (they may be being written): age them.
    old = time.time() - 60
    for f in ("a.txt", "style.css", "sub/index.html"):
        os.utime(site / f, (old, old))

    def check(port):
        results = {}
        status, headers, body = get(port, "/static/a.txt")
        assert status == 200 and body == b"0123456789abcdefghij"
        # From memory: the same validators, and ranges, 304 and HEAD as from the disk.
        assert get(port, "/static/a.txt")[1]["etag"] == headers["etag"]
        status, h, body = get(port, "/static/a.txt", headers={"Range": "bytes=5-9"})
        assert status == 206 and body == b"56789" and h["content-range"] == "bytes 5-9/20"
        assert get(port, "/static/a.txt", headers={"If-None-Match": headers["etag"]})[0] == 304
        status, h, body = get(port, "/static/a.txt", method="HEAD")
        assert status == 200 and body == b"" and h["content-length"] == "20"

        changed = time.monotonic()
        (site / "a.txt").write_bytes(b"new content, longer than before")
        seen, h = fetch_until(port, "/static/a.txt", 200, b"new content, longer than before")
        results["change"] = seen - changed
        assert h["etag"] != headers["etag"] and h["content-length"] == "31"

        cached_at = time.monotonic()
        get(port, "/static/style.css")
        removed = time.monotonic()
        (site / "style.css").unlink()
        status, _, body = get(port, "/static/style.css")
        if time.monotonic() - cached_at < 0.5:  # well inside the second: answered from memory
            assert (status, body) == (200, b"body{}")
        seen, _ = fetch_until(port, "/static/style.css", 404)
        results["delete"] = seen - removed

        get(port, "/static/sub/")
        (site / "sub" / "index.html").unlink()
        os.symlink(site.parent / "secret.txt", site / "sub" / "index.html")
        replaced = time.monotonic()
        seen, _ = fetch_until(port, "/static/sub/", 404)
        results["symlink"] = seen - replaced
        return results

    results = serve(check, static_opts(site))
    assert all(t < 2.0 for t in results.values()), results


def test_gzip_of_static_files_from_disk_and_from_memory(site):
    """With compression on, a text file comes gzipped whether it was just read (the pool) or
    answered from memory; a large one is compressed off the I/O loop, small ones on it."""
    import gzip

    big = b"".join(b"line %06d of a stylesheet { color: red; }\n" % i for i in range(2500))  # ~110 KB
    (site / "big.css").write_bytes(big)
    old = time.time() - 60
    for f in ("big.css", "style.css"):
        os.utime(site / f, (old, old))

    def check(port):
        out = []
        for path in ("/static/big.css", "/static/style.css"):
            for _ in range(3):  # the first read from disk, then from memory
                status, headers, body = get(port, path, headers={"Accept-Encoding": "gzip"})
                out.append((path, status, headers.get("content-encoding"), gzip.decompress(body)))
            status, headers, body = get(port, path, headers={"Range": "bytes=0-4"})  # not gzipped
            out.append((path, status, headers.get("content-encoding"), body))
        # Not gzipped: a large body from memory goes out uncopied, whole or from an offset.
        plain = [get(port, "/static/big.css")[2] for _ in range(2)]
        part = get(port, "/static/big.css", headers={"Range": "bytes=1000-60999"})
        return out, plain, part

    got, plain, part = serve(check, {**static_opts(site), "compression": {"min_size": 1}})
    assert plain == [big, big]
    assert part[0] == 206 and part[2] == big[1000:61000] and part[1]["content-range"] == f"bytes 1000-60999/{len(big)}"
    big_answers = [g for g in got if g[0] == "/static/big.css"]
    assert big_answers[:3] == [("/static/big.css", 200, "gzip", big)] * 3
    assert big_answers[3] == ("/static/big.css", 206, None, big[:5])
    small_answers = [g for g in got if g[0] == "/static/style.css"]
    assert small_answers[:3] == [("/static/style.css", 200, "gzip", b"body{}")] * 3
    assert small_answers[3] == ("/static/style.css", 206, None, b"body{")


def test_static_over_http2(site):
    data = os.urandom(3 * 1024 * 1024 + 5)
    (site / "mid.bin").write_bytes(data)

    def check(port):
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "20",
                              f"http://127.0.0.1:{port}/static/mid.bin"], capture_output=True, timeout=30)
        part = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-r", "2-5", "-D", "-",
                               f"http://127.0.0.1:{port}/static/a.txt"], capture_output=True, timeout=30)
        return out.stdout, part.stdout

    body, part = serve(check, static_opts(site))
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert part.startswith(b"HTTP/2 206") and part.endswith(b"\r\n\r\n2345")


# ---- CORS -------------------------------------------------------------------------------------------

CORS = {"allowed_origins": [ORIGIN, "http://localhost:7777/"], "allowed_methods": ["GET", "PUT"],
        "allowed_headers": ["Content-Type", "X-Token"], "max_age_secs": 600}


def preflight(port, origin, method="PUT", req_headers=None):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if req_headers:
        headers["Access-Control-Request-Headers"] = req_headers
    return get(port, "/api/x", "OPTIONS", headers)


def counting_app():
    calls = []

    def wsgi(environ, start_response):
        calls.append(environ["REQUEST_METHOD"])
        return app(environ, start_response)

    return wsgi, calls


def test_cors_preflight_allowed_and_denied():
    wsgi, calls = counting_app()

    def check(port):
        status, h, body = preflight(port, ORIGIN, "PUT", "content-type, x-token")
        assert (status, body) == (204, b"")
        assert h["access-control-allow-origin"] == ORIGIN
        assert h["access-control-allow-methods"] == "GET, PUT"
        assert h["access-control-allow-headers"] == "Content-Type, X-Token"
        assert h["access-control-max-age"] == "600"
        assert h["vary"] == "Origin"
        assert preflight(port, "http://localhost:7777")[0] == 204  # the trailing '/' was trimmed
        for args in (("https://evil.example",), (ORIGIN, "DELETE"), (ORIGIN, "PUT", "authorization")):
            status, h, body = preflight(port, *args)
            assert status == 403, args
            assert "access-control-allow-origin" not in h
            assert body.startswith(b"CORS: ")
        # OPTIONS without Access-Control-Request-Method is not a preflight: the app answers.
        assert get(port, "/api/x", "OPTIONS", {"Origin": ORIGIN})[2] == b"app OPTIONS /api/x"

    serve(check, {"cors": CORS}, wsgi)
    assert calls == ["OPTIONS"]  # preflights never reach the app


def test_cors_headers_on_app_and_static_responses(site):
    def check(port):
        status, h, body = get(port, "/api/x", headers={"Origin": ORIGIN})
        assert body == b"app GET /api/x" and h["x-app"] == "yes"
        assert h["access-control-allow-origin"] == ORIGIN and h["vary"] == "Origin"
        status, h, body = get(port, "/static/a.txt", headers={"Origin": ORIGIN})
        assert status == 200 and h["access-control-allow-origin"] == ORIGIN
        status, h, _ = get(port, "/static/a.txt", headers={"Origin": ORIGIN, "If-None-Match": h["etag"]})
        assert status == 304 and h["access-control-allow-origin"] == ORIGIN
        # A disallowed origin: served, without CORS headers (the browser blocks the read).
        status, h, body = get(port, "/api/x", headers={"Origin": "https://evil.example"})
        assert body == b"app GET /api/x" and "access-control-allow-origin" not in h and h["vary"] == "Origin"

    serve(check, {**static_opts(site), "cors": CORS})


def test_cors_credentials_mirror_the_origin():
    def check(port):
        _, h, _ = get(port, "/x", headers={"Origin": ORIGIN})
        plain = (h.get("access-control-allow-origin"), h.get("access-control-allow-credentials"), h.get("vary"))
        status, pf, _ = preflight(port, "https://other.example", "PATCH", "authorization")
        return plain, status, pf

    plain, status, pf = serve(check, {"cors": {"base_config": "VeryPermissive"}})
    assert plain == (ORIGIN, "true", "Origin")
    assert status == 204
    assert pf["access-control-allow-origin"] == "https://other.example"
    assert pf["access-control-allow-credentials"] == "true"
    assert pf["access-control-allow-methods"] == "PATCH"
    assert pf["access-control-allow-headers"] == "authorization"

    # Permissive answers "*"; asking for credentials turns "*" into the mirrored origin.
    star = serve(lambda port: get(port, "/x", headers={"Origin": ORIGIN})[1], {"cors": {"base_config": "Permissive"}})
    assert star["access-control-allow-origin"] == "*" and "vary" not in star
    cred = serve(lambda port: get(port, "/x", headers={"Origin": ORIGIN})[1],
                 {"cors": {"base_config": "Permissive", "allow_credentials": True}})
    assert cred["access-control-allow-origin"] == ORIGIN and cred["access-control-allow-credentials"] == "true"


def test_cors_on_an_asgi_app():
    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"asgi"})

    async def main():
        srv = _native.HttpServer(asgi, {"interface": "asgi", "cors": {"base_config": "VeryPermissive"}})
        try:
            _, port = srv.listen_tcp("127.0.0.1", 0)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET / HTTP/1.1\r\nHost: t\r\nOrigin: {ORIGIN}\r\nConnection: close\r\n\r\n".encode())
            data = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return data
        finally:
            srv.close()

    data = puff.run(main)
    assert data.endswith(b"asgi")
    assert f"Access-Control-Allow-Origin: {ORIGIN}\r\n".encode() in data
    assert b"Access-Control-Allow-Credentials: true\r\n" in data


# ---- option validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("options, error, text", [
    ({"static": [{"prefix": "/s/", "directory": "/no/such/dir"}]}, ValueError, "/no/such/dir"),
    ({"static": [{"prefix": "s/", "directory": "."}]}, ValueError, "must start with '/'"),
    ({"static": [{"directory": "."}]}, ValueError, "'prefix' is required"),
    ({"static": [{"prefix": "/s/", "directory": ".", "maxage": 1}]}, ValueError, "unknown key 'maxage'"),
    ({"static": [{"prefix": "/s/", "directory": ".", "max_age": -1}]}, ValueError, "max_age"),
    ({"static": {"prefix": "/s/"}}, TypeError, "list of dicts"),
    ({"cors": {"base_config": "Lax"}}, ValueError, "'Default', 'Permissive' or 'VeryPermissive'"),
    ({"cors": {"allowed_origins": ["localhost:3000"]}}, ValueError, "http(s)://host[:port]"),
    ({"cors": {"allowed_origins": "all"}}, ValueError, "\"*\" or a list"),
    ({"cors": {"allowed_methods": ["GET POST"]}}, ValueError, "not a valid token"),
    ({"cors": {"allow_credentials": "yes"}}, TypeError, "must be a bool"),
    ({"cors": {"max_age": 5}}, ValueError, "unknown key 'max_age'"),
])
def test_invalid_options_are_clear_errors(options, error, text):
    def main():
        with pytest.raises(error) as e:
            _native.HttpServer(app, options)
        return str(e.value)

    assert text in puff.run(main)


# ---- puff serve: [[static]] and [cors] from puff.toml -----------------------------------------------


def test_puff_serve_reads_static_and_cors_from_puff_toml(project):
    from http_helpers import start

    project.write("assets/app.js", "console.log(1)\n")
    project.write("assets/index.html", "<p>index</p>")
    toml = """
[[static]]
url = "/assets"
directory = "assets"
max_age = 60

[cors]
allowed_origins = ["https://app.example.com/"]
allow_credentials = true
expose_headers = ["X-Request-Id"]
"""
    srv = start(project, toml=toml)
    try:
        status, h, body = srv.get("/assets/app.js", headers={"Origin": ORIGIN})
        assert (status, body) == (200, b"console.log(1)\n")
        assert h["Content-Type"] == "text/javascript; charset=utf-8" and h["Cache-Control"] == "max-age=60"
        assert h["Access-Control-Allow-Origin"] == ORIGIN and h["Access-Control-Allow-Credentials"] == "true"
        assert h["Access-Control-Expose-Headers"] == "X-Request-Id"
        assert srv.get("/assets/")[2] == b"<p>index</p>"
        status, h, _ = srv.get("/", headers={"Origin": ORIGIN})  # the WSGI app, with the CORS headers
        assert "Content-Type" in h and h["Access-Control-Allow-Origin"] == ORIGIN and h["Vary"] == "Origin"
        assert srv.request("OPTIONS", "/x", headers={"Origin": "https://evil.example",
                                                     "Access-Control-Request-Method": "PUT"})[0] == 403
    finally:
        assert srv.stop() == 0, srv.err.text


def test_puff_serve_refuses_a_missing_static_directory(project):
    project.write("app.py", "def app(environ, start_response):\n    pass\n")
    project.write("puff.toml", 'wsgi = "app:app"\n\n[[static]]\nurl = "/s/"\ndirectory = "nowhere"\n')
    r = project.run("serve", "--bind", "127.0.0.1:0")
    assert r.returncode == 2
    assert "puff.toml:5: [[static]] '/s/': directory 'nowhere' does not exist" in r.stderr
