"""ASGI JSON: {"message": "Hello, World!"} serialized per request with the stdlib."""

import json

from ._lifespan import lifespan


async def app(scope, receive, send):
    if scope["type"] != "http":
        return await lifespan(receive, send)
    body = json.dumps({"message": "Hello, World!"}).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
