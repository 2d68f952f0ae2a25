"""puff.contrib.django pieces that need no project: ``query_and_params`` (against the private
Postgres for the results), SQL literals, statement splitting, and the psycopg stand-in not
leaking into ``sys.modules``."""

import datetime as dt
import decimal
import os
import subprocess
import sys
import uuid

import pytest

django = pytest.importorskip("django")

import puff  # noqa: E402
from puff import postgres as pg  # noqa: E402
from puff.contrib.django import _sqltext, _values, query_and_params  # noqa: E402

URL = os.environ.get("PUFF_TEST_POSTGRES_URL")
needs_pg = pytest.mark.skipif(not URL, reason="PUFF_TEST_POSTGRES_URL is not set")


def _setup():
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DATABASES={"default": {"ENGINE": "puff.contrib.django.postgres", "NAME": "unused", "HOST": "127.0.0.1"}},
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"], USE_TZ=True)
        django.setup()
    from django.contrib.postgres.fields import ArrayField
    from django.db import models

    class PgType(models.Model):
        """pg_catalog.pg_type: a table every server has."""

        typname = models.CharField(primary_key=True, max_length=64)
        typlen = models.SmallIntegerField()

        class Meta:
            app_label = "auth"
            db_table = "pg_type"
            managed = False

    class Doc(models.Model):
        data = models.JSONField()
        tags = ArrayField(models.CharField(max_length=20))

        class Meta:
            app_label = "auth"

    return PgType, Doc


PgType, Doc = _setup()


def test_placeholders_are_numbered_in_order():
    sql, params = query_and_params(PgType.objects.filter(typname__in=["int4", "text"], typlen__gt=-5))
    assert '"typlen" > $1' in sql and "IN ($2, $3)" in sql and "%s" not in sql
    assert params == [-5, "int4", "text"]


def test_literal_percent_s_in_sql_text_stays():
    # Upstream replaced every "%s" in the text: a literal '%s' took a parameter's number.
    sql, params = query_and_params(PgType.objects.extra(where=["typname <> '%s'"]).filter(typname="int4"))
    assert "<> '%s'" in sql and "= $1" in sql and params == ["int4"]
    sql, params = query_and_params(PgType.objects.extra(where=["typname <> '%%s'"]).filter(typlen=4))
    assert "<> '%s'" in sql and "= $1" in sql and params == [4]


def test_double_percent_and_percent_in_values():
    from django.db.models import F

    sql, params = query_and_params(PgType.objects.filter(typname__contains=F("typname")))
    assert "LIKE '%' ||" in sql and "%%" not in sql and params == []
    sql, params = query_and_params(PgType.objects.filter(typname__contains="50%").filter(typname="%s"))
    assert params == ["%50\\%%", "%s"] and "LIKE $1" in sql and "= $2" in sql


def test_json_and_array_parameters():
    sql, params = query_and_params(Doc.objects.filter(data__contains={"a": "%s"}, tags__contains=["x"]))
    assert "@> $1::jsonb" in sql and "@> (ARRAY[$2])::varchar(20)[]" in sql
    assert params == ['{"a": "%s"}', "x"] and isinstance(params[0], _values.JsonText)


def test_empty_in_raises_empty_result_set():
    from django.core.exceptions import EmptyResultSet

    with pytest.raises(EmptyResultSet):
        query_and_params(PgType.objects.filter(typname__in=[]))


@needs_pg
def test_the_sql_runs_on_puffs_native_pool():
    from django.db.models import F

    qs = (PgType.objects.filter(typname__in=["int4", "int8", "text"]).extra(where=["typname <> '%s'"])
          .annotate(double=F("typlen") * 2).order_by("typname").values_list("typname", "typlen", "double"))
    sql, params = query_and_params(qs)
    pg.configure("django_sql_tests", URL, pool_size=2)

    def run():
        return pg.get_pool("django_sql_tests").query(sql, params)[0]

    assert puff.run(run) == [("int4", 4, 8), ("int8", 8, 16), ("text", -1, -2)]


@pytest.mark.parametrize("value,literal", [
    (None, "NULL"), (True, "true"), (42, "42"), (1.5, "1.5"), (float("nan"), "'NaN'::float8"),
    (decimal.Decimal("1.50"), "1.50"), ("it's", "'it''s'"), ("back\\slash", "E'back\\\\slash'"),
    (b"\x00\xff", "'\\x00ff'::bytea"), (dt.date(2024, 2, 29), "'2024-02-29'::date"),
    (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), "'2024-01-02T03:04:05+00:00'::timestamptz"),
    (dt.timedelta(days=1, seconds=2, microseconds=3), "'1 days 2.000003 seconds'::interval"),
    (uuid.UUID(int=1), "'00000000-0000-0000-0000-000000000001'::uuid"),
    (["a", None, 2], "ARRAY['a', NULL, 2]"), (_values.JsonText('{"a": 1}'), "'{\"a\": 1}'::jsonb"), ([], "'{}'"), ({"k": "v'"}, "'{\"k\": \"v''\"}'::jsonb"),
])
def test_sql_literals(value, literal):
    assert _values.quote(value) == literal


