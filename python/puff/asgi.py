"""ASGI lifespan: startup before the server accepts connections, shutdown after it stopped.

Like uvicorn's default ("auto"): an app that does not speak the lifespan protocol (it raises
or returns on the lifespan scope without answering) is served anyway, with a log line; an app
that answers ``lifespan.startup.failed`` stops the server from starting.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Optional

log = logging.getLogger("puff.asgi")


class LifespanFailure(RuntimeError):
    """The application reported ``lifespan.startup.failed`` / ``lifespan.shutdown.failed``."""


class Lifespan:
    """Runs one ASGI app's lifespan task on Puff's loop. ``state`` is the dict shared (shallowly
    copied) into every request scope's ``state``."""

    def __init__(self, app: Any, timeout: float = 30.0) -> None:
        self.app = app
        self.timeout = timeout
        self.state: dict = {}
        self.supported = True
        self._events: asyncio.Queue = asyncio.Queue()
        self._replies: asyncio.Queue = asyncio.Queue()
        self._task: Optional[asyncio.Task] = None

    async def _receive(self) -> dict:
        return await self._events.get()

    async def _send(self, message: dict) -> None:
        kind = message.get("type")
        if kind not in (
            "lifespan.startup.complete",
            "lifespan.startup.failed",
            "lifespan.shutdown.complete",
            "lifespan.shutdown.failed",
        ):
            raise RuntimeError(f"unexpected ASGI lifespan message type {kind!r}")
        await self._replies.put(message)

    async def _wait_reply(self, phase: str) -> None:
        reply = asyncio.ensure_future(self._replies.get())
        done, _ = await asyncio.wait({reply, self._task}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
        if reply in done:
            message = reply.result()
            if message["type"].endswith(".failed"):
                raise LifespanFailure(f"ASGI lifespan {phase} failed: {message.get('message', '')}")
            return
        reply.cancel()
        if self._task in done:
            exc = self._task.exception() if not self._task.cancelled() else None
            if phase == "startup":
                self.supported = False
                detail = f" ({type(exc).__name__}: {exc})" if exc else ""
                log.info("ASGI lifespan protocol not supported by the app%s; serving without it", detail)
                return
            if exc is not None:
                raise LifespanFailure(f"ASGI lifespan {phase} raised {type(exc).__name__}: {exc}") from exc
            return
        raise LifespanFailure(f"ASGI lifespan {phase} did not finish within {self.timeout:g} s")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self.app(scope, self._receive, self._send))
        await self._events.put({"type": "lifespan.startup"})
        await self._wait_reply("startup")

    async def shutdown(self) -> None:
        if self._task is None or not self.supported or self._task.done():
            return
        await self._events.put({"type": "lifespan.shutdown"})
        await self._wait_reply("shutdown")
