"""puff.postgres (DB-API 2.0) against the private Postgres (PUFF_TEST_POSTGRES_URL)."""

import asyncio
import datetime as dt
import decimal
import ipaddress
import math
import uuid

import pytest

import puff
from puff import _pg_sql
from puff import postgres as pg

URL = __import__("os").environ.get("PUFF_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


def run(fn):
    pg.configure("default", URL, pool_size=4)
    return puff.run(fn)


def q1(sql, params=None):
    cur = pg.connect(autocommit=True).cursor()
    cur.execute(sql, params)
    return cur.fetchone()


# ---- pure: module surface and placeholders ------------------------------------------------------


def test_module_attributes_and_hierarchy():
    assert (pg.apilevel, pg.threadsafety, pg.paramstyle) == ("2.0", 1, "pyformat")
    assert issubclass(pg.Error, Exception) and issubclass(pg.Warning, Exception)
    for c in (pg.DataError, pg.OperationalError, pg.IntegrityError, pg.InternalError, pg.ProgrammingError,
              pg.NotSupportedError):
        assert issubclass(c, pg.DatabaseError)
    assert issubclass(pg.DatabaseError, pg.Error) and issubclass(pg.InterfaceError, pg.Error)
    assert issubclass(pg.UniqueViolation, pg.IntegrityError)
    assert issubclass(pg.UndefinedTable, pg.ProgrammingError)
    assert issubclass(pg.QueryCanceled, pg.OperationalError)
    assert pg.lookup("23505") is pg.UniqueViolation and pg.lookup("22999") is pg.DataError
    assert pg.NUMBER == 23 and pg.STRING == 25 and pg.DATETIME == 1184 and pg.BINARY == 17
    assert pg.Binary(b"x") == b"x" and pg.Date(2020, 1, 2) == dt.date(2020, 1, 2)


@pytest.mark.parametrize("sql,expected", [
    ("select %s, %s", ("select $1, $2", None, 2)),
    ("select '%s', %s", ("select '%s', $1", None, 1)),
    ("select 'it''s %s', %s", ("select 'it''s %s', $1", None, 1)),
    ("select E'\\'%s', %s", ("select E'\\'%s', $1", None, 1)),
    ('select "a%s", %s', ('select "a%s", $1', None, 1)),
    ("select $$ %s $$, $q$ %s $q$, %s", ("select $$ %s $$, $q$ %s $q$, $1", None, 1)),
    ("select 1 -- %s\n, %s", ("select 1 -- %s\n, $1", None, 1)),
    ("select /* /* %s */ %s */ %s", ("select /* /* %s */ %s */ $1", None, 1)),
    ("select %(a)s, %(b)s, %(a)s", ("select $1, $2, $1", ["a", "b"], 0)),
    ("select 10 %% 3, %s", ("select 10 % 3, $1", None, 1)),
    ("select $1, $2", ("select $1, $2", None, 0)),
])
def test_placeholder_rewriting(sql, expected):
    assert _pg_sql.rewrite(sql) == expected


def test_placeholder_errors():
    with pytest.raises(_pg_sql.PlaceholderError):
        _pg_sql.rewrite("select %s, %(a)s")
    with pytest.raises(_pg_sql.PlaceholderError):
        _pg_sql.rewrite("select %d")
    with pytest.raises(_pg_sql.PlaceholderError):
        _pg_sql.bind("select %s, %s", [1])
    with pytest.raises(_pg_sql.PlaceholderError):
        _pg_sql.bind("select %(a)s", {"b": 1})
    assert _pg_sql.bind("select '%'", None) == ("select '%'", None)


# ---- against the server -------------------------------------------------------------------------


@needs_pg
def test_cursor_lifecycle_description_rowcount_fetch():
    def main():
        conn = pg.connect(autocommit=True)
        with conn.cursor() as cur:
            cur.execute("select g as n, 'x' || g as s from generate_series(1, 5) g")
            assert [d[0] for d in cur.description] == ["n", "s"]
            assert all(len(d) == 7 for d in cur.description)
            assert cur.description[0].type_code == pg.NUMBER and cur.description[1][1] == pg.STRING
            assert cur.rowcount == 5
            assert cur.fetchone() == (1, "x1")
            assert cur.arraysize == 1 and cur.fetchmany() == [(2, "x2")]
            cur.arraysize = 2
            assert cur.fetchmany() == [(3, "x3"), (4, "x4")]
            assert list(cur) == [(5, "x5")]
            assert cur.fetchone() is None and cur.fetchall() == [] and list(cur) == []
            cur.execute("select null::int, %s::text", [None])
            assert cur.fetchall() == [(None, None)]
            cur.execute("create temp table if not exists nothing_here (a int)", prepare=False)
            assert cur.description is None
            with pytest.raises(pg.ProgrammingError):
                cur.fetchone()
        assert cur.closed
        with pytest.raises(pg.InterfaceError):
            cur.execute("select 1")
        conn.close()
        with pytest.raises(pg.InterfaceError):
            conn.cursor()

    run(main)


@needs_pg
def test_type_round_trips():
    values = [
        (True, "bool"), (False, "bool"), (7, "int2"), (2**31 - 1, "int4"), (-2**63, "int8"), (2**80, "numeric"),
        (1.5, "float8"), (decimal.Decimal("-12.3400"), "numeric"), (decimal.Decimal("1" * 1000), "numeric"),
        ("héllo", "text"), (b"\x00\xff", "bytea"), (bytearray(b"ab"), "bytea"), (memoryview(b"cd"), "bytea"),
        (dt.date(1, 1, 1), "date"), (dt.date(9999, 12, 31), "date"), (dt.time(23, 59, 59, 999999), "time"),
        (dt.datetime(2024, 2, 29, 12, 30, 1, 5), "timestamp"),
        (dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.timezone.utc), "timestamptz"),
        (dt.timedelta(days=-3, seconds=5, microseconds=7), "interval"), (uuid.UUID(int=12345), "uuid"),
        ({"a": [1, None, "x"]}, "jsonb"), ([1, None, 3], "int2[]"), ([[1, 2], [None, 4]], "int2[]"),
        (["a", None], "text[]"), ([1.5, None], "float8[]"), ([dt.date(2020, 1, 1)], "date[]"),
        ([uuid.UUID(int=1), None], "uuid[]"), ([decimal.Decimal("1.5"), None], "numeric[]"),
    ]

    def main():
        for v, typ in values:
            got = q1(f"select %s::{typ}", [v])[0]
            exp = bytes(v) if isinstance(v, (bytearray, memoryview)) else v
            assert got == exp, (v, typ, got)
        tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
        aware = dt.datetime(2020, 5, 1, 10, 0, tzinfo=tz)
        got = q1("select %s::timestamptz", [aware])[0]
        assert got == aware and got.tzinfo == dt.timezone.utc
        assert q1("select '12:00+03'::timetz")[0] == dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
        assert q1("select %s::varchar, %s::char(3), 'n'::name", ["v", "c"]) == ("v", "c  ", "n")
        assert q1("select '[1, {\"a\": null}]'::json")[0] == [1, {"a": None}]
        assert q1("select '1.2.3.4/24'::inet, '10.0.0.0/8'::cidr, '::1'::inet") == (
            ipaddress.ip_interface("1.2.3.4/24"), ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_interface("::1"))
        f = q1("select 'NaN'::float8, 'Infinity'::float8, '-Infinity'::float4, 'NaN'::numeric, 'Infinity'::numeric")
        assert math.isnan(f[0]) and f[1] == math.inf and f[2] == -math.inf
        assert f[3].is_nan() and f[4] == decimal.Decimal("Infinity")
        assert q1("select %s::float8, %s::numeric", [math.inf, decimal.Decimal("-Infinity")]) == (
            math.inf, decimal.Decimal("-Infinity"))
        assert q1("select '{{1,NULL},{3,4}}'::int[], '{}'::text[], %s::int[]", [[]]) == ([[1, None], [3, 4]], [], [])
        assert q1("select '2020-01-01'::date = %s", ["2020-01-01"]) == (True,)  # str: the server infers
        assert q1("select 'a'::\"char\"") == ("a",)
        for sql in ("select 'infinity'::date", "select '10000-01-01'::timestamp", "select '24:00'::time"):
            with pytest.raises(pg.DataError):
                q1(sql)
        with pytest.raises(pg.DataError, match=r"\$2"):
            q1("select %s, %s", [1, object()])
        with pytest.raises(pg.DataError, match=r"\$1"):
            q1("select %s", [[1, "a"]])

    run(main)


