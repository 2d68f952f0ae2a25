"""Bare ASGI hello: the same response as wsgi_hello."""

from ._lifespan import lifespan

BODY = b"Hello, World!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
END = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return await lifespan(receive, send)
    await send(START)
    await send(END)
