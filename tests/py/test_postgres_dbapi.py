"""PEP 249 compliance of puff.postgres, test by test as the Stuart Bishop DB-API 2.0 suite
(dbapi20.py) checks it (our own code), plus round trips of every type of issue 4 with NULLs,
arrays and edge values. Against the private Postgres (PUFF_TEST_POSTGRES_URL)."""

import datetime as dt
import decimal
import ipaddress
import math
import os
import time
import uuid

import pytest

import puff
from puff import postgres as pg

URL = os.environ.get("PUFF_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


def run(fn):
    pg.configure("default", URL, pool_size=4)
    return puff.run(fn)


# ---- module interface (no server) ---------------------------------------------------------------


def test_module_interface():
    assert pg.apilevel == "2.0"
    assert pg.threadsafety in (0, 1, 2, 3)
    assert pg.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")
    assert issubclass(pg.Warning, Exception) and issubclass(pg.Error, Exception)
    for name in ("InterfaceError", "DatabaseError"):
        assert issubclass(getattr(pg, name), pg.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):
        assert issubclass(getattr(pg, name), pg.DatabaseError)
    for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError",
                 "IntegrityError", "InternalError", "ProgrammingError", "NotSupportedError"):
        assert getattr(pg.Connection, name) is getattr(pg, name)  # as connection attributes too
    assert pg.Date(2002, 12, 25) == dt.date(2002, 12, 25)
    assert pg.Time(13, 45, 30) == dt.time(13, 45, 30)
    assert pg.Timestamp(2002, 12, 25, 13, 45, 30) == dt.datetime(2002, 12, 25, 13, 45, 30)
    t = time.mktime((2002, 12, 25, 13, 45, 30, 0, 0, -1))
    assert pg.DateFromTicks(t) == dt.date(2002, 12, 25)
    assert pg.TimeFromTicks(t) == dt.time(13, 45, 30)
    assert pg.TimestampFromTicks(t) == dt.datetime(2002, 12, 25, 13, 45, 30)
    assert pg.Binary(b"Something") == b"Something" and pg.Binary(b"") == b""
    for obj in (pg.STRING, pg.BINARY, pg.NUMBER, pg.DATETIME, pg.ROWID):
        assert obj == obj and obj != 0


# ---- connection and cursor objects ----------------------------------------------------------------


