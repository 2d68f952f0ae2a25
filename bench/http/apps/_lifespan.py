"""ASGI lifespan for the bare apps: acknowledges startup and shutdown, nothing to set up.
(Returning without answering is valid ASGI, but socketify then never starts listening.)"""


async def lifespan(receive, send):
    while True:
        event = await receive()
        if event["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif event["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
