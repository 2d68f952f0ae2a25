"""The core Python API under greenlets, asyncio and the blocking pool (in-process runtime)."""

import asyncio
import contextvars
import os
import threading
import time
import traceback

import greenlet
import pytest

import puff
from puff import _native


def run(fn, **opts):
    return puff.run(fn, options=puff.RuntimeOptions(**opts) if opts else None)


# ---- greenlets ---------------------------------------------------------------------------------


def test_sleep_ms_suspends_only_the_caller():
    events = []

    def sleeper(name, ms):
        puff.sleep_ms(ms)
        events.append(name)
        return name

    def main():
        t0 = time.monotonic()
        slow = puff.spawn(sleeper, "slow", 120)
        fast = puff.spawn(sleeper, "fast", 20)
        assert fast.join() == "fast"
        assert events == ["fast"]
        assert slow.join() == "slow"
        return time.monotonic() - t0

    elapsed = run(main)
    assert events == ["fast", "slow"]
    assert 0.11 <= elapsed < 1.0  # concurrent, not 140 ms sequential... and not instant


def test_spawn_result_and_handle_state():
    def main():
        h = puff.spawn(lambda a, b=0: a + b, 2, b=3)
        assert not h.finished
        assert h.join() == 5
        assert h.finished and h.result == 5 and h.exception is None
        return repr(h)

    assert "finished" in run(main)


def test_spawn_runs_in_a_copy_of_the_callers_context():
    var = contextvars.ContextVar("var", default="unset")

    def child():
        seen = var.get()
        var.set("child")
        return seen

    def main():
        var.set("parent")
        assert puff.spawn(child).join() == "parent"
        return var.get()

    assert run(main) == "parent"  # the child's set() did not leak back


def test_exception_in_greenlet_keeps_its_traceback():
    def inner_failing_function():
        puff.sleep_ms(1)
        raise ValueError("boom")

    def main():
        h = puff.spawn(inner_failing_function)
        with pytest.raises(ValueError, match="boom") as info:
            h.join()
        return "".join(traceback.format_exception(info.value))

    text = run(main)
    assert "inner_failing_function" in text
    assert 'raise ValueError("boom")' in text


def test_join_all_returns_results_in_order():
    def main():
        hs = [puff.spawn(lambda i=i: (puff.sleep_ms(30 - i * 10), i)[1]) for i in range(3)]
        return puff.join_all(hs)

    assert run(main) == [0, 1, 2]


def test_join_all_raises_the_first_failure_promptly():
    def fail_soon():
        puff.sleep_ms(10)
        raise KeyError("first")

    def main():
        slow = puff.spawn(puff.sleep_ms, 2000)
        t0 = time.monotonic()
        with pytest.raises(KeyError, match="first"):
            puff.join_all([slow, puff.spawn(fail_soon)])
        elapsed = time.monotonic() - t0
        slow.kill()
        return elapsed

    assert run(main) < 1.0


def test_join_iter_yields_in_completion_order():
    def main():
        hs = [puff.spawn(lambda ms=ms: (puff.sleep_ms(ms), ms)[1]) for ms in (60, 10, 35)]
        return list(puff.join_iter(hs))

    assert run(main) == [10, 35, 60]


def test_many_greenlets_interleave():
    def worker(i):
        for _ in range(5):
            puff.sleep_ms(1)
        return i

    def main():
        return puff.join_all([puff.spawn(worker, i) for i in range(2000)])

    assert run(main) == list(range(2000))


def test_yield_now_lets_others_run():
    order = []

    def other():
        order.append("other")

    def main():
        puff.spawn(other)
        order.append("before")
        _native.yield_now()
        order.append("after")

    run(main)
    assert order == ["before", "other", "after"]


def test_kill_raises_at_the_current_wait_and_runs_finally():
    cleaned = []

    def victim():
        try:
            puff.sleep_ms(10_000)
        finally:
            cleaned.append(True)

    def main():
        h = puff.spawn(victim)
        puff.sleep_ms(10)
        t0 = time.monotonic()
        h.kill(ValueError("stop"))
        with pytest.raises(ValueError, match="stop"):
            h.join()
        elapsed = time.monotonic() - t0
        puff.sleep_ms(1)  # the runtime still works
        return elapsed

    assert run(main) < 1.0
    assert cleaned == [True]