@needs_pg
def test_dbapi20_connection_and_cursor_behaviour():
    t = f"booze_{uuid.uuid4().hex[:8]}"
    samples = ["Carlton Cold", "Carlton Draft", "Mountain Goat", "Redback", "Victoria Bitter", "XXXX"]

    def main():
        admin = pg.connect(autocommit=True)
        admin.execute(f"create table {t} (name varchar(20))", prepare=False)
        try:
            con = pg.connect()
            con.commit()  # nothing open: fine
            con.rollback()
            cur = con.cursor()
            # description: None before execute and after DDL/DML; 7 items per column after a SELECT
            assert cur.description is None
            cur.execute(f"insert into {t} values ('Victoria Bitter')")
            assert cur.description is None and cur.rowcount in (-1, 1)
            # cursor isolation: a second cursor of the connection sees the first one's insert
            cur2 = con.cursor()
            cur2.execute(f"select name from {t}")
            assert len(cur2.description) == 1 and len(cur2.description[0]) == 7
            assert cur2.description[0][0] == "name" and cur2.description[0][1] == pg.STRING
            assert cur2.fetchall() == [("Victoria Bitter",)] and cur2.rowcount in (-1, 1)
            con.rollback()
            # fetch* before an execute / after a statement without rows raise Error
            fresh = con.cursor()
            for fetch in (fresh.fetchone, fresh.fetchmany, fresh.fetchall):
                with pytest.raises(pg.Error):
                    fetch()
            fresh.execute(f"delete from {t}")
            with pytest.raises(pg.Error):
                fresh.fetchone()
            # empty result
            cur.execute(f"select name from {t}")
            assert cur.fetchone() is None and cur.fetchall() == [] and cur.fetchmany() == []
            assert cur.rowcount in (-1, 0)
            # executemany with both placeholder styles
            cur.executemany(f"insert into {t} values (%s)", [(s,) for s in samples[:3]])
            assert cur.rowcount in (-1, 3)
            cur.executemany(f"insert into {t} values (%(beer)s)", [{"beer": s} for s in samples[3:]])
            assert cur.rowcount in (-1, 3)
            # arraysize and fetchmany
            assert cur.arraysize == 1
            cur.execute(f"select name from {t} order by name")
            assert cur.rowcount in (-1, 6)
            assert cur.fetchmany() == [(samples[0],)]
            assert cur.fetchmany(2) == [(samples[1],), (samples[2],)]
            cur.arraysize = 4
            assert cur.fetchmany() == [(s,) for s in samples[3:]]
            assert cur.fetchmany() == []
            # mixed fetch
            cur.execute(f"select name from {t} order by name")
            assert cur.fetchone() == (samples[0],)
            assert cur.fetchmany(2) == [(samples[1],), (samples[2],)]
            assert cur.fetchone() == (samples[3],)
            assert cur.fetchall() == [(samples[4],), (samples[5],)]
            # None round trip, setinputsizes/setoutputsize, nextset
            cur.execute(f"delete from {t}")
            cur.execute(f"insert into {t} values (%s)", [None])
            cur.execute(f"select name from {t}")
            assert cur.fetchall() == [(None,)]
            cur.setinputsizes((25,))
            cur.setoutputsize(1000)
            cur.setoutputsize(2000, 0)
            assert cur.nextset() is None
            # callproc (a set-returning function) returns its parameters; rows are fetched
            assert cur.callproc("unnest", ([1, 2, 3],)) == ([1, 2, 3],)
            assert cur.fetchall() == [(1,), (2,), (3,)]
            assert cur.callproc("lower", ["ABC"]) == ["ABC"] and cur.fetchone() == ("abc",)
            with pytest.raises(pg.ProgrammingError):
                cur.callproc("lower(1); drop table x; --", [])
            con.commit()
            # close: the cursor and the connection refuse work afterwards
            cur.close()
            with pytest.raises(pg.Error):
                cur.execute("select 1")
            con.close()
            with pytest.raises(pg.Error):
                cur2.execute("select 1")
            with pytest.raises(pg.Error):
                con.commit()
            with pytest.raises(pg.Error):
                con.cursor()
            con.close()  # idempotent, as psycopg
            assert admin.execute(f"select count(*) from {t}").fetchone() == (1,)
        finally:
            admin.execute(f"drop table {t}", prepare=False)

    run(main)


# ---- types ----------------------------------------------------------------------------------------

TZ = dt.timezone(dt.timedelta(hours=-3, minutes=-30))
SCALARS = [
    ("bool", True), ("int2", -32768), ("int4", 2**31 - 1), ("int8", 2**63 - 1), ("float4", 1.5), ("float8", -2.25e300),
    ("numeric", decimal.Decimal("-1234.5678")), ("text", "ü\u00a0'\"\\%s"), ("varchar", "v"), ("char(2)", "ab"),
    ("name", "nm"), ("bytea", b"\x00\x01\xfe"), ("date", dt.date(2000, 2, 29)), ("time", dt.time(0, 0, 0, 1)),
    ("timetz", dt.time(12, 30, tzinfo=TZ)), ("timestamp", dt.datetime(1999, 12, 31, 23, 59, 59, 999999)),
    ("timestamptz", dt.datetime(2038, 1, 19, 3, 14, 8, tzinfo=dt.timezone.utc)),
    ("interval", dt.timedelta(days=400, hours=5, microseconds=3)),
    ("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678")),
    ("json", {"a": [1, 2.5, None, True, "x"]}), ("jsonb", {"b": [{}, "é"]}),
    ("inet", ipaddress.ip_interface("192.168.0.1/24")), ("cidr", ipaddress.ip_network("2001:db8::/32")),
]