@needs_pg
def test_errors_map_with_pgcode_and_diag_and_connection_stays_usable():
    def main():
        conn = pg.connect(autocommit=True)
        cur = conn.cursor()
        with pytest.raises(pg.UndefinedTable) as ei:
            cur.execute("select * from no_such_table_here")
        e = ei.value
        assert isinstance(e, pg.ProgrammingError) and e.pgcode == "42P01"
        assert e.diag.sqlstate == "42P01" and "no_such_table_here" in e.diag.message_primary
        with pytest.raises(pg.SyntaxError):
            cur.execute("selec 1")
        with pytest.raises(pg.DivisionByZero) as ei:
            cur.execute("select 1/0")
        assert isinstance(ei.value, pg.DataError)
        cur.execute("select 2")
        assert cur.fetchone() == (2,)
        name = f"t_uniq_{uuid.uuid4().hex[:8]}"
        cur.execute(f"create table {name} (id int primary key)", prepare=False)
        try:
            cur.execute(f"insert into {name} values (%s)", [1])
            with pytest.raises(pg.UniqueViolation) as ei:
                cur.execute(f"insert into {name} values (%s)", [1])
            assert isinstance(ei.value, pg.IntegrityError)
            assert ei.value.diag.constraint_name == f"{name}_pkey" and ei.value.diag.table_name == name
            # in a transaction: the error aborts it; rollback makes the connection usable again
            tx = pg.connect()
            c2 = tx.cursor()
            c2.execute(f"insert into {name} values (%s)", [2])
            with pytest.raises(pg.UniqueViolation):
                c2.execute(f"insert into {name} values (%s)", [1])
            with pytest.raises(pg.InFailedSqlTransaction):
                c2.execute("select 1")
            tx.rollback()
            c2.execute("select count(*) from " + name)
            assert c2.fetchone() == (1,)
            tx.commit()
        finally:
            cur.execute(f"drop table {name}", prepare=False)

    run(main)


