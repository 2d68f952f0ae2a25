"""The workloads of `make bench-postgres`: one (driver, scenario) per process.

    python bench/postgres/contenders.py DRIVER SCENARIO N

runs scenario SCENARIO with driver DRIVER against $BENCH_PG_URL (tables made by setup.py), a
short warm-up first, then N operations timed, and prints one JSON line: ops, wall seconds, and
the CPU seconds (user, sys) of this whole process (every thread) over the timed part only.

An "op" is one round trip (seq, concurrent), one row (rows) or one inserted row (executemany).
Every driver runs with autocommit where the scenario is not a transaction (psycopg's default
would open a transaction around the round trips).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Callable, Dict, Tuple

import data

URL = os.environ.get("BENCH_PG_URL", "")
CALLERS = int(os.environ.get("BENCH_PG_CALLERS", "100"))
POOL = int(os.environ.get("BENCH_PG_POOL", "10"))
ROWS = data.ROWS  # rows per fetch in the rows scenario


class Timer:
    """Wall and process CPU time (all threads) between start() and stop()."""

    def __init__(self) -> None:
        self.info: Dict[str, object] = {}

    def start(self) -> None:
        self.r0 = resource.getrusage(resource.RUSAGE_SELF)
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        self.wall = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        self.user = r1.ru_utime - self.r0.ru_utime
        self.sys = r1.ru_stime - self.r0.ru_stime


def per_caller(n: int) -> Tuple[int, int]:
    per = max(1, n // CALLERS)
    return per, per * CALLERS


def fetches(n: int) -> int:
    """Fetches of ROWS rows that make at least n rows."""
    return max(1, -(-n // ROWS))


def _new_loop():
    import uvloop

    return uvloop.new_event_loop()


def check_rows(rows) -> None:
    if len(rows) != ROWS:
        raise SystemExit(f"expected {ROWS} rows, got {len(rows)}")


# ---- Puff (puff.postgres, DB-API over the native pipelined pool) ----------------------------------


def _puff(body: Callable[[Timer], int], t: Timer, mode: str = "greenlet") -> int:
    import puff
    import puff.postgres as pg

    extra = {}
    if os.environ.get("BENCH_PUFF_HUB_CONNECTION"):
        extra["hub_connection"] = os.environ["BENCH_PUFF_HUB_CONNECTION"] not in ("0", "")
    pg.configure("bench", url=URL, pool_size=POOL, **extra)
    opts = puff.RuntimeOptions(
        io_threads=int(os.environ.get("BENCH_PUFF_IO_THREADS", "0")),
        spin_us=int(os.environ.get("BENCH_PUFF_SPIN_US", str(puff.RuntimeOptions.spin_us))))
    out = []

    def main():
        from puff import _native

        t.info.update(mode=mode, pool_size=POOL, io_threads=_native.stats()["io_threads"],
                      spin_us=opts.spin_us)
        out.append(body(t))

    if mode == "asyncio":
        async def amain():
            out.append(await body(t))
        puff.run(amain, options=opts)
    else:
        puff.run(main, options=opts)
    return out[0]


def puff_seq(n: int, t: Timer) -> int:
    import puff.postgres as pg

    def body(t: Timer) -> int:
        cur = pg.connect("bench", autocommit=True).cursor()
        for i in range(max(10, n // 10)):
            cur.execute("SELECT %s::int", (i,))
            cur.fetchone()
        t.start()
        for i in range(n):
            cur.execute("SELECT %s::int", (i,))
            if cur.fetchone()[0] != i:
                raise SystemExit("wrong answer")
        t.stop()
        return n

    return _puff(body, t)


def puff_concurrent(n: int, t: Timer) -> int:
    import puff
    import puff.postgres as pg

    per, total = per_caller(n)

    def caller(k: int) -> None:
        cur = pg.connect("bench", autocommit=True).cursor()
        for i in range(k):
            cur.execute("SELECT %s::int", (i,))
            if cur.fetchone()[0] != i:
                raise SystemExit("wrong answer")

    def body(t: Timer) -> int:
        t.info.update(callers=CALLERS, how="greenlets on autocommit connections (pipelined)")
        puff.join_all([puff.spawn(caller, max(2, per // 10)) for _ in range(CALLERS)])
        t.start()
        puff.join_all([puff.spawn(caller, per) for _ in range(CALLERS)])
        t.stop()
        return total

    return _puff(body, t)


def puff_rows(n: int, t: Timer) -> int:
    import puff.postgres as pg

    k = fetches(n)

    def body(t: Timer) -> int:
        cur = pg.connect("bench", autocommit=True).cursor()
        cur.execute(data.SELECT_ROWS)
        check_rows(cur.fetchall())
        t.start()
        for _ in range(k):
            cur.execute(data.SELECT_ROWS)
            cur.fetchall()
        t.stop()
        return k * ROWS

    return _puff(body, t)


def puff_executemany(n: int, t: Timer) -> int:
    import puff.postgres as pg

    rows = data.insert_rows(n)

    def body(t: Timer) -> int:
        conn = pg.connect("bench")
        cur = conn.cursor()
        cur.executemany(data.INSERT_PYFORMAT, rows)  # warm-up: the same statements (prepared)
        conn.commit()
        t.start()
        cur.executemany(data.INSERT_PYFORMAT, rows)
        conn.commit()
        t.stop()
        return n

    return _puff(body, t)


# ---- asyncpg (uvloop) ----------------------------------------------------------------------------


def _asyncpg(body, t: Timer) -> int:
    import asyncio

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(body(t))
    finally:
        loop.close()


def asyncpg_seq(n: int, t: Timer) -> int:
    import asyncpg

    async def body(t: Timer) -> int:
        conn = await asyncpg.connect(URL)
        try:
            for i in range(max(10, n // 10)):
                await conn.fetchval("SELECT $1::int", i)
            t.start()
            for i in range(n):
                if await conn.fetchval("SELECT $1::int", i) != i:
                    raise SystemExit("wrong answer")
            t.stop()
        finally:
            await conn.close()
        return n

    return _asyncpg(body, t)


def asyncpg_concurrent(n: int, t: Timer) -> int:
    import asyncio

    import asyncpg

    per, total = per_caller(n)

    async def caller(pool, k: int) -> None:
        for i in range(k):
            if await pool.fetchval("SELECT $1::int", i) != i:
                raise SystemExit("wrong answer")

    async def body(t: Timer) -> int:
        t.info.update(callers=CALLERS, pool_size=POOL, how="asyncio tasks on asyncpg.create_pool")
        pool = await asyncpg.create_pool(URL, min_size=POOL, max_size=POOL)
        try:
            await asyncio.gather(*(caller(pool, max(2, per // 10)) for _ in range(CALLERS)))
            t.start()
            await asyncio.gather(*(caller(pool, per) for _ in range(CALLERS)))
            t.stop()
        finally:
            await pool.close()
        return total

    return _asyncpg(body, t)


def asyncpg_rows(n: int, t: Timer) -> int:
    import asyncpg

    k = fetches(n)

    async def body(t: Timer) -> int:
        t.info.update(rows_as="asyncpg.Record (not converted to tuples); jsonb decoded with json.loads "
                      "(a type codec: asyncpg returns str by default)")
        conn = await asyncpg.connect(URL)
        await conn.set_type_codec("jsonb", schema="pg_catalog", decoder=json.loads,
                                  encoder=json.dumps, format="text")
        try:
            check_rows(await conn.fetch(data.SELECT_ROWS))
            t.start()
            for _ in range(k):
                await conn.fetch(data.SELECT_ROWS)
            t.stop()
        finally:
            await conn.close()
        return k * ROWS

    return _asyncpg(body, t)


def asyncpg_executemany(n: int, t: Timer) -> int:
    import asyncpg

    rows = data.insert_rows(n)

    async def body(t: Timer) -> int:
        conn = await asyncpg.connect(URL)
        try:
            async with conn.transaction():
                await conn.executemany(data.INSERT_DOLLAR, rows)
            t.start()
            async with conn.transaction():
                await conn.executemany(data.INSERT_DOLLAR, rows)
            t.stop()
        finally:
            await conn.close()
        return n

    return _asyncpg(body, t)


# ---- psycopg 3 -------------------------------------------------------------------------------------


def _psycopg_info(t: Timer) -> None:
    import psycopg

    t.info.update(psycopg_impl=psycopg.pq.__impl__, libpq=psycopg.pq.version())


def psycopg_seq(n: int, t: Timer) -> int:
    import psycopg

    _psycopg_info(t)
    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.cursor()
        for i in range(max(10, n // 10)):
            cur.execute("SELECT %s::int", (i,))
            cur.fetchone()
        t.start()
        for i in range(n):
            cur.execute("SELECT %s::int", (i,))
            if cur.fetchone()[0] != i:
                raise SystemExit("wrong answer")
        t.stop()
    return n


def psycopg_concurrent(n: int, t: Timer) -> int:
    import asyncio

    import psycopg
    from psycopg_pool import AsyncConnectionPool

    _psycopg_info(t)
    per, total = per_caller(n)

    async def caller(pool, k: int) -> None:
        for i in range(k):
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT %s::int", (i,))
                if (await cur.fetchone())[0] != i:
                    raise SystemExit("wrong answer")

    async def body(t: Timer) -> int:
        t.info.update(callers=CALLERS, pool_size=POOL,
                      how="asyncio tasks (uvloop) on psycopg_pool.AsyncConnectionPool")
        pool = AsyncConnectionPool(URL, min_size=POOL, max_size=POOL, open=False,
                                   kwargs={"autocommit": True})
        await pool.open(wait=True)
        try:
            await asyncio.gather(*(caller(pool, max(2, per // 10)) for _ in range(CALLERS)))
            t.start()
            await asyncio.gather(*(caller(pool, per) for _ in range(CALLERS)))
            t.stop()
        finally:
            await pool.close()
        return total

    del psycopg
    return _asyncpg(body, t)


def psycopg_rows(n: int, t: Timer) -> int:
    import psycopg

    _psycopg_info(t)
    k = fetches(n)
    with psycopg.connect(URL, autocommit=True) as conn:
        cur = conn.cursor(binary=True)
        cur.execute(data.SELECT_ROWS)
        check_rows(cur.fetchall())
        t.info.update(rows_as="tuples, binary results")
        t.start()
        for _ in range(k):
            cur.execute(data.SELECT_ROWS)
            cur.fetchall()
        t.stop()
    return k * ROWS


def psycopg_executemany(n: int, t: Timer) -> int:
    import psycopg

    _psycopg_info(t)
    rows = data.insert_rows(n)
    with psycopg.connect(URL) as conn:
        cur = conn.cursor()
        cur.executemany(data.INSERT_PYFORMAT, rows)
        conn.commit()
        t.start()
        cur.executemany(data.INSERT_PYFORMAT, rows)
        conn.commit()
        t.stop()
    return n


# ---- psycopg2 ----------------------------------------------------------------------------------


def psycopg2_seq(n: int, t: Timer) -> int:
    import psycopg2

    conn = psycopg2.connect(URL)
    conn.autocommit = True
    cur = conn.cursor()
    for i in range(max(10, n // 10)):
        cur.execute("SELECT %s::int", (i,))
        cur.fetchone()
    t.start()
    for i in range(n):
        cur.execute("SELECT %s::int", (i,))
        if cur.fetchone()[0] != i:
            raise SystemExit("wrong answer")
    t.stop()
    conn.close()
    return n


def psycopg2_concurrent(n: int, t: Timer) -> int:
    import queue
    import threading

    import psycopg2

    per, total = per_caller(n)
    pool: "queue.Queue" = queue.Queue()
    conns = []
    for _ in range(POOL):
        c = psycopg2.connect(URL)
        c.autocommit = True
        conns.append(c)
        pool.put(c)
    t.info.update(callers=CALLERS, pool_size=POOL,
                  how="threads sharing a queue.Queue of connections (psycopg2's pools do not wait)")
    errors = []

    def caller(k: int, go: threading.Event) -> None:
        go.wait()
        try:
            for i in range(k):
                c = pool.get()
                try:
                    cur = c.cursor()
                    cur.execute("SELECT %s::int", (i,))
                    if cur.fetchone()[0] != i:
                        raise RuntimeError("wrong answer")
                finally:
                    pool.put(c)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    def run(k: int, timed: bool) -> None:
        go = threading.Event()
        ths = [threading.Thread(target=caller, args=(k, go)) for _ in range(CALLERS)]
        for th in ths:
            th.start()
        if timed:
            t.start()
        go.set()
        for th in ths:
            th.join()
        if timed:
            t.stop()

    run(max(2, per // 10), False)
    run(per, True)
    for c in conns:
        c.close()
    if errors:
        raise SystemExit(f"psycopg2 caller failed: {errors[0]!r}")
    return total


def psycopg2_rows(n: int, t: Timer) -> int:
    import psycopg2
    import psycopg2.extras

    psycopg2.extras.register_uuid()
    k = fetches(n)
    conn = psycopg2.connect(URL)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(data.SELECT_ROWS)
    check_rows(cur.fetchall())
    t.info.update(rows_as="tuples, text results (psycopg2 has no binary results); uuid registered")
    t.start()
    for _ in range(k):
        cur.execute(data.SELECT_ROWS)
        cur.fetchall()
    t.stop()
    conn.close()
    return k * ROWS


def psycopg2_executemany(n: int, t: Timer) -> int:
    import psycopg2

    rows = data.insert_rows(n)
    conn = psycopg2.connect(URL)
    cur = conn.cursor()
    cur.executemany(data.INSERT_PYFORMAT, rows)
    conn.commit()
    t.info.update(how="cursor.executemany (one round trip per row; execute_batch is not DB-API)")
    t.start()
    cur.executemany(data.INSERT_PYFORMAT, rows)
    conn.commit()
    t.stop()
    conn.close()
    return n


DRIVERS = ("puff", "asyncpg", "psycopg", "psycopg2")
SCENARIOS = ("seq", "concurrent", "rows", "executemany")
WORKLOADS: Dict[str, Callable[[int, Timer], int]] = {
    f"{d}_{s}": globals()[f"{d}_{s}"] for d in DRIVERS for s in SCENARIOS}


def main(argv) -> None:
    driver, scenario, n = argv[1], argv[2], int(argv[3])
    t = Timer()
    total = WORKLOADS[f"{driver}_{scenario}"](n, t)
    print(json.dumps({"ops": total, "wall_s": t.wall, "cpu_user_s": t.user, "cpu_sys_s": t.sys,
                      "info": t.info}))


if __name__ == "__main__":
    main(sys.argv)
