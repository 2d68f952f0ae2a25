"""The workloads of `make bench-runtime`, one per contender; each runs in its own process.

    python bench/runtime/contenders.py NAME CALLS CONCURRENCY

runs CALLS round trips of contender NAME split over CONCURRENCY callers (greenlets or tasks),
after a short warm-up, and prints one JSON line: calls, wall seconds, and the CPU seconds
(user, sys) of the whole process (every thread: I/O threads and worker pools included) over the
timed part only.

Every contender does the same job: "run something off the Python thread and resume the caller".
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Callable, Dict, Tuple

WARMUP_FRACTION = 0.1  # of CALLS, run before the timed part in the same process


class Timer:
    """Wall and process CPU time (all threads) between start() and stop()."""

    def __init__(self) -> None:
        self.info: Dict[str, object] = {}  # what the contender ran on (pool sizes, loop)

    def start(self) -> None:
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.user = r1.ru_utime - self.r0.ru_utime
        self.sys = r1.ru_stime - self.r0.ru_stime


def split(calls: int, concurrency: int) -> Tuple[int, int]:
    """Calls per caller (at least 1) and the total actually made."""
    per = max(1, calls // concurrency)
    return per, per * concurrency


def warm(calls: int, concurrency: int) -> int:
    return max(1, int(calls * WARMUP_FRACTION) // concurrency)


def noop() -> None:
    """What the peers run on their worker thread."""
    return None


# ---- Puff ------------------------------------------------------------------------------------------


def _puff_options():
    import puff

    return puff.RuntimeOptions(
        io_threads=int(os.environ.get("BENCH_PUFF_IO_THREADS", "0")),
        spin_us=int(os.environ.get("BENCH_PUFF_SPIN_US", str(puff.RuntimeOptions.spin_us))),
    )


def puff_greenlet(calls: int, concurrency: int, t: Timer) -> int:
    import puff
    from puff import _native

    per, total = split(calls, concurrency)
    w = warm(calls, concurrency)

    def caller(n: int) -> None:
        call = _native.noop_async
        for _ in range(n):
            call()

    def main() -> None:
        t.info.update(io_threads=_native.stats()["io_threads"], spin_us=_puff_options().spin_us)
        if concurrency == 1:
            caller(w)
            t.start()
            caller(per)
            t.stop()
            return
        puff.join_all([puff.spawn(caller, w) for _ in range(concurrency)])
        t.start()
        puff.join_all([puff.spawn(caller, per) for _ in range(concurrency)])
        t.stop()

    puff.run(main, options=_puff_options())
    return total


def puff_asyncio(calls: int, concurrency: int, t: Timer) -> int:
    import asyncio

    import puff
    from puff import _native

    per, total = split(calls, concurrency)
    w = warm(calls, concurrency)

    async def caller(n: int) -> None:
        call = _native.noop_async
        for _ in range(n):
            await call()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t.info.update(io_threads=_native.stats()["io_threads"], spin_us=_puff_options().spin_us,
                      loop=f"{type(loop).__module__}.{type(loop).__qualname__}")
        if concurrency == 1:
            await caller(w)
            t.start()
            await caller(per)
            t.stop()
            return
        await asyncio.gather(*(caller(w) for _ in range(concurrency)))
        t.start()
        await asyncio.gather(*(caller(per) for _ in range(concurrency)))
        t.stop()

    puff.run(main, options=_puff_options())
    return total


# ---- gevent ------------------------------------------------------------------------------------------


def gevent_threadpool(calls: int, concurrency: int, t: Timer) -> int:
    import gevent
    from gevent import get_hub

    per, total = split(calls, concurrency)
    w = warm(calls, concurrency)
    pool = get_hub().threadpool  # gevent's default: maxsize 10 threads
    t.info.update(threadpool_maxsize=pool.maxsize)

    def caller(n: int) -> None:
        apply = pool.apply
        for _ in range(n):
            apply(noop)

    if concurrency == 1:
        caller(w)
        t.start()
        caller(per)
        t.stop()
    else:
        gevent.joinall([gevent.spawn(caller, w) for _ in range(concurrency)], raise_error=True)
        t.start()
        gevent.joinall([gevent.spawn(caller, per) for _ in range(concurrency)], raise_error=True)
        t.stop()
    return total


# ---- asyncio ------------------------------------------------------------------------------------------


def _new_loop():
    """The peers' loop: uvloop (what Puff's asyncio mode uses) unless BENCH_PEER_LOOP=asyncio."""
    import asyncio

    if os.environ.get("BENCH_PEER_LOOP", "uvloop") == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _run_asyncio(caller, calls: int, concurrency: int, t: Timer, setup=None, teardown=None) -> int:
    import asyncio

    per, total = split(calls, concurrency)
    w = warm(calls, concurrency)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t.info.update(loop=f"{type(loop).__module__}.{type(loop).__qualname__}")
        ctx = setup(loop) if setup else None
        try:
            if concurrency == 1:
                await caller(loop, ctx, w)
                t.start()
                await caller(loop, ctx, per)
                t.stop()
                return
            await asyncio.gather(*(caller(loop, ctx, w) for _ in range(concurrency)))
            t.start()
            await asyncio.gather(*(caller(loop, ctx, per) for _ in range(concurrency)))
            t.stop()
        finally:
            if teardown:
                teardown(ctx)

    loop = _new_loop()
    try:
        loop.run_until_complete(main())
        loop.run_until_complete(loop.shutdown_default_executor())
    finally:
        loop.close()
    return total


def asyncio_executor(calls: int, concurrency: int, t: Timer) -> int:
    import concurrent.futures

    def setup(loop):
        # What the loop would create by itself: ThreadPoolExecutor(max_workers=min(32, cpus + 4)).
        ex = concurrent.futures.ThreadPoolExecutor()
        loop.set_default_executor(ex)
        t.info.update(executor_max_workers=ex._max_workers)
        return ex

    async def caller(loop, _ctx, n: int) -> None:
        run = loop.run_in_executor
        for _ in range(n):
            await run(None, noop)

    return _run_asyncio(caller, calls, concurrency, t, setup)


def asyncio_threadsafe(calls: int, concurrency: int, t: Timer) -> int:
    """Floor of the asyncio peers: hand a future to one worker thread through a SimpleQueue; the
    worker resumes the caller with loop.call_soon_threadsafe(fut.set_result, None)."""
    import queue
    import threading

    def setup(loop):
        q: "queue.SimpleQueue" = queue.SimpleQueue()

        def worker() -> None:
            get, cst = q.get, loop.call_soon_threadsafe
            while True:
                fut = get()
                if fut is None:
                    return
                cst(fut.set_result, None)

        th = threading.Thread(target=worker, daemon=True)
        th.start()
        return q, th

    def teardown(ctx) -> None:
        q, th = ctx
        q.put(None)
        th.join()

    async def caller(loop, ctx, n: int) -> None:
        put, create = ctx[0].put, loop.create_future
        for _ in range(n):
            fut = create()
            put(fut)
            await fut

    return _run_asyncio(caller, calls, concurrency, t, setup, teardown)


# ---- greenlet floor ------------------------------------------------------------------------------------


def greenlet_switch(calls: int, concurrency: int, t: Timer) -> int:
    """A bare switch pair: main -> g -> main, per call. Concurrency does not apply."""
    import greenlet

    main = greenlet.getcurrent()

    def peer() -> None:
        back = main.switch
        while True:
            back()

    g = greenlet.greenlet(peer)
    sw = g.switch
    for _ in range(warm(calls, 1)):
        sw()
    t.start()
    for _ in range(calls):
        sw()
    t.stop()
    return calls


CONTENDERS: Dict[str, Callable[[int, int, Timer], int]] = {
    "puff_greenlet": puff_greenlet,
    "puff_asyncio": puff_asyncio,
    "gevent_threadpool": gevent_threadpool,
    "asyncio_executor": asyncio_executor,
    "asyncio_threadsafe": asyncio_threadsafe,
    "greenlet_switch": greenlet_switch,
}


def main(argv) -> None:
    name, calls, concurrency = argv[1], int(argv[2]), int(argv[3])
    t = Timer()
    total = CONTENDERS[name](calls, concurrency, t)
    print(json.dumps({"calls": total, "wall_s": t.wall, "cpu_user_s": t.user, "cpu_sys_s": t.sys,
                      "info": t.info}))


if __name__ == "__main__":
    main(sys.argv)
