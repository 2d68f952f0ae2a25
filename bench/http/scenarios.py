"""The scenarios of the HTTP benchmark: which app, which interface, which load generator.

Every scenario is served by every contender that speaks its interface and protocol (see
contenders.py); the app modules live in apps/ and are the same for every server.
"""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    interface: str  # "wsgi" | "asgi"
    app: str  # module:attribute, imported from bench/http/
    load: str  # "wrk" (HTTP/1.1) | "h2load" (HTTP/2 cleartext) | "ws" (WebSocket echo)
    unit: str  # what the headline number counts: "req/s", "MB/s" or "msg/s"
    body_bytes: Optional[int] = None  # for MB/s: the body of one response
    path: str = "/"  # what the load generator asks for
    static: bool = False  # served by the server's own static-file route (static/ here)


MIB = 1 << 20

SCENARIOS = [
    Scenario("wsgi_hello", "bare WSGI hello", "wsgi", "apps.wsgi_hello:app", "wrk", "req/s"),
    Scenario("asgi_hello", "bare ASGI hello", "asgi", "apps.asgi_hello:app", "wrk", "req/s"),
    Scenario("asgi_json", "ASGI JSON", "asgi", "apps.asgi_json:app", "wrk", "req/s"),
    Scenario("flask_hello", "Flask hello", "wsgi", "apps.flask_hello:app", "wrk", "req/s"),
    Scenario("django_hello", "Django hello", "wsgi", "apps.django_hello:app", "wrk", "req/s"),
    Scenario("fastapi_json", "FastAPI JSON", "asgi", "apps.fastapi_json:app", "wrk", "req/s"),
    Scenario("wsgi_stream_1mb", "1 MiB streamed, WSGI (16 x 64 KiB)", "wsgi",
             "apps.wsgi_stream:app", "wrk", "MB/s", MIB),
    Scenario("asgi_stream_1mb", "1 MiB streamed, ASGI (16 x 64 KiB, more_body)", "asgi",
             "apps.asgi_stream:app", "wrk", "MB/s", MIB),
    Scenario("ws_echo", "WebSocket echo (ASGI), 32-byte messages", "asgi",
             "apps.asgi_ws_echo:app", "ws", "msg/s"),
    Scenario("h2_hello", "HTTP/2 bare ASGI hello, 10 streams per connection", "asgi",
             "apps.asgi_hello:app", "h2load", "req/s"),
    # Not one of the issue's scenarios: the servers' native static-file routes (static/hello.txt,
    # no Python). Puff's figure is also about the most this load generator gets from any server
    # on the machine, the ceiling the hello rows are measured against.
    Scenario("static_small", "13-byte static file (native route, no Python)", "asgi",
             "apps.asgi_hello:app", "wrk", "req/s", path="/static/hello.txt", static=True),
]

BY_NAME = {s.name: s for s in SCENARIOS}
