"""ASGI 3 http and lifespan on Puff's loop: a real server on a loopback port, a real socket client
(asyncio streams on the same loop), in process."""

import asyncio
import copy
import types

import pytest

import puff
from puff import _native
from puff.asgi import Lifespan, LifespanFailure


async def request(port, raw: bytes, read_until_close=False, timeout=5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    try:
        if read_until_close:
            return await asyncio.wait_for(reader.read(), timeout)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        text = head.decode("latin-1").lower()
        if text.split(" ", 2)[1] in ("204", "304"):
            return head  # no body, and the connection stays open (keep-alive)
        if "content-length:" in text:
            n = int(text.split("content-length:")[1].split("\r\n")[0])
            return head + await asyncio.wait_for(reader.readexactly(n), timeout)
        if "transfer-encoding: chunked" in text:
            body = b""
            while True:
                size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout)
                size = int(size_line.strip(), 16)
                chunk = await asyncio.wait_for(reader.readexactly(size + 2), timeout)
                body += size_line + chunk
                if size == 0:
                    return head + body
        return head + await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def serve(app, check, state=None):
    """Runs `check(port)` (a coroutine function) against `app` served by Puff."""

    async def main():
        opts = {"interface": "asgi"}
        if state is not None:
            opts["state"] = state
        srv = _native.HttpServer(app, opts)
        try:
            _, port = srv.listen_tcp("127.0.0.1", 0)
            return await check(port)
        finally:
            srv.close()

    return puff.run(main)


def body_of(resp: bytes) -> bytes:
    return resp.split(b"\r\n\r\n", 1)[1]


async def echo_app(scope, receive, send):
    body = b""
    more = True
    messages = 0
    while more:
        m = await receive()
        assert m["type"] == "http.request"
        body += m["body"]
        more = m["more_body"]
        messages += 1
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-messages", str(messages).encode())]})
    await send({"type": "http.response.body", "body": body})


