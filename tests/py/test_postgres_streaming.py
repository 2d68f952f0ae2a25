"""puff.postgres named cursors, COPY and LISTEN/NOTIFY against the private Postgres
(PUFF_TEST_POSTGRES_URL)."""

import asyncio
import datetime as dt
import decimal
import os
import time
import uuid

import pytest

import puff
from puff import postgres as pg

URL = os.environ.get("PUFF_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


def run(fn):
    pg.configure("default", URL, pool_size=4)
    return puff.run(fn)


def table(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def pinned_after_releases():
    """The pool's pinned count once releases (which finish on the connections' threads) are done."""
    deadline = time.monotonic() + 3
    while pg.get_pool().stats()["pinned"] and time.monotonic() < deadline:
        puff.sleep_ms(10)
    return pg.get_pool().stats()["pinned"]


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ---- named cursors ------------------------------------------------------------------------------


def test_named_cursor_in_a_transaction():
    def main():
        conn = pg.connect()
        cur = conn.cursor("big one")  # any name: it is quoted
        assert isinstance(cur, pg.ServerCursor) and cur.description is None
        with pytest.raises(pg.ProgrammingError):
            cur.fetchone()
        cur.itersize = 4
        cur.execute("select g, 'r' || g from generate_series(1, %s) g", [11])
        assert [d.name for d in cur.description] == ["g", "?column?"] and cur.description[0].type_code == pg.NUMBER
        assert cur.fetchone() == (1, "r1") and cur.rownumber == 1
        assert cur.fetchmany(6) == [(g, f"r{g}") for g in range(2, 8)]  # across batches
        assert [r[0] for r in cur] == [8, 9, 10, 11]
        assert cur.fetchone() is None and cur.fetchall() == [] and cur.rowcount == 11
        # open cursors of this transaction are visible to the server
        assert conn.execute("select count(*) from pg_cursors where name = 'big one'").fetchone() == (1,)
        cur.close()  # CLOSE: the name is free again in this transaction
        cur2 = conn.cursor("big one")
        cur2.itersize = 2
        cur2.execute("select g from generate_series(1, 10) g")
        assert cur2.fetchone() == (1,)
        conn.commit()
        with pytest.raises(pg.ProgrammingError, match="transaction ended"):
            cur2.fetchmany(5)  # past the rows already fetched: the server closed the cursor
        with pytest.raises(pg.NotSupportedError):
            conn.cursor("held", withhold=True)
        with pytest.raises(pg.NotSupportedError):
            conn.cursor("x").executemany("select 1", [()])
        # an error in the query: the transaction needs a rollback, as for any statement
        bad = conn.cursor("bad")
        with pytest.raises(pg.UndefinedTable):
            bad.execute("select * from no_such_table_for_cursors")
        conn.rollback()
        assert conn.execute("select 2").fetchone() == (2,)
        conn.close()

    run(main)


def test_named_cursor_in_autocommit_mode_pins_a_connection_until_the_end():
    def main():
        conn = pg.connect(autocommit=True)
        cur = conn.cursor("auto_cur", withhold=True)
        cur.itersize = 100
        cur.execute("select g from generate_series(1, 250) g")
        assert pg.get_pool().stats()["pinned"] == 1  # its private transaction
        assert sum(1 for _ in cur) == 250
        assert pinned_after_releases() == 0  # exhausted: COMMIT, connection back
        early = conn.cursor("early")
        early.execute("select g from generate_series(1, 1000) g")
        assert early.fetchmany(3) == [(1,), (2,), (3,)]
        early.close()
        return pinned_after_releases()

    assert run(main) == 0


def test_failed_named_cursor_in_autocommit_gives_its_connection_back():
    # Its private transaction is the cursor's own: nobody can roll it back. A failed cursor that
    # stays referenced (here, variables; in an app, a stored exception's traceback) kept its
    # connection pinned, and with every connection pinned the whole pool's queries waited forever.
    def main():
        conn = pg.connect(autocommit=True)
        kept = []
        for i in range(4):  # pool_size=4: as many as the pool has
            cur = conn.cursor(f"fails_{i}")
            cur.itersize = 2
            if i % 2:
                with pytest.raises(pg.DataError):
                    cur.execute("select 1 / (g - 1) from generate_series(1, 5) g")  # the first FETCH fails
            else:
                cur.execute("select 1 / (g - 3) from generate_series(1, 5) g")
                with pytest.raises(pg.DataError):
                    cur.fetchall()  # a later FETCH fails
            kept.append(cur)
        assert pinned_after_releases() == 0
        assert conn.execute("select 7").fetchone() == (7,)  # the pool is not exhausted
        with pytest.raises(pg.ProgrammingError, match="failed"):
            kept[0].fetchone()
        kept[0].execute("select g from generate_series(1, 3) g")  # usable again
        assert kept[0].fetchall() == [(1,), (2,), (3,)]
        return pinned_after_releases()

    assert run(main) == 0


def test_named_cursor_reads_a_million_rows_in_bounded_memory():
    def main():
        conn = pg.connect()
        cur = conn.cursor("million")
        cur.itersize = 5000
        cur.execute("select g, repeat('x', 40) from generate_series(1, 1000000) g")
        base, peak, n, total = rss_mb(), 0.0, 0, 0
        for row in cur:
            n += 1
            total += row[0]
            if n % 50000 == 0:
                peak = max(peak, rss_mb() - base)
        conn.rollback()
        return n, total, peak

    n, total, peak = run(main)
    assert n == 1000000 and total == 1000000 * 1000001 // 2
    assert peak < 40, f"RSS grew by {peak:.1f} MB"  # buffered whole it is ~150 MB


def test_named_cursor_from_asyncio():
    async def main():
        async with pg.connect() as conn:
            cur = conn.cursor("acur")
            cur.itersize = 3
            await cur.execute("select g from generate_series(1, %s) g", [8])
            assert await cur.fetchone() == (1,)
            assert await cur.fetchmany(2) == [(2,), (3,)]
            assert [r async for r in cur] == [(g,) for g in range(4, 9)]
            await cur.close()
        return "ok"

    assert run(main) == "ok"


# ---- COPY ---------------------------------------------------------------------------------------


def test_copy_in_and_out_with_rows_and_types():
    name = table("t_copy")

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (id int, s text, b bytea, d date, a int[], j jsonb, n numeric)",
                     prepare=False)
        try:
            cur = auto.cursor()
            rows = [
                (1, "tab\there, newline\nand \\ backslash", b"\x00\xff", dt.date(2024, 2, 29), [1, None, 3],
                 {"k": [1, "v"]}, decimal.Decimal("1.50")),
                (2, None, None, None, None, None, None),
                (3, "héllo", b"", dt.date(1, 1, 1), [], {"z": None}, decimal.Decimal("-0")),
            ]
            with cur.copy(f"COPY {name} FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
                copy.write("4\traw\t\\N\t2020-01-01\t{4}\t{}\t4\n")
            assert cur.rowcount == 5 - 1 and cur.statusmessage == "COPY 4"
            got = auto.execute(f"select * from {name} order by id").fetchall()
            assert got[:3] == [tuple(r) for r in rows]
            assert got[3] == (4, "raw", None, dt.date(2020, 1, 1), [4], {}, decimal.Decimal(4))
            with cur.copy(f"COPY (select id, s from {name} order by id) TO STDOUT") as copy:
                out = list(copy.rows())
            assert out[0] == ("1", rows[0][1]) and out[1] == ("2", None) and out[3] == ("4", "raw")
            assert cur.rowcount == 4
            with cur.copy(f"COPY (select id from {name} order by id) TO STDOUT (FORMAT csv)") as copy:
                assert b"".join(copy) == b"1\n2\n3\n4\n"
            # binary format: raw bytes out, and the same bytes back in
            with cur.copy(f"COPY (select id, n from {name} order by id) TO STDOUT (FORMAT binary)") as copy:
                binary = b"".join(copy)
            assert binary.startswith(b"PGCOPY\n\xff\r\n\0")
            with pg.connect() as tx:
                tx.execute("create temp table bin_copy (id int, n numeric)", prepare=False)
                with tx.cursor().copy("COPY bin_copy FROM STDIN (FORMAT binary)") as copy:
                    copy.write(binary[:7])  # rows may span writes
                    copy.write(binary[7:])
                assert tx.execute("select count(*), sum(id) from bin_copy").fetchone() == (4, 10)
                tx.execute("drop table bin_copy", prepare=False)
            with pytest.raises(pg.ProgrammingError, match="COPY ... FROM STDIN"):
                with cur.copy(f"select 1") as copy:
                    pass
            with pytest.raises(pg.ProgrammingError):
                with cur.copy(f"COPY {name} TO STDOUT") as copy:
                    copy.write(b"x")
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    run(main)


def test_copy_streams_20_mb_each_way():
    name = table("t_copybig")
    line = ("%d\t" + "y" * 200 + "\n")

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (id int, s text)", prepare=False)
        try:
            cur = auto.cursor()
            base = rss_mb()
            with cur.copy(f"COPY {name} FROM STDIN") as copy:
                for i in range(100000):  # ~20 MB, in 100 000 writes
                    copy.write(line % i)
            grew_in = rss_mb() - base
            assert cur.rowcount == 100000
            size, chunks, biggest = 0, 0, 0
            with cur.copy(f"COPY {name} TO STDOUT") as copy:
                for data in copy:
                    size, chunks, biggest = size + len(data), chunks + 1, max(biggest, len(data))
            return grew_in, size, chunks, biggest, rss_mb() - base
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    grew_in, size, chunks, biggest, grew = run(main)
    assert size == sum(len(line % i) for i in range(100000))
    assert chunks > 100 and biggest < 64 * 1024 + 300
    assert grew_in < 15 and grew < 25, (grew_in, grew)


def test_copy_errors_are_reported_and_the_connection_stays_usable():
    name = table("t_copyerr")

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (id int primary key)", prepare=False)
        try:
            cur = auto.cursor()
            with pytest.raises(pg.InvalidTextRepresentation) as ei:
                with cur.copy(f"COPY {name} FROM STDIN") as copy:
                    copy.write_row([1])
                    copy.write_row(["not a number"])
            assert isinstance(ei.value, pg.DataError) and "not a number" in str(ei.value)
            with pytest.raises(pg.UniqueViolation):
                with cur.copy(f"COPY {name} FROM STDIN") as copy:
                    copy.write(b"5\n5\n")
            with pytest.raises(KeyError):  # the block's own exception aborts the COPY
                with cur.copy(f"COPY {name} FROM STDIN") as copy:
                    copy.write_row([7])
                    raise KeyError("mine")
            with pytest.raises(pg.UndefinedTable):
                with cur.copy("COPY no_such_table_for_copy FROM STDIN"):
                    pass
            assert auto.execute(f"select count(*) from {name}").fetchone() == (0,)
            # in a transaction: part of it; a failed COPY aborts it like any statement
            tx = pg.connect()
            with tx.cursor().copy(f"COPY {name} FROM STDIN") as copy:
                copy.write_row([10])
            assert tx.execute(f"select count(*) from {name}").fetchone() == (1,)
            tx.rollback()
            with pytest.raises(pg.InvalidTextRepresentation):
                with tx.cursor().copy(f"COPY {name} FROM STDIN") as copy:
                    copy.write(b"x\n")
            with pytest.raises(pg.InFailedSqlTransaction):
                tx.execute("select 1")
            tx.rollback()
            with tx.cursor().copy(f"COPY {name} FROM STDIN") as copy:
                copy.write_row([11])
            tx.commit()
            assert auto.execute(f"select array_agg(id) from {name}").fetchone() == ([11],)
            # a COPY OUT left early, then the connection goes on
            with cur.copy("COPY (select g from generate_series(1, 200000) g) TO STDOUT") as copy:
                assert copy.read().startswith(b"1\n2\n")
            assert auto.execute("select 9").fetchone() == (9,)
        finally:
            auto.execute(f"drop table {name}", prepare=False)
        pinned_after_releases()
        return pg.get_pool().stats()

    stats = run(main)
    assert stats["pinned"] == 0 and stats["lost"] == 0


def test_a_greenlet_killed_during_copy_gives_its_connection_back():
    name = table("t_copykill")

    def reader(autocommit, started):
        big = "COPY (select g, repeat('z', 100) from generate_series(1, 2000000) g) TO STDOUT"
        with pg.connect(autocommit=autocommit) as conn, conn.cursor().copy(big) as copy:
            for _ in copy:
                started.append(1)
                puff.sleep_ms(5)  # a slow consumer: the server waits for us meanwhile

    def writer(started):
        with pg.connect() as conn, conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
            while True:
                copy.write(b"1\n" * 10000)
                started.append(1)
                puff.sleep_ms(5)

    def main():
        auto = pg.connect(autocommit=True)
        auto.execute(f"create table {name} (id int)", prepare=False)
        try:
            for fn, args in ((reader, (True,)), (reader, (False,)), (writer, ())):
                started = []
                h = puff.spawn(fn, *args, started)
                while len(started) < 3:
                    puff.sleep_ms(5)
                h.kill()
                puff.sleep_ms(50)
                assert h.finished
            with pg.connect() as conn:  # every connection came back usable
                assert conn.execute(f"select count(*) from {name}").fetchone() == (0,)
            pinned_after_releases()
            return pg.get_pool().stats()
        finally:
            auto.execute(f"drop table {name}", prepare=False)

    stats = run(main)
    assert stats["pinned"] == 0


def test_listen_fails_clearly_when_the_server_does_not_answer():
    def main():
        pg.configure("nowhere", "postgres://nobody@127.0.0.1:1/none")
        t0 = time.monotonic()
        with pytest.raises(pg.OperationalError):
            pg.listen("x", name="nowhere")
        assert time.monotonic() - t0 < 6

    run(main)


def test_copy_from_asyncio():
    name = table("t_copyaio")

    async def main():
        auto = pg.connect(autocommit=True)
        await auto.execute(f"create table {name} (id int, s text)", prepare=False)
        try:
            cur = auto.cursor()
            async with cur.copy(f"COPY {name} FROM STDIN") as copy:
                for i in range(1000):
                    await copy.write_row((i, f"s{i}"))
            assert cur.rowcount == 1000
            async with cur.copy(f"COPY (select * from {name} order by id) TO STDOUT") as copy:
                rows = [r async for r in copy.arows()]
            assert rows[0] == ("0", "s0") and len(rows) == 1000
            async with cur.copy(f"COPY {name} TO STDOUT") as copy:
                assert sum([len(c) async for c in copy]) > 0
        finally:
            await auto.execute(f"drop table {name}", prepare=False)
        return "ok"

    assert run(main) == "ok"


# ---- LISTEN / NOTIFY ----------------------------------------------------------------------------


def test_listen_notify_in_greenlets():
    ch = f"ch_{uuid.uuid4().hex[:8]}"

    def main():
        auto = pg.connect(autocommit=True)
        sub = pg.listen(ch, ch + "_b")
        other = pg.listen(ch)
        assert sub.channels == (ch, ch + "_b") and not sub.closed
        auto.execute(f"NOTIFY {ch}, 'one'")
        auto.execute("select pg_notify(%s, %s)", [ch + "_b", "twö"])
        auto.execute(f"NOTIFY {ch}")
        a, b, c = sub.get(timeout=3), sub.get(timeout=3), sub.get(timeout=3)
        assert (a.channel, a.payload, b.channel, b.payload, c.payload) == (ch, "one", ch + "_b", "twö", "")
        assert a.pid > 0
        assert [other.get(3).payload for _ in range(2)] == ["one", ""]
        t0 = time.monotonic()
        assert sub.get(timeout=0.2) is None and 0.15 < time.monotonic() - t0 < 2
        # a transaction's notifications arrive at commit
        with pg.connect() as tx:
            tx.execute(f"NOTIFY {ch}, 'in tx'")
            assert sub.get(timeout=0.1) is None
        assert sub.get(timeout=3).payload == "in tx"
        # iteration in a greenlet, ended by close() from another
        seen = []

        def reader():
            for n in other:
                seen.append(n.payload)

        h = puff.spawn(reader)
        for i in range(3):
            auto.execute("select pg_notify(%s, %s)", [ch, str(i)])
        deadline = time.monotonic() + 3
        while len(seen) < 4 and time.monotonic() < deadline:
            puff.sleep_ms(10)
        other.close()
        h.join()
        assert seen == ["in tx", "0", "1", "2"]
        with pytest.raises(pg.InterfaceError):
            other.get(timeout=0)
        sub.close()
        with pytest.raises(pg.ProgrammingError):
            pg.listen()

    run(main)


def test_listen_from_asyncio_and_a_cancelled_wait_loses_nothing():
    ch = f"ach_{uuid.uuid4().hex[:8]}"

    async def main():
        auto = pg.connect(autocommit=True)
        async with await pg.listen(ch) as sub:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.get(), 0.1)
            await auto.execute(f"NOTIFY {ch}, 'x'")
            n = await sub.get(timeout=3)
            assert n.payload == "x"
            for i in range(3):
                await auto.execute(f"NOTIFY {ch}, '{i}'")
            got = []
            async for n in sub:
                got.append(n.payload)
                if len(got) == 3:
                    break
            assert got == ["0", "1", "2"]
        assert sub.closed
        return "ok"

    assert run(main) == "ok"


def test_listen_survives_the_listening_backend_being_terminated():
    ch = f"rch_{uuid.uuid4().hex[:8]}"

    def main():
        auto = pg.connect(autocommit=True)
        sub = pg.listen(ch)
        pid = auto.execute("select pid from pg_stat_activity where query like %s", [f"LISTEN%{ch}%"]).fetchone()[0]
        assert auto.execute("select pg_terminate_backend(%s)", [pid]).fetchone() == (True,)
        got = None
        deadline = time.monotonic() + 5
        while got is None and time.monotonic() < deadline:
            auto.execute(f"NOTIFY {ch}, 'back'")
            got = sub.get(timeout=0.1)
        assert got is not None and got.payload == "back"
        assert sub.interruptions == 1
        sub.close()

    run(main)
