"""executemany's multi-row INSERTs inside a transaction (python/puff/_pg_batch.py)."""

import time
import uuid

import pytest

import puff
from puff import _pg_batch
from puff import postgres as pg

URL = __import__("os").environ.get("PUFF_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


# ---- pure: which statements are rewritten, and into what -------------------------------------------


@pytest.mark.parametrize("sql", [
    "INSERT INTO t VALUES (%s, %s)",
    "insert into s.t (a, b) values (%s,%s);",
    'INSERT INTO "My ""T""" ("a", b) VALUES ( %(x)s , %(y)s )',
    "INSERT INTO t (a, b) VALUES ($1, $2)",
])
def test_plain_inserts_are_batched(sql):
    rows = [{"x": i, "y": -i} for i in range(5)] if "%(" in sql else [(i, -i) for i in range(5)]
    out = _pg_batch.insert_batches(sql, rows)
    assert [len(p) for _, p in out] == [8, 2]  # 4 rows, then 1 (powers of two)
    assert out[0][0].lower().endswith("values ($1, $2), ($3, $4), ($5, $6), ($7, $8)")
    assert out[0][1] == [0, 0, 1, -1, 2, -2, 3, -3] and out[1][1] == [4, -4]


@pytest.mark.parametrize("sql,rows", [
    ("INSERT INTO t VALUES (%s, %s) ON CONFLICT DO NOTHING", [(1, 2)] * 3),
    ("INSERT INTO t VALUES (%s, %s) RETURNING a", [(1, 2)] * 3),
    ("INSERT INTO t VALUES (%s, now())", [(1,)] * 3),
    ("INSERT INTO t VALUES (%s, %s), (%s, %s)", [(1, 2, 3, 4)] * 3),
    ("INSERT INTO t SELECT %s, %s", [(1, 2)] * 3),
    ("UPDATE t SET a = %s WHERE b = %s", [(1, 2)] * 3),
    ("INSERT INTO t VALUES ($2, $1)", [(1, 2)] * 3),
    ("INSERT INTO t VALUES (%s, %s)", [(1, 2), (1, 2, 3)]),  # a bad row: the per-row path says why
    ("INSERT INTO t VALUES (%s, %s)", [(1, 2)]),  # one row: nothing to gain
])
def test_other_statements_are_not(sql, rows):
    assert _pg_batch.insert_batches(sql, rows) is None


def test_chunks_split_by_the_parameter_limit():
    n = 100  # columns: 655 rows per statement at most
    sql = "INSERT INTO t VALUES (" + ", ".join(["%s"] * n) + ")"
    out = _pg_batch.insert_batches(sql, [tuple(range(n))] * 1400)
    assert [len(p) // n for _, p in out] == [655, 655, 64, 16, 8, 2]
    assert all(len(p) <= _pg_batch.MAX_PARAMS for _, p in out)


# ---- against the server ----------------------------------------------------------------------------


@needs_pg
def test_batched_insert_in_a_transaction():
    name = f"t_batch_{uuid.uuid4().hex[:8]}"

    def main():
        pg.configure("default", URL, pool_size=4)
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (n serial, id int primary key, s text)", prepare=False)
        try:
            with pg.connect() as tx:
                cur = tx.cursor()
                cur.executemany(f"insert into {name} (id, s) values (%s, %s)",
                                [(i, f"s{i}") for i in range(2500)])
                assert cur.rowcount == 2500
            cur = auto.cursor()
            cur.execute(f"select count(*), sum(id), min(s) from {name}")
            assert cur.fetchone() == (2500, sum(range(2500)), "s0")
            cur.execute(f"select id from {name} order by n")
            assert [r[0] for r in cur.fetchall()] == list(range(2500))  # in order
            tx = pg.connect()
            with pytest.raises(pg.UniqueViolation):
                tx.cursor().executemany(f"insert into {name} (id, s) values (%s, %s)",
                                        [(5000 + i, "x") for i in range(1500)] + [(7, "dup")])
            tx.rollback()
            cur.execute(f"select count(*) from {name}")
            assert cur.fetchone() == (2500,)
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    puff.run(main)


@needs_pg
@pytest.mark.parametrize("hub_connection", [True, False])
def test_hub_connection_on_and_off(hub_connection):
    """The pool's first connection on the hub's own loop (greenlet runtimes) or on an I/O thread:
    sequential, concurrent, transaction and blocking-thread callers all get their answers."""

    def main():
        pg.configure("default", URL, pool_size=3, hub_connection=hub_connection)
        cur = pg.connect(autocommit=True).cursor()
        for i in range(200):
            cur.execute("select %s::int", (i,))
            assert cur.fetchone() == (i,)

        def caller(k):
            c = pg.connect(autocommit=True).cursor()
            for i in range(50):
                c.execute("select %s::int + %s", (i, k))
                assert c.fetchone() == (i + k,)
            with pg.connect() as tx:
                assert tx.execute("select %s::int", (k,)).fetchone() == (k,)
            return k

        assert sorted(puff.join_all([puff.spawn(caller, k) for k in range(20)])) == list(range(20))
        assert puff.join_all([puff.spawn_blocking(caller, 99)]) == [99]  # a blocking-pool thread
        return pg.get_pool().stats()

    stats = puff.run(main)
    assert stats["pinned"] == 0 and stats["in_flight"] == 0


@needs_pg
def test_the_hub_connection_answers_while_greenlets_keep_the_hub_busy():
    """A query on the hub's own connection completes even when the hub never goes idle (greenlets
    that yield to each other in a loop): it hung forever before the busy hub polled its loop."""
    from puff import _native

    def main():
        pg.configure("default", URL, pool_size=2, hub_connection=True)
        cur = pg.connect(autocommit=True).cursor()
        stop = []
        give_up = time.monotonic() + 20  # a starved query turns into a failure, not a hung run

        def busy():
            while not stop and time.monotonic() < give_up:
                _native.yield_now()

        spinners = [puff.spawn(busy) for _ in range(20)]
        try:
            for i in range(50):
                cur.execute("select %s::int", (i,))
                assert cur.fetchone() == (i,)
            return time.monotonic() < give_up  # answered while the spinners were still busy
        finally:
            stop.append(True)
            puff.join_all(spinners)

    assert puff.run(main) is True


@needs_pg
def test_other_threads_never_wait_on_the_hub_connection():
    """Queries from threads other than the Python thread never use the hub's connection: the
    Python thread may be the one waiting for them (a plain thread joined, a blocking-pool call
    whose pool was first used from that thread). Both hung before."""
    import concurrent.futures

    def query():
        return pg.connect(autocommit=True).execute("select 1").fetchall()

    def first_use_from_a_blocking_thread():
        pg.configure("default", URL, pool_size=4, hub_connection=True)
        pg.get_pool()  # the pool exists; no connection yet
        return puff.spawn_blocking(query).join()

    def thread_joined_by_the_python_thread():
        pg.configure("default", URL, pool_size=4, hub_connection=True)
        query()  # the hub's connection is up and idle: routing would prefer it
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            return ex.submit(query).result(timeout=20)  # blocks the Python thread

    assert puff.run(first_use_from_a_blocking_thread) == [(1,)]
    assert puff.run(thread_joined_by_the_python_thread) == [(1,)]
