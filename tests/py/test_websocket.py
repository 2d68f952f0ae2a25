"""WebSocket (RFC 6455) through Puff's HTTP server: the ASGI websocket scope and the WSGI
puff.websocket API, against the `websockets` client and hand-made frames."""

import asyncio
import base64
import os
import struct

import pytest
import websockets

import puff
from puff import _native


def serve(app, check, interface="asgi", **opts):
    async def main():
        srv = _native.HttpServer(app, {"interface": interface, **opts})
        try:
            _, port = srv.listen_tcp("127.0.0.1", 0)
            return await check(port)
        finally:
            srv.close()

    return puff.run(main)


async def echo(scope, receive, send):
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    proto = "chat" if "chat" in scope["subprotocols"] else None
    await send({"type": "websocket.accept", "subprotocol": proto, "headers": [(b"x-server", b"puff")]})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        if m.get("text") is not None:
            if m["text"] == "close-me":
                await send({"type": "websocket.close", "code": 4001, "reason": "as asked"})
                return
            if m["text"] == "raise":
                raise ValueError("handler failed")
            await send({"type": "websocket.send", "text": "echo:" + m["text"]})
        else:
            await send({"type": "websocket.send", "bytes": m["bytes"]})


def test_asgi_echo_text_bytes_subprotocol_and_headers():
    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat?room=1", subprotocols=["chat"]) as c:
            await c.send("hello")
            text = await c.recv()
            big = os.urandom(1 << 20)
            await c.send(big)
            back = await c.recv()
            return c.subprotocol, c.response.headers.get("x-server"), text, back == big

    assert serve(echo, check) == ("chat", "puff", "echo:hello", True)


def test_app_close_code_reaches_the_client_and_errors_give_1011():
    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            await c.send("close-me")
            with pytest.raises(websockets.ConnectionClosed):
                await c.recv()
            first = (c.close_code, c.close_reason)
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            await c.send("raise")
            with pytest.raises(websockets.ConnectionClosed):
                await c.recv()
            second = c.close_code
        return first, second

    assert serve(echo, check) == ((4001, "as asked"), 1011)


def test_client_close_code_reaches_the_app():
    seen = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        seen.append(await receive())

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            await c.close(code=4000, reason="bye")
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        return seen

    assert serve(app, check) == [{"type": "websocket.disconnect", "code": 4000, "reason": "bye"}]


def test_asgi_events_misused_get_clear_errors_and_the_connection_goes_on():
    """receive() before accept, unknown or incomplete send() events: each raises a clear error
    in the app; the connection stays usable. A close event with code and reason None is 1000."""

    async def app(scope, receive, send):
        assert await receive() == {"type": "websocket.connect"}
        errors = []
        try:
            await receive()
        except RuntimeError as e:
            errors.append(str(e))
        await send({"type": "websocket.accept", "subprotocol": None, "headers": None})
        for bad in ({"type": "websocket.nope"}, {"type": "websocket.send"}, {"type": "websocket.send", "text": None},
                    "not a dict", {"type": "websocket.close", "code": 70000}):
            try:
                await send(bad)
            except (ValueError, TypeError) as e:
                errors.append(f"{type(e).__name__}: {e}")
        for e in errors:
            await send({"type": "websocket.send", "text": e})
        assert await receive() == {"type": "websocket.receive", "bytes": b"\x00bin"}
        await send({"type": "websocket.close", "code": None, "reason": None})

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            got = [await c.recv() for _ in range(6)]
            await c.send(b"\x00bin")
            await c.wait_closed()
            return got, c.close_code

    got, code = serve(app, check)
    assert got == [
        "ASGI websocket: receive() before websocket.accept or websocket.close",
        "ValueError: unexpected ASGI message 'websocket.nope' for a websocket connection",
        "ValueError: ASGI websocket.send needs 'bytes' or 'text'",
        "ValueError: ASGI websocket.send needs 'bytes' or 'text'",
        "ValueError: unexpected ASGI message None for a websocket connection",
        "ValueError: WebSocket.close(): invalid close code 70000",
    ]
    assert code == 1000