@needs_pg
def test_transactions_commit_rollback_isolation_and_context_managers():
    name = f"t_tx_{uuid.uuid4().hex[:8]}"

    def count(conn):
        c = conn.cursor()
        c.execute(f"select count(*) from {name}")
        return c.fetchone()[0]

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (v int)", prepare=False)
        try:
            a = pg.connect()
            assert not a.autocommit and not a.in_transaction
            a.execute(f"insert into {name} values (1)")
            assert a.in_transaction
            assert count(a) == 1 and count(auto) == 0  # isolation: not visible before commit
            with pytest.raises(pg.ProgrammingError):
                a.autocommit = True
            a.commit()
            assert count(auto) == 1
            a.execute(f"insert into {name} values (2)")
            a.rollback()
            assert count(auto) == 1
            with pg.connect() as b:
                b.execute(f"insert into {name} values (3)")
            assert count(auto) == 2 and b.closed
            with pytest.raises(RuntimeError):
                with pg.connect() as b:
                    b.execute(f"insert into {name} values (4)")
                    raise RuntimeError("boom")
            assert count(auto) == 2
            c = pg.connect()
            c.execute(f"insert into {name} values (5)")
            c.close()  # rolls back
            assert count(auto) == 2
            auto.execute(f"insert into {name} values (6)")  # autocommit: visible at once
            assert count(pg.connect(autocommit=True)) == 3
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    run(main)