@needs_pg
@pytest.mark.parametrize("typ,value", SCALARS, ids=[s[0] for s in SCALARS])
def test_every_type_round_trips_with_nulls_and_arrays(typ, value):
    def main():
        conn = pg.connect(autocommit=True)
        q = lambda sql, params=None: conn.execute(sql, params).fetchone()  # noqa: E731
        if typ in ("inet", "cidr", "json", "timetz", "name", "char(2)"):
            got = q(f"select %s::text::{typ}", [str(value) if typ != "json" else __import__("json").dumps(value)])[0]
        else:
            got = q(f"select %s::{typ}", [value])[0]
        assert got == value, (typ, got)
        if typ == "timetz":
            assert got.utcoffset() == value.utcoffset()
        assert q(f"select null::{typ}") == (None,)
        assert q(f"select %s::{typ}", [None]) == (None,)
        # arrays: one and two dimensions, with NULLs (built on the server from the scalar)
        arr = q(f"select array[x, null, x], array[array[x, null], array[null, x]] "
                f"from (select %s::text::{typ} as x) s", [_text(typ, value)])
        assert arr == ([value, None, value], [[value, None], [None, value]]), (typ, arr)
        assert q(f"select '{{}}'::{typ}[]") == ([],)

    run(main)


def _text(typ, value):
    if typ in ("json", "jsonb"):
        return __import__("json").dumps(value)
    if typ == "bytea":
        return "\\x" + value.hex()
    if typ == "interval":
        return f"{value.days} days {value.seconds} seconds {value.microseconds} microseconds"
    return str(value)


@needs_pg
def test_edge_values():
    def main():
        conn = pg.connect(autocommit=True)
        q = lambda sql, params=None: conn.execute(sql, params).fetchone()  # noqa: E731
        nan, inf = q("select %s::float8, %s::float4", [math.nan, -math.inf])
        assert math.isnan(nan) and inf == -math.inf
        assert q("select %s::float8[]", [[math.inf, math.nan, None]])[0][0] == math.inf
        assert q("select %s::numeric", [decimal.Decimal("NaN")])[0].is_nan()
        big = decimal.Decimal("9" * 500 + "." + "1" * 500)  # 1000 digits
        assert q("select %s::numeric", [big]) == (big,)
        assert q("select %s::numeric - %s::numeric", [big, big])[0] == 0
        assert q("select %s", [2**200]) == (2**200,)
        assert q("select %s::numeric", [decimal.Decimal("1E-900")])[0] == decimal.Decimal("1E-900")
        assert q("select '-0'::float8")[0] == 0.0 and math.copysign(1, q("select '-0'::float8")[0]) == -1
        assert q("select %s::text", ["a" * 100000])[0] == "a" * 100000
        assert q("select %s::bytea", [bytes(range(256)) * 1000])[0] == bytes(range(256)) * 1000
        assert q("select %s::date, %s::date", [dt.date.min, dt.date.max]) == (dt.date.min, dt.date.max)
        assert q("select %s::timestamp", [dt.datetime.max]) == (dt.datetime.max,)
        # values Python cannot hold raise DataError naming the problem
        for sql in ("select '0001-01-01 BC'::date", "select 'infinity'::timestamp", "select '-infinity'::timestamptz",
                    "select '10000-01-01'::date", "select '5874897-12-31'::date", "select '24:00:00'::time",
                    "select interval '1000000000 days'", "select array['infinity'::date]"):
            with pytest.raises(pg.DataError, match="range"):
                q(sql)
        # out-of-range parameters: the server refuses them (a DataError too)
        with pytest.raises(pg.NumericValueOutOfRange):
            q("select %s::int2", [40000])
        with pytest.raises(pg.DataError):
            q("select %s", ["nul\0inside"])
        assert q("select 1") == (1,)  # and the connection goes on

    run(main)