def test_main_exception_propagates_from_run():
    def main():
        puff.sleep_ms(1)
        raise LookupError("from main")

    with pytest.raises(LookupError, match="from main"):
        run(main)


def test_run_cannot_nest():
    def main():
        with pytest.raises(RuntimeError, match="already running"):
            puff.run(lambda: None)
        return "ok"

    assert run(main) == "ok"


def test_read_file_bytes(tmp_path):
    p = tmp_path / "data.bin"
    payload = os.urandom(300_000)
    p.write_bytes(payload)

    def main():
        assert puff.read_file_bytes(str(p)) == payload
        assert puff.read_file_bytes(p) == payload  # PathLike
        with pytest.raises(FileNotFoundError) as info:
            puff.read_file_bytes(str(tmp_path / "missing"))
        assert info.value.filename == str(tmp_path / "missing")
        with pytest.raises(IsADirectoryError):
            puff.read_file_bytes(str(tmp_path))
        with pytest.raises(ValueError):
            puff.read_file_bytes("a\0b")
        return True

    assert run(main)


def test_calls_outside_the_runtime_raise_clearly():
    with pytest.raises(RuntimeError, match="outside of greenlets or asyncio|not running"):
        puff.sleep_ms(1)
    with pytest.raises(RuntimeError):
        puff.spawn(lambda: None)
    assert not puff.is_greenlet() and not puff.is_asyncio()


def test_sleep_ms_rejects_negative():
    def main():
        with pytest.raises(ValueError):
            puff.sleep_ms(-1)
        return True

    assert run(main)


def test_modes_and_global_state():
    def main():
        assert puff.is_greenlet() and not puff.is_asyncio()
        assert puff.global_state is None
        return _native.stats()

    stats = run(main, io_threads=3)
    assert stats["io_threads"] == 3 and stats["pending"] == 0


def test_bad_runtime_setting_is_rejected_with_its_name():
    with pytest.raises(ValueError, match="blocking_threads: must be between 1 and 4096, got 0"):
        run(lambda: None, blocking_threads=0)
    assert run(lambda: "recovered") == "recovered"


# ---- asyncio -------------------------------------------------------------------------------------


def test_async_main_awaits_puff_calls(tmp_path):
    p = tmp_path / "f.txt"
    p.write_bytes(b"hello")

    async def main():
        assert puff.is_asyncio() and not puff.is_greenlet()
        t0 = time.monotonic()
        await asyncio.gather(puff.sleep_ms(50), puff.sleep_ms(50), asyncio.sleep(0.05))
        assert time.monotonic() - t0 < 0.5
        return await puff.read_file_bytes(str(p))

    assert run(main) == b"hello"


def test_greenlets_and_coroutines_side_by_side():
    log = []

    def greenlet_worker():
        for i in range(3):
            puff.sleep_ms(5)
            log.append(("g", i))
        return "greenlet done"

    async def main():
        h = puff.spawn(greenlet_worker)
        for i in range(3):
            await asyncio.sleep(0.004)
            log.append(("a", i))
        assert await h == "greenlet done"
        return await h.join()

    assert run(main) == "greenlet done"
    assert sorted(log) == [("a", 0), ("a", 1), ("a", 2), ("g", 0), ("g", 1), ("g", 2)]
    assert log[0][0] == "a" or log[1][0] == "a"  # interleaved, not one after the other


def test_async_join_all_and_failures():
    async def main():
        ok = await puff.join_all([puff.spawn(lambda: 1), puff.spawn(lambda: 2)])
        with pytest.raises(ZeroDivisionError):
            await puff.spawn(lambda: 1 / 0)
        return ok

    assert run(main) == [1, 2]


def test_cancelling_an_awaited_puff_call_is_safe():
    async def main():
        task = asyncio.ensure_future(puff.sleep_ms(5_000))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await puff.sleep_ms(1)
        t0 = time.monotonic()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(puff.sleep_ms(5_000), 0.05)
        return time.monotonic() - t0

    assert run(main) < 1.0


def test_asyncio_option_runs_a_greenlet_main_beside_the_loop():
    from asgiref.sync import async_to_sync

    async def coro(x):
        await asyncio.sleep(0.001)
        return x * 2, puff.is_asyncio()

    def main():
        assert puff.is_greenlet()
        return async_to_sync(coro)(21)

    assert run(main, asyncio=True) == (42, True)