def test_asgi_receive_works_as_a_task_and_after_a_cancelled_one():
    """A task made of receive() (asyncio.create_task) gets the next message; a waiting receive
    that is cancelled takes no message with it."""
    got = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        waiting = asyncio.create_task(receive())
        await asyncio.sleep(0.05)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            got.append("cancelled")
        await send({"type": "websocket.send", "text": "ready"})
        task = asyncio.create_task(receive())
        got.append((await task)["text"])
        got.append((await receive())["text"])
        await send({"type": "websocket.close"})

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            assert await c.recv() == "ready"
            await c.send("one")
            await c.send("two")
            await c.wait_closed()
        return got

    assert serve(app, check) == ["cancelled", "one", "two"]


def test_receives_given_up_by_wait_for_do_not_pile_up():
    """The heartbeat pattern: asyncio.wait_for(receive(), timeout) timing out again and again.
    Each given-up receive ends its operation; the next message still arrives."""
    got = {}

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        before = _native.stats()["pending"]
        for _ in range(50):
            try:
                await asyncio.wait_for(receive(), 0.002)
            except asyncio.TimeoutError:
                pass
        await asyncio.sleep(0.01)
        got["pending_added"] = _native.stats()["pending"] - before
        await send({"type": "websocket.send", "text": "ready"})
        got["message"] = (await receive())["text"]
        await send({"type": "websocket.close"})

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            assert await c.recv() == "ready"
            await c.send("after the timeouts")
            await c.wait_closed()
        return got

    got = serve(app, check)
    assert got["message"] == "after the timeouts"
    assert got["pending_added"] <= 1, got  # 50 without the fix: one operation per timeout


def test_wait_for_receive_with_tiny_timeouts_loses_no_message():
    """asyncio.wait_for(receive(), 0.5 ms) while messages stream in: a timeout that lands just
    after a message arrived must not drop it (the next receive() gets it)."""
    got, timeouts = [], [0]
    n = 800

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            try:
                m = await asyncio.wait_for(receive(), 0.0005)
            except asyncio.TimeoutError:
                timeouts[0] += 1
                continue
            if m["type"] == "websocket.disconnect":
                return
            if m["text"] == "end":
                await send({"type": "websocket.send", "text": str(len(got))})
                continue
            got.append(int(m["text"]))

    async def check(port):
        import random
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            for i in range(n):
                await c.send(str(i))
                if i % 3 == 0:
                    await asyncio.sleep(random.random() * 0.001)
            await c.send("end")
            return await asyncio.wait_for(c.recv(), 10)

    assert serve(app, check) == str(n)
    assert got == list(range(n)), sorted(set(range(n)) - set(got))[:20]
    assert timeouts[0] > 0  # the race was exercised


def test_refused_handshake_is_403():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.close"})

    async def check(port):
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{port}/"):
                pass
        return info.value.response.status_code

    assert serve(app, check) == 403


def test_wsgi_apps_use_puff_websocket():
    def app(environ, start_response):
        ws = environ.get("puff.websocket")
        if ws is None:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"no websocket"]
        assert puff.is_greenlet()
        ws.accept()
        while (m := ws.receive()) is not None:
            puff.sleep_ms(1)  # Puff calls work in the handler
            ws.send(m if isinstance(m, bytes) else "wsgi:" + m)
        return []

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            await c.send("one")
            a = await c.recv()
            await c.send(b"\x00two")
            b = await c.recv()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        plain = await reader.read(1000)
        writer.close()
        return a, b, plain.endswith(b"no websocket")

    assert serve(app, check, interface="wsgi") == ("wsgi:one", b"\x00two", True)


# ---- hand-made frames: the protocol rules --------------------------------------------------------


