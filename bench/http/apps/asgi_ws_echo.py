"""ASGI WebSocket echo: accepts, then sends every message back as it came (text or bytes)."""

from ._lifespan import lifespan


async def app(scope, receive, send):
    if scope["type"] == "http":  # answers plain GETs too, so readiness polling works
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif kind == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        else:  # websocket.disconnect
            return