# ---- pool settings from puff.toml -----------------------------------------------------------------


@needs_pg
def test_postgres_pool_settings_from_puff_toml(project):
    project.write("puff.toml", """
        [[postgres]]
        pool_size = 2
        connect_timeout_ms = 3000
        statement_timeout_ms = 300
        max_prepared = 0
    """)
    code = ("import time\n"
            "from puff import postgres\n"
            "c = postgres.connect(autocommit=True)\n"
            "print('timeout', c.execute('show statement_timeout').fetchone()[0])\n"
            "t0 = time.monotonic()\n"
            "try:\n"
            "    c.execute('select pg_sleep(3)')\n"
            "except postgres.QueryCanceled:\n"
            "    print('canceled after', round(time.monotonic() - t0, 1))\n"
            "c.execute('select %s::int', [1])\n"
            "print('prepared', c.execute('select count(*) from pg_prepared_statements').fetchone()[0])\n")
    r = project.run("python", "-c", code, env={"PUFF_DEFAULT_POSTGRES_URL": URL})
    assert r.returncode == 0, r.stderr
    assert "timeout 300ms" in r.stdout and "canceled after" in r.stdout and "prepared 0" in r.stdout
    assert float(r.stdout.split("canceled after ")[1].split()[0]) < 2


@needs_pg
@pytest.mark.parametrize("hub_connection", ["true", "false"])
def test_hub_connection_from_puff_toml(project, hub_connection):
    # Observed from outside: sequential queries on the hub connection never wake an I/O thread;
    # with it off, every answer arrives through one.
    project.write("puff.toml", f"""
        [[postgres]]
        pool_size = 2
        hub_connection = {hub_connection}
    """)
    code = ("import os\n"
            "from puff import postgres\n"
            "def io_wakeups():\n"
            "    n = 0\n"
            "    for tid in os.listdir('/proc/self/task'):\n"
            "        if open(f'/proc/self/task/{tid}/comm').read().startswith('puff-io-'):\n"
            "            for line in open(f'/proc/self/task/{tid}/status'):\n"
            "                if line.startswith('voluntary_ctxt_switches:'):\n"
            "                    n += int(line.split()[1])\n"
            "    return n\n"
            "c = postgres.connect(autocommit=True)\n"
            "c.execute('select 1')\n"
            "before = io_wakeups()\n"
            "for i in range(300):\n"
            "    assert c.execute('select %s::int', [i]).fetchone()[0] == i\n"
            "print('woke', io_wakeups() - before)\n")
    r = project.run("python", "-c", code, env={"PUFF_DEFAULT_POSTGRES_URL": URL})
    assert r.returncode == 0, r.stderr
    woke = int(r.stdout.split("woke ")[1].split()[0])
    if hub_connection == "true":
        assert woke < 30, woke
    else:
        assert woke >= 300, woke
    project.write("puff.toml", "[[postgres]]\nstatement_timeout = 3\n")
    r = project.run("check")
    assert r.returncode == 2 and "statement_timeout_ms" in r.stderr + r.stdout


@needs_pg
def test_errors_carry_message_sqlstate_and_position():
    def main():
        conn = pg.connect(autocommit=True)
        with pytest.raises(pg.UndefinedColumn) as ei:
            conn.execute("select 1, nosuchcol from pg_class")
        e = ei.value
        assert isinstance(e, pg.ProgrammingError) and e.pgcode == e.sqlstate == "42703"
        assert e.diag.statement_position == "11" and e.diag.severity == "ERROR"
        assert e.pgerror == 'column "nosuchcol" does not exist' and str(e).startswith(e.pgerror)
        assert conn.execute("select 1").fetchone() == (1,)

    run(main)