def frame(opcode, payload=b"", fin=True, mask=True, rsv1=False):
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def raw_connect(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET / HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def read_frame(reader):
    b0, b1 = await asyncio.wait_for(reader.readexactly(2), 5)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


def close_code(payload):
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None


def test_fragmented_message_ping_interleaved_and_pong():
    async def check(port):
        reader, writer = await raw_connect(port)
        writer.write(frame(0x1, b"Hel", fin=False) + frame(0x9, b"ping!") + frame(0x0, b"lo", fin=True))
        await writer.drain()
        got = [await read_frame(reader), await read_frame(reader)]
        writer.close()
        return got

    got = serve(echo, check)
    assert (0xA, b"ping!") in got  # pong echoes the ping's payload
    assert (0x1, b"echo:Hello") in got


@pytest.mark.parametrize(
    "bad, code",
    [
        (frame(0x1, b"\xff\xfe"), 1007),  # invalid UTF-8 text
        (frame(0x1, b"x", mask=False), 1002),  # clients must mask
        (frame(0x3, b"x"), 1002),  # reserved opcode
        (frame(0x9, b"x" * 126), 1002),  # control frame too long
        (frame(0x0, b"x"), 1002),  # continuation with nothing open
        (frame(0x2, b"y" * 2048), 1009),  # over ws_max_message
    ],
)
def test_protocol_violations_close_with_the_right_code(bad, code):
    async def check(port):
        reader, writer = await raw_connect(port)
        writer.write(bad)
        await writer.drain()
        op, payload = await read_frame(reader)
        rest = await asyncio.wait_for(reader.read(), 5)  # the server then closes the TCP connection
        writer.close()
        return op, close_code(payload), rest

    op, got, rest = serve(echo, check, ws_max_message=1024)
    assert op == 0x8 and got == code and rest == b""


def test_close_handshake_is_echoed():
    async def check(port):
        reader, writer = await raw_connect(port)
        writer.write(frame(0x8, struct.pack("!H", 1000) + b"done"))
        await writer.drain()
        op, payload = await read_frame(reader)
        eof = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return op, close_code(payload), eof

    assert serve(echo, check) == (0x8, 1000, b"")


def test_many_messages_in_order():
    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            for i in range(300):
                await c.send(f"m{i}")
            return [await c.recv() for _ in range(300)]

    assert serve(echo, check) == [f"echo:m{i}" for i in range(300)]


# ---- permessage-deflate (RFC 7692) ------------------------------------------------------------------


def test_permessage_deflate_negotiated_and_round_trips():
    text = "compress me please " * 5000

    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:  # the client offers deflate
            ext = c.response.headers.get("Sec-WebSocket-Extensions", "")
            got = []
            for i in range(50):  # many messages: the client keeps its compression context
                await c.send(f"{i}:{text}")
                got.append(await c.recv())
            await c.send(os.urandom(100_000))  # incompressible: sent back uncompressed
            raw = await c.recv()
            return ext, got, len(raw)

    ext, got, n = serve(echo, check)
    assert ext.startswith("permessage-deflate") and "server_no_context_takeover" in ext
    assert got == [f"echo:{i}:{text}" for i in range(50)]
    assert n == 100_000


def test_permessage_deflate_can_be_turned_off():
    async def check(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/") as c:
            await c.send("x" * 1000)
            return c.response.headers.get("Sec-WebSocket-Extensions"), await c.recv()

    assert serve(echo, check, ws_permessage_deflate=False) == (None, "echo:" + "x" * 1000)


def test_compressed_message_over_the_limit_closes_1009():
    async def check(port):
        # 1 MB of zeros compresses to ~1 KB: the limit applies to the inflated size.
        async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as c:
            await c.send(b"\0" * 1_000_000)
            with pytest.raises(websockets.ConnectionClosed):
                await c.recv()
            return c.close_code

    assert serve(echo, check, ws_max_message=100_000) == 1009
