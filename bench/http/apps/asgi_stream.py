"""1 MiB streamed ASGI response: 16 body messages of 64 KiB with more_body, no Content-Length."""

from ._lifespan import lifespan

CHUNK = b"x" * 65536
COUNT = 16
START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/octet-stream")]}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return await lifespan(receive, send)
    await send(START)
    for i in range(COUNT):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": i < COUNT - 1})