@needs_pg
def test_executemany_1000_rows_and_in_transaction():
    name = f"t_many_{uuid.uuid4().hex[:8]}"

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (id int primary key, s text)", prepare=False)
        try:
            cur = auto.cursor()
            cur.executemany(f"insert into {name} values (%s, %s)", [(i, f"s{i}") for i in range(1000)])
            assert cur.rowcount == 1000
            cur.execute(f"select count(*), sum(id) from {name}")
            assert cur.fetchone() == (1000, sum(range(1000)))
            tx = pg.connect()
            c = tx.cursor()
            c.executemany(f"insert into {name} values (%(id)s, %(s)s)", [{"id": 1000 + i, "s": "t"} for i in range(50)])
            assert c.rowcount == 50
            tx.rollback()
            cur.execute(f"select count(*) from {name}")
            assert cur.fetchone() == (1000,)
            # in a transaction the statements keep their order (a serial column records it)
            cur.execute(f"create table {name}_seq (n serial, v int)", prepare=False)
            try:
                with pg.connect() as tx2:
                    tx2.cursor().executemany(f"insert into {name}_seq (v) values (%s)", [(v,) for v in range(300)])
                cur.execute(f"select v from {name}_seq order by n")
                assert [r[0] for r in cur.fetchall()] == list(range(300))
            finally:
                cur.execute(f"drop table {name}_seq", prepare=False)
            with pytest.raises(pg.UniqueViolation):
                cur.executemany(f"insert into {name} values (%s, 'x')", [(2000,), (1,), (2001,)])
            cur.execute(f"select count(*) from {name} where id >= 2000")
            assert cur.fetchone() == (2,)  # autocommit: the others committed
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    run(main)


@needs_pg
def test_1000_concurrent_greenlets_pipelined():
    def worker(i):
        cur = pg.connect(autocommit=True).cursor()
        cur.execute("select %s::int * 2, %s::text", [i, f"caller{i}"])
        return cur.fetchone()

    def main():
        handles = [puff.spawn(worker, i) for i in range(1000)]
        return [h.join() for h in handles]

    assert run(main) == [(i * 2, f"caller{i}") for i in range(1000)]


@needs_pg
def test_asyncio_dual_mode():
    async def main():
        conn = pg.connect(autocommit=True)

        async def one(i):
            cur = await conn.execute("select %s::int + 1", [i])
            return cur.fetchone()[0]

        got = await asyncio.gather(*(one(i) for i in range(1000)))
        assert got == [i + 1 for i in range(1000)]
        cur = conn.cursor()
        with pytest.raises(pg.UndefinedTable):
            await cur.execute("select * from nope_nope")
        await cur.executemany("select %s", [(1,), (2,)])
        assert cur.fetchall() == [(2,)]
        async with pg.connect() as tx:
            c = await tx.execute("select txid_current() = txid_current()")
            assert c.fetchone() == (True,) and tx.in_transaction
            await tx.commit()
            await tx.rollback()  # nothing open: still awaitable
        return "ok"

    assert run(main) == "ok"


def test_outside_the_runtime_is_a_clear_error():
    pg.configure("default", URL or "postgres://localhost/x")
    with pytest.raises(pg.InterfaceError, match="runtime"):
        pg.connect()


@needs_pg
def test_pool_from_puff_toml_and_its_flag(project):
    project.write("puff.toml", """
        [[postgres]]
        name = "analytics"
        url = "postgres://nobody@127.0.0.1:1/none"
        pool_size = 2
    """)
    code = ("from puff import postgres\n"
            "c = postgres.connect('analytics', autocommit=True).execute('select %s::int * 2', [21])\n"
            "print('answer', c.fetchone()[0])\n")
    # the flag overrides the (unreachable) URL of the file
    r = project.run("--analytics-postgres-url", URL, "python", "-c", code)
    assert r.returncode == 0, r.stderr
    assert "answer 42" in r.stdout
    r = project.run("python", "-c", "from puff import postgres\npostgres.connect('nope')")
    assert r.returncode != 0 and "no Postgres pool named 'nope'" in r.stderr


@needs_pg
def test_blocking_thread_mode_and_abandoned_transactions_release_their_connection():
    def blocking():
        return pg.connect(autocommit=True).execute("select %s + 1, repeat(%s, %s)", [32767, "ab", 3]).fetchall()

    def leaky():
        conn = pg.connect()
        conn.execute("select 1")  # pins one of the pool's 4 connections; never committed or closed

    def main():
        assert puff.spawn_blocking(blocking).join() == [(32768, "ababab")]
        for _ in range(10):  # more than pool_size: each dropped Connection gave its lease back
            puff.spawn(leaky).join()
        with pg.connect() as conn:
            assert conn.execute("select 7").fetchone() == (7,)
        puff.sleep_ms(100)  # a release completes on the connection's thread
        return pg.get_pool().stats()["pinned"]

    assert run(main) == 0


