"""1 MiB streamed WSGI response: a generator of 16 chunks of 64 KiB, no Content-Length."""

CHUNK = b"x" * 65536
COUNT = 16
HEADERS = [("Content-Type", "application/octet-stream")]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return (CHUNK for _ in range(COUNT))
