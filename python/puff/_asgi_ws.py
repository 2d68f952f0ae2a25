"""The ASGI ``websocket`` scope on Puff's native WebSocket (puff._native.WebSocket).

The native object does the protocol (handshake, framing, ping/pong, the close handshake,
UTF-8 validation, size limits) and translates ASGI events (asgi_receive / asgi_send); this
adapter runs the app and closes the connection when the app fails or returns.
"""

from __future__ import annotations

import logging
import traceback

log = logging.getLogger("puff.asgi")


async def run(app, scope, ws) -> None:
    # receive() and send() are the native object's (ws.asgi_receive / ws.asgi_send): they hand
    # out and take the ASGI events directly, with no Python frame per message.
    scope["subprotocols"] = ws.subprotocols
    try:
        await app(scope, ws.asgi_receive, ws.asgi_send)
    except Exception:  # noqa: BLE001 - a failing handler must not take the server down
        log.error("ASGI websocket application failed:\n%s", traceback.format_exc())
        if ws.accepted:
            if not ws.asgi_app_closed:
                await ws.close(1011, "internal error")
        else:
            await ws.close()  # refuse the handshake (403)
        return
    if not ws.accepted:
        await ws.close()  # the app returned without answering: refuse (403)
    elif not ws.asgi_app_closed:
        await ws.close(1000, "")