def test_mogrify_is_psycopg2_formatting():
    assert _values.mogrify("SELECT %s, '%%', %s", ["a", 1]) == "SELECT 'a', '%', 1"
    assert _values.mogrify("SELECT %(x)s", {"x": None}) == "SELECT NULL"
    assert _values.mogrify("SELECT '%s'", None) == "SELECT '%s'"


def test_adapt_params_fast_path_and_adapters():
    params = ["a", 1, None, dt.date.today()]
    assert _values.adapt_params(params) is params
    json_like = type("Json", (), {"adapted": {"a": 1}, "dumps": lambda self, o: '{"a": 1}'})()
    import ipaddress

    out = _values.adapt_params([json_like, ipaddress.ip_address("10.0.0.1"), [json_like]])
    assert out == ['{"a": 1}', "10.0.0.1", ['{"a": 1}']] and isinstance(out[0], _values.JsonText)


@pytest.mark.parametrize("sql,parts", [
    ("SELECT 1", ["SELECT 1"]),
    ("UPDATE t SET a = 1; SET CONSTRAINTS ALL IMMEDIATE", ["UPDATE t SET a = 1", "SET CONSTRAINTS ALL IMMEDIATE"]),
    ("SELECT ';'; SELECT \"a;b\"", ["SELECT ';'", 'SELECT "a;b"']),
    ("SELECT $$a;b$$; SELECT $x$;$x$", ["SELECT $$a;b$$", "SELECT $x$;$x$"]),
    ("SELECT 1 -- ;\n; SELECT /* ; /* ; */ */ 2;", ["SELECT 1 -- ;", "SELECT /* ; /* ; */ */ 2"]),
    ("SELECT E'\\';'; SELECT 3", ["SELECT E'\\';'", "SELECT 3"]),
])
def test_split_statements(sql, parts):
    assert _sqltext.split_statements(sql) == parts


def test_cast_placeholders_counts_only_code_placeholders():
    sql = "SELECT '%s', %s, \"%s\", %%s, /* %s */ %s -- %s\n, $q$ %s $q$, %s"
    assert _sqltext.cast_placeholders(sql, {1: "jsonb", 2: "int"}) == (
        "SELECT '%s', %s, \"%s\", %%s, /* %s */ %s::jsonb -- %s\n, $q$ %s $q$, %s::int")