def test_request_body_in_one_and_in_many_messages():
    async def check(port):
        one = await request(port, b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        chunked = b"POST /e HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(chunked + b"3\r\nabc\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the app sees the first piece before the rest arrives
        writer.write(b"4\r\ndefg\r\n0\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        rest = await reader.readexactly(7)
        writer.close()
        return one, head, rest

    one, head, rest = serve(echo_app, check)
    assert one.startswith(b"HTTP/1.1 200 OK") and body_of(one) == b"hello"
    assert rest == b"abcdefg"
    assert b"x-messages: 2" in head.lower() or b"x-messages: 3" in head.lower()


def test_scope_fields_and_duplicate_headers():
    scopes = []

    async def app(scope, receive, send):
        scopes.append(dict(scope, extensions=copy.deepcopy(scope["extensions"])))
        scope["extensions"]["http.response.pathsend"]["written-by-the-app"] = True  # must not leak
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    async def check(port):
        first = await request(
            port,
            b"GET /a%20b/c?x=1&y=%2F HTTP/1.1\r\nHost: t\r\nX-Dup: 1\r\nx-dup: 2\r\nUser-Agent: UA\r\n\r\n",
        )
        second = await request(port, b"PURGE /%E2%82%AC HTTP/1.0\r\n\r\n", read_until_close=True)
        return first, second

    first, second = serve(app, check)
    assert first.startswith(b"HTTP/1.1 204") and second.startswith(b"HTTP/1.0 204")
    seen, other = scopes
    assert set(seen) == {"type", "asgi", "http_version", "method", "scheme", "path", "raw_path", "query_string",
                         "root_path", "server", "client", "headers", "extensions"}
    assert seen["type"] == "http" and seen["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert seen["http_version"] == "1.1" and seen["method"] == "GET" and seen["scheme"] == "http"
    assert seen["path"] == "/a b/c" and seen["raw_path"] == b"/a%20b/c" and seen["query_string"] == b"x=1&y=%2F"
    assert seen["root_path"] == ""
    assert seen["server"][0] == "127.0.0.1" and seen["client"][0] == "127.0.0.1"
    assert isinstance(seen["server"], tuple) and isinstance(seen["client"][1], int)
    assert [h for h in seen["headers"] if h[0] == b"x-dup"] == [(b"x-dup", b"1"), (b"x-dup", b"2")]
    assert (b"user-agent", b"UA") in seen["headers"]
    assert all(type(n) is bytes and type(v) is bytes and n == n.lower() for n, v in seen["headers"])
    # A method outside the common ones, HTTP/1.0, a percent-encoded UTF-8 path, no query, no headers.
    assert other["method"] == "PURGE" and other["http_version"] == "1.0"
    assert other["path"] == "/\u20ac" and other["raw_path"] == b"/%E2%82%AC" and other["query_string"] == b""
    assert other["headers"] == []
    assert other["extensions"] == {"http.response.pathsend": {}}  # the first request's write stayed its own


def test_streamed_response_is_chunked_and_declared_length_is_kept():
    async def app(scope, receive, send):
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"one,", b"two,", b"three"):
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": [[b"content-length", b"6"]]})
            await send({"type": "http.response.body", "body": b"abc", "more_body": True})
            await send({"type": "http.response.body", "body": b"def"})

    async def check(port):
        return (
            await request(port, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n"),
            await request(port, b"GET /len HTTP/1.1\r\nHost: t\r\n\r\n"),
            await request(port, b"GET /stream HTTP/1.0\r\n\r\n", read_until_close=True),
        )

    stream, length, http10 = serve(app, check)
    assert b"transfer-encoding: chunked" in stream.lower()
    assert body_of(stream) == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"
    assert b"content-length: 6" in length.lower() and body_of(length) == b"abcdef"
    assert http10.startswith(b"HTTP/1.0 200") and body_of(http10) == b"one,two,three"


def test_failures_give_500_or_a_cut_connection(capfd):
    async def app(scope, receive, send):
        if scope["path"] == "/early":
            raise ValueError("early boom")
        if scope["path"] == "/silent":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("late boom")

    async def check(port):
        early = await request(port, b"GET /early HTTP/1.1\r\nHost: t\r\n\r\n")
        silent = await request(port, b"GET /silent HTTP/1.1\r\nHost: t\r\n\r\n")
        late = await request(port, b"GET /late HTTP/1.1\r\nHost: t\r\n\r\n", read_until_close=True)
        after = await request(port, b"GET /early HTTP/1.1\r\nHost: t\r\n\r\n")
        return early, silent, late, after

    early, silent, late, after = serve(app, check)
    assert early.startswith(b"HTTP/1.1 500") and silent.startswith(b"HTTP/1.1 500")
    assert late.startswith(b"HTTP/1.1 200") and not late.endswith(b"0\r\n\r\n")  # cut, not completed
    assert after.startswith(b"HTTP/1.1 500")  # still serving
    err = capfd.readouterr().err
    assert "early boom" in err and "late boom" in err and "without starting a response" in err


def test_each_request_is_a_real_task_and_cancellation_stays_cancellation(capfd):
    seen = {}
    started = asyncio.Event()

    async def app(scope, receive, send):
        task = asyncio.current_task()
        if scope["path"] == "/task":
            seen["task"] = isinstance(task, asyncio.Task) and "app" in repr(task)
            seen["coro"] = task.get_coro().__qualname__  # the application's, for reprs and stack dumps
            await asyncio.sleep(0)  # a real suspension through the loop
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        elif scope["path"] == "/slow":
            seen["slow"] = task
            started.set()
            try:
                await asyncio.sleep(30)
            finally:
                seen["cleanup"] = True
        elif scope["path"] == "/cancel-self":
            raise asyncio.CancelledError()

    async def check(port):
        ok = await request(port, b"GET /task HTTP/1.1\r\nHost: t\r\n\r\n")
        slow = asyncio.ensure_future(request(port, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"))
        await started.wait()
        seen["slow"].cancel()
        slow_resp = await slow
        await asyncio.sleep(0.05)
        self_cancel = await request(port, b"GET /cancel-self HTTP/1.1\r\nHost: t\r\n\r\n")
        return ok, slow_resp, self_cancel, seen["slow"].cancelled()

    ok, slow_resp, self_cancel, was_cancelled = serve(app, check)
    assert ok.startswith(b"HTTP/1.1 200") and body_of(ok) == b"ok"
    assert seen["task"] is True and seen["coro"].endswith("app")
    assert was_cancelled and seen["cleanup"]  # the task ended cancelled, its finally ran
    assert slow_resp.startswith(b"HTTP/1.1 500") and self_cancel.startswith(b"HTTP/1.1 500")
    err = capfd.readouterr().err
    assert "CancelledError" not in err  # cancellation is not an application failure


def test_disconnect_is_reported_to_a_waiting_receive():
    events = []

    async def app(scope, receive, send):
        m = await receive()  # the (empty) body
        events.append(m["type"])
        m = await receive()  # blocks until the client goes away
        events.append(m["type"])

    async def check(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        for _ in range(100):
            if len(events) == 2:
                break
            await asyncio.sleep(0.01)
        return list(events)

    assert serve(app, check) == ["http.request", "http.disconnect"]


def test_receive_and_send_are_coroutines_for_create_task_and_cancellation():
    """receive() and send() return coroutines, as other servers' async functions do: a task made
    of one (asyncio.create_task(receive())) works whether the event is there or still to come,
    and cancelling a receive that waits leaves the next receive() working."""
    events = []

    async def app(scope, receive, send):
        first = receive()
        events.append(("body", asyncio.iscoroutine(first), (await asyncio.create_task(first))["type"]))
        waiting = asyncio.create_task(receive())  # nothing more to come yet: it waits
        await asyncio.sleep(0.02)
        waiting.cancel()
        try:
            await waiting
        except asyncio.CancelledError:
            events.append(("cancelled", True))
        start = send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        events.append(("start", asyncio.iscoroutine(start)))
        await asyncio.create_task(start)
        await send({"type": "http.response.body", "body": b"ok"})
        events.append(("disconnect", (await asyncio.create_task(receive()))["type"]))

    async def check(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        writer.close()
        for _ in range(200):
            if len(events) == 4:
                break
            await asyncio.sleep(0.01)
        return head, list(events)

    head, got = serve(app, check)
    assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\nok")
    assert got == [("body", True, "http.request"), ("cancelled", True), ("start", True),
                   ("disconnect", "http.disconnect")]


def test_given_up_receives_lose_no_body_and_the_next_receive_gets_it():
    """A POST whose body comes later: a receive() given up by wait_for before it arrives, then a
    plain receive() gets it (the wake-up armed for the first serves the second). A receive()
    given up with its event already there (wait_for(..., 0)) hands that event to the next one."""
    log = []

    async def app(scope, receive, send):
        try:
            await asyncio.wait_for(receive(), 0.01)
        except asyncio.TimeoutError:
            log.append("first gave up")
        first = await asyncio.wait_for(receive(), 5)  # the body arrives 0.2 s after the head
        log.append(first["body"])
        try:
            log.append(await asyncio.wait_for(receive(), 0))  # the second part is there already
        except asyncio.TimeoutError:
            log.append("gave up with the event there")
        log.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def check(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"5\r\nworld\r\n0\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        writer.close()
        return data

    data = serve(app, check)
    assert data.startswith(b"HTTP/1.1 200")
    assert log[0] == "first gave up" and log[1] == b"hello"
    assert log[2] == "gave up with the event there" or log[2]["body"] == b"world", log
    if log[2] == "gave up with the event there":
        assert log[3] in (b"world", b""), log  # not lost: the next receive() had it


def test_a_receive_waiting_when_the_response_completes_gets_a_disconnect():
    """As with uvicorn: once the response is complete, a receive() that waits (a disconnect
    watcher) is answered http.disconnect at once, while the client keeps the connection."""
    got = []

    async def app(scope, receive, send):
        await receive()  # the (empty) body
        watcher = asyncio.create_task(receive())
        await asyncio.sleep(0.02)
        got.append(watcher.done())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        got.append((await asyncio.wait_for(watcher, 2))["type"])
        got.append((await receive())["type"])

    async def check(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.readuntil(b"ok"), 5)
        for _ in range(200):  # the connection stays open meanwhile
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        writer.close()
        return data

    assert serve(app, check).startswith(b"HTTP/1.1 200")
    assert got == [False, "http.disconnect", "http.disconnect"]


def test_send_rejects_bad_messages():
    errors = []

    async def app(scope, receive, send):
        for bad in (
            {"type": "http.response.body", "body": b"x"},
            {"type": "http.response.start", "status": 99},
            {"type": "http.response.start", "status": 200, "headers": [("str", "str")]},
            {"type": "websocket.send"},
            "not a dict",
        ):
            try:
                await send(bad)
            except (RuntimeError, ValueError, TypeError) as e:
                errors.append(type(e).__name__)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    async def check(port):
        return await request(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")

    assert body_of(serve(app, check)) == b"ok"
    assert errors == ["RuntimeError", "ValueError", "TypeError", "ValueError", "TypeError"]


def test_completed_awaitables_work_through_every_protocol():
    # receive() and send() return pre-completed awaitables when nothing has to wait: `await`
    # takes their value through am_send, a generator's `yield from` and a manual __next__()
    # through StopIteration, and the None of a send() can be awaited again.
    seen = []

    @types.coroutine
    def via_yield_from(awaitable):
        return (yield from awaitable.__await__())

    async def app(scope, receive, send):
        msg = receive().__await__()
        try:
            next(msg)
        except StopIteration as stop:
            seen.append(stop.value["type"])
        start = send({"type": "http.response.start", "status": 200})
        seen.append(await start)
        seen.append(await start)  # again: still None
        seen.append(await via_yield_from(send({"type": "http.response.body", "body": b"o", "more_body": True})))
        seen.append(await asyncio.ensure_future(send({"type": "http.response.body", "body": b"k"})))

    async def check(port):
        return await request(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")

    body = body_of(serve(app, check))
    assert b"\r\no\r\n" in body and b"\r\nk\r\n" in body and body.endswith(b"0\r\n\r\n"), body  # chunked
    assert seen == ["http.request", None, None, None, None]


def test_lifespan_state_reaches_requests_and_shutdown_runs():
    log = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                log.append(m["type"])
                if m["type"] == "lifespan.startup":
                    scope["state"]["db"] = "connected"
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": scope["state"]["db"].encode()})

    async def main():
        life = Lifespan(app)
        await life.startup()
        srv = _native.HttpServer(app, {"interface": "asgi", "state": life.state})
        _, port = srv.listen_tcp("127.0.0.1", 0)
        resp = await request(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        srv.close()
        await life.shutdown()
        return resp

    assert body_of(puff.run(main)) == b"connected"
    assert log == ["lifespan.startup", "lifespan.shutdown"]


def test_lifespan_failure_and_unsupported_apps():
    async def failing(scope, receive, send):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def http_only(scope, receive, send):
        assert scope["type"] == "http", "lifespan not supported"

    async def main():
        with pytest.raises(LifespanFailure, match="no database"):
            await Lifespan(failing).startup()
        plain = Lifespan(http_only)
        await plain.startup()  # served anyway
        await plain.shutdown()
        return plain.supported

    assert puff.run(main) is False


def test_asgi_without_the_loop_answers_500():
    def main():  # a greenlet main: no asyncio loop
        srv = _native.HttpServer(echo_app, {"interface": "asgi"})
        _, port = srv.listen_tcp("127.0.0.1", 0)
        import socket

        def fetch():
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            data = s.recv(1000)
            s.close()
            return data

        data = puff.spawn_blocking(fetch).join()
        srv.close()
        return data

    assert run_greenlet(main).startswith(b"HTTP/1.1 500")


def run_greenlet(fn):
    return puff.run(fn)