def test_sync_to_async_runs_in_a_greenlet():
    from asgiref.sync import sync_to_async

    def blocking_style(x):
        assert puff.is_greenlet()
        puff.sleep_ms(5)  # a Puff call works: we are in a greenlet, not a thread pool
        return x + 1, threading.get_ident()

    async def main():
        value, ident = await sync_to_async(blocking_style)(1)
        assert ident == threading.get_ident()
        return value

    assert run(main) == 2


def test_async_to_sync_without_loop_says_how_to_enable_it():
    from asgiref.sync import async_to_sync

    async def coro():
        return 1

    def main():
        with pytest.raises(RuntimeError, match="asyncio = true"):
            async_to_sync(coro)()
        return True

    assert run(main)


# ---- blocking pool ----------------------------------------------------------------------------------


def test_spawn_blocking_runs_off_thread_while_greenlets_continue():
    ticks = []

    def ticker():
        for _ in range(10):
            puff.sleep_ms(10)
            ticks.append(time.monotonic())

    def slow_io():
        time.sleep(0.2)
        return threading.get_ident()

    def main():
        t = puff.spawn(ticker)
        ident = puff.spawn_blocking(slow_io).join()
        t.join()
        return ident

    assert run(main) != threading.get_ident()
    assert len(ticks) == 10  # the ticker ran during the 200 ms blocking call


def test_blocking_pool_is_bounded():
    def job():
        time.sleep(0.15)
        return threading.get_ident()

    def main():
        t0 = time.monotonic()
        idents = puff.join_all([puff.spawn_blocking(job) for _ in range(4)])
        return time.monotonic() - t0, set(idents), _native.blocking_stats()

    elapsed, idents, stats = run(main, blocking_threads=2)
    assert len(idents) <= 2
    assert elapsed >= 0.29  # 4 jobs on 2 threads take two rounds
    assert stats["threads"] <= 2


def test_blocking_decorator_and_puff_calls_inside_the_pool():
    @puff.blocking
    def work(x):
        puff.sleep_ms(5)  # blocks only this pool thread
        data = puff.read_file_bytes(__file__)
        return x * 2, threading.get_ident(), len(data) > 0

    def main():
        return work(21)

    value, ident, read_ok = run(main)
    assert value == 42 and read_ok and ident != threading.get_ident()

    @puff.blocking
    def plain(x):
        return x, threading.get_ident()

    assert plain(1) == (1, threading.get_ident())  # outside the runtime: called directly


def test_spawn_blocking_exception_propagates():
    def bad():
        raise OSError("disk on fire")

    def main():
        with pytest.raises(OSError, match="disk on fire"):
            puff.spawn_blocking(bad).join()
        return True

    assert run(main)


def test_spawn_blocking_awaited_from_asyncio():
    async def main():
        return await puff.spawn_blocking(lambda: threading.get_ident())

    assert run(main) != threading.get_ident()


# ---- wrap_async: upstream's ret_func protocol ------------------------------------------------------------


def test_wrap_async_value_from_another_thread():
    def start(ret):
        threading.Thread(target=lambda: (time.sleep(0.02), ret(7, None))).start()

    def main():
        return puff.wrap_async(start), puff.wrap_async(lambda ret: ret(8, None), wrap_return=str)

    assert run(main) == (7, "8")


def test_wrap_async_exception_and_single_use():
    def main():
        with pytest.raises(KeyError):
            puff.wrap_async(lambda ret: ret(None, KeyError("k")))
        kept = []

        def twice(ret):
            kept.append(ret)
            ret(1, None)

        assert puff.wrap_async(twice) == 1
        with pytest.raises(RuntimeError, match="Already used"):
            kept[0](2, None)
        h = puff.wrap_async(lambda ret: ret(3, None), join=False)
        assert isinstance(h, puff.Greenlet) and h.join() == 3
        with pytest.raises(ZeroDivisionError):
            puff.wrap_async(lambda ret: ret(0, None), wrap_return=lambda v: 1 / v)
        return True

    assert run(main)


def test_wrap_async_in_asyncio():
    async def main():
        fut = puff.wrap_async(lambda ret: threading.Thread(target=ret, args=(5, None)).start())
        return await fut

    assert run(main) == 5


def test_greenlet_api_is_the_real_greenlet():
    def main():
        return greenlet.getcurrent().parent is not None

    assert run(main)