def test_the_psycopg_stand_in_is_private():
    code = """
import importlib.util, sys
import puff.contrib.django
import django.db.backends.postgresql.base as base
from django.db.backends.postgresql import psycopg_any
real = importlib.util.find_spec("psycopg") or importlib.util.find_spec("psycopg2")
if real is None:
    assert base.Database.__name__ == "puff.contrib.django._psycopg2", base.Database
    assert not [m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg2")], sys.modules.keys()
    try:
        import psycopg2
    except ImportError:
        pass
    else:
        raise AssertionError("psycopg2 became importable")
    try:
        base.Database.connect(dbname="x")
    except base.Database.NotSupportedError as e:
        assert "puff.contrib.django.postgres" in str(e)
else:
    assert base.Database.__name__ in ("psycopg", "psycopg2"), base.Database
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_result_converters():
    import ipaddress

    from django.db.models.fields.json import KeyTransform

    from puff.contrib.django.postgres import operations as ops_module

    assert ops_module._json_text({"a": [1, None]}, None, None) == '{"a": [1, null]}'
    assert ops_module._json_text("123", None, None) == '"123"'  # a JSON string stays a string
    key = KeyTransform("k", "data")
    assert ops_module._json_text({"a": 1}, key, None) == {"a": 1} and ops_module._json_text(None, None, None) is None
    assert ops_module._inet_text(ipaddress.ip_interface("10.0.0.1/32"), None, None) == "10.0.0.1"
    assert ops_module._inet_text(ipaddress.ip_interface("10.0.0.1/8"), None, None) == "10.0.0.1/8"
    assert ops_module._inet_text(ipaddress.ip_network("10.0.0.0/8"), None, None) == "10.0.0.0/8"


def test_datetimes_follow_use_tz_and_time_zone():
    from django.db import connections
    from django.test import override_settings

    ops = connections["default"].ops
    noon_utc = dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
    assert ops._datetime_converter() is None  # USE_TZ and UTC: the driver's values as they are
    with override_settings(USE_TZ=False, TIME_ZONE="Europe/Paris"):
        assert ops._datetime_converter()(noon_utc, None, None) == dt.datetime(2024, 1, 1, 13, 0)
        sent = ops.adapt_datetimefield_value(dt.datetime(2024, 7, 1, 12, 0))
        assert sent.utcoffset() == dt.timedelta(hours=2)  # naive = TIME_ZONE time, sent aware
    wrapper = type(connections["default"])({**connections["default"].settings_dict, "TIME_ZONE": "Asia/Tokyo"})
    assert wrapper.ops._datetime_converter()(noon_utc, None, None).isoformat() == "2024-01-01T21:00:00+09:00"


def test_pool_resolution():
    from puff.contrib.django.postgres import pools

    pg.configure("djpool", "postgres://u:secret@db.example:5433/main?sslmode=disable", pool_size=3)
    pg.configure("djkv", "host=/run/pg user=u dbname=main", pool_size=2)
    url_of = lambda name: pg._settings(name)[0]  # noqa: E731

    settings = {"NAME": "", "OPTIONS": {"pool": "djpool"}}
    pools.normalize(settings)
    assert settings["NAME"] == "main" and pools.resolve(settings) == "djpool"  # the shared pool itself
    test_db = pools.resolve({**settings, "NAME": "test_main"})  # what the test runner asks for
    assert test_db.startswith("django:test_main:")
    assert url_of(test_db) == "postgres://u:secret@db.example:5433/test_main?sslmode=disable"
    assert pg._settings(test_db)[1] == 3
    assert url_of(pools.resolve({**settings, "NAME": None})).endswith("/postgres?sslmode=disable")

    settings = {"NAME": "", "OPTIONS": {"dbname": "djpool"}}  # upstream Puff's spelling
    pools.normalize(settings)
    assert settings["OPTIONS"]["pool"] == "djpool" and pools.resolve(settings) == "djpool"

    kv = pools.resolve({"NAME": "other", "OPTIONS": {"pool": "djkv"}})
    assert url_of(kv) == "host=/run/pg user=u dbname=main dbname='other'"

    own = pools.resolve({"NAME": "app", "USER": "me", "PASSWORD": "p w@", "HOST": "10.0.0.5", "PORT": "6543",
                         "OPTIONS": {"sslmode": "require", "pool_size": 4}})
    assert url_of(own) == "postgresql://me:p%20w%40@10.0.0.5:6543/app?sslmode=require"
    assert pg._settings(own)[1] == 4
    sock = pools.resolve({"NAME": "app", "HOST": "/var/run/postgresql", "OPTIONS": {}})
    assert url_of(sock) == "postgresql:///app?host=%2Fvar%2Frun%2Fpostgresql"

    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="no Postgres pool named 'nope'"):
        pools.resolve({"NAME": "", "OPTIONS": {"pool": "nope"}})


@needs_pg
def test_isolation_level_with_a_named_cursor_first_in_the_transaction():
    # OPTIONS["isolation_level"] runs SET TRANSACTION first in each transaction. When the first
    # statement came through a named cursor (QuerySet.iterator() inside atomic), the SET went
    # through it too: DECLARE ... CURSOR FOR SET TRANSACTION, a syntax error.
    from django.db import connections
    from django.db.backends.postgresql.psycopg_any import IsolationLevel

    from puff.contrib.django.postgres.base import DatabaseWrapper

    pg.configure("django_iso_tests", URL, pool_size=2)
    settings = connections.configure_settings({"default": {
        "ENGINE": "puff.contrib.django.postgres", "NAME": "",
        "OPTIONS": {"pool": "django_iso_tests", "isolation_level": IsolationLevel.REPEATABLE_READ}}})["default"]

    def run():
        wrapper = DatabaseWrapper(settings, "iso")
        try:
            wrapper.set_autocommit(False)
            cur = wrapper.chunked_cursor()  # what QuerySet.iterator() uses: a named cursor
            cur.execute("SELECT typname FROM pg_type WHERE typname IN (%s, %s) ORDER BY 1", ["int4", "int8"])
            rows = cur.fetchall()
            with wrapper.cursor() as plain:
                plain.execute("SHOW transaction_isolation")
                level = plain.fetchone()[0]
            wrapper.commit()
            return rows, level
        finally:
            wrapper.close()

    assert puff.run(run) == ([("int4",), ("int8",)], "repeatable read")
