"""The tables and statements of bench/postgres, in the database of $BENCH_PG_URL (main.py uses a
database of its own): the schema `puff_bench`, and the Django scenario's table `bench_item`.

    python data.py URL     # (re)creates the schema and fills the rows table; prints nothing
"""

from __future__ import annotations

import datetime
import sys

SCHEMA = "puff_bench"
ROWS = 10_000  # rows per fetch in the rows scenario

# Mixed types, as a typical table has them; jsonb is a small object.
SELECT_ROWS = (f"SELECT id, name, score, amount, created, active, uid, doc, day, big "
               f"FROM {SCHEMA}.mixed ORDER BY id")
INSERT_PYFORMAT = f"INSERT INTO {SCHEMA}.inserts (a, b, c, d) VALUES (%s, %s, %s, %s)"
INSERT_DOLLAR = f"INSERT INTO {SCHEMA}.inserts (a, b, c, d) VALUES ($1, $2, $3, $4)"

_SETUP = f"""
DROP SCHEMA IF EXISTS {SCHEMA} CASCADE;
CREATE SCHEMA {SCHEMA};
CREATE TABLE {SCHEMA}.mixed (
  id int PRIMARY KEY, name text NOT NULL, score float8 NOT NULL, amount numeric(12, 2) NOT NULL,
  created timestamptz NOT NULL, active bool NOT NULL, uid uuid NOT NULL, doc jsonb NOT NULL,
  day date NOT NULL, big bigint
);
INSERT INTO {SCHEMA}.mixed
SELECT i, 'name-' || i || repeat('x', i % 20), i * 1.25, (i * 3.17)::numeric(12, 2),
       timestamptz '2024-01-01 00:00:00+00' + i * interval '17 minutes', i % 3 = 0,
       md5(i::text)::uuid, jsonb_build_object('k', i, 'tags', jsonb_build_array('a', 'b')),
       date '2020-01-01' + i % 2000, CASE WHEN i % 7 = 0 THEN NULL ELSE i::bigint * 1000003 END
FROM generate_series(1, {ROWS}) AS i;
CREATE TABLE {SCHEMA}.inserts (a int NOT NULL, b text NOT NULL, c float8, d timestamptz);
ANALYZE {SCHEMA}.mixed;
DROP TABLE IF EXISTS public.bench_item;
CREATE TABLE public.bench_item (
  id int PRIMARY KEY, name text NOT NULL, price numeric(10, 2) NOT NULL, created timestamptz NOT NULL,
  active bool NOT NULL
);
INSERT INTO public.bench_item
SELECT i, 'item ' || i, (i * 1.5)::numeric(10, 2), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 hour',
       i % 2 = 0
FROM generate_series(1, 1000) AS i;
ANALYZE public.bench_item;
"""

_T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)


def insert_rows(n: int):
    """n parameter tuples for INSERT_*: (int, text, float, timestamptz)."""
    return [(i, f"row-{i}", i * 0.5, _T0 + datetime.timedelta(seconds=i)) for i in range(n)]


def setup(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(_SETUP)
    conn.close()


def truncate_inserts(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"TRUNCATE {SCHEMA}.inserts")
    conn.close()


if __name__ == "__main__":
    setup(sys.argv[1])