@needs_pg
def test_killing_the_greenlet_cancels_its_query_on_the_server():
    import time

    def sleeper(tag):
        pg.connect(autocommit=True).execute(f"select pg_sleep(5) /* {tag} */")

    def in_tx(tag):
        conn = pg.connect()
        conn.execute(f"select pg_sleep(5) /* {tag} */")

    def running(tag):  # on a pool of its own: a shared connection would queue it behind pg_sleep
        cur = pg.connect("observer", autocommit=True).execute(
            "select count(*) from pg_stat_activity where state = 'active' and query like %s"
            " and pid <> pg_backend_pid()", [f"%{tag}%"])
        return cur.fetchone()[0]

    def main():
        pg.configure("observer", URL, pool_size=1)
        for fn in (sleeper, in_tx):
            tag = f"kill_{uuid.uuid4().hex[:8]}"
            h = puff.spawn(fn, tag)
            puff.sleep_ms(200)
            assert running(tag) == 1
            t0 = time.monotonic()
            h.kill()
            while running(tag) and time.monotonic() - t0 < 3:
                puff.sleep_ms(20)
            assert running(tag) == 0, fn.__name__
            assert time.monotonic() - t0 < 2
        with pg.connect() as conn:  # every lease was given back
            assert conn.execute("select 1").fetchone() == (1,)

    run(main)


@needs_pg
def test_cancelling_the_asyncio_task_cancels_its_query_on_the_server():
    import time

    async def running(tag):
        cur = await pg.connect("observer", autocommit=True).execute(
            "select count(*) from pg_stat_activity where state = 'active' and query like %s"
            " and pid <> pg_backend_pid()", [f"%{tag}%"])
        return cur.fetchone()[0]

    async def main():
        pg.configure("observer", URL, pool_size=1)
        for autocommit in (True, False):
            tag = f"acancel_{uuid.uuid4().hex[:8]}"
            conn = pg.connect(autocommit=autocommit)
            task = asyncio.ensure_future(conn.execute(f"select pg_sleep(5) /* {tag} */"))
            await asyncio.sleep(0.2)
            assert await running(tag) == 1
            t0 = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            while await running(tag) and time.monotonic() - t0 < 3:
                await asyncio.sleep(0.02)
            assert await running(tag) == 0, autocommit
            assert time.monotonic() - t0 < 2
            conn.close()
        return "ok"

    assert run(main) == "ok"


@needs_pg
def test_200_concurrent_transactions_share_4_connections():
    name = f"t_conc_{uuid.uuid4().hex[:8]}"

    def worker(i):
        with pg.connect() as conn:  # each waits its turn for one of the pool's 4 connections
            conn.execute(f"insert into {name} values (%s)", [i])
            return conn.execute(f"select count(*) from {name} where v = %s", [i]).fetchone()[0]

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (v int)", prepare=False)
        try:
            got = [h.join() for h in [puff.spawn(worker, i) for i in range(200)]]
            total = auto.execute(f"select count(*), count(distinct v) from {name}").fetchone()
            return got, total, pg.get_pool().stats()
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    got, total, stats = run(main)
    assert got == [1] * 200 and total == (200, 200)
    assert stats["connections"] <= 4


@needs_pg
def test_types_without_a_codec_come_back_as_text_or_bytes():
    name = f"mood_{uuid.uuid4().hex[:8]}"

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create type {name} as enum ('sad', 'happy')", prepare=False)
        try:
            assert auto.execute(f"select 'happy'::{name}, %s::{name}", ["sad"]).fetchone() == ("happy", "sad")
            assert auto.execute("select '\\x00ff'::bytea::text").fetchone() == ("\\x00ff",)
        finally:
            auto.execute(f"drop type {name}", prepare=False)

    run(main)


@needs_pg
def test_a_transaction_connection_refuses_a_second_concurrent_statement():
    async def main():
        conn = pg.connect()
        first = asyncio.ensure_future(conn.execute("select pg_sleep(0.2), 1"))
        await asyncio.sleep(0.05)
        with pytest.raises(pg.ProgrammingError, match="one greenlet or task at a time"):
            await conn.execute("select 2")
        assert (await first).fetchone()[1] == 1
        assert (await conn.execute("select 3")).fetchone() == (3,)  # usable again
        await conn.commit()
        return "ok"

    assert run(main) == "ok"
