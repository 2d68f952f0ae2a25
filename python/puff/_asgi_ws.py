"""The ASGI ``websocket`` scope on Puff's native WebSocket (puff._native.WebSocket).

The native object does the protocol (handshake, framing, ping/pong, the close handshake,
UTF-8 validation, size limits); this adapter only translates ASGI messages.
"""

from __future__ import annotations

import logging
import traceback

log = logging.getLogger("puff.asgi")


async def run(app, scope, ws) -> None:
    scope["subprotocols"] = ws.subprotocols
    connect_sent = False
    app_closed = False

    async def receive() -> dict:
        nonlocal connect_sent
        if not connect_sent:
            connect_sent = True
            return {"type": "websocket.connect"}
        if not ws.accepted:
            raise RuntimeError("ASGI websocket: receive() before websocket.accept or websocket.close")
        message = await ws.receive()
        if message is None:
            return {"type": "websocket.disconnect", "code": ws.close_code, "reason": ws.close_reason}
        if isinstance(message, str):
            return {"type": "websocket.receive", "text": message}
        return {"type": "websocket.receive", "bytes": message}

    async def send(message: dict) -> None:
        nonlocal app_closed
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "websocket.send":
            data = message.get("bytes")
            if data is None:
                data = message.get("text")
            if data is None:
                raise ValueError("ASGI websocket.send needs 'bytes' or 'text'")
            await ws.send(data)
        elif kind == "websocket.accept":
            await ws.accept(message.get("subprotocol"), message.get("headers") or None)
        elif kind == "websocket.close":
            app_closed = True
            await ws.close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise ValueError(f"unexpected ASGI message {kind!r} for a websocket connection")

    try:
        await app(scope, receive, send)
    except Exception:  # noqa: BLE001 - a failing handler must not take the server down
        log.error("ASGI websocket application failed:\n%s", traceback.format_exc())
        if ws.accepted:
            if not app_closed:
                await ws.close(1011, "internal error")
        else:
            await ws.close()  # refuse the handshake (403)
        return
    if not ws.accepted:
        await ws.close()  # the app returned without answering: refuse (403)
    elif not app_closed:
        await ws.close(1000, "")
